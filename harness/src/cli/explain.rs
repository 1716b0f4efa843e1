//! `sockspec explain`: a test's steps and every OS's expectation for it.

use std::process::ExitCode;

use sockspec::error::Error;

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    /// The test's full name (see `sockspec list`).
    test: String,
    #[command(flatten)]
    cases: Cases,
}

/// How many near names an unknown test name lists.
const NEAR: usize = 10;

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let suite = a.cases.load()?;
    let Some(t) = suite.test(&a.test) else {
        let near: Vec<&str> = suite
            .tests
            .iter()
            .filter(|t| t.name.contains(&a.test))
            .map(|t| t.name.as_str())
            .collect();
        let mut msg = format!("no test is named `{}`", a.test);
        if !near.is_empty() {
            msg.push_str(&format!(
                "; tests containing it:\n  {}",
                near[..near.len().min(NEAR)].join("\n  ")
            ));
            if near.len() > NEAR {
                msg.push_str(&format!("\n  ... and {} more", near.len() - NEAR));
            }
        }
        return Err(Error::Usage(msg));
    };
    out::print(&sockspec::explain::explain(&suite, t));
    Ok(ExitCode::SUCCESS)
}
