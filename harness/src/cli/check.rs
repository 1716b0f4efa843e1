//! `sockspec check`: validate the case and expectation files, run nothing.

use std::process::ExitCode;

use sockspec::error::Error;

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cases: Cases,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let suite = a.cases.load()?;
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
        suite.expectations.files.len()
    ));
    Ok(ExitCode::SUCCESS)
}
