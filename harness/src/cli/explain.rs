//! `sockspec explain`: a case's grid (one row per parameter combination, one
//! column per OS), or a test's steps and every OS's expectation for it.

use std::process::ExitCode;

use sockspec::error::Error;
use sockspec::model::OsFamily;

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    /// A case id (`multicast::membership`: its grid as a table) or a test's
    /// full name (see `sockspec list`). A case without a grid is its only
    /// test, shown as a test unless a grid flag is given.
    test: String,
    /// The OS columns of a case's grid, comma-separated [default: all].
    #[arg(long, value_delimiter = ',', value_name = "OS")]
    os: Vec<String>,
    /// Keep the grid rows where a parameter has one of these values:
    /// `--where proto=tcp`, `--where state=joined,left`; repeatable.
    #[arg(long = "where", value_name = "PARAM=VALUE")]
    select: Vec<String>,
    /// Show only these checked steps in a case's grid, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "LABEL")]
    check: Vec<String>,
    #[command(flatten)]
    cases: Cases,
}

/// How many near names an unknown name lists.
const NEAR: usize = 10;

/// `names` as an indented list of at most [`NEAR`], saying how many more.
fn listing(names: &[&str]) -> String {
    let mut s = format!("\n  {}", names[..names.len().min(NEAR)].join("\n  "));
    if names.len() > NEAR {
        s.push_str(&format!("\n  ... and {} more", names.len() - NEAR));
    }
    s
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let suite = a.cases.load()?;
    let grid_flags = !a.os.is_empty() || !a.select.is_empty() || !a.check.is_empty();
    // A case without a grid has one test, named as the case: its steps,
    // whys and sources say more than a table of one row, unless a grid
    // flag asks for the table.
    let case = suite
        .cases
        .iter()
        .find(|c| c.id == a.test)
        .filter(|_| grid_flags || suite.test(&a.test).is_none());
    if let Some(case) = case {
        let oses = parse_oses(&a.os)?;
        let select = parse_where(case, &a.select)?;
        for l in &a.check {
            if !case.checks.iter().any(|(c, _)| c == l) {
                let known: Vec<&str> = case.checks.iter().map(|(c, _)| c.as_str()).collect();
                return Err(Error::Usage(format!(
                    "--check: {} has no checked step `{l}` (its checks: {})",
                    case.id,
                    known.join(", ")
                )));
            }
        }
        out::print(&sockspec::explain::grid(
            &suite, case, &oses, &select, &a.check,
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if grid_flags && suite.test(&a.test).is_some() {
        return Err(Error::Usage(
            "--os, --where and --check filter a case's grid; give a case id (the test name up to its first parameter)".into(),
        ));
    }
    let Some(t) = suite.test(&a.test) else {
        let cases: Vec<&str> = suite
            .cases
            .iter()
            .filter(|c| c.id.contains(&a.test))
            .map(|c| c.id.as_str())
            .collect();
        let near: Vec<&str> = suite
            .tests
            .iter()
            .filter(|t| t.name.contains(&a.test))
            .map(|t| t.name.as_str())
            .collect();
        let mut msg = format!("no case or test is named `{}`", a.test);
        if !cases.is_empty() {
            msg.push_str(&format!(
                "; {} case(s) containing it:{}",
                cases.len(),
                listing(&cases)
            ));
        }
        if !near.is_empty() {
            msg.push_str(&format!(
                "\n{} test(s) containing it:{}",
                near.len(),
                listing(&near)
            ));
        }
        return Err(Error::Usage(msg));
    };
    out::print(&sockspec::explain::explain(&suite, t));
    Ok(ExitCode::SUCCESS)
}

fn parse_oses(names: &[String]) -> Result<Vec<OsFamily>, Error> {
    if names.is_empty() {
        return Ok(OsFamily::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            OsFamily::from_name(n.trim()).ok_or_else(|| {
                let all: Vec<&str> = OsFamily::ALL.iter().map(|o| o.as_str()).collect();
                Error::Usage(format!(
                    "--os: unknown OS family `{n}` (one of {})",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

fn parse_where(
    case: &sockspec::model::Case,
    items: &[String],
) -> Result<Vec<(String, Vec<String>)>, Error> {
    let mut out = Vec::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(Error::Usage(format!(
                "--where `{item}`: write PARAM=VALUE (e.g. --where proto=tcp)"
            )));
        };
        let params: Vec<&str> = case.grid.iter().map(|(n, _)| n.as_str()).collect();
        let Some((_, axis)) = case.grid.iter().find(|(n, _)| n == k.trim()) else {
            return Err(Error::Usage(format!(
                "--where: {} has no parameter `{k}` (its parameters: {})",
                case.id,
                if params.is_empty() {
                    "none".to_string()
                } else {
                    params.join(", ")
                }
            )));
        };
        let mut labels = Vec::new();
        for v in v.split(',').map(str::trim) {
            if !axis.iter().any(|p| p.label == v) {
                let known: Vec<&str> = axis.iter().map(|p| p.label.as_str()).collect();
                return Err(Error::Usage(format!(
                    "--where: `{v}` is not a value of `{k}` (one of {})",
                    known.join(", ")
                )));
            }
            labels.push(v.to_string());
        }
        out.push((k.trim().to_string(), labels));
    }
    Ok(out)
}
