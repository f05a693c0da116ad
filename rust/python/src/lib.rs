//! `prefcurate._core`: glue between Python and `prefcurate-core`.
//!
//! Every entry point has three phases: extract inputs (Arrow views, no
//! per-row Python objects: `arrow_in`) while attached; call one core
//! function through `exec::core_call` (interpreter released, the core's
//! fork-safe pool, Ctrl-C and progress served every 50 ms, errors converted
//! by `errors`); convert the result to numpy / Python.  No decision is made
//! here, and no thread is started here: rayon lives in the core.
//!
//! One file per core module: `index` (index and persist), `dedup`,
//! `select`, `pairid`, `tokenize` (tokenize and unicode).

use pyo3::prelude::*;

mod arrow_in;
mod dedup;
mod errors;
mod exec;
mod index;
mod pairid;
mod select;
mod tokenize;

/// Called in a child process after `fork()` (registered by `prefcurate`
/// with `os.register_at_fork`): the parent's thread pool is not used there.
#[pyfunction]
fn _after_fork_in_child() {
    prefcurate_core::exec::after_fork_in_child();
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "BUILTIN_UNICODE_VERSION",
        prefcurate_core::BUILTIN_UNICODE_VERSION,
    )?;
    m.add(
        "MAX_TEXT_BYTES",
        prefcurate_core::tokenize::MAX_TEXT_BYTES / 3 * 2,
    )?;
    m.add_class::<index::PyBenchmarkIndex>()?;
    m.add_function(wrap_pyfunction!(tokenize::tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(select::encode_strings, m)?)?;
    m.add_function(wrap_pyfunction!(select::select_top, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_exact, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_exact_two, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_degenerate, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_near, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_jaccard, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::shingles, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::minhash, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_band_keys, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::union_clusters, m)?)?;
    m.add_function(wrap_pyfunction!(pairid::pair_ids, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize::lower, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize::unicode_version, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize::install_unicode_tables, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    Ok(())
}
