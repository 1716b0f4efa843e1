//! `cargo test`: every expanded case is its own libtest-mimic trial, judged
//! against this OS's expectation file.
//!
//! Tests that cannot run here (another OS, needs root, an option this OS
//! lacks, a need only the machine can answer such as another user on Windows
//! or 127.0.0.2 on lo0) are ignored trials; their reasons go to stderr. One
//! that turns out unable to run only while running is ignored with its
//! reason. Forced to run (`--ignored`), they fail with the reason: they never
//! pass.
//! Set SOCKSPEC_JSON=FILE to also write the results of an in-process run.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Trial};
use sockspec::exec::ports::PortBook;
use sockspec::results::{Results, SCHEMA, Summary, TestRecord};
use sockspec::run::run_one;
use sockspec::{Platform, Suite};

mod trial;

fn main() -> ExitCode {
    // A helper process (an actor) started by one of the trials below.
    if let Some(code) = sockspec::exec::actors::serve_if_agent() {
        return code;
    }
    let args = Arguments::from_args();
    let root = Suite::default_root();
    let suite = match Suite::load(&root) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let platform = Arc::new(Platform::current());
    let book = Arc::new(PortBook::new());
    let records: Arc<Mutex<Vec<TestRecord>>> = Arc::default();
    let mut skips: BTreeMap<String, usize> = BTreeMap::new();

    let trials: Vec<Trial> = suite
        .tests
        .iter()
        .map(|test| {
            let skip = trial::ignore_reason(&suite, test, &platform, &sockspec::sys::unmet_need);
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
                let done = trial::completion(&rec, marked_ignored);
                records.lock().unwrap_or_else(|e| e.into_inner()).push(rec);
                done
            })
            .with_ignored_flag(skip.is_some())
        })
        .collect();

    if !args.list && !skips.is_empty() {
        eprintln!(
            "sockspec: tests ignored on {} {}:",
            platform.os, platform.release
        );
        for (reason, n) in &skips {
            eprintln!("  {n:>4}  {reason}");
        }
    }
    let started = std::time::SystemTime::now();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(path) = std::env::var_os("SOCKSPEC_JSON")
        && !args.list
    {
        let tests = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
        let run = sockspec::run::header(
            &platform,
            sockspec::run::HeaderParts {
                started,
                duration_ms: started.elapsed().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                jobs: args
                    .test_threads
                    .unwrap_or_else(sockspec::run::default_jobs),
                repeat: 1,
                label: std::env::var("SOCKSPEC_LABEL").ok(),
                interrupted: false,
                worker: None,
            },
        );
        let results = Results {
            schema: SCHEMA.into(),
            run,
            summary: Summary::of(&tests),
            tests,
        };
        if let Err(e) = results.write(std::path::Path::new(&path)) {
            eprintln!("{e}");
        }
    }
    conclusion.exit_code()
}
