//! Runs a selection of tests in parallel, repeated if asked, and collects results.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime};

use crate::exec::ports::{PortBook, ScopeId, new_scope};
use crate::exec::{Env, run_test};
use crate::judge::{fold_repeats, judge, skipped};
use crate::model::Test;
use crate::results::{Results, RunInfo, SCHEMA, Summary, TestRecord};
use crate::sys::{self, Isolation};
use crate::{Platform, Suite};

/// Which tests to run, with libtest's matching rules: a substring of the
/// name, or the whole name with `exact`; `skip` patterns leave tests out.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub patterns: Vec<String>,
    pub exact: bool,
    pub skip: Vec<String>,
}

impl Filter {
    pub fn matches(&self, name: &str) -> bool {
        let hit = |p: &String| {
            if self.exact {
                name == p
            } else {
                name.contains(p.as_str())
            }
        };
        (self.patterns.is_empty() || self.patterns.iter().any(hit)) && !self.skip.iter().any(hit)
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub filter: Filter,
    pub jobs: usize,
    pub repeat: u32,
    pub label: Option<String>,
    /// Once set, no more tests (or repeats) start; the results say the run
    /// was interrupted.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Options {
    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            filter: Filter::default(),
            jobs: default_jobs(),
            repeat: 1,
            label: None,
            stop: None,
        }
    }
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

thread_local! {
    static WORKER: RefCell<Option<Result<(Isolation, ScopeId), String>>> = const { RefCell::new(None) };
}

/// Isolates the calling thread (once) and returns where its tests run.
pub fn worker_env(book: &Arc<PortBook>) -> Result<(Env, Isolation), String> {
    let r = WORKER.with(|w| {
        w.borrow_mut()
            .get_or_insert_with(|| {
                sys::isolate_thread().map(|iso| {
                    let scope = match iso {
                        Isolation::Netns => new_scope(),
                        Isolation::Host => 0,
                    };
                    (iso, scope)
                })
            })
            .clone()
    });
    r.map(|(iso, scope)| {
        (
            Env {
                book: book.clone(),
                scope,
            },
            iso,
        )
    })
}

/// Runs one test `repeat` times on the calling thread and judges it.
pub fn run_one(
    suite: &Suite,
    platform: &Platform,
    test: &Arc<Test>,
    book: &Arc<PortBook>,
    repeat: u32,
) -> TestRecord {
    let opts = Options {
        repeat,
        ..Options::default()
    };
    run_repeats(suite, platform, test, book, &opts)
}

/// [`run_one`], stopping between repeats once `opts.stop` is set.
fn run_repeats(
    suite: &Suite,
    platform: &Platform,
    test: &Arc<Test>,
    book: &Arc<PortBook>,
    opts: &Options,
) -> TestRecord {
    if let Some(why) = suite.skip_reason(test, platform) {
        return skipped(test, why);
    }
    let env = match worker_env(book) {
        Ok((env, _)) => env,
        Err(why) => {
            let mut r = skipped(test, why);
            r.verdict = crate::results::Verdict::Error;
            return r;
        }
    };
    let file = suite.expectations.for_os(platform.os);
    let mut runs: Vec<TestRecord> = Vec::new();
    for _ in 0..opts.repeat.max(1) {
        if !runs.is_empty() && opts.stopped() {
            break;
        }
        let obs = run_test(test, &env);
        runs.push(judge(test, &obs, file, &platform.release));
    }
    fold_repeats(runs)
}

/// Runs the selected tests on `opts.jobs` threads; `progress` sees each
/// record as it completes. Results keep the suite's order.
pub fn run(
    suite: &Suite,
    platform: &Platform,
    opts: &Options,
    mut progress: impl FnMut(&TestRecord),
) -> Results {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let selected: Vec<&Arc<Test>> = suite
        .tests
        .iter()
        .filter(|t| opts.filter.matches(&t.name))
        .collect();
    let book = Arc::new(PortBook::new());
    let next = AtomicUsize::new(0);
    let jobs = opts.jobs.max(1).min(selected.len().max(1));
    let (tx, rx) = mpsc::channel::<(usize, TestRecord, Option<Isolation>)>();
    let (settings_tx, settings_rx) = mpsc::channel();
    let mut records: Vec<Option<TestRecord>> = vec![None; selected.len()];
    let mut isolation = None;
    std::thread::scope(|scope| {
        for w in 0..jobs {
            let tx = tx.clone();
            let settings_tx = settings_tx.clone();
            let (selected, next, book) = (&selected, &next, &book);
            scope.spawn(move || {
                let iso = worker_env(book).ok().map(|(_, i)| i);
                if w == 0 {
                    let _ = settings_tx.send(sys::stack_settings());
                }
                loop {
                    if opts.stopped() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(test) = selected.get(i) else { break };
                    let rec = run_repeats(suite, platform, test, book, opts);
                    if tx.send((i, rec, iso)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, rec, iso) in rx {
            isolation = isolation.or(iso);
            progress(&rec);
            records[i] = Some(rec);
        }
    });
    let tests: Vec<TestRecord> = records.into_iter().flatten().collect();
    let interrupted = opts.stopped();
    let settings: BTreeMap<String, String> = settings_rx.try_recv().unwrap_or_default();
    Results {
        schema: SCHEMA.to_string(),
        run: RunInfo {
            os: platform.os.to_string(),
            kernel: platform.release.clone(),
            os_detail: platform.detail.clone(),
            arch: platform.arch.to_string(),
            sockspec: env!("CARGO_PKG_VERSION").to_string(),
            started: humantime::format_rfc3339_seconds(started_at).to_string(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            jobs,
            repeat: opts.repeat,
            isolation: match isolation.unwrap_or(Isolation::Host) {
                Isolation::Netns => "netns".into(),
                Isolation::Host => "host".into(),
            },
            privileged: platform.privileged,
            label: opts.label.clone(),
            settings,
            implementation: crate::exec::actors::implementation().ok(),
            interrupted,
        },
        summary: Summary::of(&tests),
        tests,
    }
}
