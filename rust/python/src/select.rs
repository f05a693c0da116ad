//! Bindings of `prefcurate_core::select`: dictionary encoding and top-k per group.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use prefcurate_core::rows::StrColumn;
use prefcurate_core::select::{self, Quota};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrow_in::StrCol;
use crate::errors::Error;
use crate::exec::core_call;

/// Dictionary-encode a nullable string column: (ids as uint32, u32::MAX for
/// null; distinct values in order of first appearance).
#[pyfunction]
#[pyo3(signature = (column, *, num_threads=None))]
pub fn encode_strings<'py>(
    py: Python<'py>,
    column: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<u32>>, Vec<String>)> {
    let col = StrCol::import(column, "column")?;
    let (ids, names) = core_call(py, num_threads, col.len(), None, |ctx| {
        select::encode(&col, ctx)
    })?;
    Ok((ids.into_pyarray(py), names))
}

/// Top rows per group (see `prefcurate_core::select::select_top`).  `quotas`
/// holds one ("all" | "k" | "ratio", a, b) per group (k = a; ratio = a / b); `tie` an optional
/// string column ordering equal scores (nulls last).  Returns a dict with
/// `reason` (uint8 per row), `rank` (uint32 per row, when `ranks`), and per
/// group `cutoff`, `ranked`, `kept`.
#[pyfunction]
#[pyo3(signature = (scores, groups, quotas, *, tie=None, ranks=false, num_threads=None))]
pub fn select_top<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray1<'py, f64>,
    groups: PyReadonlyArray1<'py, u32>,
    quotas: Vec<(String, u64, u64)>,
    tie: Option<&Bound<'py, PyAny>>,
    ranks: bool,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let quotas = quotas
        .iter()
        .map(|(kind, a, b)| Quota::from_parts(kind, *a, *b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::from)?;
    let scores = scores.as_slice()?;
    let groups = groups.as_slice()?;
    let tie = tie
        .map(|t| StrCol::import(t, "tie_break column"))
        .transpose()?;
    let tie = tie.as_ref().map(|t| t as &dyn StrColumn);
    let sel = core_call(py, num_threads, scores.len(), None, |ctx| {
        select::select_top_by(scores, groups, &quotas, tie, ranks, ctx)
    })?;
    let out = PyDict::new(py);
    out.set_item("reason", sel.reason.into_pyarray(py))?;
    out.set_item("rank", sel.rank.into_pyarray(py))?;
    out.set_item("cutoff", sel.cutoff.into_pyarray(py))?;
    out.set_item("ranked", sel.ranked.into_pyarray(py))?;
    out.set_item("kept", sel.kept.into_pyarray(py))?;
    Ok(out)
}
