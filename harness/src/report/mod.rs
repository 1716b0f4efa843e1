//! Stage 5: reports. Reporters read [`crate::results`] only; they know nothing
//! about sockets.
//!
//! - [`console`]: what `sockspec run` prints.
//! - [`markdown`]: a GitHub step summary over any number of runs, and the
//!   regression report between two runs.
//! - [`history`]: for runs of one OS on several kernel releases, the tests
//!   whose outcomes changed and the release window of each change.
//! - [`html`]: a self-contained tests x runs matrix.
//! - [`junit`]: JUnit XML for one run.
//! - [`annotations`]: `::error file=...` lines for a GitHub workflow.

pub mod annotations;
pub mod console;
pub mod history;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod matrix;
pub mod wording;

/// A file-name-safe form of a run's title (for one JUnit file per run).
pub fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(80);
    out
}
