//! Stage 3: execute tests on real sockets.
//!
//! A test runs as one or more *attempts*. An attempt is re-run (up to
//! [`MAX_ATTEMPTS`]) only when something outside the kernel behaviour under
//! test got in its way: a port-setup step failed, or a port collided with
//! another test (see [`ports`]). Each attempt runs on its own thread so that a
//! step the kernel never lets finish cannot hold the run: at the deadline the
//! thread is abandoned, its ports are kept out of use, and the test times out.

pub mod actors;
pub mod engine;
pub mod live;
pub mod local;
pub mod ports;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::model::{Need, Test};
use crate::outcome::Outcome;
use ports::{PortBook, ScopeId};

/// How often an attempt may be re-run after port trouble.
pub const MAX_ATTEMPTS: u32 = 5;

/// Extra time past a test's deadline before its thread is declared hung.
const GRACE: Duration = Duration::from_secs(2);

/// One step as it happened.
#[derive(Clone, Debug)]
pub struct StepResult {
    /// The step's index in the test.
    pub index: usize,
    /// The step's action kind (`bind`, `connect`, ...).
    pub kind: &'static str,
    /// The step's check label; `None` for setup steps.
    pub label: Option<String>,
    /// The socket the step acts on, when it acts on one.
    pub sock: Option<String>,
    /// What the step did, as a portable outcome.
    pub outcome: Outcome,
    /// The OS's own error code, when the outcome is an error.
    pub raw: Option<i32>,
    /// More about the outcome, as text (the OS's message, bytes sent, ...).
    pub detail: Option<String>,
    /// How long the step took.
    pub took: Duration,
}

pub use crate::results::Problem;

/// What one attempt of a test gave: its steps, or why it must be re-run.
pub struct AttemptResult {
    /// The steps that ran, in order.
    pub steps: Vec<StepResult>,
    /// Why there is no kernel verdict, if there is none.
    pub problem: Option<Problem>,
    /// Set when the attempt must be re-run, with the reason.
    pub retry: Option<String>,
}

/// A test's run: the last attempt's steps, and how it got there.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The last attempt's steps.
    pub steps: Vec<StepResult>,
    /// Why the test has no kernel verdict, if it has none.
    pub problem: Option<Problem>,
    /// How many attempts ran (0 when something the test needs was unavailable).
    pub attempts: u32,
    /// Why earlier attempts were re-run.
    pub retries: Vec<String>,
    /// Time all the attempts took together.
    pub took: Duration,
}

/// Where tests run: the port book and the calling thread's isolation scope.
#[derive(Clone)]
pub struct Env {
    /// The run-wide record of which attempt holds which port.
    pub book: Arc<PortBook>,
    /// The isolation scope the calling thread's tests run in.
    pub scope: ScopeId,
}

/// Runs one test to completion (all its attempts).
pub fn run_test(test: &Arc<Test>, env: &Env) -> Observed {
    let started = Instant::now();
    let mut retries = Vec::new();
    let unavailable = if test.needs.contains(&Need::Ipv6Multicast) {
        crate::sys::prepare_v6_multicast().err()
    } else {
        None
    }
    .or_else(|| {
        test.needs
            .contains(&Need::SecondLoopback)
            .then(crate::sys::second_loopback)
            .and_then(Result::err)
    });
    if let Some(why) = unavailable {
        return Observed {
            steps: Vec::new(),
            problem: Some(Problem::Unavailable { msg: why }),
            attempts: 0,
            retries,
            took: started.elapsed(),
        };
    }
    for attempt in 1..=MAX_ATTEMPTS {
        let r = run_attempt(test, env);
        match r.retry {
            Some(why) if attempt < MAX_ATTEMPTS => retries.push(why),
            Some(why) => {
                retries.push(why.clone());
                return Observed {
                    steps: r.steps,
                    problem: Some(Problem::Harness {
                        msg: format!(
                            "gave up after {MAX_ATTEMPTS} attempts (port trouble, or a helper that would not start): {why}"
                        ),
                    }),
                    attempts: attempt,
                    retries,
                    took: started.elapsed(),
                };
            }
            None => {
                return Observed {
                    steps: r.steps,
                    problem: r.problem,
                    attempts: attempt,
                    retries,
                    took: started.elapsed(),
                };
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// How long an attempt may take: its case's deadline, and under `run
/// --agent` the start of the helper every test begins with, as a `spawn`
/// step adds it to a case's deadline (`load::SPAWN_ALLOWANCE`).
fn time_allowed(test: &Test) -> Duration {
    match actors::run_agent() {
        Some(_) => test.case.deadline + crate::load::SPAWN_ALLOWANCE,
        None => test.case.deadline,
    }
}

fn run_attempt(test: &Arc<Test>, env: &Env) -> AttemptResult {
    let (tx, rx) = mpsc::channel();
    let mut claims = env.book.begin(env.scope);
    let attempt_id = claims.attempt;
    let allowed = time_allowed(test);
    let deadline = Instant::now() + allowed;
    let t = test.clone();
    let pids = actors::Pids::default();
    let attempt_pids = pids.clone();
    let job: Job = Box::new(move || {
        // A hung attempt's end kills the helpers its thread keeps too.
        attempt_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(actors::kept_pids());
        let mut r = engine::attempt(&t, &mut claims, &attempt_pids, deadline);
        if r.retry.is_none() && claims.disturbed() {
            r.retry = Some("another test collided with one of this test's ports".into());
        }
        // Released before the result is sent: the next attempt in this
        // scope may start at once and bind the same port (a one-port
        // ephemeral range gives every attempt the same one).
        drop(claims);
        let _ = tx.send(r);
    });
    if let Err(e) = AttemptThread::run(job) {
        return AttemptResult {
            steps: Vec::new(),
            problem: Some(Problem::Harness {
                msg: format!("cannot start a thread: {e}"),
            }),
            retry: None,
        };
    }
    match rx.recv_timeout(allowed + GRACE) {
        Ok(r) => r,
        Err(_) => {
            env.book.abandon(env.scope, attempt_id);
            // The next attempt gets a thread of its own.
            AttemptThread::forget();
            // The thread may be stuck in a call; its helpers must not outlive it.
            live::kill_unreaped(&pids.lock().unwrap_or_else(|e| e.into_inner()));
            AttemptResult {
                steps: Vec::new(),
                problem: Some(Problem::Hung),
                retry: None,
            }
        }
    }
}

/// One attempt's work, run on the worker's attempt thread.
type Job = Box<dyn FnOnce() + Send>;

/// Each worker's thread for running attempts, kept from one attempt to the
/// next: starting a thread per attempt (a stack mapped and unmapped, a fresh
/// allocator heap, an exit) was a quarter of the harness's CPU, and more of a
/// guest's under emulation. It is made by the worker, so it shares the
/// worker's network namespace, as do the helper processes it starts and
/// keeps between tests. A thread whose attempt hung is left behind: the next
/// attempt gets a new one.
struct AttemptThread;

thread_local! {
    /// The thread's job queue, and what says that it has ended its helpers.
    static ATTEMPT_THREAD: std::cell::RefCell<Option<(mpsc::Sender<Job>, mpsc::Receiver<()>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Ends the calling worker's attempt thread, and with it the helpers it
/// keeps between tests (killed and reaped), and waits for both: a run
/// leaves no process behind when it returns. An attempt thread left to a
/// hung attempt is not waited for.
pub fn end_worker() {
    if let Some((tx, ended)) = ATTEMPT_THREAD.with(|cell| cell.borrow_mut().take()) {
        drop(tx);
        // A helper stuck in the kernel could hold up its reaping: not the run.
        let _ = ended.recv_timeout(Duration::from_secs(5));
    }
}

impl AttemptThread {
    /// Runs `job` on this worker's attempt thread, starting one if there is
    /// none or the last one is gone (a job panicked).
    fn run(job: Job) -> std::io::Result<()> {
        ATTEMPT_THREAD.with(|cell| {
            let mut cell = cell.borrow_mut();
            let job = match cell.as_ref() {
                Some((tx, _)) => match tx.send(job) {
                    Ok(()) => return Ok(()),
                    Err(mpsc::SendError(job)) => job,
                },
                None => job,
            };
            let (tx, rx) = mpsc::channel::<Job>();
            let (ended_tx, ended) = mpsc::channel();
            std::thread::Builder::new()
                .name("sockspec-attempt".into())
                .spawn(move || {
                    // Also when a job panics: the kept helpers end, then
                    // the worker hears so.
                    struct Ending(mpsc::Sender<()>);
                    impl Drop for Ending {
                        fn drop(&mut self) {
                            actors::end_kept();
                            let _ = self.0.send(());
                        }
                    }
                    let _ending = Ending(ended_tx);
                    for job in rx {
                        job();
                    }
                })?;
            tx.send(job)
                .map_err(|_| std::io::Error::other("the attempt thread ended at once"))?;
            *cell = Some((tx, ended));
            Ok(())
        })
    }

    /// Leaves this worker's attempt thread to its hung attempt.
    fn forget() {
        ATTEMPT_THREAD.with(|cell| cell.borrow_mut().take());
    }
}
