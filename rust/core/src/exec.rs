//! Running a computation on a thread pool: pool choice (safe after
//! `fork()`), cancellation and progress.
//!
//! Every long loop of the core takes a [`Ctx`] and looks at it between
//! chunks of work: [`Ctx::stopped`] says the caller asked it to stop (the
//! loop then skips the rest, and the function returns
//! [`CoreError::Cancelled`] through [`Ctx::check`]); [`Ctx::advance`] counts
//! finished work for progress reports.
//!
//! [`run`] runs a computation on the pool for a thread count while the
//! calling thread, free, calls a `poll` function every [`POLL_INTERVAL`]
//! (the Python binding checks for Ctrl-C and reports progress there); when
//! `poll` fails, the computation is cancelled, waited for, and `poll`'s error
//! is returned.  Small computations (under [`INLINE_WORK`] units of work, a
//! few milliseconds) run on the calling thread instead, without polling:
//! handing them to a pool thread would cost more than they do.
//!
//! # After `fork()`
//!
//! A forked child has only the thread that called `fork()`: the worker
//! threads of a rayon pool the parent had started are gone, and a job sent to
//! that pool waits for ever.  The global pool is therefore used only in the
//! process that first used it through [`run`] (and not at all once
//! [`after_fork_in_child`] was called); any other process gets a pool of its
//! own, started on first use and kept for the life of that process.  Every
//! parallel entry point goes through [`run`], so none can reach a dead pool.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::error::{CoreError, Result};

/// Cancellation flag and progress counters of one computation.
#[derive(Debug, Default)]
pub struct Ctx {
    cancelled: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
}

impl Ctx {
    pub const fn new() -> Self {
        Ctx {
            cancelled: AtomicBool::new(false),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Ask the computation to stop at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the computation should stop (loops test this between chunks
    /// and skip the rest of their work).
    #[inline]
    pub fn stopped(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once [`Ctx::cancel`] was called.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.stopped() {
            Err(CoreError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Set the amount of work (in the computation's own unit, e.g. rows).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Count `n` more units of work done.
    #[inline]
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Set the units of work done.
    pub fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    /// (done, total) so far.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// How often [`run`] calls its `poll` function while the computation runs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Work (rows, pairs, texts) below which [`run`] runs the computation on
/// the calling thread, without polling.
pub const INLINE_WORK: usize = 10_000;

static FORKED: AtomicBool = AtomicBool::new(false);
/// The process whose rayon global pool [`run`] uses (0: none yet).
static GLOBAL_OWNER: AtomicU32 = AtomicU32::new(0);
/// The pool of a process that must not use the global pool, by process id.
static OWN_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// Record that this process is a forked child (call it from an at-fork
/// hook): the global pool is not used any more in this process.  The
/// process id check of [`run`] finds a child anyway; this makes it explicit.
pub fn after_fork_in_child() {
    FORKED.store(true, Ordering::Relaxed);
}

/// A rayon pool of `threads` threads, or `None` for the global pool.
pub fn make_pool(threads: Option<usize>) -> Result<Option<rayon::ThreadPool>> {
    match threads {
        None => Ok(None),
        Some(0) => Err(CoreError::InvalidArgument(
            "num_threads must be at least 1".into(),
        )),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("prefcurate-{i}"))
            .build()
            .map(Some)
            .map_err(|e| CoreError::InvalidArgument(format!("cannot start {n} threads: {e}"))),
    }
}

/// Run `f` on `pool` (or the global pool), on the calling thread (no
/// fork guard, no polling: for tests, examples and benchmarks).
pub fn run_in<T: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// The pool a computation runs on.
enum Pool {
    /// rayon's global pool (this process started it, or will)
    Global,
    /// a pool for this call (`num_threads` given)
    Call(rayon::ThreadPool),
    /// this process's own pool (a forked child)
    Process(Arc<rayon::ThreadPool>),
}

impl Pool {
    fn for_threads(threads: Option<usize>) -> Result<Pool> {
        if let Some(p) = make_pool(threads)? {
            return Ok(Pool::Call(p));
        }
        let pid = std::process::id();
        if !FORKED.load(Ordering::Relaxed) {
            let owner =
                match GLOBAL_OWNER.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => pid,
                    Err(o) => o,
                };
            if owner == pid {
                return Ok(Pool::Global);
            }
        }
        Ok(Pool::Process(process_pool(pid)?))
    }

    fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        match self {
            Pool::Global => op(),
            Pool::Call(p) => p.install(op),
            Pool::Process(p) => p.install(op),
        }
    }

    fn in_place_scope<'scope, R>(&self, op: impl FnOnce(&rayon::Scope<'scope>) -> R) -> R {
        match self {
            Pool::Global => rayon::in_place_scope(op),
            Pool::Call(p) => p.in_place_scope(op),
            Pool::Process(p) => p.in_place_scope(op),
        }
    }
}

/// This process's own pool (as many threads as CPUs), started on first use.
fn process_pool(pid: u32) -> Result<Arc<rayon::ThreadPool>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = || make_pool(Some(threads)).map(|p| Arc::new(p.expect("a pool")));
    // a lock held by a thread of the parent at fork time is never released
    // in the child: never wait for it
    let Ok(mut slot) = OWN_POOL.try_lock() else {
        return start();
    };
    match slot.as_ref() {
        Some((owner, p)) if *owner == pid => Ok(p.clone()),
        _ => {
            // an ancestor's pool has no threads here: leak it, never touch it
            if let Some(old) = slot.take() {
                std::mem::forget(old);
            }
            let p = start()?;
            *slot = Some((pid, p.clone()));
            Ok(p)
        }
    }
}

/// Run `f` on the pool for `threads` (`None`: the global pool, or this
/// process's own pool after a fork) while the calling thread calls `poll`
/// every [`POLL_INTERVAL`].  When `poll` fails, `f` is cancelled through
/// `ctx`, waited for, and `poll`'s error returned.  A panic in `f` is
/// resumed on the calling thread.  `ctx` (a fresh [`Ctx`]) holds `f`'s
/// progress afterwards.
///
/// `work` is the size of the computation (rows, pairs, texts; `usize::MAX`
/// when unknown): below [`INLINE_WORK`], `f` runs on the calling thread
/// (its parallel loops still on the chosen pool) and `poll` is not called.
pub fn run<T, E>(
    threads: Option<usize>,
    work: usize,
    ctx: &Ctx,
    mut poll: impl FnMut(&Ctx) -> std::result::Result<(), E>,
    f: impl FnOnce(&Ctx) -> Result<T> + Send,
) -> std::result::Result<T, E>
where
    T: Send,
    E: From<CoreError>,
{
    let pool = Pool::for_threads(threads)?;
    if work < INLINE_WORK {
        return pool.install(|| f(ctx)).map_err(E::from);
    }
    let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
    let ctx_ref = ctx;
    let outcome: Option<std::result::Result<T, E>> = pool.in_place_scope(|s| {
        s.spawn(move |_| {
            let _ = tx.send(f(ctx_ref));
        });
        loop {
            match rx.recv_timeout(POLL_INTERVAL) {
                Ok(r) => return Some(r.map_err(E::from)),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = poll(ctx_ref) {
                        ctx_ref.cancel();
                        let _ = rx.recv();
                        return Some(Err(e));
                    }
                }
                // `f` panicked: the scope resumes the panic
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    });
    outcome.expect("the computation either returned or panicked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_and_polls_and_cancels() {
        let sum = run(
            Some(2),
            usize::MAX,
            &Ctx::new(),
            |_| Ok::<(), CoreError>(()),
            |_| Ok((0..1000u64).into_par_iter().sum::<u64>()),
        )
        .unwrap();
        assert_eq!(sum, 499_500);
        // a poll that fails stops a computation that would never end
        #[derive(Debug, PartialEq)]
        enum E {
            Stop,
            Core(String),
        }
        impl From<CoreError> for E {
            fn from(e: CoreError) -> E {
                E::Core(e.to_string())
            }
        }
        let mut polls = 0;
        let r: std::result::Result<(), E> = run(
            None,
            usize::MAX,
            &Ctx::new(),
            |_| {
                polls += 1;
                Err(E::Stop)
            },
            |ctx| loop {
                ctx.check()?;
                std::thread::sleep(Duration::from_millis(1));
            },
        );
        assert_eq!(r.unwrap_err(), E::Stop);
        assert_eq!(polls, 1);
        // small work runs on this thread, without polling
        let here = std::thread::current().id();
        let r: std::result::Result<_, E> = run(
            None,
            10,
            &Ctx::new(),
            |_| Err(E::Stop),
            |_| {
                std::thread::sleep(2 * POLL_INTERVAL);
                Ok(std::thread::current().id())
            },
        );
        assert_eq!(r.unwrap(), here);
        assert!(matches!(
            run(
                Some(0),
                0,
                &Ctx::new(),
                |_| Ok::<(), CoreError>(()),
                |_| Ok(())
            ),
            Err(CoreError::InvalidArgument(_))
        ));
    }

    #[test]
    fn errors_and_panics_come_back() {
        let r = run(
            None,
            usize::MAX,
            &Ctx::new(),
            |_| Ok::<(), CoreError>(()),
            |_| -> Result<()> { Err(CoreError::InvalidArgument("bad".into())) },
        );
        assert!(matches!(r, Err(CoreError::InvalidArgument(_))));
        let p = std::panic::catch_unwind(|| {
            run(
                None,
                usize::MAX,
                &Ctx::new(),
                |_| Ok::<(), CoreError>(()),
                |_| -> Result<()> { panic!("boom") },
            )
        });
        assert!(p.is_err());
    }
}
