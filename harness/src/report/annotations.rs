//! GitHub workflow annotations (`::error file=...,line=...::message`) that
//! point at the case files of the tests that did not pass.
//!
//! GitHub shows at most 10 error annotations per step and 50 per job
//! (<https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands#setting-an-error-message>
//! and the limits under "annotations" in the REST API docs), and drops the
//! rest silently. So there is one annotation per case file, with how many of
//! its tests did not pass and the first mismatch, and at most
//! [`MAX_PER_STEP`] in all: past that, the last one counts the files left out
//! and points at the full report.

use std::collections::BTreeMap;
use std::path::Path;

use crate::results::{Results, TestRecord, Verdict};

/// Error annotations GitHub shows for one step.
pub const MAX_PER_STEP: usize = 10;

/// Escapes per the workflow-command rules: %, CR, LF in the message; also
/// `,` and `:` in properties.
fn esc(s: &str, property: bool) -> String {
    let mut out = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

/// The annotations for one run, paths relative to the repository (see
/// [`for_runs`]).
pub fn lines(results: &Results) -> Vec<String> {
    for_runs(std::slice::from_ref(results))
}

/// The annotations for every run a step reports on, with paths relative to
/// the repository: `$GITHUB_WORKSPACE`, else the current directory.
pub fn for_runs(runs: &[Results]) -> Vec<String> {
    let root = std::env::var_os("GITHUB_WORKSPACE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    for_runs_in(runs, &root)
}

/// One failing test, with the run it failed in.
struct Failure<'a> {
    run: String,
    test: &'a TestRecord,
}

/// [`for_runs`] with the repository root given.
pub fn for_runs_in(runs: &[Results], root: &Path) -> Vec<String> {
    let mut by_file: BTreeMap<String, Vec<Failure<'_>>> = BTreeMap::new();
    for r in runs {
        for t in r.tests.iter().filter(|t| {
            matches!(
                t.verdict,
                Verdict::Fail | Verdict::Error | Verdict::Intermittent
            )
        }) {
            by_file
                .entry(repo_relative(&t.file, root))
                .or_default()
                .push(Failure {
                    run: r.run.title(),
                    test: t,
                });
        }
    }
    let files = by_file.len();
    let shown = if files > MAX_PER_STEP {
        MAX_PER_STEP - 1
    } else {
        files
    };
    let mut out: Vec<String> = by_file
        .iter()
        .take(shown)
        .map(|(file, fails)| file_annotation(file, fails))
        .collect();
    if files > shown {
        let rest: usize = by_file.values().skip(shown).map(Vec::len).sum();
        out.push(format!(
            "::error title={}::{}",
            esc("sockspec: more case files with failures", true),
            esc(
                &format!(
                    "{rest} more test result(s) in {} more case file(s) did not pass; GitHub \
                     shows {MAX_PER_STEP} annotations per step. See the step summary and the \
                     results artifacts (`sockspec report --html` renders them).",
                    files - shown
                ),
                false
            )
        ));
    }
    out
}

fn file_annotation(file: &str, fails: &[Failure<'_>]) -> String {
    let first = &fails[0];
    let mut runs: Vec<&str> = fails.iter().map(|f| f.run.as_str()).collect();
    runs.dedup();
    let mut tests: Vec<&str> = fails.iter().map(|f| f.test.name.as_str()).collect();
    tests.sort_unstable();
    tests.dedup();
    let why = super::wording::why(first.test);
    let reason = why
        .as_deref()
        .and_then(|r| r.lines().next())
        .unwrap_or(first.test.verdict.as_str());
    let mut msg = format!(
        "{} test result(s) did not pass in {} ({}).\nFirst: {} {} on {}: {reason}",
        fails.len(),
        file,
        runs.join(", "),
        first.test.name,
        first.test.verdict.as_str(),
        first.run,
    );
    if tests.len() > 1 {
        const LISTED: usize = 5;
        msg.push_str(&format!(
            "\nAlso: {}{}",
            tests
                .iter()
                .filter(|t| **t != first.test.name)
                .take(LISTED)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            if tests.len() - 1 > LISTED {
                format!(" and {} more", tests.len() - 1 - LISTED)
            } else {
                String::new()
            }
        ));
    }
    format!(
        "::error file={},line={},title={}::{}",
        esc(file, true),
        first.test.line,
        esc(
            &format!("sockspec: {} failing in {}", fails.len(), file),
            true
        ),
        esc(&msg, false)
    )
}

/// `file` relative to `root`, with `/` separators: results written by
/// `cargo test` hold absolute paths through the crate (`.../harness/../cases`),
/// `sockspec run` relative ones, and Windows writes backslashes. GitHub needs
/// the path relative to the repository to attach an annotation to a file.
pub fn repo_relative(file: &str, root: &Path) -> String {
    let file = normalize(file);
    let root = normalize(&root.to_string_lossy());
    if root.is_empty() || root == "." {
        return file;
    }
    let prefix = format!("{}/", root.trim_end_matches('/'));
    // Drive letters and NTFS are case-insensitive.
    let windows = root.as_bytes().get(1) == Some(&b':');
    let matches = file.len() > prefix.len()
        && if windows {
            file[..prefix.len()].eq_ignore_ascii_case(&prefix)
        } else {
            file.starts_with(&prefix)
        };
    if matches {
        file[prefix.len()..].to_string()
    } else {
        file
    }
}

/// Lexically: `\` to `/`, no `.` components, `dir/..` removed.
fn normalize(path: &str) -> String {
    let path = path.replace('\\', "/");
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_repository_relative() {
        let root = Path::new("/home/runner/work/sockspec/sockspec");
        assert_eq!(
            repo_relative(
                "/home/runner/work/sockspec/sockspec/harness/../cases/linger/abort.toml",
                root
            ),
            "cases/linger/abort.toml"
        );
        assert_eq!(
            repo_relative("./cases/linger/abort.toml", root),
            "cases/linger/abort.toml"
        );
        assert_eq!(
            repo_relative(
                r"D:\a\sockspec\sockspec\harness\..\cases\linger\abort.toml",
                Path::new(r"d:\a\sockspec\sockspec")
            ),
            "cases/linger/abort.toml"
        );
        // Outside the repository: left whole rather than guessed.
        assert_eq!(
            repo_relative("/tmp/cases/x.toml", root),
            "/tmp/cases/x.toml"
        );
    }
}
