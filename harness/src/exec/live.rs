//! Every helper process this process has started and not yet reaped, so
//! that a second interrupt can kill and reap them before the process exits
//! ([`kill_all`]); otherwise they would die by PDEATHSIG and wait as zombies
//! until init reaps them.
//!
//! A pid is in the registry exactly while its process is unreaped: it is
//! added when the helper has started, and every reap (here or in
//! [`kill_all`]) happens under the registry's lock and removes it, so no
//! signal can reach a pid the system has given to another process.

use std::io;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Set by [`kill_all`]: no helper starts after it.
static STOPPED: AtomicBool = AtomicBool::new(false);
/// Helpers being started right now (not yet in [`LIVE`]).
static STARTING: AtomicUsize = AtomicUsize::new(0);

fn live() -> MutexGuard<'static, Vec<u32>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stopping() -> io::Error {
    io::Error::other("the run is being stopped")
}

struct Starting;

impl Drop for Starting {
    fn drop(&mut self) {
        STARTING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a helper with `spawn` and registers its pid; refuses once
/// [`kill_all`] has run (a helper that started meanwhile is killed).
pub(crate) fn spawn<C>(spawn: impl FnOnce() -> io::Result<(Child, C)>) -> io::Result<(Child, C)> {
    STARTING.fetch_add(1, Ordering::SeqCst);
    let _starting = Starting;
    if STOPPED.load(Ordering::SeqCst) {
        return Err(stopping());
    }
    let (mut child, c) = spawn()?;
    let mut live = live();
    if STOPPED.load(Ordering::SeqCst) {
        let _ = crate::sys::kill_helper(&mut child);
        let _ = child.wait();
        return Err(stopping());
    }
    live.push(child.id());
    Ok((child, c))
}

/// Kills `child` if `kill`, reaps it (waiting until it has ended), and
/// forgets it. An error when [`kill_all`] has reaped it already. The
/// registry is locked only to signal and for each look, never while the
/// child takes its time to end: a helper stuck in the kernel must not hold
/// up every other worker's helpers.
pub(crate) fn end(child: &mut Child, kill: bool) -> io::Result<ExitStatus> {
    if kill {
        let live = live();
        if !live.contains(&child.id()) {
            return Err(stopping());
        }
        // The helper's whole process group (Unix), not just the helper.
        crate::sys::kill_helper(child)?;
    }
    loop {
        if let Some(status) = try_end(child)? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Reaps `child` if it has exited, and then forgets it.
pub(crate) fn try_end(child: &mut Child) -> io::Result<Option<ExitStatus>> {
    let mut live = live();
    let pid = child.id();
    let Some(i) = live.iter().position(|p| *p == pid) else {
        return Err(stopping());
    };
    // Before the reap, while the group's id is still the helper's; and no
    // reap unless this look saw the exit, or a helper that exits in between
    // would be reaped with its group left running.
    if crate::sys::end_group_if_exited(pid) == Some(false) {
        return Ok(None);
    }
    let status = child.try_wait()?;
    if status.is_some() {
        live.swap_remove(i);
    }
    Ok(status)
}

/// Kills those of `pids` that are helpers not yet reaped: a pid reaped
/// already may be another process's by now. (Every reap happens under the
/// registry's lock, which is held only for moments: [`end`].)
pub(crate) fn kill_unreaped(pids: &[u32]) {
    let live = live();
    for pid in pids.iter().filter(|p| live.contains(p)) {
        crate::sys::kill_pid(*pid);
    }
}

/// Kills every registered helper (SIGKILL), reaps each, and lets no new
/// one start; gives up at `deadline` (a registry held by a stuck thread, a
/// helper that does not die). Returns how many were reaped.
pub fn kill_all(deadline: Instant) -> usize {
    STOPPED.store(true, Ordering::SeqCst);
    let mut live = loop {
        match LIVE.try_lock() {
            Ok(g) => break g,
            Err(TryLockError::Poisoned(e)) => break e.into_inner(),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return 0,
        }
    };
    for pid in live.iter() {
        crate::sys::kill_pid(*pid);
    }
    let before = live.len();
    live.retain(|pid| !crate::sys::reap_pid(*pid, deadline));
    let reaped = before - live.len();
    drop(live);
    // A helper being started now is killed by its starter (see `spawn`).
    while STARTING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    reaped
}
