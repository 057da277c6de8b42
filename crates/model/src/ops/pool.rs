//! The threads the CPU kernels run on: candle's barrier pool, shared with candle's own ops.
//!
//! Its workers spin for a while after each op before they sleep, and the calling thread does a
//! share of the work, so a forward pass (thousands of parallel ops, each a fraction of a
//! millisecond) keeps every core busy with no system call between ops. On rayon's pool each op
//! woke sleeping workers and put the caller to sleep (futex and sched_yield calls: about a tenth
//! of an encode's wall time on 2 cores), and candle's pool spun beside it on a core rayon's
//! threads needed. A call made while the pool is busy (from inside a task, or from another
//! thread) runs on its own thread.

pub use super::kernel::SharedMut;
use std::mem::MaybeUninit;

/// Runs `f(i)` for every `i` in `0..n` on the pool's threads (this one included), handing out
/// indices in chunks from a shared cursor so that fast threads take over a slow one's share.
pub fn par_for(n: usize, f: impl Fn(usize) + Sync) {
    match n {
        0 => {}
        1 => f(0),
        _ => candle_core::utils::barrier_pool().execute_chunked(n, |r| r.for_each(&f)),
    }
}

/// `f(i)` for every `i` in `0..n`, computed as `par_for` does, returned in order.
pub fn par_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let mut out: Vec<MaybeUninit<R>> = Vec::with_capacity(n);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { out.set_len(n) };
    let dst = SharedMut(out.as_mut_ptr());
    par_for(n, |i| {
        // SAFETY: every index is handed out once, so each slot is written by one task.
        unsafe { (*dst.get().add(i)).write(f(i)) };
    });
    // SAFETY: par_for returned, so every slot was written (a panic in `f` propagates before
    // this point, leaking the written results rather than reading unwritten ones).
    out.into_iter()
        .map(|r| unsafe { r.assume_init() })
        .collect()
}

/// `f(c, chunk)` for the `chunk`-element chunks of `s` (the last may be shorter), as `par_for`
/// runs them.
pub fn par_chunks_mut<T: Send>(s: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let (len, chunk) = (s.len(), chunk.max(1));
    let base = SharedMut(s.as_mut_ptr());
    par_for(len.div_ceil(chunk), |c| {
        let start = c * chunk;
        let end = len.min(start + chunk);
        // SAFETY: chunks are disjoint ranges inside `s`, each handed to one task.
        f(c, unsafe {
            std::slice::from_raw_parts_mut(base.get().add(start), end - start)
        })
    });
}

/// How many threads the pool runs tasks on (its workers and the caller).
pub fn threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_once_in_order_and_nested_calls_run() {
        let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        par_for(hits.len(), |i| {
            // A nested call runs on this thread instead of waiting for the pool.
            let inner = par_map(3, |j| j + i);
            assert_eq!(inner, vec![i, i + 1, i + 2]);
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert_eq!(par_map(5, |i| i * i), vec![0, 1, 4, 9, 16]);
        let mut v = vec![0usize; 10];
        par_chunks_mut(&mut v, 3, |c, s| s.iter_mut().for_each(|x| *x = c));
        assert_eq!(v, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        par_for(0, |_| unreachable!());
    }

    #[test]
    fn callers_on_many_threads_at_once() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        par_for(100, |i| {
                            total.fetch_add(i, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 50 * 4950);
    }
}
