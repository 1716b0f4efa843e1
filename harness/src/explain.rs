//! `sockspec explain TEST`: a test's steps, and every OS's expectation for each
//! checked step side by side, with provenance and why.

use std::fmt::Write as _;

use crate::Suite;
use crate::expect::Provenance;
use crate::model::{OsFamily, Step, Test};
use crate::sources::Source;

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

/// Everything sockspec knows of one test, for a person: its case, its
/// steps, every OS's expectation for each checked step with provenance and
/// why, the sources cited, the recipe verdict, and the claims' verdicts
/// where its case's `[[holds]]` give one.
pub fn explain(suite: &Suite, test: &Test) -> String {
    let mut out = String::new();
    header(&mut out, test);
    steps_section(&mut out, test);
    for s in test.steps.iter().filter(|s| s.check.is_some()) {
        let label = s.check.as_deref().unwrap_or_default();
        let _ = writeln!(out, "\nexpectations for `{label}` ({}):", s);
        for os in OsFamily::ALL {
            expectation_lines(&mut out, suite, test, s, *os);
        }
        // Wine is an emulation: say where it parts from documented Windows.
        let win = cell(suite, test, OsFamily::Windows, label);
        let wine = cell(suite, test, OsFamily::Wine, label);
        if !win.starts_with('(') && !wine.starts_with('(') && win != wine {
            let _ = writeln!(out, "  note: Wine ({wine}) differs from Windows ({win})");
        }
    }
    sources_section(&mut out, suite, test);
    recipe_section(&mut out, suite, test);
    claim_verdicts(
        &mut out,
        suite,
        &test.case,
        &[test],
        OsFamily::ALL,
        ("this test", true),
    );
    out
}

fn header(out: &mut String, test: &Test) {
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
}

fn steps_section(out: &mut String, test: &Test) {
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
        if let Some(on) = &s.os {
            let off: Vec<&str> = OsFamily::ALL
                .iter()
                .filter(|o| !on.contains(o))
                .map(|o| o.as_str())
                .collect();
            let on: Vec<&str> = on.iter().map(|o| o.as_str()).collect();
            tags.push(if on.len() <= off.len() {
                format!("only on {}", on.join(", "))
            } else {
                format!("not on {}", off.join(", "))
            });
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
}

/// One OS's lines for one checked step: the outcome that applies and its
/// provenance, a document a run overruled, windows and ranged entries.
fn expectation_lines(out: &mut String, suite: &Suite, test: &Test, s: &Step, os: OsFamily) {
    let label = s.check.as_deref().unwrap_or_default();
    if let Some(why) = test.not_applicable(os) {
        let _ = writeln!(out, "  {:<8} —  cannot run there: {why}", os.as_str());
        return;
    }
    let Some(file) = suite.expectations.for_os(os) else {
        let _ = writeln!(out, "  {:<8} (no expectation file)", os.as_str());
        return;
    };
    if s.os.as_ref().is_some_and(|on| !on.contains(&os)) {
        let _ = writeln!(out, "  {:<8} —  the step does not run there", os.as_str());
        return;
    }
    let cands = file.candidates(test, label, None);
    match cands.first() {
        Some(a) => {
            let mark = if disputed(&cands) {
                " [!] disputed"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {:<8} {:<14} {}   {}:{}{mark}",
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
                let documented = matches!(other.entry.provenance, Provenance::Documented { .. });
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
        None => match expectation(suite, test, os, label) {
            Err(why) if why == "not_run" => {
                let _ = writeln!(
                    out,
                    "  {:<8} not_run        an earlier checked step is expected to fail first",
                    os.as_str()
                );
            }
            _ => {
                let _ = writeln!(out, "  {:<8} (no expectation)", os.as_str());
            }
        },
    }
    // Where observations disagree, no outcome is assumed between them.
    for w in file.windows(test, label, None) {
        let _ = writeln!(
            out,
            "  {:<8} {:<14} window {}: no outcome is assumed for a release between these \
             two (a cited source with a kernel range, or unknown)",
            "",
            "unknown",
            w.text()
        );
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

fn recipe_section(out: &mut String, suite: &Suite, test: &Test) {
    let case = &test.case;
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
/// its kind and a link a reader can open, under the registry file it is
/// written in (its tree's `sources.toml`).
fn sources_section(out: &mut String, suite: &Suite, test: &Test) {
    let mut cited: Vec<(&Source, Vec<&str>)> = Vec::new();
    for label in test.steps.iter().filter_map(|s| s.check.as_deref()) {
        for os in OsFamily::ALL {
            let Some(a) = suite
                .expectations
                .for_os(*os)
                .and_then(|f| f.resolve(test, label, None))
            else {
                continue;
            };
            let Provenance::Documented { sources, .. } = &a.entry.provenance else {
                continue;
            };
            for src in sources {
                match cited.iter_mut().find(|(c, _)| std::ptr::eq(*c, &**src)) {
                    Some((_, oses)) if !oses.contains(&os.as_str()) => oses.push(os.as_str()),
                    Some(_) => {}
                    None => cited.push((src, vec![os.as_str()])),
                }
            }
        }
    }
    let mut registry: Option<&std::path::Path> = None;
    for (src, oses) in cited {
        if registry != Some(src.at.file.as_path()) {
            let _ = writeln!(out, "\nsources cited ({}):", src.at.file.display());
            registry = Some(src.at.file.as_path());
        }
        let _ = writeln!(
            out,
            "  {} [{}] ({})\n      {}\n      {}",
            src.key,
            src.kind.as_str(),
            oses.join(", "),
            src.title,
            src.link()
        );
    }
}

/// How one OS knows one checked step's outcome, for the grid's marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// An observed entry gives it.
    Observed,
    /// A documented entry gives it.
    Documented,
    /// The expectation says `unknown`: no source says.
    Unknown,
    /// Sources disagree: an observation overrules a document, or documents
    /// citing different sources give different outcomes.
    Disputed,
}

impl Mark {
    /// The one-letter mark the grids print (`o`, `d`, `?`, `!`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Observed => "o",
            Mark::Documented => "d",
            Mark::Unknown => "?",
            Mark::Disputed => "!",
        }
    }
}

/// The legend printed under a grid.
pub const LEGEND: &str = "[o] observed on a named release (blessed)  [d] documented (cited)  \
[?] unknown: no source says  [!] disputed: sources disagree\n\
n/a: cannot run there  (none): no expectation yet  not_run: an earlier step is expected to fail first";

/// Whether the candidates for a step disagree across sources.
pub fn disputed(cands: &[crate::expect::Applied<'_>]) -> bool {
    let Some(best) = cands.first() else {
        return false;
    };
    let best_observed = matches!(best.entry.provenance, Provenance::Observed { .. });
    cands.iter().skip(1).any(|o| {
        if o.outcome == best.outcome || matches!(o.outcome, crate::outcome::Outcome::Unknown) {
            return false;
        }
        match (&best.entry.provenance, &o.entry.provenance) {
            (Provenance::Observed { .. }, Provenance::Documented { .. }) => {
                // Only the best document counts: a more general one that
                // the specific one narrows is not a dispute.
                cands
                    .iter()
                    .find(|c| matches!(c.entry.provenance, Provenance::Documented { .. }))
                    .is_some_and(|d| std::ptr::eq(d.entry, o.entry))
            }
            (Provenance::Documented { keys: a, .. }, Provenance::Documented { keys: b, .. }) => {
                !best_observed
                    && o.entry.selected == best.entry.selected
                    && !a.is_empty()
                    && a.iter().all(|k| !b.contains(k))
            }
            _ => false,
        }
    })
}

/// One OS's expectation for one checked step: the outcome and how it is known.
/// `Err` says why there is none: `n/a ...`, `(none)`, `not_run`.
pub fn expectation(
    suite: &Suite,
    test: &Test,
    os: OsFamily,
    label: &str,
) -> Result<(crate::outcome::Outcome, Mark), String> {
    if !test.runs_on(os) {
        return Err("n/a".into());
    }
    let file = suite.expectations.for_os(os).ok_or("(none)")?;
    let cands = file.candidates(test, label, None);
    let Some(best) = cands.first() else {
        // A step after one expected to fail may never run.
        let at = test
            .steps
            .iter()
            .position(|s| s.check.as_deref() == Some(label))
            .unwrap_or(0);
        let earlier_fails = test.steps[..at].iter().any(|s| {
            s.check.as_deref().is_some_and(|l| {
                file.resolve(test, l, None).is_some_and(|a| {
                    !a.outcome.is_ok() && !matches!(a.outcome, crate::outcome::Outcome::Unknown)
                })
            })
        });
        return Err(if earlier_fails { "not_run" } else { "(none)" }.into());
    };
    let mark = if disputed(&cands) {
        Mark::Disputed
    } else if matches!(best.outcome, crate::outcome::Outcome::Unknown) {
        Mark::Unknown
    } else if matches!(best.entry.provenance, Provenance::Observed { .. }) {
        Mark::Observed
    } else {
        Mark::Documented
    };
    Ok((best.outcome.clone(), mark))
}

/// A grid cell: the checked outcomes of `test` on `os`, each with its mark.
/// `only` limits the cell to those checks (all when empty).
pub fn grid_cell(suite: &Suite, test: &Test, os: OsFamily, only: &[String]) -> String {
    if !test.runs_on(os) {
        return "n/a".into();
    }
    let labels: Vec<&str> = test
        .steps
        .iter()
        .filter_map(|s| s.check.as_deref())
        .filter(|l| only.is_empty() || only.iter().any(|o| o == l))
        .collect();
    let many = labels.len() > 1;
    let got: Vec<Result<(crate::outcome::Outcome, Mark), String>> = labels
        .iter()
        .map(|l| expectation(suite, test, os, l))
        .collect();
    // One mark for the cell when every known outcome has the same one.
    let marks: std::collections::BTreeSet<Mark> = got
        .iter()
        .filter_map(|g| g.as_ref().ok().map(|(_, m)| *m))
        .collect();
    let shared = (marks.len() == 1).then(|| *marks.iter().next().unwrap_or(&Mark::Observed));
    let mut parts = Vec::new();
    for (label, g) in labels.iter().zip(got) {
        let text = match g {
            Ok((o, _)) if shared.is_some() => o.to_string(),
            Ok((o, m)) => format!("{o} [{}]", m.as_str()),
            Err(why) => why,
        };
        parts.push(if many {
            format!("{label}={text}")
        } else {
            text
        });
    }
    if let Some(m) = shared {
        parts.push(format!("[{}]", m.as_str()));
    }
    if let Some(recipe) = test.case.recipe.as_ref().filter(|_| only.is_empty()) {
        let file = suite.expectations.for_os(os);
        let v = recipe.verdict(|label| {
            file.and_then(|f| f.resolve(test, label, None))
                .map(|a| a.outcome.clone())
        });
        let word = match v {
            crate::model::RecipeVerdict::Works => "works",
            crate::model::RecipeVerdict::Fails(_) => "fails",
            crate::model::RecipeVerdict::Unknown(_) => "unknown",
        };
        parts.push(format!("=> {word}"));
    }
    parts.join(" ")
}

/// A plain-text table with aligned columns (also valid Markdown).
pub fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(width[i] - c.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | ")).trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(header));
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

/// `sockspec explain CASE`: one row per parameter combination (those
/// `select` keeps), one column per OS of `oses`, each cell the checked
/// outcomes with their marks; then the claim's verdict per OS.
pub fn grid(
    suite: &Suite,
    case: &crate::model::Case,
    oses: &[OsFamily],
    select: &[(String, Vec<String>)],
    only: &[String],
) -> String {
    let tests: Vec<&std::sync::Arc<Test>> = suite
        .tests_of(&case.id)
        .filter(|t| {
            select
                .iter()
                .all(|(k, vs)| t.param(k).is_some_and(|v| vs.iter().any(|x| x == v)))
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "{}\n  {}", case.id, case.title);
    if let Some(claim) = &case.claim {
        let flat = claim.split_whitespace().collect::<Vec<_>>().join(" ");
        let first = flat
            .split_inclusive(". ")
            .next()
            .unwrap_or_default()
            .trim_end();
        let _ = writeln!(out, "  claim: {first}");
    }
    let checks: Vec<&str> = case
        .checks
        .iter()
        .map(|(l, _)| l.as_str())
        .filter(|l| only.is_empty() || only.iter().any(|o| o == l))
        .collect();
    let _ = writeln!(
        out,
        "  {} of {} test(s); checked: {}\n",
        tests.len(),
        suite.tests_of(&case.id).count(),
        checks.join(", ")
    );
    let mut header: Vec<String> = case.grid.iter().map(|(k, _)| k.clone()).collect();
    header.extend(oses.iter().map(|o| o.as_str().to_string()));
    let rows: Vec<Vec<String>> = tests
        .iter()
        .map(|t| {
            let mut r: Vec<String> = case
                .grid
                .iter()
                .map(|(k, _)| t.param(k).unwrap_or("").to_string())
                .collect();
            r.extend(oses.iter().map(|os| grid_cell(suite, t, *os, only)));
            r
        })
        .collect();
    out.push_str(&text_table(&header, &rows));
    let _ = writeln!(out, "\n{LEGEND}");
    let tests: Vec<&Test> = tests.iter().map(|t| &***t).collect();
    claim_verdicts(&mut out, suite, case, &tests, oses, ("these rows", false));
    out
}

/// The case's claim verdict per OS by its `[[holds]]`, over `tests` (`over`
/// says which, to the reader): one row for the case's claim, or one per
/// claim id when its `[[holds]]` predict for some claims only. Nothing when
/// the case has no `[[holds]]`; with `known_only`, a row (and then the
/// table) only where some OS has a verdict.
fn claim_verdicts(
    out: &mut String,
    suite: &Suite,
    case: &crate::model::Case,
    tests: &[&Test],
    oses: &[OsFamily],
    (over, known_only): (&str, bool),
) {
    if case.holds.is_empty() {
        return;
    }
    let groups: Vec<Option<&str>> = if case.holds.iter().all(|h| h.claims.is_empty()) {
        vec![None]
    } else {
        case.claims
            .iter()
            .filter(|c| case.holds.iter().any(|h| h.is_for(Some(c))))
            .map(|c| Some(c.as_str()))
            .collect()
    };
    let none = crate::claims::Observations::new();
    let mut header = vec!["claim verdict".to_string()];
    header.extend(oses.iter().map(|o| o.as_str().to_string()));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .filter_map(|claim| {
            let verdicts: Vec<crate::claims::Verdicts> = oses
                .iter()
                .map(|os| crate::claims::verdicts(&suite.expectations, &none, tests, *os, *claim))
                .collect();
            if known_only && verdicts.iter().all(|v| v.total() == 0) {
                return None;
            }
            let mut r = vec![claim.map_or("the case's claim".to_string(), str::to_string)];
            r.extend(verdicts.iter().map(|v| {
                if v.total() == 0 {
                    "—".to_string()
                } else {
                    v.cell()
                }
            }));
            Some(r)
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nBy the case's `[[holds]]` (what its claims predict), over {over}; \
         — where a claim predicts nothing:\n"
    );
    out.push_str(&text_table(&header, &rows));
}
