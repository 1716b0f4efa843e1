//! Stage 4: compare what a test did with what this OS's expectations say.

use std::fmt::Write as _;

use crate::exec::{Observed, Problem};
use crate::expect::{Applied, ExpectFile};
use crate::model::{OsFamily, Test};
use crate::outcome::Outcome;
use crate::results::{ExpectationRef, StepRecord, TestRecord, Variant, Verdict};

/// The command that blesses exactly one test.
pub fn bless_command(name: &str) -> String {
    format!("cargo run --release -- bless --exact '{name}'")
}

pub fn expectation_ref(a: &Applied<'_>) -> ExpectationRef {
    ExpectationRef {
        file: a.entry.at.file.display().to_string(),
        line: a.entry.at.line,
        source: a.entry.provenance.label().to_string(),
        provenance: a.entry.provenance.summary(),
        kernel: a.entry.kernel.as_ref().map(|k| k.text.clone()),
        why: a.entry.why.clone(),
    }
}

/// A record for a test that did not run, with the reason.
pub fn skipped(test: &Test, reason: String) -> TestRecord {
    let mut r = base_record(test);
    r.verdict = Verdict::Skip;
    r.reason = Some(reason);
    r
}

fn base_record(test: &Test) -> TestRecord {
    TestRecord {
        name: test.name.clone(),
        case: test.case.id.clone(),
        topic: test.case.topic.clone(),
        title: test.case.title.clone(),
        file: test.case.file.display().to_string(),
        line: test.steps.first().map_or(1, |s| s.at.line),
        params: test.params_map(),
        verdict: Verdict::Pass,
        reason: None,
        problem: None,
        duration_ms: 0.0,
        attempts: 0,
        retries: Vec::new(),
        steps: Vec::new(),
        recipe: None,
        variants: Vec::new(),
    }
}

/// Judges one run of a test.
pub fn judge(
    test: &Test,
    obs: &Observed,
    file: Option<&ExpectFile>,
    os: OsFamily,
    release: &str,
) -> TestRecord {
    let mut rec = base_record(test);
    rec.duration_ms = obs.took.as_secs_f64() * 1000.0;
    rec.attempts = obs.attempts;
    rec.retries = obs.retries.clone();
    let mut mismatches = String::new();
    for r in &obs.steps {
        let step = test.steps.iter().find(|s| s.index == r.index);
        let mut sr = StepRecord {
            index: r.index,
            kind: r.kind.to_string(),
            sock: r.sock.clone(),
            label: r.label.clone(),
            outcome: r.outcome.to_string(),
            raw: r.raw,
            detail: r.detail.clone(),
            duration_ms: r.took.as_secs_f64() * 1000.0,
            expected: None,
            expectation: None,
        };
        if let Some(label) = &r.label {
            let applied = file.and_then(|f| f.resolve(test, label, Some(release)));
            if let Some(a) = &applied {
                sr.expected = Some(a.outcome.to_string());
                sr.expectation = Some(expectation_ref(a));
            }
            let what = step.map_or_else(|| r.kind.to_string(), |s| s.to_string());
            // A step that did not run is not judged: the step that stopped it is.
            match applied {
                _ if r.outcome == Outcome::NotRun => {}
                None => {
                    let _ = writeln!(
                        mismatches,
                        "step {} `{what}` ({label}): got {}{}, and {os} has no expectation for it",
                        r.index + 1,
                        r.outcome,
                        raw_note(r.raw)
                    );
                }
                Some(a) if *a.outcome == Outcome::Unknown => {
                    let _ = writeln!(
                        mismatches,
                        "step {} `{what}` ({label}): got {}{}; the expectation is `unknown`\n    expectation: {}:{} ({})",
                        r.index + 1,
                        r.outcome,
                        raw_note(r.raw),
                        a.entry.at.file.display(),
                        a.entry.at.line,
                        a.entry.provenance.summary()
                    );
                }
                Some(a) if *a.outcome != r.outcome => {
                    let _ = writeln!(
                        mismatches,
                        "step {} `{what}` ({label}): expected {}, got {}{}{}\n    expectation: {}:{} ({}){}",
                        r.index + 1,
                        a.outcome,
                        r.outcome,
                        raw_note(r.raw),
                        r.detail
                            .as_deref()
                            .map(|d| format!(" — {d}"))
                            .unwrap_or_default(),
                        a.entry.at.file.display(),
                        a.entry.at.line,
                        a.entry.provenance.summary(),
                        a.entry
                            .why
                            .as_deref()
                            .map(|w| format!("\n    why: {w}"))
                            .unwrap_or_default()
                    );
                }
                Some(_) => {}
            }
        }
        rec.steps.push(sr);
    }
    if let Some(recipe) = &test.case.recipe
        && obs.problem.is_none()
    {
        let verdict = recipe.verdict(|label| {
            obs.steps
                .iter()
                .find(|s| s.label.as_deref() == Some(label))
                .map(|s| s.outcome.clone())
        });
        rec.recipe = Some(verdict.to_string());
    }
    rec.problem = obs.problem.as_ref().map(|p| {
        match p {
            Problem::Setup { .. } => "setup",
            Problem::Precondition { .. } => "precondition",
            Problem::Harness(_) => "harness",
            Problem::Hung => "hung",
            Problem::Unavailable(_) => "unavailable",
        }
        .to_string()
    });
    match &obs.problem {
        Some(Problem::Unavailable(why)) => {
            rec.verdict = Verdict::Skip;
            rec.reason = Some(why.clone());
        }
        Some(p @ Problem::Precondition { .. }) => {
            rec.verdict = Verdict::Fail;
            rec.reason = Some(p.to_string());
        }
        Some(p) => {
            rec.verdict = Verdict::Error;
            rec.reason = Some(format!("{p}{}", setup_details(test, obs)));
        }
        None if !mismatches.is_empty() => {
            rec.verdict = Verdict::Fail;
            rec.reason = Some(format!(
                "{mismatches}in {}:{}\nbless just this test (after checking it is right): {}",
                test.case.file.display(),
                rec.line,
                bless_command(&test.name)
            ));
        }
        None => {}
    }
    rec
}

fn raw_note(raw: Option<i32>) -> String {
    raw.map(|r| format!(" (raw {r})")).unwrap_or_default()
}

fn setup_details(test: &Test, obs: &Observed) -> String {
    let step = match &obs.problem {
        Some(Problem::Setup { step, .. }) => *step,
        _ => return String::new(),
    };
    test.steps
        .iter()
        .find(|s| s.index == step)
        .map(|s| format!("\n    at {} (`{s}`)", s.at))
        .unwrap_or_default()
}

/// Folds the records of repeated runs of one test into one record.
pub fn fold_repeats(mut runs: Vec<TestRecord>) -> TestRecord {
    let mut variants: Vec<Variant> = Vec::new();
    for r in &runs {
        let sig = format!("{} [{}]", r.signature(), r.verdict.as_str());
        match variants.iter_mut().find(|v| v.signature == sig) {
            Some(v) => v.count += 1,
            None => variants.push(Variant {
                signature: sig,
                count: 1,
            }),
        }
    }
    let total_ms: f64 = runs.iter().map(|r| r.duration_ms).sum();
    let n = runs.len();
    // Report the first run that did not pass, else the first.
    let pick = runs
        .iter()
        .position(|r| r.verdict != Verdict::Pass)
        .unwrap_or(0);
    let mut rec = runs.swap_remove(pick);
    rec.duration_ms = total_ms / n.max(1) as f64;
    if variants.len() > 1 {
        let lines: Vec<String> = variants
            .iter()
            .map(|v| format!("  {}x {}", v.count, v.signature))
            .collect();
        rec.reason = Some(format!(
            "outcomes varied over {n} runs:\n{}{}",
            lines.join("\n"),
            rec.reason
                .as_deref()
                .map(|r| format!("\none run said: {r}"))
                .unwrap_or_default()
        ));
        rec.verdict = Verdict::Intermittent;
    }
    if n > 1 {
        rec.variants = variants;
    }
    rec
}
