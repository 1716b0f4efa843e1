//! `sockspec report`: merge results files into Markdown, HTML, JUnit and
//! annotations, or the regression report between two runs. Results of one
//! OS on several kernel releases open on their history (`report::history`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sockspec::error::Error;
use sockspec::report;
use sockspec::results::Results;

use super::{check_output, out};

#[derive(clap::Args)]
pub struct Args {
    /// Results files (schema sockspec/results/v2).
    #[arg(required = true, value_name = "RESULTS.json")]
    results: Vec<PathBuf>,
    /// Write the Markdown summary here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write the self-contained HTML matrix here.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    html: Option<PathBuf>,
    /// Write one JUnit XML file per run into this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "baseline")]
    junit: Option<PathBuf>,
    /// Print GitHub `::error` annotations for the tests that did not pass.
    #[arg(long, conflicts_with = "baseline")]
    annotations: bool,
    /// Compare one new results file against this older run of the same OS
    /// (Markdown only); exits 1 when outcomes changed.
    #[arg(long, value_name = "OLD.json")]
    baseline: Option<PathBuf>,
}

/// Writes a report to a file (atomically) or, for `-`, to stdout.
fn write(path: &Path, text: &str) -> Result<(), Error> {
    if path.as_os_str() == "-" {
        out::print(text);
        Ok(())
    } else {
        sockspec::atomic::write(path, text.as_bytes()).map_err(|e| Error::io(path, e))
    }
}

/// Reads each results file once, refusing a file or a run given twice: the
/// same path, or two files holding one run (equal `run` headers, e.g. a
/// copy; see [`sockspec::results::RunInfo`]) would show as two runs that
/// agree, or as a comparison that finds nothing.
fn read_runs(paths: &[&Path]) -> Result<Vec<Results>, Error> {
    let mut seen = std::collections::BTreeSet::new();
    for p in paths {
        let id = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if !seen.insert(id) {
            return Err(Error::Usage(format!(
                "{} is given twice: each results file is one run",
                p.display()
            )));
        }
    }
    let runs = paths
        .iter()
        .map(|p| Results::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, r) in runs.iter().enumerate() {
        if let Some(j) = runs[..i].iter().position(|o| o.run == r.run) {
            return Err(Error::Usage(format!(
                "{} and {} hold the same run ({}, started {}): their `run` headers are equal, so one is a copy of the other; give each run once",
                paths[j].display(),
                paths[i].display(),
                r.run.title(),
                r.run.started
            )));
        }
    }
    Ok(runs)
}

/// `--baseline OLD NEW`: the regression report between two runs of one OS;
/// exits 1 when outcomes changed.
fn regression(a: &Args, old: &Results, new: &Results) -> Result<ExitCode, Error> {
    if old.run.os != new.run.os {
        return Err(Error::Usage(format!(
            "--baseline compares two runs of the same OS, but the old run is of {} and the new one of {}; to see both side by side: sockspec report OLD.json NEW.json",
            old.run.os, new.run.os
        )));
    }
    let (text, changed) = report::markdown::regression(old, new);
    write(a.markdown.as_deref().unwrap_or(Path::new("-")), &text)?;
    Ok(if changed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    for p in a.markdown.iter().chain(&a.html) {
        check_output(p)?;
    }
    if a.baseline.is_some() && a.results.len() != 1 {
        return Err(Error::Usage(
            "--baseline compares one new results file with the old one".into(),
        ));
    }
    let paths: Vec<&Path> = a
        .baseline
        .iter()
        .chain(&a.results)
        .map(PathBuf::as_path)
        .collect();
    let mut runs = read_runs(&paths)?;
    if a.baseline.is_some() {
        return regression(&a, &runs[0], &runs[1]);
    }
    // Runs of one OS on several kernel releases: every view in release
    // order, and the report opens on how outcomes changed between them.
    let history = report::history::applies(&runs);
    if history {
        runs = report::history::by_release(&runs)
            .into_iter()
            .cloned()
            .collect();
    }
    let stdout = PathBuf::from("-");
    // The claims the cases predict, judged by each run (when the cases load).
    let claims = sockspec::Suite::load(&sockspec::Suite::default_root())
        .map(|s| sockspec::claims::per_run(&s.claims, &s.cases, &s.tests, &runs))
        .unwrap_or_default();
    let mut wrote = false;
    if let Some(path) = &a.html {
        write(path, &report::html::page_with_claims(&runs, &claims))?;
        wrote = true;
    }
    if let Some(dir) = &a.junit {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for r in &runs {
            let path = dir.join(format!("junit-{}.xml", report::slug(&r.run.title())));
            write(&path, &report::junit::report(r).map_err(Error::Other)?)?;
        }
        wrote = true;
    }
    if a.annotations {
        // One set for all runs: GitHub shows 10 error annotations per step.
        for line in report::annotations::for_runs(&runs) {
            out::line(&line);
        }
        wrote = true;
    }
    if a.markdown.is_some() || !wrote {
        let first = report::history::History::of(&runs)
            .filter(|_| history)
            .map(|h| report::markdown::history_section(&h) + "\n")
            .unwrap_or_default();
        write(
            a.markdown.as_ref().unwrap_or(&stdout),
            &(first
                + &report::markdown::summary(&runs)
                + &report::markdown::claims_section(&claims, &runs)),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
