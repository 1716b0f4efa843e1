//! Run sockspec cases as `cargo test` trials, in a project's own test target.
//!
//! In the spirit of `trybuild`: a test file with `harness = false` chooses
//! case trees and filters, and every expanded case becomes a libtest-mimic
//! trial judged against this OS's expectation file of its tree.
//!
//! ```toml
//! # Cargo.toml
//! [dev-dependencies]
//! sockspec = "0.1"
//!
//! [[test]]
//! name = "sockspec"
//! harness = false
//! ```
//!
//! ```no_run
//! // tests/sockspec.rs
//! fn main() -> std::process::ExitCode {
//!     sockspec::testing::Harness::new()
//!         .cases("tests/sockspec") // your cases, with their own expected/
//!         .builtin(true)           // and sockspec's own catalogue
//!         .skip("multicast")       // leave some out
//!         .run()
//! }
//! ```
//!
//! Tests of a tree other than the built-in one are named
//! `<tree>/<topic>::<case>...` (see [`crate::trees`]). Tests that cannot run
//! here (another OS, an option this OS lacks, needs root, a need only the
//! machine can answer) are *ignored* trials, their reasons printed to stderr;
//! forced to run (`--ignored`) they fail with the reason, never pass.
//! `$SOCKSPEC_CASES=DIR` replaces the chosen trees; `$SOCKSPEC_JSON=FILE`
//! also writes a results file; `$SOCKSPEC_LABEL` names the run in it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::error::Error;
use crate::exec::ports::PortBook;
use crate::model::{Need, Test};
use crate::results::{Results, SCHEMA, Summary, TestRecord, Verdict};
use crate::run::{Filter, run_one};
use crate::{Platform, Suite};

/// Which case trees and tests become trials. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Harness {
    trees: Vec<PathBuf>,
    builtin: bool,
    filter: Filter,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// The built-in catalogue, every test.
    pub fn new() -> Harness {
        Harness {
            trees: Vec::new(),
            builtin: true,
            filter: Filter::default(),
        }
    }

    /// Adds a case tree (`<topic>/<case>.toml` and `expected/<os>.toml`),
    /// relative to the current directory (the package's, under `cargo test`).
    pub fn cases(mut self, dir: impl Into<PathBuf>) -> Harness {
        self.trees.push(dir.into());
        self
    }

    /// Whether the built-in catalogue runs too (the default: yes).
    pub fn builtin(mut self, yes: bool) -> Harness {
        self.builtin = yes;
        self
    }

    /// Only tests whose name contains `pattern` (repeatable: any of them).
    pub fn filter(mut self, pattern: impl Into<String>) -> Harness {
        self.filter.patterns.push(pattern.into());
        self
    }

    /// Leaves out tests whose name contains `pattern` (repeatable).
    pub fn skip(mut self, pattern: impl Into<String>) -> Harness {
        self.filter.skip.push(pattern.into());
        self
    }

    /// Loads the chosen trees into one suite.
    pub fn suite(&self) -> Result<Suite, Error> {
        self.suite_scoped(&crate::Scope::default())
    }

    fn suite_scoped(&self, scope: &crate::Scope) -> Result<Suite, Error> {
        let trees = crate::trees::resolve(&self.trees, !self.builtin)?;
        Ok(crate::trees::load_scoped(&trees, scope)?)
    }

    /// Parses libtest's command line, runs the trials, and returns the exit
    /// code; also serves as a helper process (an actor) when started as one.
    pub fn run(self) -> ExitCode {
        // A helper process (an actor) started by one of the trials.
        if let Some(code) = crate::exec::actors::serve_if_agent() {
            return code;
        }
        let args = Arguments::from_args();
        let platform = Arc::new(Platform::current());
        // One test by its whole name (how nextest starts every test
        // process): only its case and this OS's expectations are loaded.
        // As `sockspec run`: observed outcomes of steps a changed case no
        // longer checks apply to no test; the run leaves them out and says
        // so, and its results can still be blessed (which removes them).
        let one = args.filter.as_ref().filter(|_| args.exact);
        let scope = crate::Scope {
            tests: one.map(|name| vec![name.clone()]),
            os: one.map(|_| platform.os),
            set_aside_stale: true,
        };
        let suite = match self.suite_scoped(&scope) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                crate::stdio::eline(&e.to_string());
                return ExitCode::from(2);
            }
        };
        for w in suite.expectations.set_aside_warnings() {
            crate::stdio::eline(&w);
        }
        let records: Arc<Mutex<Vec<TestRecord>>> = Arc::default();
        let (trials, skips) = self.trials(&suite, &platform, &records);
        if !args.list && !skips.is_empty() {
            crate::stdio::eline(&format!(
                "sockspec: tests ignored on {} {}:",
                platform.os, platform.release
            ));
            for (reason, n) in &skips {
                crate::stdio::eline(&format!("  {n:>4}  {reason}"));
            }
        }
        let started = std::time::SystemTime::now();
        let conclusion = libtest_mimic::run(&args, trials);
        if let Some(path) = std::env::var_os("SOCKSPEC_JSON")
            && !args.list
        {
            let tests = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
            let mut results = results(&platform, &args, started, tests);
            results.sources =
                crate::judge::sources_of(&results.tests, suite.expectations.for_os(platform.os));
            if let Err(e) = results.write(std::path::Path::new(&path)) {
                crate::stdio::eline(&e.to_string());
            }
        }
        conclusion.exit_code()
    }

    /// The selected tests as trials, and how many are ignored for each
    /// reason. Each trial's record is pushed to `records` when it ran.
    pub fn trials(
        &self,
        suite: &Arc<Suite>,
        platform: &Arc<Platform>,
        records: &Arc<Mutex<Vec<TestRecord>>>,
    ) -> (Vec<Trial>, BTreeMap<String, usize>) {
        let book = Arc::new(PortBook::new());
        let mut skips: BTreeMap<String, usize> = BTreeMap::new();
        let trials = suite
            .tests
            .iter()
            .filter(|t| self.filter.matches(&t.name))
            .map(|test| {
                let skip = ignore_reason(suite, test, platform, &crate::sys::unmet_need);
                if let Some(r) = &skip {
                    *skips.entry(r.clone()).or_default() += 1;
                }
                let (suite, platform, book, records, test) = (
                    suite.clone(),
                    platform.clone(),
                    book.clone(),
                    records.clone(),
                    test.clone(),
                );
                let marked_ignored = skip.is_some();
                Trial::ignorable_test(test.name.clone(), move || {
                    let rec = run_one(&suite, &platform, &test, &book, 1);
                    let done = completion(&rec, marked_ignored);
                    records.lock().unwrap_or_else(|e| e.into_inner()).push(rec);
                    done
                })
                .with_ignored_flag(marked_ignored)
            })
            .collect();
        (trials, skips)
    }
}

fn results(
    platform: &Platform,
    args: &Arguments,
    started: std::time::SystemTime,
    tests: Vec<TestRecord>,
) -> Results {
    Results {
        schema: SCHEMA.into(),
        // One header for `sockspec run` and test targets: real jobs,
        // isolation, profile and stack settings.
        run: crate::run::header(
            platform,
            crate::run::HeaderParts {
                started,
                duration_ms: started.elapsed().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                jobs: args.test_threads.unwrap_or_else(crate::run::default_jobs),
                repeat: 1,
                label: std::env::var("SOCKSPEC_LABEL").ok(),
                interrupted: false,
                worker: None,
            },
        ),
        summary: Summary::of(&tests),
        tests,
        sources: Default::default(),
    }
}

/// Why the trial is ignored: the test cannot run on this OS or without
/// privilege, or a need only the machine can answer (`unmet`, normally
/// [`crate::sys::unmet_need`]) is not met.
pub fn ignore_reason(
    suite: &Suite,
    test: &Test,
    platform: &Platform,
    unmet: &dyn Fn(&Need) -> Option<String>,
) -> Option<String> {
    suite
        .skip_reason(test, platform)
        .or_else(|| test.needs.iter().find_map(unmet))
}

/// A pass passes; a skip found out only while running (the `Unavailable`
/// problem) ignores the trial with its reason, unless the trial was already
/// ignored and forced to run (`--ignored`): then it fails with the reason, so
/// that a test that could not run never passes. Anything else fails.
pub fn completion(rec: &TestRecord, marked_ignored: bool) -> Result<Completion, Failed> {
    let reason = || crate::report::wording::why(rec).unwrap_or_else(|| rec.verdict.as_str().into());
    match rec.verdict {
        Verdict::Pass => Ok(Completion::Completed),
        Verdict::Skip if !marked_ignored => Ok(Completion::ignored_with(format!(
            "cannot run here: {}",
            reason()
        ))),
        Verdict::Skip => Err(Failed::from(format!("cannot run here: {}", reason()))),
        _ => Err(Failed::from(reason())),
    }
}
