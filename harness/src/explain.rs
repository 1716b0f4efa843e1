//! `sockspec explain TEST`: a test's steps, and every OS's expectation for each
//! checked step side by side, with provenance and why.

use std::fmt::Write as _;

use crate::Suite;
use crate::expect::Provenance;
use crate::model::{OsFamily, Test};

/// The expectation of one OS for one label, as one line, or why there is none.
pub fn cell(suite: &Suite, test: &Test, os: OsFamily, label: &str) -> String {
    if let Some(why) = test.not_applicable(os) {
        return format!("— ({why})");
    }
    match suite
        .expectations
        .for_os(os)
        .and_then(|f| f.resolve(test, label, None))
    {
        Some(a) => a.outcome.to_string(),
        None => "(no expectation)".into(),
    }
}

pub fn explain(suite: &Suite, test: &Test) -> String {
    let mut out = String::new();
    let case = &test.case;
    let _ = writeln!(out, "{}\n  {}", test.name, case.title);
    let _ = writeln!(out, "  case file: {}", case.file.display());
    let _ = writeln!(out, "  source: {}", case.source.join("; "));
    if let Some(claim) = &case.claim {
        let _ = writeln!(
            out,
            "  claim: {}",
            claim.trim().replace('\n', "\n         ")
        );
    }
    if !test.params.is_empty() {
        let p: Vec<String> = test
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "  parameters: {}", p.join(" "));
    }
    let _ = writeln!(out, "  deadline: {} ms", case.deadline.as_millis());
    let _ = writeln!(out, "\nsteps:");
    for s in &test.steps {
        let line = s.to_string();
        let mut tags = Vec::new();
        if let Some(l) = &s.check {
            tags.push(format!("check {l}"));
        }
        if let Some(r) = &s.require {
            tags.push(format!("requires {r}"));
        }
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", tags.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:>2}  {line:<48}{tags}   line {}",
            s.index + 1,
            s.at.line
        );
    }
    for s in test.steps.iter().filter(|s| s.check.is_some()) {
        let label = s.check.as_deref().unwrap_or_default();
        let _ = writeln!(out, "\nexpectations for `{label}` ({}):", s);
        for os in OsFamily::ALL {
            if let Some(why) = test.not_applicable(*os) {
                let _ = writeln!(out, "  {:<8} —  cannot run there: {why}", os.as_str());
                continue;
            }
            let Some(file) = suite.expectations.for_os(*os) else {
                let _ = writeln!(out, "  {:<8} (no expectation file)", os.as_str());
                continue;
            };
            match file.resolve(test, label, None) {
                Some(a) => {
                    let _ = writeln!(
                        out,
                        "  {:<8} {:<14} {}   {}:{}",
                        os.as_str(),
                        a.outcome.to_string(),
                        a.entry.provenance.summary(),
                        a.entry.at.file.display(),
                        a.entry.at.line
                    );
                    if let Some(w) = &a.entry.why {
                        let _ = writeln!(out, "  {:<8} why: {w}", "");
                    }
                    // A document that a run overruled stays on record.
                    let observed = matches!(a.entry.provenance, Provenance::Observed { .. });
                    for other in file.candidates(test, label, None).iter().skip(1) {
                        let documented =
                            matches!(other.entry.provenance, Provenance::Documented { .. });
                        if observed && documented && other.outcome != a.outcome {
                            let _ = writeln!(
                                out,
                                "  {:<8} overrules the documented {} ({}, line {})",
                                "",
                                other.outcome,
                                other
                                    .entry
                                    .provenance
                                    .summary()
                                    .trim_start_matches("documented: "),
                                other.entry.at.line
                            );
                        }
                    }
                }
                None => {
                    let _ = writeln!(out, "  {:<8} (no expectation)", os.as_str());
                }
            }
            for r in file.ranged(test, label) {
                let mut when = Vec::new();
                if let Some(k) = &r.entry.kernel {
                    when.push(format!("on kernel {}", k.text));
                }
                if let Some(c) = r.entry.condition() {
                    when.push(format!("with {c}"));
                }
                let _ = writeln!(
                    out,
                    "  {:<8} {:<14} {}: {}   line {}",
                    "",
                    r.outcome.to_string(),
                    when.join(" "),
                    r.entry.provenance.summary(),
                    r.entry.at.line
                );
            }
        }
        // Wine is an emulation: say where it parts from documented Windows.
        let win = cell(suite, test, OsFamily::Windows, label);
        let wine = cell(suite, test, OsFamily::Wine, label);
        if !win.starts_with('(') && !wine.starts_with('(') && win != wine {
            let _ = writeln!(out, "  note: Wine ({wine}) differs from Windows ({win})");
        }
    }
    sources_section(&mut out, suite, test);
    if let Some(recipe) = &case.recipe {
        let _ = writeln!(
            out,
            "\nrecipe verdict by the expectations (it works when {}):",
            recipe_rule(recipe)
        );
        for os in OsFamily::ALL {
            if let Some(why) = test.not_applicable(*os) {
                let _ = writeln!(out, "  {:<8} —  cannot run there: {why}", os.as_str());
                continue;
            }
            let file = suite.expectations.for_os(*os);
            let v = recipe.verdict(|label| {
                file.and_then(|f| f.resolve(test, label, None))
                    .map(|a| a.outcome.clone())
            });
            let _ = writeln!(out, "  {:<8} {v}", os.as_str());
        }
    }
    out
}

fn recipe_rule(r: &crate::model::Recipe) -> String {
    r.works
        .iter()
        .map(|(l, allowed)| {
            let a: Vec<String> = allowed.iter().map(|o| o.to_string()).collect();
            format!("{l} is {}", a.join(" or "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every source the test's resolved documented expectations cite, once, with
/// its kind and a link a reader can open (from `cases/sources.toml`).
fn sources_section(out: &mut String, suite: &Suite, test: &Test) {
    let Some(reg) = &suite.expectations.sources else {
        return;
    };
    let mut cited: Vec<(&str, Vec<&str>)> = Vec::new();
    for label in test.steps.iter().filter_map(|s| s.check.as_deref()) {
        for os in OsFamily::ALL {
            let Some(a) = suite
                .expectations
                .for_os(*os)
                .and_then(|f| f.resolve(test, label, None))
            else {
                continue;
            };
            let Provenance::Documented { keys, .. } = &a.entry.provenance else {
                continue;
            };
            for k in keys {
                match cited.iter_mut().find(|(c, _)| c == k) {
                    Some((_, oses)) if !oses.contains(&os.as_str()) => oses.push(os.as_str()),
                    Some(_) => {}
                    None => cited.push((k.as_str(), vec![os.as_str()])),
                }
            }
        }
    }
    if cited.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nsources cited ({}):", reg.path.display());
    for (key, oses) in cited {
        let Some(src) = reg.get(key) else { continue };
        let _ = writeln!(
            out,
            "  {key} [{}] ({})\n      {}\n      {}",
            src.kind.as_str(),
            oses.join(", "),
            src.title,
            src.link()
        );
    }
}
