//! The collective watchdog: a rank waiting in a collective longer than `collective_timeout_s`
//! (another rank stopped, its host gone, the network cut) ends its process with a message
//! instead of waiting forever, and the launcher then ends the job (as PyTorch's NCCL timeout and
//! its watchdog thread do). Checkpoints already written stay valid: they are renamed into place
//! only when complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Exit status of a rank the watchdog ends (as `timeout(1)`).
pub const EXIT_TIMEOUT: i32 = 124;

struct State {
    timeout: Duration,
    rank: usize,
    /// The collective being waited on and since when.
    waiting: Mutex<Option<(&'static str, Instant)>>,
    step: AtomicU64,
    unbounded: std::sync::atomic::AtomicBool,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Starts the watchdog of this process (once; later calls change nothing).
pub fn start(rank: usize, timeout: Duration) {
    let mut started = false;
    STATE.get_or_init(|| {
        started = true;
        State {
            timeout,
            rank,
            waiting: Mutex::new(None),
            step: AtomicU64::new(0),
            unbounded: Default::default(),
        }
    });
    if started {
        std::thread::Builder::new()
            .name("collective-watchdog".into())
            .spawn(watch)
            .ok();
    }
}

/// The step the trainer is on, for the message.
pub fn set_step(step: usize) {
    if let Some(s) = STATE.get() {
        s.step.store(step as u64, Ordering::Relaxed);
    }
}

/// While the returned guard lives, collectives have ten times the deadline: the ranks wait for
/// rank 0's evaluation or checkpoint, which may take long.
pub fn unbounded() -> Unbounded {
    if let Some(s) = STATE.get() {
        s.unbounded.store(true, Ordering::Relaxed);
    }
    Unbounded
}

pub struct Unbounded;

impl Drop for Unbounded {
    fn drop(&mut self) {
        if let Some(s) = STATE.get() {
            s.unbounded.store(false, Ordering::Relaxed);
        }
    }
}

/// Marks this rank as waiting in collective `what` until the guard is dropped.
pub fn waiting(what: &'static str) -> Guard {
    if let Some(s) = STATE.get() {
        crate::arrivals::arrive(what, s.step.load(Ordering::Relaxed));
        if let Ok(mut w) = s.waiting.lock() {
            *w = Some((what, Instant::now()));
        }
    }
    Guard
}

pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(s) = STATE.get() {
            if let Ok(mut w) = s.waiting.lock() {
                *w = None;
            }
        }
    }
}

/// Waits behind rank 0's evaluation or checkpoint get ten times the timeout: long, but not
/// forever (rank 0 may be the one that stopped).
const LEAD_BUSY_FACTOR: u32 = 10;

fn deadline(s: &State) -> Duration {
    if s.unbounded.load(Ordering::Relaxed) {
        s.timeout * LEAD_BUSY_FACTOR
    } else {
        s.timeout
    }
}

fn watch() {
    let Some(s) = STATE.get() else { return };
    let tick = (s.timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        std::thread::sleep(tick);
        let late = s
            .waiting
            .lock()
            .ok()
            .and_then(|w| *w)
            .filter(|(_, since)| since.elapsed() > deadline(s));
        if let Some((what, since)) = late {
            let waited = since.elapsed().as_secs_f64();
            let missing = crate::arrivals::missing();
            eprintln!(
                "rank {}: {what} at step {} has waited {waited:.1} s for the other ranks \
                 (deadline {} s); {missing}. Ending this rank (exit {EXIT_TIMEOUT}). The last \
                 complete checkpoint is intact: resume from it with --resume.",
                s.rank,
                s.step.load(Ordering::Relaxed),
                deadline(s).as_secs_f64()
            );
            // _exit: the main thread is blocked inside MPI, so no exit handlers (MPI's own
            // included) may run; the launcher sees the status and ends the other ranks.
            unsafe { libc::_exit(EXIT_TIMEOUT) };
        }
    }
}
