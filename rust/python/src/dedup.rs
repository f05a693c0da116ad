//! Bindings of `prefcurate_core::dedup`: rows read in place from Arrow
//! (text columns or chosen / rejected message lists), one core call each.

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use prefcurate_core::dedup::{self, Family, Lsh, Norm, Shingle};
use prefcurate_core::rows::{Level, Rows};
use prefcurate_core::UnicodeTables;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::arrow_in::{MsgCol, StrCol};
use crate::errors::{input_error, Error};
use crate::exec::core_call;

/// The input columns of a call: texts, or chosen and rejected message lists.
enum Cols {
    Texts(StrCol),
    Pairs(MsgCol, MsgCol),
}

impl Cols {
    fn import(
        texts: Option<&Bound<'_, PyAny>>,
        chosen: Option<&Bound<'_, PyAny>>,
        rejected: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        match (texts, chosen, rejected) {
            (Some(t), None, None) => Ok(Cols::Texts(StrCol::import(t, "text")?)),
            (None, Some(c), Some(r)) => Ok(Cols::Pairs(
                MsgCol::import(c, "chosen")?,
                MsgCol::import(r, "rejected")?,
            )),
            _ => Err(input_error("give texts, or chosen and rejected")),
        }
    }

    fn pairs(chosen: &Bound<'_, PyAny>, rejected: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::import(None, Some(chosen), Some(rejected))
    }

    fn len(&self) -> usize {
        match self {
            Cols::Texts(t) => t.len(),
            Cols::Pairs(c, _) => c.len(),
        }
    }

    /// The core's view of the rows (checked by the core function).
    fn rows(&self) -> prefcurate_core::Result<Rows<'_>> {
        match self {
            Cols::Texts(t) => Ok(Rows::texts(t)),
            Cols::Pairs(c, r) => Rows::pairs(c, r),
        }
    }
}

fn level(name: &str) -> PyResult<Level> {
    Ok(Level::parse(name).map_err(Error::from)?)
}

fn norm(n: (bool, bool, bool)) -> Norm {
    Norm {
        nfkc: n.0,
        lowercase: n.1,
        whitespace: n.2,
    }
}

fn shingle(kind: &str, n: usize) -> PyResult<Shingle> {
    Ok(Shingle::new(kind, n).map_err(Error::from)?)
}

fn family(kind: &str, a: Vec<u32>, b: Vec<u32>) -> PyResult<Family> {
    Ok(Family::new(kind, a, b).map_err(Error::from)?)
}

/// The LSH settings of a call (the same keywords on every near-duplicate entry point).
#[allow(clippy::too_many_arguments)]
fn lsh(
    norm_opts: (bool, bool, bool),
    shingle_kind: &str,
    shingle_n: usize,
    family_kind: &str,
    a: &PyReadonlyArray1<'_, u32>,
    b: &PyReadonlyArray1<'_, u32>,
    bands: usize,
    rows_per_band: usize,
) -> PyResult<Lsh> {
    Ok(Lsh {
        norm: norm(norm_opts),
        shingle: shingle(shingle_kind, shingle_n)?,
        family: family(family_kind, a.as_slice()?.to_vec(), b.as_slice()?.to_vec())?,
        bands,
        rows: rows_per_band,
    })
}

/// Exact groups: per row the first row with identical normalised parts.
#[pyfunction]
#[pyo3(signature = (*, level, norm_opts, texts=None, chosen=None, rejected=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn dedup_exact<'py>(
    py: Python<'py>,
    level: &str,
    norm_opts: (bool, bool, bool),
    texts: Option<&Bound<'py, PyAny>>,
    chosen: Option<&Bound<'py, PyAny>>,
    rejected: Option<&Bound<'py, PyAny>>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let cols = Cols::import(texts, chosen, rejected)?;
    let level = self::level(level)?;
    let tables = UnicodeTables::current();
    let groups = core_call(py, num_threads, cols.len(), None, |ctx| {
        dedup::exact(&tables, cols.rows()?, level, norm(norm_opts), ctx)
    })?;
    Ok(groups.into_pyarray(py))
}

/// Exact groups over two keys of every row: rows `0..n` at `level`, rows
/// `n..2n` at `other` (for swapped pairs).
#[pyfunction]
#[pyo3(signature = (*, level, other, norm_opts, chosen, rejected, num_threads=None))]
pub fn dedup_exact_two<'py>(
    py: Python<'py>,
    level: &str,
    other: &str,
    norm_opts: (bool, bool, bool),
    chosen: &Bound<'py, PyAny>,
    rejected: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let cols = Cols::pairs(chosen, rejected)?;
    let (la, lb) = (self::level(level)?, self::level(other)?);
    let tables = UnicodeTables::current();
    let groups = core_call(py, num_threads, cols.len(), None, |ctx| {
        dedup::exact_two(&tables, cols.rows()?, la, lb, norm(norm_opts), ctx)
    })?;
    Ok(groups.into_pyarray(py))
}

/// Per row: whether the chosen and rejected answers are the same text once normalised.
#[pyfunction]
#[pyo3(signature = (*, norm_opts, chosen, rejected, num_threads=None))]
pub fn dedup_degenerate<'py>(
    py: Python<'py>,
    norm_opts: (bool, bool, bool),
    chosen: &Bound<'py, PyAny>,
    rejected: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let cols = Cols::pairs(chosen, rejected)?;
    let tables = UnicodeTables::current();
    let same = core_call(py, num_threads, cols.len(), None, |ctx| {
        dedup::degenerate(&tables, cols.rows()?, norm(norm_opts), ctx)
    })?;
    Ok(same.into_pyarray(py))
}

/// Near-duplicates.  Returns a dict: the verified links `edge_i`, `edge_j`,
/// `edge_jaccard`, plus `candidates` (pairs LSH proposed), `no_shingles`
/// and `short` (rows without a shingle, rows shorter than one shingle).
#[pyfunction]
#[pyo3(signature = (*, level, norm_opts, shingle_kind, shingle_n, family_kind, a, b, bands, rows_per_band, threshold, max_bucket=64, texts=None, chosen=None, rejected=None, prefix_keys=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn dedup_near<'py>(
    py: Python<'py>,
    level: &str,
    norm_opts: (bool, bool, bool),
    shingle_kind: &str,
    shingle_n: usize,
    family_kind: &str,
    a: PyReadonlyArray1<'py, u32>,
    b: PyReadonlyArray1<'py, u32>,
    bands: usize,
    rows_per_band: usize,
    threshold: f64,
    max_bucket: usize,
    texts: Option<&Bound<'py, PyAny>>,
    chosen: Option<&Bound<'py, PyAny>>,
    rejected: Option<&Bound<'py, PyAny>>,
    prefix_keys: Option<PyReadonlyArray1<'py, u64>>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let cols = Cols::import(texts, chosen, rejected)?;
    let level = self::level(level)?;
    let lsh = lsh(
        norm_opts,
        shingle_kind,
        shingle_n,
        family_kind,
        &a,
        &b,
        bands,
        rows_per_band,
    )?;
    let prefix: &[u64] = match &prefix_keys {
        Some(k) => k.as_slice()?,
        None => &[],
    };
    let tables = UnicodeTables::current();
    let found = core_call(py, num_threads, cols.len(), None, |ctx| {
        dedup::near(
            &tables,
            cols.rows()?,
            level,
            &lsh,
            threshold,
            max_bucket,
            prefix,
            ctx,
        )
    })?;
    let out = PyDict::new(py);
    let (i, j): (Vec<u32>, Vec<u32>) = found.edges.iter().copied().unzip();
    out.set_item("edge_i", i.into_pyarray(py))?;
    out.set_item("edge_j", j.into_pyarray(py))?;
    out.set_item("edge_jaccard", found.jaccard.into_pyarray(py))?;
    out.set_item("candidates", found.candidates)?;
    out.set_item("no_shingles", found.no_shingles)?;
    out.set_item("short", found.short)?;
    Ok(out)
}

/// LSH band keys of every row (`bands` per row), to save with an index;
/// with `with_short`, also per row whether it is shorter than one shingle.
#[pyfunction]
#[pyo3(signature = (*, level, norm_opts, shingle_kind, shingle_n, family_kind, a, b, bands, rows_per_band, texts=None, chosen=None, rejected=None, num_threads=None, with_short=false))]
#[allow(clippy::too_many_arguments)]
pub fn dedup_band_keys<'py>(
    py: Python<'py>,
    level: &str,
    norm_opts: (bool, bool, bool),
    shingle_kind: &str,
    shingle_n: usize,
    family_kind: &str,
    a: PyReadonlyArray1<'py, u32>,
    b: PyReadonlyArray1<'py, u32>,
    bands: usize,
    rows_per_band: usize,
    texts: Option<&Bound<'py, PyAny>>,
    chosen: Option<&Bound<'py, PyAny>>,
    rejected: Option<&Bound<'py, PyAny>>,
    num_threads: Option<usize>,
    with_short: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let cols = Cols::import(texts, chosen, rejected)?;
    let level = self::level(level)?;
    let lsh = lsh(
        norm_opts,
        shingle_kind,
        shingle_n,
        family_kind,
        &a,
        &b,
        bands,
        rows_per_band,
    )?;
    let tables = UnicodeTables::current();
    let (keys, short) = core_call(py, num_threads, cols.len(), None, |ctx| {
        dedup::band_keys_of(&tables, cols.rows()?, level, &lsh, ctx)
    })?;
    let keys = keys.into_pyarray(py).into_any();
    if with_short {
        Ok((keys, short.into_pyarray(py)).into_pyobject(py)?.into_any())
    } else {
        Ok(keys)
    }
}

/// Union-find clusters: per row, the smallest row of its cluster.
#[pyfunction]
pub fn union_clusters<'py>(
    py: Python<'py>,
    n: usize,
    i: Vec<u32>,
    j: Vec<u32>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let cluster = core_call(py, None, n, None, |_| dedup::union_clusters(n, &i, &j))?;
    Ok(cluster.into_pyarray(py))
}

/// Exact Jaccard similarity of the shingle sets of row pairs `(i[k], j[k])`.
#[pyfunction]
#[pyo3(signature = (*, level, norm_opts, shingle_kind, shingle_n, i, j, texts=None, chosen=None, rejected=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn dedup_jaccard<'py>(
    py: Python<'py>,
    level: &str,
    norm_opts: (bool, bool, bool),
    shingle_kind: &str,
    shingle_n: usize,
    i: Vec<u32>,
    j: Vec<u32>,
    texts: Option<&Bound<'py, PyAny>>,
    chosen: Option<&Bound<'py, PyAny>>,
    rejected: Option<&Bound<'py, PyAny>>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let cols = Cols::import(texts, chosen, rejected)?;
    let level = self::level(level)?;
    let kind = shingle(shingle_kind, shingle_n)?;
    let tables = UnicodeTables::current();
    let sims = core_call(py, num_threads, i.len(), None, |ctx| {
        dedup::jaccard(
            &tables,
            cols.rows()?,
            level,
            norm(norm_opts),
            kind,
            &i,
            &j,
            ctx,
        )
    })?;
    Ok(sims.into_pyarray(py))
}

/// The shingle strings of a text (for inspection and tests).
#[pyfunction]
#[pyo3(signature = (text, *, norm_opts, shingle_kind, shingle_n))]
pub fn shingles<'py>(
    py: Python<'py>,
    text: &str,
    norm_opts: (bool, bool, bool),
    shingle_kind: &str,
    shingle_n: usize,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let kind = shingle(shingle_kind, shingle_n)?;
    let s = dedup::shingle_strings(
        &UnicodeTables::current(),
        norm(norm_opts),
        kind,
        &[("", text)],
    );
    Ok(s.iter().map(|b| PyBytes::new(py, b)).collect())
}

/// The MinHash signature of a set of shingle strings (datasketch family).
#[pyfunction]
#[pyo3(signature = (shingles, *, family_kind, a, b))]
pub fn minhash<'py>(
    py: Python<'py>,
    shingles: Vec<Vec<u8>>,
    family_kind: &str,
    a: Vec<u32>,
    b: Vec<u32>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let fam = family(family_kind, a, b)?;
    let mut sig = Vec::new();
    dedup::signature(&fam, &shingles, &mut sig).map_err(Error::from)?;
    Ok(sig.into_pyarray(py))
}

/// The MinHash signatures of every row as the LSH stage makes them
/// (`num_perm` per row, shape `(rows, num_perm)`), for inspection and tests.
#[pyfunction]
#[pyo3(signature = (*, level, norm_opts, shingle_kind, shingle_n, family_kind, a, b, texts=None, chosen=None, rejected=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn dedup_signatures<'py>(
    py: Python<'py>,
    level: &str,
    norm_opts: (bool, bool, bool),
    shingle_kind: &str,
    shingle_n: usize,
    family_kind: &str,
    a: Vec<u32>,
    b: Vec<u32>,
    texts: Option<&Bound<'py, PyAny>>,
    chosen: Option<&Bound<'py, PyAny>>,
    rejected: Option<&Bound<'py, PyAny>>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<u32>>> {
    let cols = Cols::import(texts, chosen, rejected)?;
    let level = self::level(level)?;
    let kind = shingle(shingle_kind, shingle_n)?;
    let fam = family(family_kind, a, b)?;
    let tables = UnicodeTables::current();
    let (sigs, n) = core_call(py, num_threads, cols.len(), None, |ctx| {
        let rows = cols.rows()?;
        let sigs = dedup::signatures_of(&tables, rows, level, norm(norm_opts), kind, &fam, ctx)?;
        Ok((sigs, rows.len()))
    })?;
    sigs.into_pyarray(py)
        .reshape([n, fam.num_perm()])
        .map_err(|e| input_error(format!("signatures: {e}")))
}
