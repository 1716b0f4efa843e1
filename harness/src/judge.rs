//! Stage 4: compare what a test did with what this OS's expectations say.

use crate::exec::Observed;
use crate::expect::{Applied, ExpectFile, Provenance};
use crate::model::Test;
use crate::outcome::Outcome;
use crate::results::{
    CitedSource, ExpectationRef, Mismatch, MismatchKind, Problem, StepRecord, TestRecord, Variant,
    Verdict,
};

/// The command that blesses exactly one test: `name`, of the case `case`
/// read from `file`. A test of a tree other than the built-in catalogue is
/// blessed with that tree alone selected (`--only-cases --cases DIR`, where
/// its name has no tree prefix), so the command works as printed.
pub fn bless_command(name: &str, case: &str, file: &str) -> String {
    let root = crate::trees::root_of(std::path::Path::new(file), case);
    let flags = root
        .as_deref()
        .map(crate::trees::selecting)
        .unwrap_or_default();
    let name = match case.split_once('/') {
        Some((tree, _)) if !flags.is_empty() => {
            name.strip_prefix(&format!("{tree}/")).unwrap_or(name)
        }
        _ => name,
    };
    format!("cargo run --release -- bless --exact '{name}'{flags}")
}

/// Where and why the expectation entry `a` applies, for a step's `expectation` in the results.
pub fn expectation_ref(a: &Applied<'_>) -> ExpectationRef {
    // Inside a window with no cited source, the entry is the observation
    // that would have applied: say that none does.
    let uncovered = a.window.is_some() && *a.outcome == Outcome::Unknown;
    ExpectationRef {
        file: a.entry.at.file.display().to_string(),
        line: a.entry.at.line,
        source: a.entry.provenance.label().to_string(),
        provenance: match &a.window {
            Some(w) if uncovered => format!(
                "unknown: observations disagree in the window {} and no cited source covers it",
                w.text()
            ),
            _ => a.entry.provenance.summary(),
        },
        kernel: a.entry.kernel.as_ref().map(|k| k.text.clone()),
        settings: a.entry.condition(),
        why: if uncovered { None } else { a.entry.why.clone() },
        window: a.window.as_ref().map(|w| w.text()),
        cites: match &a.entry.provenance {
            Provenance::Documented { sources, .. } if !uncovered => {
                Some(sources.iter().map(|s| s.id.clone()).collect())
            }
            _ => None,
        },
    }
}

/// The sources that `records`' expectations cite (of `file`'s entries),
/// for the results' `sources` (which reports read through
/// [`crate::report::matrix::cited_sources`]).
pub fn sources_of(
    records: &[TestRecord],
    file: Option<&ExpectFile>,
) -> std::collections::BTreeMap<String, CitedSource> {
    let mut cited: std::collections::BTreeMap<String, CitedSource> = Default::default();
    let ids: std::collections::HashSet<&str> = records
        .iter()
        .flat_map(|t| &t.steps)
        .filter_map(|s| s.expectation.as_ref()?.cites.as_ref())
        .flatten()
        .map(String::as_str)
        .collect();
    if ids.is_empty() {
        return cited;
    }
    for e in file.iter().flat_map(|f| &f.entries) {
        if let Provenance::Documented { sources, .. } = &e.provenance {
            for s in sources.iter().filter(|s| ids.contains(s.id.as_str())) {
                cited
                    .entry(s.id.clone())
                    .or_insert_with(|| CitedSource::of(s));
            }
        }
    }
    cited
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
        mismatches: Vec::new(),
        duration_ms: 0.0,
        attempts: 0,
        retries: Vec::new(),
        steps: Vec::new(),
        recipe: None,
        variants: Vec::new(),
    }
}

/// Judges one run of a test, made on `release` with these stack `settings`.
pub fn judge(
    test: &Test,
    obs: &Observed,
    file: Option<&ExpectFile>,
    release: &str,
    settings: &std::collections::BTreeMap<String, String>,
) -> TestRecord {
    let mut rec = base_record(test);
    rec.duration_ms = obs.took.as_secs_f64() * 1000.0;
    rec.attempts = obs.attempts;
    rec.retries = obs.retries.clone();
    let entries = file.map(|f| f.entries_for(test, Some(settings)));
    rec.steps.reserve_exact(obs.steps.len());
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
            let applied = entries
                .as_ref()
                .and_then(|e| e.resolve(label, Some(release)));
            if let Some(a) = &applied {
                sr.expected = Some(a.outcome.to_string());
                sr.expectation = Some(expectation_ref(a));
            }
            // A step that did not run is not judged: the step that stopped it is.
            let kind = match applied {
                _ if r.outcome == Outcome::NotRun => None,
                None => Some(MismatchKind::NoExpectation),
                Some(a) if *a.outcome == Outcome::Unknown => Some(MismatchKind::Unknown),
                Some(a) if *a.outcome != r.outcome => Some(MismatchKind::Differs),
                Some(_) => None,
            };
            if let Some(kind) = kind {
                rec.mismatches.push(Mismatch {
                    step: r.index,
                    label: label.clone(),
                    kind,
                    what: step.map_or_else(|| r.kind.to_string(), |s| s.to_string()),
                });
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
    rec.problem = obs.problem.clone().map(|p| match p {
        Problem::Setup { step, msg, .. } => {
            let s = test.steps.iter().find(|s| s.index == step);
            Problem::Setup {
                step,
                msg,
                at: s.map(|s| s.at.to_string()),
                what: s.map(|s| s.to_string()),
            }
        }
        p => p,
    });
    rec.verdict = match &rec.problem {
        Some(Problem::Unavailable { .. }) => Verdict::Skip,
        Some(Problem::Precondition { .. }) => Verdict::Fail,
        Some(_) => Verdict::Error,
        None if !rec.mismatches.is_empty() => Verdict::Fail,
        None => Verdict::Pass,
    };
    if let Some(Problem::Unavailable { msg }) = &rec.problem {
        rec.reason = Some(msg.clone());
    }
    rec
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
            "outcomes varied over {n} runs:\n{}",
            lines.join("\n")
        ));
        rec.verdict = Verdict::Intermittent;
    }
    if n > 1 {
        rec.variants = variants;
    }
    rec
}
