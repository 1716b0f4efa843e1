//! Order-preserving parallel map over a slice on every core, for the loader's
//! CPU-bound stages (expanding grids, checking expectation files, the claims
//! table). Scoped threads, no pool: a few per call, each worth far more than
//! a spawn. Items are handed out in small blocks as threads come free, since
//! they differ in cost (an expectation file of 20 KB beside one of 160 KB).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// How many threads can run at once here, asked once per process: each
/// `available_parallelism` reads the process's cgroup files (five opens
/// on Linux), and a load maps several times.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Starts `f` on a new thread of the scope `s`, on another core than the
/// calling thread's where more are allowed. Linux may queue a new thread
/// on its starter's core and leave it to the load balancer's next pass:
/// measured on this project's 2-vCPU machine (kernel 6.18, a VM packing
/// threads onto few vCPUs), it ran 0.15-3 ms after the spawn, while the
/// parallel phases of `check` last 1-4 ms each. The new thread moves
/// itself off that core first thing (`sys::leave_cpu`); yielding gives it
/// the core to do so. Measured there, spawn to run took ~50 us. Where the
/// kernel placed it elsewhere already, the yield finds nothing to run and
/// the new thread only reads its core.
pub fn spawn<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    // With one core there is nowhere else to go, and nothing to yield for.
    let here = (cores() > 1).then(crate::sys::current_cpu).flatten();
    let thread = s.spawn(move || {
        if let Some(cpu) = here {
            crate::sys::leave_cpu(cpu);
        }
        f()
    });
    if here.is_some() {
        std::thread::yield_now();
    }
    thread
}

/// Threads at long work of their own (the expectation files parsed ahead,
/// beside the building of the tests), and a signal when one is done.
static BUSY: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

fn busy_count() -> std::sync::MutexGuard<'static, usize> {
    BUSY.0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held by a thread for as long as it works on its own beside [`map`]s:
/// their helper threads leave it its core, and take their share of the
/// items only once a core is free (the calling thread always works). With
/// two cores and a thread parsing ahead, building the tests on both
/// preempted the parse, which the build then waited for.
#[must_use = "the thread counts as busy only while this is held"]
pub struct Busy(());

/// Marks the calling thread busy until the result is dropped. A [`map`]
/// it calls meanwhile counts it twice (busy, and calling): its helpers
/// take only the cores left beside it.
pub fn busy() -> Busy {
    *busy_count() += 1;
    Busy(())
}

impl Drop for Busy {
    fn drop(&mut self) {
        *busy_count() -= 1;
        BUSY.1.notify_all();
    }
}

/// Releases [`map`]'s waiting helpers when the calling thread is done
/// with the blocks, however that ends: normally, every block is taken and
/// they return; on a panic (its own work's, or a failed spawn) they map
/// what is left, the scope joins them, and the panic goes on. Without it
/// they would wait for a core for as long as a thread stays busy.
struct Finish<'a>(&'a AtomicBool);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        // Under the lock, so that no helper misses it between its check
        // and its wait.
        {
            let _busy = busy_count();
            self.0.store(true, Ordering::Release);
        }
        BUSY.1.notify_all();
    }
}

/// `items.iter().map(f).collect()`, computed on up to
/// `available_parallelism` threads, and on no more than one per
/// `min_per_thread` items (below that a thread costs more than it saves).
pub fn map<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = cores().min(items.len() / min_per_thread.max(1)).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    // Eight blocks per thread: small enough to even out, large enough that
    // taking one costs nothing beside its work.
    let block = items.len().div_ceil(threads * 8).max(1);
    let next = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    // Helper `h` (from 1) starts once at most `cores - 1 - h` threads are
    // busy, or gives up when the calling thread has taken every block.
    let wait_for_core = |h: usize| {
        let mut busy = busy_count();
        while *busy + 1 + h > cores() && !finished.load(Ordering::Acquire) {
            busy = BUSY
                .1
                .wait(busy)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    };
    let work = || {
        let mut done: Vec<(usize, Vec<R>)> = Vec::new();
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            let start = b.saturating_mul(block);
            if start >= items.len() {
                return done;
            }
            let chunk = &items[start..items.len().min(start + block)];
            done.push((b, chunk.iter().map(&f).collect()));
        }
    };
    let mut blocks: Vec<(usize, Vec<R>)> = std::thread::scope(|s| {
        // Before the first spawn: a later spawn that fails releases the
        // helpers already waiting.
        let finish = Finish(&finished);
        let helpers: Vec<_> = (1..threads)
            .map(|h| {
                spawn(s, move || {
                    wait_for_core(h);
                    work()
                })
            })
            .collect();
        let mut all = work();
        drop(finish);
        for h in helpers {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    blocks.sort_unstable_by_key(|(b, _)| *b);
    blocks.into_iter().flat_map(|(_, r)| r).collect()
}

/// [`map`] over items it takes, not lends: each is moved to the thread
/// that maps it (in a cell it is taken out of, since `map` lends).
pub fn map_owned<T: Send, R: Send>(
    items: Vec<T>,
    min_per_thread: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let cells: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let taken = map(&cells, min_per_thread, |cell| {
        let item = cell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        item.map(&f)
    });
    taken
        .into_iter()
        .map(|r| r.expect("each cell is taken once, by the one call that maps it"))
        .collect()
}

/// `items.iter().map(|i| consume(produce(i))).collect()`, with `produce`
/// run on the calling thread, in order, and `consume` on another thread
/// when it is free, else here: for work whose first part must stay on one
/// thread (the TOML parser's working memory, see `expect::check_all`). A
/// product is handed over only to a thread waiting for one, never queued,
/// so at most two are alive at once (a parsed file each: their memory,
/// not only the parser's, counts against `check`'s bound).
pub fn pipeline<T, P: Send, R: Send>(
    items: &[T],
    mut produce: impl FnMut(&T) -> P,
    consume: impl Fn(P) -> R + Sync,
) -> Vec<R> {
    if cores() < 2 || items.len() < 2 {
        return items.iter().map(|i| consume(produce(i))).collect();
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, P)>(0);
    let consume = &consume;
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let other = spawn(s, move || {
            let mut done = Vec::new();
            while let Ok((i, p)) = rx.recv() {
                done.push((i, consume(p)));
            }
            done
        });
        let mut done = Vec::new();
        for (i, item) in items.iter().enumerate() {
            // Refused unless the other thread waits (or, having panicked,
            // never will): then it is consumed here.
            if let Err(
                std::sync::mpsc::TrySendError::Full((i, p))
                | std::sync::mpsc::TrySendError::Disconnected((i, p)),
            ) = tx.try_send((i, produce(item)))
            {
                done.push((i, consume(p)));
            }
        }
        drop(tx);
        done.extend(
            other
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        done
    });
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_owned_keeps_order_and_moves_every_item_once() {
        for n in [0, 1, 2, 17, 100] {
            let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let out = super::map_owned(items, 1, |s: String| s + "!");
            let want: Vec<String> = (0..n).map(|i| format!("{i}!")).collect();
            assert_eq!(out, want, "n = {n}");
        }
    }

    #[test]
    fn a_pipeline_keeps_order_and_every_item_and_produces_on_the_calling_thread() {
        for n in [0, 1, 2, 17, 100] {
            let items: Vec<usize> = (0..n).collect();
            let here = std::thread::current().id();
            let out = super::pipeline(
                &items,
                |i| {
                    assert_eq!(std::thread::current().id(), here);
                    i * 2
                },
                |p| p + 1,
            );
            assert_eq!(
                out,
                items.iter().map(|i| i * 2 + 1).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }

    #[test]
    fn a_pipeline_keeps_at_most_two_products_alive() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (alive, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<usize> = (0..40).collect();
        let out = super::pipeline(
            &items,
            |i| {
                let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                *i
            },
            |p| {
                // A slow consumer: a queue would fill while it works.
                std::thread::sleep(std::time::Duration::from_millis(2));
                alive.fetch_sub(1, Ordering::SeqCst);
                p
            },
        );
        assert_eq!(out, items);
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} alive at once");
    }

    #[test]
    fn with_every_other_core_busy_the_calling_thread_maps_everything() {
        let busy: Vec<super::Busy> = (1..super::cores()).map(|_| super::busy()).collect();
        let here = std::thread::current().id();
        // Items that take long enough (~20 ms in all) that a helper let
        // in would surely get some.
        let items: Vec<usize> = (0..200).collect();
        let out = super::map(&items, 1, |i| {
            std::thread::sleep(std::time::Duration::from_micros(100));
            (*i, std::thread::current().id())
        });
        assert!(out.iter().all(|(_, t)| *t == here), "a helper took a core");
        let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, items);
        drop(busy);
    }

    #[test]
    fn keeps_order_and_every_item() {
        for n in [0, 1, 15, 16, 17, 100, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let out = super::map(&items, 16, |i| i * 2);
            assert_eq!(
                out,
                items.iter().map(|i| i * 2).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }
}
