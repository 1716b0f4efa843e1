//! `sockspec claims`: the claims table of <cases>/README.md.

use std::process::ExitCode;

use sockspec::error::Error;

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cases: Cases,
    /// Replace the table in <cases>/README.md.
    #[arg(long, conflicts_with = "check")]
    write: bool,
    /// Exit 1 if <cases>/README.md's table is out of date.
    #[arg(long)]
    check: bool,
    /// Judge the claims by these runs' observed outcomes where they have
    /// them (results JSON files); not with --write or --check.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["write", "check"])]
    results: Vec<std::path::PathBuf>,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let root = a.cases.root()?;
    if a.write && sockspec::catalogue::is_embedded(&root) {
        return Err(Error::Other(format!(
            "claims --write edits <cases>/README.md, and {} is the catalogue compiled into sockspec: run it in a sockspec checkout (its ./cases) or give --only-cases --cases DIR",
            root.display()
        )));
    }
    let suite = super::load(&root)?;
    let runs = a
        .results
        .iter()
        .map(|p| sockspec::results::Results::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let observed = sockspec::claims::observations(&runs);
    if !a.write && !a.check {
        out::print(&sockspec::claims::table_with(
            &suite.claims,
            &suite.cases,
            &suite.tests,
            &suite.expectations,
            &observed,
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let path = root.join(sockspec::claims::README);
    let (text, new) = sockspec::claims::readme_with_table(&root, &suite, &observed)
        .map_err(|e| Error::io(&path, e))?;
    if a.check {
        if new == text {
            out::line(&format!("{}: the claims table is current", path.display()));
            return Ok(ExitCode::SUCCESS);
        }
        out::line(&format!(
            "{}: the claims table is out of date; run `{}`",
            path.display(),
            write_command(&root)
        ));
        return Ok(ExitCode::from(1));
    }
    sockspec::atomic::write_text_like(&path, &new, Some(&text)).map_err(|e| Error::io(&path, e))?;
    out::line(&format!("{}: claims table written", path.display()));
    Ok(ExitCode::SUCCESS)
}

/// The command that rewrites the claims table of the tree at `root`.
pub fn write_command(root: &std::path::Path) -> String {
    format!(
        "cargo run --release -- claims --write{}",
        sockspec::trees::selecting(root)
    )
}
