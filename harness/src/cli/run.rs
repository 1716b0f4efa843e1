//! `sockspec run`: run tests on this kernel and print a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sockspec::Platform;
use sockspec::error::Error;
use sockspec::report::console;
use sockspec::run::Options;

use super::{Exec, Select, check_output, out};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    select: Select,
    #[command(flatten)]
    exec: Exec,
    /// Write the results as JSON (schema sockspec/results/v2).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// A name for this run in reports, e.g. the CI job.
    #[arg(long, env = "SOCKSPEC_LABEL")]
    label: Option<String>,
    /// Print only the summary, not each failure.
    #[arg(long, short)]
    quiet: bool,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let stop = stop_on_signal();
    if let Some(path) = &a.json {
        check_output(path)?;
    }
    let suite = a.select.cases.load()?;
    a.exec.setup(&suite)?;
    let platform = Platform::current();
    let opts = Options {
        filter: a.select.filter(),
        jobs: a.exec.jobs(),
        repeat: a.exec.repeat.unwrap_or(1),
        label: a.label,
        stop: Some(stop),
    };
    if !suite.tests.iter().any(|t| opts.filter.matches(&t.name)) {
        return Err(Error::Usage("no test matches the filter".into()));
    }
    let quiet = a.quiet;
    let results = sockspec::run::run(&suite, &platform, &opts, |rec| {
        if !quiet && let Some(line) = console::progress_line(rec) {
            out::line(&line);
        }
    });
    out::print(&console::summary(&results));
    if let Some(path) = &a.json {
        results.write(path)?;
        out::line(&format!("results written to {}", path.display()));
    }
    Ok(if results.run.interrupted {
        ExitCode::from(130)
    } else if results.summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A flag set by the first SIGINT or SIGTERM (Ctrl-C on Windows): the run
/// starts no more tests, lets the running ones reach their deadline, and
/// reports what ran. A second signal ends the process at once.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: finishing the running tests (interrupt again to stop at once)");
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot catch interrupts: {e}");
    }
    stop
}
