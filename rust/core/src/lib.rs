//! prefcurate-core: the pure-Rust kernels of prefcurate.
//!
//! * [`unicode`] and [`tokenize`]: sklearn's default analyzer
//!   (`str.lower()` then `(?u)\b\w\w+\b`), exact against CPython.
//! * [`index`]: the benchmark n-gram index and the parallel, deterministic
//!   scan that reproduces the reference `CountVectorizer` dot product exactly,
//!   plus the precise method (one n-gram size, stop-grams, coverage).
//! * [`persist`]: saving and loading an index.
//! * [`select`]: top-k / top-fraction per group.
//! * [`dedup`]: exact and MinHash/LSH near-duplicates, verified, clustered.
//! * [`pairid`]: content-hash ids of pairs, equal to the Python definition.
//!
//! No Python here: the `prefcurate-python` crate is glue only.

pub mod dedup;
pub mod error;
pub mod hash;
pub mod index;
pub mod pairid;
pub mod persist;
pub mod select;
pub mod tokenize;
pub mod unicode;
#[rustfmt::skip]
mod unicode_data;

pub use error::{CoreError, Result};
pub use index::{
    BenchmarkIndex, Flagged, Match, Method, PreciseMatch, PreciseParams, ReferenceScan, Span,
};
pub use unicode::UnicodeTables;

/// The Unicode version of the tables compiled into this crate.
pub const BUILTIN_UNICODE_VERSION: &str = unicode_data::UNICODE_VERSION;

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

/// Run `f` on `pool` (or the global pool).
pub fn run_in<T: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
