//! prefcurate-core: the pure-Rust kernels of prefcurate.
//!
//! * [`unicode`] and [`tokenize`]: sklearn's default analyzer
//!   (`str.lower()` then `(?u)\b\w\w+\b`), exact against CPython.
//! * [`index`]: the benchmark n-gram index and the parallel, deterministic
//!   scan that reproduces the reference `CountVectorizer` dot product exactly,
//!   plus the precise method (one n-gram size, stop-grams, coverage).
//! * [`persist`]: saving and loading an index.
//! * [`select`]: top-k / top-fraction per group.
//! * [`rows`]: the input columns (traits over borrowed `&str`) and the pair
//!   model: which parts of a preference pair a key covers at each level.
//! * [`dedup`]: exact and MinHash/LSH near-duplicates, verified, clustered.
//! * [`pairid`]: content-hash ids of pairs, equal to the Python definition.
//! * [`exec`]: running on a thread pool (fork-safe), cancellation, progress.
//!
//! No Python here: the `prefcurate-python` crate is glue only.  Every long
//! loop takes an [`exec::Ctx`] and stops between chunks when it is cancelled.

pub mod dedup;
pub mod error;
pub mod exec;
pub mod hash;
pub mod index;
pub mod pairid;
pub mod persist;
pub mod rows;
pub mod select;
pub mod tokenize;
pub mod unicode;
#[rustfmt::skip]
mod unicode_data;

pub use error::{CoreError, Result, RowProblem};
pub use exec::{make_pool, run_in, Ctx};
pub use index::{
    BenchmarkIndex, Flagged, Match, Method, PreciseMatch, PreciseParams, ReferenceScan, Span,
};
pub use unicode::UnicodeTables;

/// The Unicode version of the tables compiled into this crate.
pub const BUILTIN_UNICODE_VERSION: &str = unicode_data::UNICODE_VERSION;
