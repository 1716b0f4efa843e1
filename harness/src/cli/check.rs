//! `sockspec check`: validate the case and expectation files, run nothing.

use std::process::ExitCode;

use sockspec::error::{Error, InputError, InputErrors};
use sockspec::trees::Tree;

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cases: Cases,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let trees = a.cases.trees()?;
    let each = sockspec::trees::load_each(&trees, &sockspec::Scope::default())?;
    InputErrors::finish(stale_claims_tables(&trees, &each)?)?;
    // Counted per tree: the merged suite keeps one file per OS.
    let files: usize = each.iter().map(|s| s.expectations.files.len()).sum();
    let suite = sockspec::trees::merge(&trees, each)?;
    let entries: usize = suite
        .expectations
        .files
        .values()
        .map(|f| f.entries.len())
        .sum();
    out::line(&format!(
        "{} cases, {} tests, {} expectation entries in {} files: all valid",
        suite.cases.len(),
        suite.tests.len(),
        entries,
        files
    ));
    // The process ends here, at once (success never returns): freeing every
    // test one by one took about 5 ms (perf), and the allocator's clean-up
    // at exit 0.3 ms of ~20; the OS frees it all at once. The line above is
    // flushed: stdio flushes after every write.
    sockspec::sys::exit_now(0)
}

/// What `cargo test` requires of sockspec's own tree, `check` requires of
/// every tree that keeps a claims table in its README.md: that the table is
/// the one `sockspec claims --write` would write (the same comparison as
/// `claims --check`). Each stale table is an error naming the file and the fix.
/// `each` holds the trees' suites, each loaded alone.
pub(super) fn stale_claims_tables(
    trees: &[Tree],
    each: &[sockspec::Suite],
) -> Result<Vec<InputError>, Error> {
    let mut errors = Vec::new();
    for (t, suite) in trees
        .iter()
        .zip(each)
        .filter(|(t, _)| sockspec::claims::has_table(&t.root))
    {
        let path = t.root.join(sockspec::claims::README);
        let (text, new) = sockspec::claims::readme_with_table(&t.root, suite, &Default::default())
            .map_err(|e| Error::io(&path, e))?;
        if new != text {
            errors.push(
                InputError::file(
                    &path,
                    "the claims table is out of date (cases, claims or expectations changed since it was generated)",
                )
                .help(format!("run `{}`", super::claims::write_command(&t.root))),
            );
        }
    }
    Ok(errors)
}
