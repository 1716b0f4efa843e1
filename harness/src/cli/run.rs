//! `sockspec run`: run tests on this kernel and print a summary.

use std::io::IsTerminal;
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
    /// Run every socket step in this helper: a runtime (`python`, `node`,
    /// `rust`) or a command speaking docs/agent-protocol.md, e.g.
    /// 'python3 helpers/python/agent.py'. Default: sockspec.toml's `agent`.
    #[arg(long, value_name = "CMD")]
    agent: Option<String>,
    /// Print only the summary, not each failure.
    #[arg(long, short)]
    quiet: bool,
    /// Colour the console output: auto (on a terminal, unless NO_COLOR is set).
    #[arg(long, value_enum, default_value_t = ColourChoice::Auto, value_name = "WHEN")]
    color: ColourChoice,
}

/// `--color`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ColourChoice {
    Auto,
    Always,
    Never,
}

pub fn exec(mut a: Args) -> Result<ExitCode, Error> {
    // sockspec.toml's settings, where the command line leaves them open.
    let settings = a.select.cases.settings()?;
    // A configured output's directory (e.g. under target/) is made here.
    for path in settings
        .json
        .iter()
        .chain(&settings.markdown)
        .chain(&settings.junit)
    {
        create_parent(path)?;
    }
    a.json = a.json.or(settings.json.clone());
    a.exec.jobs = a.exec.jobs.or(settings.jobs);
    let label = a.label.or(settings.label.clone());
    // The command line's --agent wins over sockspec.toml's `agent`.
    let agent = match (&a.agent, &settings.agent, &settings.file) {
        (Some(cmd), _, _) => Some((cmd.clone(), format!("--agent {cmd}"))),
        (None, Some(cmd), Some(file)) => {
            Some((cmd.clone(), format!("agent = {cmd:?} ({})", file.display())))
        }
        _ => None,
    };
    let stop = stop_on_signal();
    for path in a
        .json
        .iter()
        .chain(&settings.markdown)
        .chain(&settings.junit)
    {
        check_output(path)?;
    }
    if let Some((cmd, from)) = &agent {
        start_agent(cmd, from)?;
    }
    let platform = Platform::current();
    let filter = a.select.filter();
    let suite = a.select.cases.load_scoped(&filter.scope(platform.os))?;
    for w in suite.expectations.set_aside_warnings() {
        sockspec::stdio::eline(&w);
    }
    a.exec.setup(&suite)?;
    let opts = Options {
        filter,
        jobs: a.exec.jobs(),
        repeat: a.exec.repeat.unwrap_or(1),
        label,
        stop: Some(stop),
    };
    if !suite.tests.iter().any(|t| opts.filter.matches(&t.name)) {
        return Err(Error::Usage("no test matches the filter".into()));
    }
    let quiet = a.quiet;
    let colour = console::Colour::choose(
        match a.color {
            ColourChoice::Auto => "auto",
            ColourChoice::Always => "always",
            ColourChoice::Never => "never",
        },
        std::io::stdout().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    // A progress line on a terminal's stderr, rewritten at most 5 times a second.
    let total = suite
        .tests
        .iter()
        .filter(|t| opts.filter.matches(&t.name))
        .count();
    let progress = std::io::stderr().is_terminal();
    let (mut done, mut bad, mut shown) = (0, 0, std::time::Instant::now());
    let mut drawn = false;
    let results = sockspec::run::run(&suite, &platform, &opts, |rec| {
        done += 1;
        if let Some(line) = console::progress_line_in(rec, colour) {
            bad += 1;
            if drawn {
                sockspec::stdio::eprint("\r\x1b[K");
                drawn = false;
            }
            if !quiet {
                out::line(&line);
            }
        }
        if progress && (shown.elapsed().as_millis() >= 200 || done == total) {
            shown = std::time::Instant::now();
            sockspec::stdio::eprint(&format!(
                "\r\x1b[K{}",
                console::running_line(done, total, opts.repeat, bad)
            ));
            drawn = true;
        }
    });
    if drawn {
        sockspec::stdio::eprint("\r\x1b[K");
    }
    out::print(&console::summary_in(&results, colour));
    write_outputs(&results, a.json.as_deref(), &settings)?;
    Ok(if results.run.interrupted {
        ExitCode::from(130)
    } else if results.summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn create_parent(path: &std::path::Path) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Makes `cmd` (from `--agent` or sockspec.toml, as `from` says) the run's
/// helper, and says which runtime it is.
fn start_agent(cmd: &str, from: &str) -> Result<(), Error> {
    use sockspec::exec::actors;
    let usage = |e: String| Error::Usage(format!("{from}: {e}"));
    actors::set_run_agent(actors::AgentCmd::parse(cmd).map_err(usage)?);
    let which = actors::implementation().map_err(usage)?;
    out::line(&format!("steps run in {which}"));
    Ok(())
}

/// Writes the results JSON and the reports sockspec.toml asks for.
fn write_outputs(
    results: &sockspec::results::Results,
    json: Option<&std::path::Path>,
    settings: &sockspec::config::Settings,
) -> Result<(), Error> {
    if let Some(path) = json {
        results.write(path)?;
        out::line(&format!("results written to {}", path.display()));
    }
    if let Some(path) = &settings.markdown {
        let text = sockspec::report::markdown::summary(std::slice::from_ref(results));
        sockspec::atomic::write(path, text.as_bytes()).map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = &settings.junit {
        let xml = sockspec::report::junit::report(results).map_err(Error::Other)?;
        sockspec::atomic::write(path, xml.as_bytes()).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// A flag set by the first SIGINT or SIGTERM (Ctrl-C on Windows): the run
/// starts no more tests, lets the running ones reach their deadline, and
/// reports what ran. A second signal ends the process at once, after killing
/// and reaping the helper processes (at most a second for that).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            sockspec::exec::live::kill_all(deadline);
            std::process::exit(130);
        }
        sockspec::stdio::eline(
            "\ninterrupted: finishing the running tests (interrupt again to stop at once)",
        );
    });
    if let Err(e) = installed {
        sockspec::stdio::eline(&format!("warning: cannot catch interrupts: {e}"));
    }
    stop
}
