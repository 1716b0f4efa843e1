//! The `sockspec` command line.
//!
//! Exit codes: 0 success; 1 some test failed, errored or was intermittent;
//! 2 bad input (a case or expectation file, or the command line);
//! 3 refused or could not work (bless on CI, unreadable results, I/O).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use sockspec::error::Error;
use sockspec::model::OsFamily;
use sockspec::report::{self, console};
use sockspec::results::Results;
use sockspec::run::{Filter, Options, default_jobs};
use sockspec::sys::IsolationMode;
use sockspec::{Platform, Suite, bless, explain};

#[derive(Parser)]
#[command(
    name = "sockspec",
    version,
    about = "What real kernels do with socket address reuse and teardown"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Select {
    /// Run tests whose name contains this (with --exact: equals it); repeatable.
    filter: Vec<String>,
    /// Match FILTER against whole test names.
    #[arg(long)]
    exact: bool,
    /// Leave out tests whose name contains this; repeatable.
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,
    /// The cases directory (default: $SOCKSPEC_CASES, else ./cases).
    #[arg(long, value_name = "DIR")]
    cases: Option<PathBuf>,
}

impl Select {
    fn filter(&self) -> Filter {
        Filter {
            patterns: self.filter.clone(),
            exact: self.exact,
            skip: self.skip.clone(),
        }
    }

    fn root(&self) -> PathBuf {
        self.cases.clone().unwrap_or_else(Suite::default_root)
    }
}

#[derive(Args, Clone)]
struct Exec {
    /// Worker threads (default: one per core).
    #[arg(long, short, default_value_t = default_jobs())]
    jobs: usize,
    /// Run each test N times; tests whose outcomes vary are reported
    /// intermittent (default: 1 for run, 3 for bless).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: Option<u32>,
    /// Network namespace per worker (Linux): auto uses one when privileged.
    #[arg(long, value_enum, default_value_t = IsolationMode::Auto)]
    isolation: IsolationMode,
}

#[derive(Subcommand)]
enum Command {
    /// Run tests on this kernel and print a summary.
    Run {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        exec: Exec,
        /// Write the results as JSON (schema sockspec/results/v1).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// A name for this run in reports (e.g. the CI job).
        #[arg(long)]
        label: Option<String>,
        /// Print only the summary, not each failure.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List test names (with --verbose: title, and why a test cannot run here).
    List {
        #[command(flatten)]
        select: Select,
        #[arg(long, short)]
        verbose: bool,
    },
    /// Show a test's steps and every OS's expectation for it.
    Explain {
        /// The test's full name.
        test: String,
        #[arg(long, value_name = "DIR")]
        cases: Option<PathBuf>,
    },
    /// Run tests (or read results files) and write what happened into the OS's
    /// expectation file. Refuses to run when $CI is set.
    Bless {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        exec: Exec,
        /// Bless from results files (any OS's) instead of running here.
        #[arg(long, value_name = "RESULTS.json")]
        from: Vec<PathBuf>,
    },
    /// Merge results files (any OSes, kernels, Wine, CI artifacts) into
    /// reports: Markdown (the default, to stdout), HTML, JUnit, annotations;
    /// with --baseline, the regression report between two runs.
    Report {
        /// Results files (schema sockspec/results/v1).
        #[arg(required = true, value_name = "RESULTS.json")]
        results: Vec<PathBuf>,
        /// Write the Markdown summary here (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Write the self-contained HTML matrix here.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write one JUnit XML file per run into this directory.
        #[arg(long, value_name = "DIR")]
        junit: Option<PathBuf>,
        /// Print GitHub `::error` annotations for the tests that did not pass.
        #[arg(long)]
        annotations: bool,
        /// Compare against this older run of the same OS; exits 1 when outcomes changed.
        #[arg(long, value_name = "OLD.json")]
        baseline: Option<PathBuf>,
    },
    /// Check the case and expectation files, run nothing.
    Check {
        #[arg(long, value_name = "DIR")]
        cases: Option<PathBuf>,
    },
    /// Print the claims table (claim -> tests -> where each OS's answer comes
    /// from); --write puts it into <cases>/README.md.
    Claims {
        #[arg(long, value_name = "DIR")]
        cases: Option<PathBuf>,
        /// Replace the table in <cases>/README.md.
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Exit 1 if <cases>/README.md's table is out of date.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    // A helper process (an actor) of a running suite.
    if let Some(code) = sockspec::exec::actors::serve_if_agent() {
        return code;
    }
    // PID 1 of a guest booted by ci/kernels.sh.
    if sockspec::guest::is_init() {
        sockspec::guest::run_as_init();
    }
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            match e {
                Error::Input(_) | Error::Usage(_) => ExitCode::from(2),
                _ => ExitCode::from(3),
            }
        }
    }
}

fn load(root: &std::path::Path) -> Result<Suite, Error> {
    Suite::load(root).map_err(Error::from)
}

fn dispatch(cmd: Command) -> Result<ExitCode, Error> {
    match cmd {
        Command::Run {
            select,
            exec,
            json,
            label,
            quiet,
        } => {
            sockspec::sys::set_isolation_mode(exec.isolation);
            let suite = load(&select.root())?;
            let platform = Platform::current();
            let opts = Options {
                filter: select.filter(),
                jobs: exec.jobs,
                repeat: exec.repeat.unwrap_or(1),
                label,
            };
            let results = sockspec::run::run(&suite, &platform, &opts, |rec| {
                if !quiet && let Some(line) = console::progress_line(rec) {
                    println!("{line}");
                }
            });
            if results.tests.is_empty() {
                return Err(Error::Usage("no test matches the filter".into()));
            }
            print!("{}", console::summary(&results));
            if let Some(path) = json {
                results.write(&path)?;
                println!("results written to {}", path.display());
            }
            Ok(if results.summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::List { select, verbose } => {
            let suite = load(&select.root())?;
            let platform = Platform::current();
            let filter = select.filter();
            for t in suite.tests.iter().filter(|t| filter.matches(&t.name)) {
                if verbose {
                    let status = suite
                        .skip_reason(t, &platform)
                        .map(|r| format!("  [skipped here: {r}]"))
                        .unwrap_or_default();
                    println!("{}\n    {}{status}", t.name, t.case.title);
                } else {
                    println!("{}", t.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { test, cases } => {
            let suite = load(&cases.unwrap_or_else(Suite::default_root))?;
            let Some(t) = suite.test(&test) else {
                let near: Vec<&str> = suite
                    .tests
                    .iter()
                    .filter(|t| t.name.contains(&test))
                    .take(10)
                    .map(|t| t.name.as_str())
                    .collect();
                let mut msg = format!("no test is named `{test}`");
                if !near.is_empty() {
                    msg.push_str(&format!("; tests containing it:\n  {}", near.join("\n  ")));
                }
                return Err(Error::Usage(msg));
            };
            print!("{}", explain::explain(&suite, t));
            Ok(ExitCode::SUCCESS)
        }
        Command::Bless { select, exec, from } => {
            if bless::on_ci() {
                return Err(Error::Other(
                    "bless refuses to run on CI ($CI is set): CI checks expectations, it does not write them"
                        .into(),
                ));
            }
            sockspec::sys::set_isolation_mode(exec.isolation);
            let suite = load(&select.root())?;
            let filter = select.filter();
            let mut inputs: Vec<(OsFamily, String, Results)> = Vec::new();
            if from.is_empty() {
                let platform = Platform::current();
                let opts = Options {
                    filter: filter.clone(),
                    jobs: exec.jobs,
                    // An outcome that varies between runs is never blessed.
                    repeat: exec.repeat.unwrap_or(3),
                    label: None,
                };
                println!(
                    "running {} test(s) on {} {} to bless them...",
                    suite
                        .tests
                        .iter()
                        .filter(|t| filter.matches(&t.name))
                        .count(),
                    platform.os,
                    platform.release
                );
                let results = sockspec::run::run(&suite, &platform, &opts, |_| {});
                inputs.push((platform.os, platform.release.clone(), results));
            } else {
                for path in &from {
                    let r = Results::read(path)?;
                    let os = OsFamily::from_name(&r.run.os).ok_or_else(|| Error::Results {
                        path: path.clone(),
                        msg: format!("unknown OS family `{}`", r.run.os),
                    })?;
                    inputs.push((os, r.run.kernel.clone(), r));
                }
            }
            for (os, release, results) in inputs {
                // Each bless reloads the suite: later inputs see earlier edits.
                let suite = load(&select.root())?;
                let records: Vec<_> = results
                    .tests
                    .iter()
                    .filter(|t| filter.matches(&t.name))
                    .cloned()
                    .collect();
                let (obs, refused) = bless::observations(&suite, &records);
                for (name, why) in &refused {
                    if !why.starts_with("skipped") {
                        println!("not blessed: {name}: {why}");
                    }
                }
                let skipped = refused
                    .iter()
                    .filter(|(_, w)| w.starts_with("skipped"))
                    .count();
                let summary = bless::bless(&suite, os, &release, &obs)?;
                println!("{summary}");
                if skipped > 0 {
                    println!(
                        "({skipped} test(s) could not run on {os} {release} and were left alone)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            results,
            markdown,
            html,
            junit,
            annotations,
            baseline,
        } => {
            let runs = results
                .iter()
                .map(|p| Results::read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let write = |path: &PathBuf, text: &str| -> Result<(), Error> {
                if path.as_os_str() == "-" {
                    print!("{text}");
                    Ok(())
                } else {
                    std::fs::write(path, text).map_err(|e| Error::io(path, e))
                }
            };
            if let Some(old) = baseline {
                let [new] = runs.as_slice() else {
                    return Err(Error::Usage(
                        "--baseline compares one new results file with the old one".into(),
                    ));
                };
                let (text, changed) = report::markdown::regression(&Results::read(&old)?, new);
                write(markdown.as_ref().unwrap_or(&PathBuf::from("-")), &text)?;
                return Ok(if changed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            let mut wrote = false;
            if let Some(path) = &html {
                write(path, &report::html::page(&runs))?;
                wrote = true;
            }
            if let Some(dir) = &junit {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                for r in &runs {
                    let path = dir.join(format!("junit-{}.xml", report::slug(&r.run.title())));
                    write(&path, &report::junit::report(r).map_err(Error::Other)?)?;
                }
                wrote = true;
            }
            if annotations {
                for r in &runs {
                    for line in report::annotations::lines(r) {
                        println!("{line}");
                    }
                }
                wrote = true;
            }
            if markdown.is_some() || !wrote {
                write(
                    markdown.as_ref().unwrap_or(&PathBuf::from("-")),
                    &report::markdown::summary(&runs),
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Claims {
            cases,
            write,
            check,
        } => {
            let root = cases.unwrap_or_else(Suite::default_root);
            let suite = load(&root)?;
            let table = sockspec::claims::table(
                &suite.claims,
                &suite.cases,
                &suite.tests,
                &suite.expectations,
            );
            let path = root.join("README.md");
            if !write && !check {
                print!("{table}");
                return Ok(ExitCode::SUCCESS);
            }
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let new = sockspec::claims::splice(&text, &table);
            if check {
                if new == text {
                    println!("{}: the claims table is current", path.display());
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "{}: the claims table is out of date; run `cargo run --release -- claims --write`",
                    path.display()
                );
                return Ok(ExitCode::from(1));
            }
            std::fs::write(&path, new).map_err(|e| Error::io(&path, e))?;
            println!("{}: claims table written", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { cases } => {
            let suite = load(&cases.unwrap_or_else(Suite::default_root))?;
            let entries: usize = suite
                .expectations
                .files
                .values()
                .map(|f| f.entries.len())
                .sum();
            println!(
                "{} cases, {} tests, {} expectation entries in {} files: all valid",
                suite.cases.len(),
                suite.tests.len(),
                entries,
                suite.expectations.files.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
