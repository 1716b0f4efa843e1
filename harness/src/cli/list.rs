//! `sockspec list`: test names, and with --verbose why a test cannot run here.

use std::process::ExitCode;

use sockspec::Platform;
use sockspec::error::Error;

use super::{Select, out};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    select: Select,
    /// Also print each test's title and why it cannot run on this machine.
    #[arg(long, short)]
    verbose: bool,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let suite = a.select.cases.load()?;
    let platform = Platform::current();
    let filter = a.select.filter();
    for t in suite.tests.iter().filter(|t| filter.matches(&t.name)) {
        let text = if a.verbose {
            let status = suite
                .skip_reason(t, &platform)
                .map(|r| format!("  [skipped here: {r}]"))
                .unwrap_or_default();
            format!("{}\n    {}{status}", t.name, t.case.title)
        } else {
            t.name.clone()
        };
        if !out::line(&text) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
