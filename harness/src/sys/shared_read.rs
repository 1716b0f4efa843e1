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
        // Copied before the lock is taken: should the copy panic, the guard
        // still ends the read.
        let last = match &r {
            Ok(t) => Ok(t.clone()),
            Err(e) => Err((e.kind(), e.to_string())),
        };
        std::mem::forget(guard);
        let mut s = self.lock();
        s.finished = number;
        s.reading = false;
        s.last = Some(last);
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
        let b = begun.clone();
        let (first, release) =
            blocked_first_read(&shared, move || Ok(b.fetch_add(1, Ordering::SeqCst) + 1));
        let b = begun.clone();
        let answers = waiting_callers(&shared, 7, move || Ok(b.fetch_add(1, Ordering::SeqCst) + 1));
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap(), 1);
        for _ in 0..7 {
            assert_eq!(answers.recv().unwrap().unwrap(), 2);
        }
        assert_eq!(begun.load(Ordering::SeqCst), 2);
    }

    /// Starts a caller whose read (if it makes one) holds until `release`
    /// sends, and returns once that read is under way.
    fn blocked_first_read(
        shared: &Arc<SharedRead<u64>>,
        then: impl FnOnce() -> io::Result<u64> + Send + 'static,
    ) -> (
        std::thread::JoinHandle<io::Result<u64>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let s = shared.clone();
        let first = std::thread::spawn(move || {
            s.get(|| {
                held.recv().unwrap();
                then()
            })
        });
        while !shared.lock().reading {
            std::thread::yield_now();
        }
        (first, release)
    }

    /// Starts `n` callers, each with `read`, and returns once all of them
    /// wait for the read under way: each gets its answer on the channel.
    fn waiting_callers(
        shared: &Arc<SharedRead<u64>>,
        n: usize,
        read: impl Fn() -> io::Result<u64> + Send + Sync + Clone + 'static,
    ) -> std::sync::mpsc::Receiver<io::Result<u64>> {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..n {
            let (shared, tx, read) = (shared.clone(), tx.clone(), read.clone());
            std::thread::spawn(move || tx.send(shared.get(read)).unwrap());
        }
        while shared.lock().waiting < n {
            std::thread::yield_now();
        }
        rx
    }

    /// Two callers waiting behind a read share the next one, which fails:
    /// both get its error, rebuilt with its kind and message.
    #[test]
    fn an_error_reaches_every_caller_that_shared_the_read() {
        let shared = Arc::new(SharedRead::<u64>::new());
        let reads = Arc::new(AtomicU64::new(0));
        let (first, release) = blocked_first_read(&shared, || Ok(1));
        let r = reads.clone();
        let answers = waiting_callers(&shared, 2, move || {
            r.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "no"))
        });
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap(), 1);
        for _ in 0..2 {
            let e = answers.recv().unwrap().unwrap_err();
            assert_eq!(
                (e.kind(), e.to_string()),
                (io::ErrorKind::PermissionDenied, "no".into())
            );
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "the failing read was shared"
        );
    }

    /// A caller waiting behind a read that panics is woken and makes its
    /// own read. (Bounded: a caller left waiting fails the test, not hangs it.)
    #[test]
    fn a_panicking_read_wakes_its_waiters_to_read_again() {
        let shared = Arc::new(SharedRead::<u64>::new());
        let (first, release) = blocked_first_read(&shared, || panic!("read failed"));
        let answers = waiting_callers(&shared, 1, || Ok(3));
        release.send(()).unwrap();
        assert!(first.join().is_err());
        let got = answers.recv_timeout(Duration::from_secs(10));
        assert_eq!(got.expect("the waiter was woken").unwrap(), 3);
    }
}
