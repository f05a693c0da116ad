//! Bindings of `prefcurate_core::pairid`: content-hash ids of a batch of
//! canonical pairs, read in place from Arrow.

use numpy::{IntoPyArray, PyArray1};
use prefcurate_core::pairid::pair_id_into;
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::arrow_in::{MsgCol, StrCol};
use crate::errors::input_error;
use crate::pool_for;

const CHUNK: usize = 2048;

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
    let n = source.len();
    if chosen.len() != n || rejected.len() != n {
        return Err(input_error(format!(
            "source, chosen and rejected have {n}, {} and {} rows",
            chosen.len(),
            rejected.len()
        )));
    }
    let pool = pool_for(num_threads)?;
    let parts = py
        .detach(|| {
            prefcurate_core::run_in(pool.as_ref(), || {
                let rows: Vec<usize> = (0..n).collect();
                rows.par_chunks(CHUNK)
                    .map(|chunk| -> Result<(Vec<u8>, Vec<usize>), String> {
                        let (mut buf, mut out, mut ends) = (Vec::new(), Vec::new(), Vec::new());
                        let (mut c, mut r) = (Vec::new(), Vec::new());
                        for &i in chunk {
                            let s = source
                                .get(i)
                                .ok_or_else(|| format!("source: row {i} is null"))?;
                            c.clear();
                            r.clear();
                            chosen
                                .messages(i, &mut c)
                                .map_err(|e| format!("chosen: {e}"))?;
                            rejected
                                .messages(i, &mut r)
                                .map_err(|e| format!("rejected: {e}"))?;
                            pair_id_into(s, &c, &r, &mut buf, &mut out);
                            ends.push(out.len());
                        }
                        Ok((out, ends))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
        })
        .map_err(input_error)?;
    let total: usize = parts.iter().map(|(b, _)| b.len()).sum();
    let mut data = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i64);
    for (bytes, ends) in parts {
        let base = data.len() as i64;
        offsets.extend(ends.iter().map(|&e| base + e as i64));
        data.extend_from_slice(&bytes);
    }
    Ok((data.into_pyarray(py), offsets.into_pyarray(py)))
}
