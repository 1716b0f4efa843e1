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
    /// Name patterns a test must match one of (`FILTER` arguments); empty: every test.
    pub patterns: Vec<String>,
    /// Whether a pattern must equal the whole name (`--exact`) instead of occurring in it.
    pub exact: bool,
    /// Patterns whose tests are left out (`--skip`), matched like `patterns`.
    pub skip: Vec<String>,
}

impl Filter {
    /// Whether the test named `name` is selected: it matches a pattern (or there are none) and
    /// no skip pattern.
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

    /// What a run with this filter loads on `os`: with `--exact` names, only
    /// their cases and `os`'s expectations; else the whole tree. Observed
    /// outcomes of steps a changed case no longer checks apply to no test:
    /// a run leaves them out and says so
    /// ([`Expectations::set_aside_warnings`](crate::expect::Expectations::set_aside_warnings)),
    /// so that every OS can still run and be blessed (which removes them).
    pub fn scope(&self, os: crate::model::OsFamily) -> crate::Scope {
        let exact = self.exact && !self.patterns.is_empty();
        crate::Scope {
            tests: exact.then(|| self.patterns.clone()),
            os: exact.then_some(os),
            set_aside_stale: true,
        }
    }
}

/// How `sockspec run` runs the suite: which tests, on how many threads, how often.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which tests run.
    pub filter: Filter,
    /// Worker threads (`--jobs`; default [`default_jobs`]).
    pub jobs: usize,
    /// How many times each test runs (`--repeat`); differing outcomes make it intermittent.
    pub repeat: u32,
    /// A free-form name for the run (`--label`), written to the results header.
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

/// Six workers per core: a test spends most of its time waiting (for a
/// datagram window to pass, a close to linger, a helper process to start),
/// not computing, so more workers than cores keep the cores busy. (On 2
/// cores the whole suite took 1.39 s with 8 workers, 1.09-1.19 s with 12,
/// 1.11-1.23 s with 16 and 24: ci/bench.sh.)
pub fn default_jobs() -> usize {
    6 * crate::par::cores()
}

/// Where a worker thread runs its tests: its isolation, its port scope, and
/// the stack settings as its tests see them.
type Worker = (Isolation, ScopeId, Arc<BTreeMap<String, String>>);

thread_local! {
    // Already `const`: clippy on some targets (illumos, Android) asks anyway.
    #[allow(clippy::missing_const_for_thread_local)]
    static WORKER: RefCell<Option<Result<Worker, String>>> = const { RefCell::new(None) };
}

/// Isolates the calling thread (once), applies the run's stack profile in
/// its namespace, and reads the settings there.
fn worker() -> Result<Worker, String> {
    WORKER.with(|w| {
        w.borrow_mut()
            .get_or_insert_with(|| {
                let iso = sys::isolate_thread()?;
                sys::settings::apply_profile(iso)?;
                let scope = match iso {
                    Isolation::Netns => new_scope(),
                    Isolation::Host => 0,
                };
                Ok((iso, scope, Arc::new(sys::stack_settings())))
            })
            .clone()
    })
}

/// The isolation and stack settings a worker would have, found out on a
/// thread of its own (which isolates itself as a worker does, and ends).
pub fn probe_worker() -> Result<(Isolation, BTreeMap<String, String>), String> {
    std::thread::spawn(|| worker().map(|(iso, _, s)| (iso, (*s).clone())))
        .join()
        .unwrap_or_else(|_| Err("the settings probe panicked".into()))
}

/// Isolates the calling thread (once) and returns where its tests run.
pub fn worker_env(book: &Arc<PortBook>) -> Result<(Env, Isolation), String> {
    worker().map(|(iso, scope, _)| {
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
    let settings = worker().map(|(_, _, s)| s).unwrap_or_default();
    let file = suite.expectations.for_os(platform.os);
    let mut runs: Vec<TestRecord> = Vec::new();
    for _ in 0..opts.repeat.max(1) {
        if !runs.is_empty() && opts.stopped() {
            break;
        }
        let obs = run_test(test, &env);
        let mut rec = judge(test, &obs, file, &platform.release, &settings);
        settings_cause(test, platform, &settings, &mut rec);
        runs.push(rec);
    }
    fold_repeats(runs)
}

/// A precondition a setting of the run rules out (FreeBSD's
/// `nolocaltimewait`: no TIME_WAIT on loopback) is not the kernel failing the
/// test: the test cannot run in this configuration. It becomes a skip that
/// names the setting, with the problem kept, so it is never blessed.
fn settings_cause(
    test: &Test,
    platform: &Platform,
    settings: &BTreeMap<String, String>,
    rec: &mut TestRecord,
) {
    let Some(crate::results::Problem::Precondition { step, msg }) = &rec.problem else {
        return;
    };
    let wanted = test
        .steps
        .iter()
        .find(|s| s.index == *step)
        .and_then(|s| s.require.as_ref())
        .map(|o| o.to_string());
    let Some(cause) =
        wanted.and_then(|w| sys::settings::precondition_cause(platform.os, settings, &w))
    else {
        return;
    };
    let msg = format!("{msg}; {cause}");
    rec.verdict = crate::results::Verdict::Skip;
    rec.reason = Some(msg.clone());
    rec.problem = Some(crate::results::Problem::Unavailable { msg });
}

/// What the results header needs besides the platform.
pub struct HeaderParts {
    /// When the run started.
    pub started: SystemTime,
    /// How long the run took, in milliseconds.
    pub duration_ms: f64,
    /// Worker threads the run used.
    pub jobs: usize,
    /// How many times each test ran.
    pub repeat: u32,
    /// The run's `--label`, if any.
    pub label: Option<String>,
    /// Whether the run was stopped early (SIGINT / SIGTERM).
    pub interrupted: bool,
    /// The isolation and settings the workers had; `None`: find them out
    /// now, as a worker would have them ([`probe_worker`]).
    pub worker: Option<(Isolation, BTreeMap<String, String>)>,
}

/// The results header, for `sockspec run` and the `conformance` test
/// target alike: the run's settings are the stack's as the tests saw them
/// (inside the worker's namespace, with the profile applied).
pub fn header(platform: &Platform, parts: HeaderParts) -> RunInfo {
    let (isolation, settings) = match parts.worker {
        Some(w) => w,
        None => probe_worker().unwrap_or((Isolation::Host, BTreeMap::new())),
    };
    RunInfo {
        os: platform.os.to_string(),
        kernel: platform.release.clone(),
        os_detail: platform.detail.clone(),
        arch: platform.arch.to_string(),
        sockspec: env!("CARGO_PKG_VERSION").to_string(),
        started: humantime::format_rfc3339_seconds(parts.started).to_string(),
        duration_ms: parts.duration_ms,
        jobs: parts.jobs,
        repeat: parts.repeat,
        isolation: match isolation {
            Isolation::Netns => "netns".into(),
            Isolation::Host => "host".into(),
        },
        privileged: platform.privileged,
        label: parts.label,
        profile: sys::settings::profile().map(|p| p.name),
        settings,
        implementation: crate::exec::actors::implementation().ok(),
        interrupted: parts.interrupted,
    }
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
    let order = schedule(&selected);
    let book = Arc::new(PortBook::new());
    let next = AtomicUsize::new(0);
    let jobs = opts.jobs.max(1).min(order.len().max(1));
    let (tx, rx) = mpsc::channel::<(usize, TestRecord)>();
    let (worker_tx, worker_rx) = mpsc::channel();
    let mut records: Vec<Option<TestRecord>> = vec![None; selected.len()];
    std::thread::scope(|scope| {
        for w in 0..jobs {
            let tx = tx.clone();
            let worker_tx = worker_tx.clone();
            let (selected, order, next, book) = (&selected, &order, &next, &book);
            scope.spawn(move || {
                if w == 0
                    && let Ok((iso, _, settings)) = worker()
                {
                    let _ = worker_tx.send((iso, (*settings).clone()));
                }
                'units: while let Some(unit) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    for &i in unit {
                        if opts.stopped() {
                            break 'units;
                        }
                        let rec = run_repeats(suite, platform, selected[i], book, opts);
                        if tx.send((i, rec)).is_err() {
                            break 'units;
                        }
                    }
                }
                crate::exec::end_worker();
            });
        }
        drop(tx);
        for (i, rec) in rx {
            progress(&rec);
            records[i] = Some(rec);
        }
    });
    let tests: Vec<TestRecord> = records.into_iter().flatten().collect();
    let interrupted = opts.stopped();
    let run = header(
        platform,
        HeaderParts {
            started: started_at,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            jobs,
            repeat: opts.repeat,
            label: opts.label.clone(),
            interrupted,
            worker: Some(
                worker_rx
                    .try_recv()
                    .unwrap_or((Isolation::Host, BTreeMap::new())),
            ),
        },
    );
    Results {
        schema: SCHEMA.to_string(),
        run,
        summary: Summary::of(&tests),
        sources: crate::judge::sources_of(&tests, suite.expectations.for_os(platform.os)),
        tests,
    }
}

/// The order tests start in (results keep the suite's order), as units a
/// worker runs one after another: longest first, so that a test that waits
/// a second, or starts an interpreter, starts at once beside the short ones
/// instead of alone at the end. (A close that lingers holds back starting
/// children only until its descriptor is gone, on Linux: [`sys::close`].)
///
/// A unit is one test, or all the tests whose helpers run in the same other
/// runtimes (Python, Node): one worker runs those in turn, so the helper it
/// keeps ([`crate::exec::actors::Actor::recycle`]) serves them all instead
/// of an interpreter starting for each (60-110 ms of CPU).
fn schedule(selected: &[&Arc<Test>]) -> Vec<Vec<usize>> {
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut by_runtimes: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
    for (i, t) in selected.iter().enumerate() {
        let runtimes = t.helper_runtimes();
        if runtimes.is_empty() {
            units.push(vec![i]);
            continue;
        }
        let u = *by_runtimes.entry(runtimes).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[u].push(i);
    }
    units.sort_by_cached_key(|u| {
        std::cmp::Reverse(
            u.iter()
                .map(|&i| selected[i].expected_wait())
                .sum::<std::time::Duration>(),
        )
    });
    units
}

/// Chooses the stack profile `name` of the trees' `profiles.toml` for this
/// run: every worker applies it in its own network namespace. A name two
/// trees give different sysctls is refused, naming both files. Refuses
/// (exit 3) where a worker cannot get a namespace of its own (not Linux, not
/// root): a profile never changes the host's stack.
pub fn use_profile(trees: &[crate::trees::Tree], name: &str) -> Result<(), crate::error::Error> {
    use crate::error::{Error, InputErrors};
    let file = |t: &crate::trees::Tree| t.root.join(sys::settings::PROFILES_FILE);
    let mut files = Vec::new();
    let mut names = Vec::new();
    let mut found: Vec<(&crate::trees::Tree, sys::settings::Profile)> = Vec::new();
    for t in trees.iter().filter(|t| file(t).exists()) {
        let mut profiles =
            sys::settings::load_profiles(&t.root).map_err(|e| Error::Input(InputErrors(e)))?;
        names.extend(profiles.keys().cloned());
        if let Some(p) = profiles.remove(name) {
            found.push((t, p));
        }
        files.push(file(t).display().to_string());
    }
    names.sort();
    names.dedup();
    let p = match found.as_slice() {
        [] if files.is_empty() => {
            return Err(Error::Usage(format!(
                "no profile `{name}`: no case tree of this run has a {}",
                sys::settings::PROFILES_FILE
            )));
        }
        [] => {
            return Err(Error::Usage(format!(
                "no profile `{name}` in {}; profiles: {}",
                files.join(" or "),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        [(first, p), rest @ ..] => match rest.iter().find(|(_, q)| q.sysctls != p.sysctls) {
            Some((other, _)) => {
                // The built-in catalogue is the tree without a name in a
                // run of several.
                let builtin = [first, other].iter().any(|t| t.name.is_none());
                return Err(Error::Usage(format!(
                    "profile `{name}` sets different sysctls in {} and in {}: rename one{}",
                    file(first).display(),
                    file(other).display(),
                    if builtin {
                        " (yours: the built-in catalogue's is not yours to edit)"
                    } else {
                        ""
                    }
                )));
            }
            None => p,
        },
    };
    if sys::isolation_mode() == sys::IsolationMode::Host {
        return Err(Error::Other(format!(
            "profile `{name}` needs a network namespace per worker; --isolation host shares the host's stack"
        )));
    }
    sys::set_isolation_mode(sys::IsolationMode::Netns);
    sys::settings::set_profile(Some(p.clone()));
    match probe_worker() {
        Ok(_) => Ok(()),
        Err(why) => {
            sys::settings::set_profile(None);
            Err(Error::Other(format!(
                "cannot run with profile `{name}`: {why} (profiles apply sysctls only inside network \
                 namespaces sockspec creates: Linux, as root)"
            )))
        }
    }
}
