//! How a test becomes a libtest trial: whether it is ignored before it runs,
//! and what its result makes of the trial. Shared by the `conformance` target
//! and the `trials` test, which checks it.

use libtest_mimic::{Completion, Failed};
use sockspec::model::{Need, Test};
use sockspec::results::{TestRecord, Verdict};
use sockspec::{Platform, Suite};

/// Why the trial is ignored: the test cannot run on this OS or without
/// privilege, or a need only the machine can answer (`unmet`, normally
/// [`sockspec::sys::unmet_need`]) is not met.
pub fn ignore_reason(
    suite: &Suite,
    test: &Test,
    platform: &Platform,
    unmet: &dyn Fn(&Need) -> Option<String>,
) -> Option<String> {
    suite
        .skip_reason(test, platform)
        .or_else(|| test.needs.iter().find_map(unmet))
}

/// A pass passes; a skip found out only while running (the `Unavailable`
/// problem) ignores the trial with its reason, unless the trial was already
/// ignored and forced to run (`--ignored`): then it fails with the reason, so
/// that a test that could not run never passes. Anything else fails.
pub fn completion(rec: &TestRecord, marked_ignored: bool) -> Result<Completion, Failed> {
    let reason =
        || sockspec::report::wording::why(rec).unwrap_or_else(|| rec.verdict.as_str().into());
    match rec.verdict {
        Verdict::Pass => Ok(Completion::Completed),
        Verdict::Skip if !marked_ignored => Ok(Completion::ignored_with(format!(
            "cannot run here: {}",
            reason()
        ))),
        Verdict::Skip => Err(Failed::from(format!("cannot run here: {}", reason()))),
        _ => Err(Failed::from(reason())),
    }
}
