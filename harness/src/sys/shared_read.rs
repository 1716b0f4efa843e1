//! One read of a slow, host-wide table serving every thread that asked for it
//! meanwhile.
//!
//! Where the kernel's TCP table is one table for the whole host (Windows,
//! the BSDs and illumos, where workers share the host's stack) and reading it
//! is slow, concurrent readers would each pay for their own read and queue
//! behind one another: under Wine, GetTcpTable takes about 40 ms alone (its
//! nsiproxy reads /proc/net/tcp and then looks up every entry's owning
//! process) and 0.7-1.8 s with twelve workers asking at once. A caller here
//! gets the result of a read that *began after it asked*, so the answer is as
//! fresh as one it would have made itself; a read already under way when it
//! asked may have missed a change the caller has just made, so it waits for
//! the next one.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Reads of one table, shared between threads.
pub struct SharedRead<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

struct State<T> {
    /// How many reads have begun.
    started: u64,
    /// The number of the last read that finished (reads finish in order:
    /// one runs at a time).
    finished: u64,
    /// Whether a read is under way.
    reading: bool,
    /// How many callers wait for a read to finish.
    waiting: usize,
    /// What the last finished read gave; an error as kind and message,
    /// since `io::Error` cannot be cloned.
    last: Option<Result<T, (io::ErrorKind, String)>>,
}

impl<T: Clone> SharedRead<T> {
    /// No read made yet.
    pub const fn new() -> Self {
        SharedRead {
            state: Mutex::new(State {
                started: 0,
                finished: 0,
                reading: false,
                waiting: 0,
                last: None,
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The state stays consistent across a panic in `read` (see Reading),
        // so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The table as a read that began after this call gives it: this
    /// thread's own read, or one another thread began meanwhile.
    pub fn get(&self, read: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let mut s = self.lock();
        // The first read to begin from now on.
        let wanted = s.started + 1;
        loop {
            if s.finished >= wanted {
                return match s.last.as_ref().expect("a finished read left its result") {
                    Ok(t) => Ok(t.clone()),
                    Err((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
                };
            }
            if !s.reading {
                break;
            }
            s.waiting += 1;
            s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.waiting -= 1;
        }
        s.started += 1;
        let number = s.started;
        s.reading = true;
        drop(s);
        let guard = Reading { shared: self };
        let r = read();
        std::mem::forget(guard);
        let mut s = self.lock();
        s.finished = number;
        s.reading = false;
        s.last = Some(match &r {
            Ok(t) => Ok(t.clone()),
            Err(e) => Err((e.kind(), e.to_string())),
        });
        drop(s);
        self.done.notify_all();
        r
    }
}

/// Ends a read that panicked, so that waiters start their own instead of
/// waiting for ever.
struct Reading<'a, T: Clone> {
    shared: &'a SharedRead<T>,
}

impl<T: Clone> Drop for Reading<'_, T> {
    fn drop(&mut self) {
        self.shared.lock().reading = false;
        self.shared.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Every caller's answer comes from a read that began after it asked.
    /// The "table" is a counter of reads begun, so a stale answer shows as a
    /// number at or below the count seen before asking.
    #[test]
    fn every_answer_is_from_a_read_begun_after_asking() {
        let shared = Arc::new(SharedRead::<u64>::new());
        let begun = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (shared, begun) = (shared.clone(), begun.clone());
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let before = begun.load(Ordering::SeqCst);
                        let got = shared
                            .get(|| {
                                let n = begun.fetch_add(1, Ordering::SeqCst) + 1;
                                std::thread::sleep(Duration::from_millis(2));
                                Ok(n)
                            })
                            .unwrap();
                        assert!(
                            got > before,
                            "answer from read {got}, but {before} had begun before asking"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// Seven callers that ask while a read is under way all get the one
    /// read that begins after it: two reads in all, not eight.
    #[test]
    fn callers_waiting_on_a_read_share_the_next_one() {
        let shared = Arc::new(SharedRead::<u64>::new());
        let begun = Arc::new(AtomicU64::new(0));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = {
            let (shared, begun) = (shared.clone(), begun.clone());
            std::thread::spawn(move || {
                shared.get(|| {
                    held.recv().unwrap();
                    Ok(begun.fetch_add(1, Ordering::SeqCst) + 1)
                })
            })
        };
        while !shared.lock().reading {
            std::thread::yield_now();
        }
        let others: Vec<_> = (0..7)
            .map(|_| {
                let (shared, begun) = (shared.clone(), begun.clone());
                std::thread::spawn(move || {
                    shared.get(|| Ok(begun.fetch_add(1, Ordering::SeqCst) + 1))
                })
            })
            .collect();
        while shared.lock().waiting < 7 {
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap(), 1);
        for t in others {
            assert_eq!(t.join().unwrap().unwrap(), 2);
        }
        assert_eq!(begun.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_error_reaches_every_caller_that_shared_the_read() {
        let shared = SharedRead::<u64>::new();
        let e = shared
            .get(|| Err(io::Error::new(io::ErrorKind::PermissionDenied, "no")))
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string()),
            (io::ErrorKind::PermissionDenied, "no".into())
        );
        // The next caller reads again.
        assert_eq!(shared.get(|| Ok(7)).unwrap(), 7);
    }

    #[test]
    fn a_panicking_read_does_not_strand_the_next_caller() {
        let shared = Arc::new(SharedRead::<u64>::new());
        let s = shared.clone();
        assert!(
            std::thread::spawn(move || s.get(|| panic!("read failed")))
                .join()
                .is_err()
        );
        assert_eq!(shared.get(|| Ok(3)).unwrap(), 3);
    }
}
