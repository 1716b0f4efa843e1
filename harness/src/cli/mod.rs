//! The `sockspec` command line: arguments shared by several commands here,
//! one module per command.
//!
//! Exit codes: 0 success; 1 some test failed, errored or was intermittent;
//! 2 bad input (a case or expectation file, or the command line);
//! 3 refused or could not work (bless on CI, unreadable results, I/O);
//! 130 interrupted (SIGINT / SIGTERM).

mod bless;
mod check;
mod claims;
mod explain;
mod list;
mod new;
pub mod out;
mod report;
mod run;
mod schema;
mod search;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use sockspec::Suite;
use sockspec::config::Settings;
use sockspec::error::Error;
use sockspec::run::Filter;
use sockspec::sys::IsolationMode;
use sockspec::trees::Tree;

#[derive(Parser)]
#[command(
    name = "sockspec",
    version = VERSION,
    about = "What real kernels do with socket address reuse and teardown"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `sockspec --version`: the crate's version and the catalogue compiled in.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SOCKSPEC_CATALOGUE"),
    ")"
);

/// Which tests a command works on.
#[derive(Args, Clone)]
struct Select {
    /// Select tests whose name contains this (with --exact: equals it); repeatable.
    filter: Vec<String>,
    /// Match FILTER against whole test names.
    #[arg(long)]
    exact: bool,
    /// Leave out tests whose name contains this; repeatable.
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,
    #[command(flatten)]
    cases: Cases,
}

impl Select {
    /// The command line's filters; without FILTERs, sockspec.toml's; its
    /// `skip` patterns always apply too. (A bad sockspec.toml has already
    /// stopped the command when it loaded the cases.)
    fn filter(&self) -> Filter {
        let s = self.cases.settings().unwrap_or_default();
        Filter {
            patterns: if self.filter.is_empty() {
                s.filter
            } else {
                self.filter.clone()
            },
            exact: self.exact,
            skip: self.skip.iter().cloned().chain(s.skip).collect(),
        }
    }
}

/// Where the cases are (see `sockspec::trees` for the rule) and which
/// `sockspec.toml` settings apply.
#[derive(Args, Clone)]
struct Cases {
    // `command()` words these two per command (`CASES_HELP`).
    /// A case tree (with its own expected/) to use beside the built-in
    /// catalogue; repeatable.
    #[arg(long = "cases", value_name = "DIR")]
    cases: Vec<PathBuf>,
    /// Use only the trees given with --cases (or in sockspec.toml), not the
    /// built-in catalogue.
    #[arg(long)]
    only_cases: bool,
    /// The settings file [default: the nearest sockspec.toml, from here up
    /// to the repository's root].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Apply [profile.NAME] of sockspec.toml [default: ci when $CI is set
    /// and the file has one].
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

impl Cases {
    fn settings(&self) -> Result<Settings, Error> {
        sockspec::config::load(self.config.as_deref(), self.profile.as_deref())
    }

    fn trees(&self) -> Result<Vec<Tree>, Error> {
        let s = self.settings()?;
        let extra = if self.cases.is_empty() {
            s.cases
        } else {
            self.cases.clone()
        };
        sockspec::trees::resolve(&extra, self.only_cases || s.only_cases)
    }

    /// The directory of the first tree: the built-in one, or the only one.
    fn root(&self) -> Result<PathBuf, Error> {
        let trees = self.trees()?;
        Ok(trees.into_iter().next().map(|t| t.root).unwrap_or_default())
    }

    /// The tree a command that writes case files writes into: the last one
    /// given with --cases, else ./cases; never the compiled-in catalogue.
    fn writable_root(&self) -> Result<PathBuf, Error> {
        self.trees()?
            .into_iter()
            .rev()
            .find(|t| !t.embedded)
            .map(|t| t.root)
            .ok_or_else(|| {
                Error::Other(
                    "the only case tree is the catalogue compiled into sockspec, which is never written: pass --cases DIR"
                        .into(),
                )
            })
    }

    fn load(&self) -> Result<Suite, Error> {
        Ok(sockspec::trees::load(&self.trees()?)?)
    }

    /// Only what `scope` names ([`sockspec::Scope`]).
    fn load_scoped(&self, scope: &sockspec::Scope) -> Result<Suite, Error> {
        Ok(sockspec::trees::load_scoped(&self.trees()?, scope)?)
    }
}

/// How tests are executed.
#[derive(Args, Clone)]
struct Exec {
    // `command()` shows this machine's number in the help.
    /// Worker threads [default: six per core].
    #[arg(long, short, value_parser = clap::value_parser!(u32).range(1..=1024))]
    jobs: Option<u32>,
    /// Run each test N times; tests whose outcomes vary are reported
    /// intermittent [default: 1 for run, 3 for bless].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: Option<u32>,
    /// A network namespace per worker (Linux): auto uses one when privileged.
    #[arg(long, value_enum, default_value_t = Isolation::Auto)]
    isolation: Isolation,
    /// Apply this stack profile (of a case tree's profiles.toml) in each
    /// worker's network namespace (Linux, as root).
    #[arg(long, value_name = "NAME")]
    stack_profile: Option<String>,
}

impl Exec {
    /// Sets the isolation mode and the profile (after loading the suite).
    fn setup(&self, suite: &sockspec::Suite) -> Result<(), sockspec::error::Error> {
        sockspec::sys::set_isolation_mode(self.isolation.into());
        match &self.stack_profile {
            Some(p) => sockspec::run::use_profile(&suite.trees, p),
            None => Ok(()),
        }
    }

    fn jobs(&self) -> usize {
        self.jobs
            .map_or_else(sockspec::run::default_jobs, |j| j as usize)
    }
}

/// `--isolation`: the command line's names for [`IsolationMode`].
#[derive(Clone, Copy, ValueEnum)]
enum Isolation {
    /// A namespace where possible (Linux, with privilege), else the host.
    Auto,
    /// A namespace, or fail.
    Netns,
    /// Always the host's network stack.
    Host,
}

impl From<Isolation> for IsolationMode {
    fn from(i: Isolation) -> Self {
        match i {
            Isolation::Auto => IsolationMode::Auto,
            Isolation::Netns => IsolationMode::Netns,
            Isolation::Host => IsolationMode::Host,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run tests on this kernel and print a summary.
    Run(run::Args),
    /// List test names (with --verbose: title, and why a test cannot run here).
    List(list::Args),
    /// Show a case's grid as a table (a row per parameter combination, a
    /// column per OS), or a test's steps and every OS's expectation for it.
    Explain(explain::Args),
    /// Find cases by title, claim, options and errno names.
    Search(search::Args),
    /// Run tests (or read results files) and write what happened into the OS's
    /// expectation file. Refuses to run when $CI is set.
    Bless(bless::Args),
    /// Merge results files (any OSes, kernels, Wine, CI artifacts) into
    /// reports: Markdown (the default, to stdout), HTML, JUnit, annotations;
    /// with --baseline, the regression report between two runs.
    Report(report::Args),
    /// Check the case and expectation files, and that a tree's claims table
    /// (its README.md) is current; run nothing.
    Check(check::Args),
    /// Print the claims table (claim -> tests -> where each OS's answer comes
    /// from); --write puts it into <cases>/README.md.
    Claims(claims::Args),
    /// Write a new case file, commented, with every required key, ready to
    /// run and bless (never overwrites).
    New(new::Args),
    /// Print the JSON Schemas of case and expectation files; --write puts
    /// them under <cases>/schema, --check tells whether they are current.
    Schema(schema::Args),
}

/// What `--cases` and `--only-cases` mean to each command that has them:
/// (command, `--cases` help, `--only-cases` help).
const CASES_HELP: &[(&str, &str, &str)] = &[
    (
        "run",
        "A case tree (with its own expected/) to run beside the built-in catalogue; repeatable. Its tests are named `<dir name>/<topic>::...`.",
        "Run only the trees given with --cases (or in sockspec.toml), not the built-in catalogue.",
    ),
    (
        "list",
        "A case tree to list beside the built-in catalogue; repeatable. Its tests are named `<dir name>/<topic>::...`.",
        "List only the trees given with --cases (or in sockspec.toml), not the built-in catalogue.",
    ),
    (
        "bless",
        "A case tree whose tests are blessed (into its own expected/) beside the built-in catalogue's; repeatable. Its tests are named `<dir name>/<topic>::...`.",
        "Bless only the trees given with --cases (or in sockspec.toml), not the built-in catalogue.",
    ),
    (
        "explain",
        "A case tree whose cases and tests can be explained beside the built-in catalogue's; repeatable. Its tests are named `<dir name>/<topic>::...`.",
        "Look only in the trees given with --cases (or in sockspec.toml), not in the built-in catalogue.",
    ),
    (
        "search",
        "A case tree to search beside the built-in catalogue; repeatable. Its cases are named `<dir name>/<topic>::...`.",
        "Search only the trees given with --cases (or in sockspec.toml), not the built-in catalogue.",
    ),
    (
        "check",
        "A case tree (with its own expected/ and claims.toml) to check beside the built-in catalogue; repeatable.",
        "Check only the trees given with --cases (or in sockspec.toml), not the built-in catalogue.",
    ),
    (
        "claims",
        "A case tree; the table is of the first tree: the built-in catalogue, or with --only-cases the first tree given here; repeatable.",
        "Leave out the built-in catalogue, so that the table is of the first tree given with --cases (or in sockspec.toml).",
    ),
    (
        "new",
        "The case tree to write the new case (and a new claim) into: the last one given; repeatable.",
        "Leave out the built-in catalogue (the case goes into the last tree given with --cases either way).",
    ),
    (
        "schema",
        "The case tree whose schema/ --write writes and --check checks: the last one given; repeatable.",
        "Leave out the built-in catalogue (--write and --check use the last tree given with --cases either way).",
    ),
];

/// Where the trees come from when `--cases` is not given (every command).
const CASES_DEFAULT: &str = "[default: `cases` in sockspec.toml; $SOCKSPEC_CASES=DIR replaces all]";

/// The command line's definition, with the help that is only known at run
/// time (this machine's default `--jobs`) and `--cases` in each command's words.
fn command() -> clap::Command {
    use clap::CommandFactory;
    let jobs = format!(
        "Worker threads [default: {}: six per core here].",
        sockspec::run::default_jobs()
    );
    let mut cmd = Cli::command();
    for sub in ["run", "bless"] {
        let jobs = jobs.clone();
        cmd = cmd.mut_subcommand(sub, |s| s.mut_arg("jobs", |a| a.help(jobs)));
    }
    for &(sub, cases, only) in CASES_HELP {
        cmd = cmd.mut_subcommand(sub, |s| {
            s.mut_arg("cases", |a| {
                a.help(format!("{cases} {CASES_DEFAULT}"))
                    .long_help(None::<&str>)
            })
            .mut_arg("only_cases", |a| a.help(only).long_help(None::<&str>))
        });
    }
    cmd
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    use clap::FromArgMatches;
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Run(a) => run::exec(a),
        Command::List(a) => list::exec(a),
        Command::Explain(a) => explain::exec(a),
        Command::Search(a) => search::exec(a),
        Command::Bless(a) => bless::exec(a),
        Command::Report(a) => report::exec(a),
        Command::Check(a) => check::exec(a),
        Command::Claims(a) => claims::exec(a),
        Command::New(a) => new::exec(a),
        Command::Schema(a) => schema::exec(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            sockspec::stdio::eline(&e.to_string());
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit code of a command that failed with `e`.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Input(_) | Error::Usage(_) => 2,
        _ => 3,
    }
}

fn load(root: &Path) -> Result<Suite, Error> {
    Suite::load(root).map_err(Error::from)
}

/// Fails before any work when an output file could not be written later.
fn check_output(path: &Path) -> Result<(), Error> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    sockspec::atomic::check_writable(path)
        .map_err(|e| Error::Usage(format!("{}: cannot write here: {e}", path.display())))
}

#[cfg(test)]
mod help {

    /// Every subcommand and every argument says what it is for
    /// (`sockspec <cmd> --help`), and `list` does not claim to run tests.
    #[test]
    fn every_subcommand_and_argument_has_help() {
        let cli = super::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            if sub.get_about().is_none() {
                missing.push(sub.get_name().to_string());
            }
            for arg in sub.get_arguments() {
                if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{} {}", sub.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "without help: {missing:?}");
        let list = cli.find_subcommand("list").unwrap();
        let filter = list
            .get_arguments()
            .find(|a| a.get_id() == "filter")
            .unwrap();
        let text = filter.get_help().unwrap().to_string();
        assert!(!text.contains("Run tests"), "{text}");
    }

    /// The help of an argument of a subcommand, as `--help` shows it.
    fn help_of(cli: &clap::Command, sub: &str, arg: &str) -> String {
        let a = cli
            .find_subcommand(sub)
            .unwrap()
            .get_arguments()
            .find(|a| a.get_id() == arg)
            .unwrap();
        a.get_long_help().or(a.get_help()).unwrap().to_string()
    }

    /// `--jobs` shows this machine's default, not a rule to work it out.
    #[test]
    fn jobs_help_shows_this_machines_number() {
        let cli = super::command();
        let n = sockspec::run::default_jobs();
        for sub in ["run", "bless"] {
            let text = help_of(&cli, sub, "jobs");
            assert!(text.contains(&format!("[default: {n}:")), "{sub}: {text}");
        }
        let mut run = cli.find_subcommand("run").unwrap().clone();
        let shown = run.render_long_help().to_string();
        assert!(
            shown.contains(&format!("[default: {n}: six per core here]")),
            "{shown}"
        );
    }

    /// `--cases` and `--only-cases` say what each command does with a tree:
    /// only `run` runs it, and no two commands share their wording.
    #[test]
    fn cases_help_is_worded_per_command() {
        let cli = super::command();
        let mut seen = std::collections::BTreeSet::new();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            if !sub.get_arguments().any(|a| a.get_id() == "cases") {
                continue;
            }
            let cases = help_of(&cli, name, "cases");
            let only = help_of(&cli, name, "only_cases");
            if name != "run" {
                assert!(!cases.contains("to run beside"), "{name}: {cases}");
                assert!(!only.starts_with("Run only"), "{name}: {only}");
            }
            assert!(seen.insert(cases.clone()), "{name} shares: {cases}");
            assert!(seen.insert(only.clone()), "{name} shares: {only}");
        }
        assert_eq!(seen.len(), 2 * super::CASES_HELP.len());
    }
}
