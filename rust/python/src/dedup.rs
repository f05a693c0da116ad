//! Bindings of `prefcurate_core::dedup`: rows read in place from Arrow
//! (text columns or chosen / rejected message lists).

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use prefcurate_core::dedup::{self, Family, Norm, Shingle};
use prefcurate_core::UnicodeTables;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::arrow_in::{MsgCol, StrCol};
use crate::errors::{input_error, to_py};
use crate::pool_for;

/// The rows to deduplicate.
pub enum Rows {
    Text(StrCol),
    Pairs { chosen: MsgCol, rejected: MsgCol },
}

/// What part of a pair forms the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Prompt,
    PromptChosen,
    Pair,
    PairSwapped,
    ChosenAnswer,
    RejectedAnswer,
}

impl Level {
    fn parse(s: &str) -> PyResult<Self> {
        Ok(match s {
            "prompt" => Level::Prompt,
            "prompt_chosen" => Level::PromptChosen,
            "pair" => Level::Pair,
            "pair_swapped" => Level::PairSwapped,
            "chosen_answer" => Level::ChosenAnswer,
            "rejected_answer" => Level::RejectedAnswer,
            other => {
                return Err(input_error(format!(
                    "unknown level {other:?}: use 'prompt', 'prompt_chosen' or 'pair'"
                )))
            }
        })
    }
}

impl Rows {
    pub fn from_py(
        texts: Option<&Bound<'_, PyAny>>,
        chosen: Option<&Bound<'_, PyAny>>,
        rejected: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        match (texts, chosen, rejected) {
            (Some(t), None, None) => {
                let col = StrCol::import(t, "text")?;
                if let Some(i) = (0..col.len()).find(|&i| col.get(i).is_none()) {
                    return Err(input_error(format!("text: row {i} is null")));
                }
                Ok(Rows::Text(col))
            }
            (None, Some(c), Some(r)) => {
                let chosen = MsgCol::import(c, "chosen")?;
                let rejected = MsgCol::import(r, "rejected")?;
                if chosen.len() != rejected.len() {
                    return Err(input_error(
                        "chosen and rejected have different lengths".into(),
                    ));
                }
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for i in 0..chosen.len() {
                    a.clear();
                    b.clear();
                    chosen
                        .messages(i, &mut a)
                        .map_err(|e| input_error(format!("chosen: {e}")))?;
                    rejected
                        .messages(i, &mut b)
                        .map_err(|e| input_error(format!("rejected: {e}")))?;
                    if a.len() < 2 || b.len() < 2 {
                        return Err(input_error(format!(
                            "row {i}: chosen and rejected need the prompt turns and an answer (got {} and {} messages)",
                            a.len(),
                            b.len()
                        )));
                    }
                }
                Ok(Rows::Pairs { chosen, rejected })
            }
            _ => Err(input_error("give texts, or chosen and rejected".into())),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Text(t) => t.len(),
            Rows::Pairs { chosen, .. } => chosen.len(),
        }
    }

    /// The parts of row `i` at `level` (rows were checked at construction).
    pub fn parts<'a>(&'a self, i: usize, level: Level, out: &mut Vec<(&'a str, &'a str)>) {
        match self {
            Rows::Text(t) => out.push(("", t.get(i).unwrap_or(""))),
            Rows::Pairs { chosen, rejected } => {
                let start = out.len();
                let _ = chosen.messages(i, out);
                let answer = out.pop().map_or("", |m| m.1);
                let rej = || {
                    let mut r2 = Vec::new();
                    let _ = rejected.messages(i, &mut r2);
                    r2.last().map_or("", |m| m.1)
                };
                match level {
                    Level::Prompt => {}
                    Level::PromptChosen => out.push(("assistant", answer)),
                    Level::Pair => {
                        out.push(("assistant", answer));
                        out.push(("rejected", rej()));
                    }
                    Level::PairSwapped => {
                        out.push(("assistant", rej()));
                        out.push(("rejected", answer));
                    }
                    Level::ChosenAnswer => {
                        out.truncate(start);
                        out.push(("", answer));
                    }
                    Level::RejectedAnswer => {
                        out.truncate(start);
                        out.push(("", rej()));
                    }
                }
            }
        }
    }
}

/// `rows.parts` at `level` as a parts reader.
fn reader<'a>(
    rows: &'a Rows,
    level: Level,
) -> impl Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a {
    move |i, out| rows.parts(i, level, out)
}

/// Rows from `skip` on, renumbered from 0.
fn reader_from<'a>(
    rows: &'a Rows,
    level: Level,
    skip: usize,
) -> impl Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a {
    move |i, out| rows.parts(i + skip, level, out)
}

/// Rows `0..n` at `la`, then rows `n..2n` as rows `0..n` at `lb`.
fn reader2<'a>(
    rows: &'a Rows,
    la: Level,
    lb: Level,
    n: usize,
) -> impl Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a {
    move |i, out| {
        if i < n {
            rows.parts(i, la, out)
        } else {
            rows.parts(i - n, lb, out)
        }
    }
}

fn norm(n: (bool, bool, bool)) -> Norm {
    Norm {
        nfkc: n.0,
        lowercase: n.1,
        whitespace: n.2,
    }
}

fn shingle(kind: &str, n: usize) -> PyResult<Shingle> {
    if n == 0 {
        return Err(input_error("shingle size must be at least 1".into()));
    }
    match kind {
        "word" => Ok(Shingle::Word(n)),
        "char" => Ok(Shingle::Char(n)),
        other => Err(input_error(format!(
            "unknown shingle kind {other:?}: use 'word' or 'char'"
        ))),
    }
}

fn family(kind: &str, a: Vec<u32>, b: Vec<u32>) -> PyResult<Family> {
    if a.len() != b.len() || a.is_empty() {
        return Err(input_error(
            "permutation parameters a and b must be non-empty and of equal length".into(),
        ));
    }
    if a.iter().any(|&x| x % 2 == 0) {
        return Err(input_error("permutation multipliers a must be odd".into()));
    }
    match kind {
        "fast" => Ok(Family::Fast { a, b }),
        "datasketch" => Ok(Family::Datasketch { a, b }),
        other => Err(input_error(format!("unknown permutation family {other:?}"))),
    }
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
    let rows = Rows::from_py(texts, chosen, rejected)?;
    let level = Level::parse(level)?;
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let n = rows.len();
    let groups = py.detach(|| {
        prefcurate_core::run_in(pool.as_ref(), || {
            dedup::exact_groups(&tables, norm(norm_opts), n, &reader(&rows, level))
        })
    });
    Ok(groups.map_err(to_py)?.into_pyarray(py))
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
    let rows = Rows::from_py(None, Some(chosen), Some(rejected))?;
    let (la, lb) = (Level::parse(level)?, Level::parse(other)?);
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let n = rows.len();
    let groups = py.detach(|| {
        prefcurate_core::run_in(pool.as_ref(), || {
            dedup::exact_groups(&tables, norm(norm_opts), 2 * n, &reader2(&rows, la, lb, n))
        })
    });
    Ok(groups.map_err(to_py)?.into_pyarray(py))
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
    let rows = Rows::from_py(None, Some(chosen), Some(rejected))?;
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let n = rows.len();
    let same = py.detach(|| {
        prefcurate_core::run_in(pool.as_ref(), || {
            let (a, b) = (
                reader(&rows, Level::ChosenAnswer),
                reader(&rows, Level::RejectedAnswer),
            );
            dedup::same_parts(&tables, norm(norm_opts), n, &a, &b)
        })
    });
    Ok(same.into_pyarray(py))
}

/// Near-duplicates.  Returns a dict: `cluster` (uint32 per row: its
/// cluster's first row), and the verified links `edge_i`, `edge_j`,
/// `edge_jaccard`, plus `candidates` (pairs LSH proposed).
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
    if !(0.0..=1.0).contains(&threshold) {
        return Err(input_error(format!(
            "threshold must be in [0, 1], got {threshold}"
        )));
    }
    let rows = Rows::from_py(texts, chosen, rejected)?;
    let level = Level::parse(level)?;
    let kind = shingle(shingle_kind, shingle_n)?;
    let fam = family(family_kind, a.as_slice()?.to_vec(), b.as_slice()?.to_vec())?;
    // rows 0..n_prefix already have their band keys (a saved index): their
    // signatures are not recomputed and pairs among them are not proposed
    let prefix: Vec<u64> = match &prefix_keys {
        Some(k) => k.as_slice()?.to_vec(),
        None => Vec::new(),
    };
    if prefix.len() % bands != 0 || prefix.len() / bands > rows.len() {
        return Err(input_error(
            "prefix_keys must hold `bands` keys for each of the first rows".into(),
        ));
    }
    let n_prefix = prefix.len() / bands;
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let n = rows.len();
    let nm = norm(norm_opts);
    let (cluster, edges, sims, n_cand, n_none, n_short) = py
        .detach(|| {
            prefcurate_core::run_in(pool.as_ref(), || -> prefcurate_core::Result<_> {
                let rest = reader_from(&rows, level, n_prefix);
                let mut keys = prefix;
                let (new_keys, short) = dedup::row_band_keys(
                    &tables,
                    nm,
                    kind,
                    &fam,
                    n - n_prefix,
                    &rest,
                    bands,
                    rows_per_band,
                )?;
                let n_short = short.iter().filter(|&&s| s).count();
                let n_none = new_keys.chunks(bands).filter(|k| k[0] == u64::MAX).count();
                keys.extend(new_keys);
                let np = n_prefix as u32;
                let cand = dedup::candidates(&keys, bands, max_bucket, &|x, y| x >= np || y >= np);
                let f = reader(&rows, level);
                let sims = dedup::jaccard_pairs(&tables, nm, kind, &cand, &f, &f);
                let mut edges = Vec::new();
                let mut kept_sims = Vec::new();
                for (&p, &s) in cand.iter().zip(&sims) {
                    if s >= threshold {
                        edges.push(p);
                        kept_sims.push(s);
                    }
                }
                let cluster = dedup::clusters(n, &edges);
                Ok((cluster, edges, kept_sims, cand.len(), n_none, n_short))
            })
        })
        .map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("cluster", cluster.into_pyarray(py))?;
    out.set_item(
        "edge_i",
        edges
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>()
            .into_pyarray(py),
    )?;
    out.set_item(
        "edge_j",
        edges
            .iter()
            .map(|e| e.1)
            .collect::<Vec<_>>()
            .into_pyarray(py),
    )?;
    out.set_item("edge_jaccard", sims.into_pyarray(py))?;
    out.set_item("candidates", n_cand)?;
    out.set_item("no_shingles", n_none)?;
    out.set_item("short", n_short)?;
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
    let rows = Rows::from_py(texts, chosen, rejected)?;
    let level = Level::parse(level)?;
    let kind = shingle(shingle_kind, shingle_n)?;
    let fam = family(family_kind, a.as_slice()?.to_vec(), b.as_slice()?.to_vec())?;
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let n = rows.len();
    let (keys, short) = py
        .detach(|| {
            prefcurate_core::run_in(pool.as_ref(), || {
                dedup::row_band_keys(
                    &tables,
                    norm(norm_opts),
                    kind,
                    &fam,
                    n,
                    &reader(&rows, level),
                    bands,
                    rows_per_band,
                )
            })
        })
        .map_err(to_py)?;
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
    if i.len() != j.len() || i.iter().chain(&j).any(|&x| x as usize >= n) {
        return Err(input_error("edge indices out of range".into()));
    }
    let edges: Vec<(u32, u32)> = i.into_iter().zip(j).collect();
    Ok(dedup::clusters(n, &edges).into_pyarray(py))
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
    let rows = Rows::from_py(texts, chosen, rejected)?;
    let level = Level::parse(level)?;
    let kind = shingle(shingle_kind, shingle_n)?;
    if i.len() != j.len() || i.iter().chain(&j).any(|&x| x as usize >= rows.len()) {
        return Err(input_error("pair indices out of range".into()));
    }
    // jaccard_pairs wants pairs grouped by first row: sort, then restore order
    let mut order: Vec<usize> = (0..i.len()).collect();
    order.sort_by_key(|&k| (i[k], j[k]));
    let pairs: Vec<(u32, u32)> = order.iter().map(|&k| (i[k], j[k])).collect();
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let sims = py.detach(|| {
        prefcurate_core::run_in(pool.as_ref(), || {
            let f = reader(&rows, level);
            dedup::jaccard_pairs(&tables, norm(norm_opts), kind, &pairs, &f, &f)
        })
    });
    let mut out = vec![0.0; i.len()];
    for (pos, &k) in order.iter().enumerate() {
        out[k] = sims[pos];
    }
    Ok(out.into_pyarray(py))
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
    dedup::signature(&fam, &shingles, &mut sig).map_err(to_py)?;
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
    let rows = Rows::from_py(texts, chosen, rejected)?;
    let level = Level::parse(level)?;
    let kind = shingle(shingle_kind, shingle_n)?;
    let fam = family(family_kind, a, b)?;
    let pool = pool_for(num_threads)?;
    let tables = UnicodeTables::current();
    let (n, k) = (rows.len(), fam.num_perm());
    let sigs = py.detach(|| {
        prefcurate_core::run_in(pool.as_ref(), || {
            dedup::signatures(
                &tables,
                norm(norm_opts),
                kind,
                &fam,
                n,
                &reader(&rows, level),
            )
        })
    });
    sigs.into_pyarray(py)
        .reshape([n, k])
        .map_err(|e| input_error(format!("signatures: {e}")))
}
