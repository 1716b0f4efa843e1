//! The words for what judging found: mismatches and problems are data in the
//! results; every reporter (console, Markdown, HTML, JUnit, annotations)
//! says them the same way through here.

use std::fmt::Write as _;

use crate::judge::bless_command;
use crate::results::{MismatchKind, Problem, TestRecord, Verdict};

/// A problem in one line (or two, for a setup step with its location).
pub fn problem(p: &Problem) -> String {
    match p {
        Problem::Setup {
            step,
            msg,
            at,
            what,
        } => {
            let mut s = format!("setup step {} failed: {msg}", step + 1);
            if let (Some(at), Some(what)) = (at, what) {
                let _ = write!(s, "\n    at {at} (`{what}`)");
            }
            s
        }
        Problem::Precondition { step, msg } => {
            format!("precondition of step {} not met: {msg}", step + 1)
        }
        Problem::Harness { msg } => format!("harness error: {msg}"),
        Problem::Hung => "the test did not finish by its deadline; its thread was abandoned".into(),
        Problem::Unavailable { msg } => msg.clone(),
    }
}

/// Each mismatch of a failed test, with the expectation it broke, the case
/// file and the command that blesses just this test.
pub fn mismatches(t: &TestRecord) -> String {
    let mut out = String::new();
    for m in &t.mismatches {
        let Some(s) = t.steps.iter().find(|s| s.index == m.step) else {
            continue;
        };
        let raw = s.raw.map(|r| format!(" (raw {r})")).unwrap_or_default();
        let head = format!("step {} `{}` ({})", m.step + 1, m.what, m.label);
        let entry = s
            .expectation
            .as_ref()
            .map(|e| {
                format!(
                    "\n    expectation: {}:{} ({}{})",
                    e.file,
                    e.line,
                    e.provenance,
                    e.settings
                        .as_ref()
                        .map(|c| format!(", with {c}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let _ = match m.kind {
            MismatchKind::NoExpectation => writeln!(
                out,
                "{head}: got {}{raw}, and this OS has no expectation for it",
                s.outcome
            ),
            MismatchKind::Unknown => writeln!(
                out,
                "{head}: got {}{raw}; the expectation is `unknown`{entry}",
                s.outcome
            ),
            MismatchKind::Differs => writeln!(
                out,
                "{head}: expected {}, got {}{raw}{}{entry}{}",
                s.expected.as_deref().unwrap_or("?"),
                s.outcome,
                s.detail
                    .as_deref()
                    .map(|d| format!(" — {d}"))
                    .unwrap_or_default(),
                s.expectation
                    .as_ref()
                    .and_then(|e| e.why.as_deref())
                    .map(|w| format!("\n    why: {w}"))
                    .unwrap_or_default()
                    + &s.expectation
                        .as_ref()
                        .and_then(|e| e.window.as_deref())
                        .map(|w| {
                            format!(
                                "\n    window: {w}: observations disagree there, the cited source decides"
                            )
                        })
                        .unwrap_or_default()
            ),
        };
    }
    if !out.is_empty() {
        let _ = write!(
            out,
            "in {}:{}\nbless just this test (after checking it is right): {}",
            t.file,
            t.line,
            bless_command(&t.name, &t.case, &t.file)
        );
    }
    out
}

/// Why a test did not pass, in words: its problem, its mismatches, or the
/// reason it was skipped or varied. `None` for a plain pass.
pub fn why(t: &TestRecord) -> Option<String> {
    let mut parts = Vec::new();
    if t.verdict == Verdict::Intermittent
        && let Some(r) = &t.reason
    {
        parts.push(r.clone());
    }
    if let Some(p) = &t.problem {
        parts.push(problem(p));
    } else if !t.mismatches.is_empty() {
        parts.push(mismatches(t));
    } else if t.verdict != Verdict::Intermittent
        && let Some(r) = &t.reason
    {
        parts.push(r.clone());
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}
