//! Bindings of `prefcurate_core::pairid`: content-hash ids of a batch of
//! canonical pairs, read in place from Arrow.

use numpy::{IntoPyArray, PyArray1};
use prefcurate_core::pairid;
use pyo3::prelude::*;

use crate::arrow_in::{MsgCol, StrCol};
use crate::exec::core_call;

/// The ids of pairs `(source[i], chosen[i], rejected[i])`, equal to
/// `prefcurate.schema.pair_id`: the UTF-8 bytes of all ids and their
/// offsets (`n + 1`, int64), to build an Arrow string array.
#[pyfunction]
#[pyo3(signature = (source, chosen, rejected, *, num_threads=None))]
#[allow(clippy::type_complexity)]
pub fn pair_ids<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    chosen: &Bound<'py, PyAny>,
    rejected: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<u8>>, Bound<'py, PyArray1<i64>>)> {
    let source = StrCol::import(source, "source")?;
    let chosen = MsgCol::import(chosen, "chosen")?;
    let rejected = MsgCol::import(rejected, "rejected")?;
    let (data, offsets) = core_call(py, num_threads, source.len(), None, |ctx| {
        pairid::pair_ids(&source, &chosen, &rejected, ctx)
    })?;
    Ok((data.into_pyarray(py), offsets.into_pyarray(py)))
}
