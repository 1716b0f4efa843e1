//! Order-preserving parallel map over a slice on every core, for the loader's
//! CPU-bound stages (expanding grids, checking expectation files, the claims
//! table). Scoped threads, no pool: a few per call, each worth far more than
//! a spawn. Items are handed out in small blocks as threads come free, since
//! they differ in cost (an expectation file of 20 KB beside one of 160 KB).

use std::sync::atomic::{AtomicUsize, Ordering};

/// `items.iter().map(f).collect()`, computed on up to
/// `available_parallelism` threads, and on no more than one per
/// `min_per_thread` items (below that a thread costs more than it saves).
pub fn map<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.min(items.len() / min_per_thread.max(1)).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    // Eight blocks per thread: small enough to even out, large enough that
    // taking one costs nothing beside its work.
    let block = items.len().div_ceil(threads * 8).max(1);
    let next = AtomicUsize::new(0);
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
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    blocks.sort_unstable_by_key(|(b, _)| *b);
    blocks.into_iter().flat_map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
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
