//! `prefcurate._core`: glue between Python and `prefcurate-core`.
//!
//! Every entry point has three phases: extract inputs (Arrow views, no
//! per-row Python objects) while attached, run the core with the interpreter
//! detached, convert results to numpy / Python.  Long scans run in chunks so
//! that Ctrl-C and progress callbacks are served between chunks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1};
use prefcurate_core::{
    persist, BenchmarkIndex, Method, PreciseParams, ReferenceScan, UnicodeTables,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

mod arrow_in;
mod dedup;
mod errors;
mod pairs;

use arrow_in::{StrCol, Texts};
use errors::{input_error, to_py};

static FORKED: AtomicBool = AtomicBool::new(false);

/// After `fork()` the parent's global rayon pool is gone in the child: use
/// fresh pools there.
pub(crate) fn pool_for(num_threads: Option<usize>) -> PyResult<Option<rayon::ThreadPool>> {
    let n = match num_threads {
        None if FORKED.load(Ordering::Relaxed) => Some(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        ),
        n => n,
    };
    prefcurate_core::make_pool(n).map_err(to_py)
}

fn report(progress: &Option<Py<PyAny>>, py: Python<'_>, done: usize, total: usize) -> PyResult<()> {
    if let Some(cb) = progress {
        cb.call1(py, (done, total))?;
    }
    Ok(())
}

/// Rows per detached chunk of a long scan.
const SCAN_CHUNK: usize = 1 << 16;

/// An immutable n-gram index of benchmark texts.
#[pyclass(frozen, module = "prefcurate._core", name = "BenchmarkIndex")]
struct PyBenchmarkIndex {
    inner: Arc<BenchmarkIndex>,
}

#[pymethods]
impl PyBenchmarkIndex {
    /// Build an index. `method` is "reference" (all n in ngram_range) or
    /// "precise" (one n-gram size `n`, texts under `min_tokens` tokens skipped).
    #[staticmethod]
    #[pyo3(signature = (texts, ids, subsets, *, method, ngram_range=(7, 13), n=13, min_tokens=5, num_threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        ids: Vec<String>,
        subsets: Vec<String>,
        method: &str,
        ngram_range: (usize, usize),
        n: usize,
        min_tokens: usize,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        let method = match method {
            "reference" => Method::Reference {
                min_n: ngram_range.0,
                max_n: ngram_range.1,
            },
            "precise" => Method::Precise { n, min_tokens },
            other => {
                return Err(input_error(format!(
                    "unknown method {other:?}: use 'reference' or 'precise'"
                )))
            }
        };
        let cols = Texts::import(texts, "benchmark text")?;
        let owned: Vec<String> = cols
            .strs("benchmark text")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let pool = pool_for(num_threads)?;
        let tables = UnicodeTables::current();
        let built = py.detach(|| {
            prefcurate_core::run_in(pool.as_ref(), || {
                BenchmarkIndex::build(tables, method, owned, ids, subsets)
            })
        });
        Ok(PyBenchmarkIndex {
            inner: Arc::new(built.map_err(to_py)?),
        })
    }

    /// Read an index written by `save` (re-tokenised under the tables in force).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let tables = UnicodeTables::current();
        let idx = py.detach(|| persist::load(&path, tables)).map_err(to_py)?;
        Ok(PyBenchmarkIndex {
            inner: Arc::new(idx),
        })
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = self.inner.clone();
        py.detach(|| persist::save(&inner, &path)).map_err(to_py)
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &persist::to_bytes(&self.inner))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let tables = UnicodeTables::current();
        let buf = data.to_vec();
        let idx = py
            .detach(|| persist::from_bytes(&buf, std::path::Path::new("<bytes>"), tables))
            .map_err(to_py)?;
        Ok(PyBenchmarkIndex {
            inner: Arc::new(idx),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn ids(&self) -> Vec<String> {
        self.inner.ids().to_vec()
    }

    #[getter]
    fn subsets(&self) -> Vec<String> {
        self.inner.subsets().to_vec()
    }

    #[getter]
    fn texts(&self) -> Vec<String> {
        self.inner.texts().to_vec()
    }

    #[getter]
    fn method(&self) -> &'static str {
        match self.inner.method() {
            Method::Reference { .. } => "reference",
            Method::Precise { .. } => "precise",
        }
    }

    /// (min_n, max_n) for the reference method, (n, n) for the precise one.
    #[getter]
    fn ngram_range(&self) -> (usize, usize) {
        match self.inner.method() {
            Method::Reference { min_n, max_n } => (min_n, max_n),
            Method::Precise { n, .. } => (n, n),
        }
    }

    #[getter]
    fn min_tokens(&self) -> Option<usize> {
        match self.inner.method() {
            Method::Reference { .. } => None,
            Method::Precise { min_tokens, .. } => Some(min_tokens),
        }
    }

    #[getter]
    fn unicode_version(&self) -> String {
        self.inner.unicode_version().to_string()
    }

    #[getter]
    fn n_grams(&self) -> usize {
        self.inner.n_grams()
    }

    #[getter]
    fn heap_bytes(&self) -> usize {
        self.inner.heap_bytes()
    }

    /// Tokens per benchmark text.
    fn doc_tokens<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        (0..self.inner.len())
            .map(|d| self.inner.doc_tokens(d) as u64)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    /// Distinct indexed n-grams per benchmark text.
    fn doc_gram_counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        (0..self.inner.len())
            .map(|d| self.inner.doc_gram_count(d) as u64)
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    /// Reference scan.  Returns a dict of numpy arrays: `train`, `bench`,
    /// `score` (every pair with score > 0, by row then benchmark text) and,
    /// per flagged row, `flagged_train`, `flagged_bench` (best match),
    /// `flagged_score`, `flagged_matches`, `span_tokens`, plus `span_text`
    /// (list of str or None).
    #[pyo3(signature = (texts, *, spans=true, num_threads=None, progress=None))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        spans: bool,
        num_threads: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cols = Texts::import(texts, "training text")?;
        let strs = cols.strs("training text")?;
        let pool = pool_for(num_threads)?;
        let total = strs.len();
        let mut all = ReferenceScan::default();
        for start in (0..total).step_by(SCAN_CHUNK) {
            let part = &strs[start..(start + SCAN_CHUNK).min(total)];
            let inner = &self.inner;
            let found = py
                .detach(|| {
                    prefcurate_core::run_in(pool.as_ref(), || {
                        inner.scan_reference(part, start as u64, spans)
                    })
                })
                .map_err(to_py)?;
            all.matches.extend(found.matches);
            all.flagged.extend(found.flagged);
            py.check_signals()?;
            report(&progress, py, start + part.len(), total)?;
        }
        let out = PyDict::new(py);
        let m = &all.matches;
        out.set_item(
            "train",
            m.iter()
                .map(|x| x.train)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        out.set_item(
            "bench",
            m.iter()
                .map(|x| x.bench)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        out.set_item(
            "score",
            m.iter()
                .map(|x| x.score)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        let f = &all.flagged;
        out.set_item(
            "flagged_train",
            f.iter()
                .map(|x| x.train)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        out.set_item(
            "flagged_bench",
            f.iter()
                .map(|x| x.bench)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        out.set_item(
            "flagged_score",
            f.iter()
                .map(|x| x.score)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        out.set_item(
            "flagged_matches",
            f.iter()
                .map(|x| x.n_matches)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        out.set_item(
            "span_tokens",
            f.iter()
                .map(|x| x.span.as_ref().map_or(0, |s| s.tokens as u64))
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        let texts: Vec<Option<&str>> = f
            .iter()
            .map(|x| {
                x.span
                    .as_ref()
                    .map(|s| &strs[x.train as usize][s.start..s.end])
            })
            .collect();
        out.set_item("span_text", texts)?;
        Ok(out)
    }

    /// Precise scan: (train row, benchmark text, shared n-grams, coverage) for
    /// pairs whose coverage of the benchmark text reaches `min_coverage`,
    /// ignoring n-grams found in more than `max_train_df` training texts or
    /// `max_bench_df` benchmark texts.
    #[pyo3(signature = (texts, *, max_train_df, max_bench_df, min_coverage, num_threads=None, progress=None))]
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn scan_precise<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        max_train_df: u64,
        max_bench_df: u64,
        min_coverage: f64,
        num_threads: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(
        Bound<'py, PyArray1<u64>>,
        Bound<'py, PyArray1<u32>>,
        Bound<'py, PyArray1<i64>>,
        Bound<'py, PyArray1<f64>>,
    )> {
        if !(0.0..=1.0).contains(&min_coverage) {
            return Err(input_error(format!(
                "min_coverage must be in [0, 1], got {min_coverage}"
            )));
        }
        let cols = Texts::import(texts, "training text")?;
        let strs = cols.strs("training text")?;
        let pool = pool_for(num_threads)?;
        let total = strs.len();
        let inner = &self.inner;
        // pass 1: distinct hits per row, document frequencies
        let mut offsets: Vec<u64> = vec![0];
        let mut ids: Vec<u32> = Vec::new();
        for start in (0..total).step_by(SCAN_CHUNK) {
            let part = &strs[start..(start + SCAN_CHUNK).min(total)];
            let (off, hit) = py
                .detach(|| {
                    prefcurate_core::run_in(pool.as_ref(), || {
                        inner.precise_hits(part, start as u64)
                    })
                })
                .map_err(to_py)?;
            let base = *offsets.last().expect("non-empty");
            offsets.extend(off[1..].iter().map(|o| o + base));
            ids.extend_from_slice(&hit);
            py.check_signals()?;
            report(&progress, py, start + part.len(), 2 * total)?;
        }
        let mut df = Vec::new();
        inner.gram_df(&ids, &mut df);
        let params = PreciseParams {
            max_train_df,
            max_bench_df,
            min_coverage,
        };
        let found = py.detach(|| {
            prefcurate_core::run_in(pool.as_ref(), || {
                inner.precise_matches(&offsets, &ids, &df, params, 0)
            })
        });
        report(&progress, py, 2 * total, 2 * total)?;
        let train = found.iter().map(|m| m.train).collect::<Vec<_>>();
        let bench = found.iter().map(|m| m.bench).collect::<Vec<_>>();
        let shared = found.iter().map(|m| m.shared as i64).collect::<Vec<_>>();
        let coverage = found.iter().map(|m| m.coverage).collect::<Vec<_>>();
        Ok((
            train.into_pyarray(py),
            bench.into_pyarray(py),
            shared.into_pyarray(py),
            coverage.into_pyarray(py),
        ))
    }

    /// For each (row, benchmark text) pair: the longest run of tokens row
    /// `rows[k]` of `texts` shares with benchmark text `docs[k]`, as
    /// (text of the run in the training text, tokens in the run).
    #[pyo3(signature = (texts, rows, docs, *, num_threads=None))]
    fn longest_spans(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        rows: Vec<u64>,
        docs: Vec<u32>,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<(Option<String>, usize)>> {
        if rows.len() != docs.len() {
            return Err(input_error(
                "rows and docs must have the same length".into(),
            ));
        }
        let cols = Texts::import(texts, "training text")?;
        let strs = cols.strs("training text")?;
        for (&r, &d) in rows.iter().zip(&docs) {
            if r as usize >= strs.len() || d as usize >= self.inner.len() {
                return Err(input_error(format!(
                    "row {r} / benchmark text {d} out of range"
                )));
            }
        }
        let pool = pool_for(num_threads)?;
        let inner = &self.inner;
        let out = py.detach(|| {
            use rayon::prelude::*;
            prefcurate_core::run_in(pool.as_ref(), || {
                rows.par_iter()
                    .zip(docs.par_iter())
                    .map(|(&r, &d)| {
                        let text = strs[r as usize];
                        match inner.longest_span(text, d as usize) {
                            Some(s) => (Some(text[s.start..s.end].to_string()), s.tokens),
                            None => (None, 0),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        });
        Ok(out)
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(Py<PyAny>, (Py<PyAny>,))> {
        let py = slf.py();
        let cls = slf.get_type().getattr("from_bytes")?;
        let data = slf.get().to_bytes(py);
        Ok((cls.unbind(), (data.into_any().unbind(),)))
    }

    fn __repr__(&self) -> String {
        let (a, b) = self.ngram_range();
        format!(
            "BenchmarkIndex(texts={}, method={:?}, ngram_range=({a}, {b}), n_grams={})",
            self.inner.len(),
            self.method(),
            self.inner.n_grams()
        )
    }
}

/// Dictionary-encode a nullable string column: (ids as uint32, u32::MAX for
/// null; distinct values in order of first appearance).
#[pyfunction]
#[pyo3(signature = (column, *, num_threads=None))]
fn encode_strings<'py>(
    py: Python<'py>,
    column: &Bound<'py, PyAny>,
    num_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<u32>>, Vec<String>)> {
    let col = StrCol::import(column, "column")?;
    let pool = pool_for(num_threads)?;
    let (ids, names) = py.detach(|| {
        prefcurate_core::run_in(pool.as_ref(), || {
            prefcurate_core::select::encode(col.len(), &|i| col.get(i))
        })
    });
    Ok((ids.into_pyarray(py), names))
}

/// Top rows per group (see `prefcurate_core::select::select_top`).  `quotas`
/// holds one ("all" | "k" | "ratio", a, b) per group (k = a; ratio = a / b); `tie` an optional
/// string column ordering equal scores (nulls last).  Returns a dict with
/// `reason` (uint8 per row), `rank` (uint32 per row, when `ranks`), and per
/// group `cutoff`, `ranked`, `kept`.
#[pyfunction]
#[pyo3(signature = (scores, groups, quotas, *, tie=None, ranks=false, num_threads=None))]
fn select_top<'py>(
    py: Python<'py>,
    scores: numpy::PyReadonlyArray1<'py, f64>,
    groups: numpy::PyReadonlyArray1<'py, u32>,
    quotas: Vec<(String, u64, u64)>,
    tie: Option<&Bound<'py, PyAny>>,
    ranks: bool,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    use prefcurate_core::select::Quota;
    let quotas = quotas
        .into_iter()
        .map(|(kind, a, b)| match kind.as_str() {
            "all" => Ok(Quota::All),
            "k" => Ok(Quota::K(a)),
            "ratio" => Ok(Quota::Ratio(a, b)),
            _ => Err(input_error(format!("bad quota ({kind:?}, {a}, {b})"))),
        })
        .collect::<PyResult<Vec<_>>>()?;
    let scores = scores.as_slice()?;
    let groups = groups.as_slice()?;
    let tie_col = tie
        .map(|t| StrCol::import(t, "tie_break column"))
        .transpose()?;
    if let Some(t) = &tie_col {
        if t.len() != scores.len() {
            return Err(input_error(format!(
                "tie_break column has {} rows, scores {}",
                t.len(),
                scores.len()
            )));
        }
    }
    let pool = pool_for(num_threads)?;
    let sel = py
        .detach(|| {
            prefcurate_core::run_in(pool.as_ref(), || {
                let cmp = |a: u32, b: u32| -> std::cmp::Ordering {
                    let t = tie_col.as_ref().expect("tie column");
                    match (t.get(a as usize), t.get(b as usize)) {
                        (Some(x), Some(y)) => x.cmp(y),
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (None, None) => std::cmp::Ordering::Equal,
                    }
                };
                let tie: Option<&(dyn Fn(u32, u32) -> std::cmp::Ordering + Sync)> =
                    if tie_col.is_some() { Some(&cmp) } else { None };
                prefcurate_core::select::select_top(scores, groups, &quotas, tie, ranks)
            })
        })
        .map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("reason", sel.reason.into_pyarray(py))?;
    out.set_item("rank", sel.rank.into_pyarray(py))?;
    out.set_item("cutoff", sel.cutoff.into_pyarray(py))?;
    out.set_item("ranked", sel.ranked.into_pyarray(py))?;
    out.set_item("kept", sel.kept.into_pyarray(py))?;
    Ok(out)
}

/// The reference tokens of `text`: `re.findall(r"(?u)\b\w\w+\b", text.lower())`.
#[pyfunction]
fn tokenize(text: &str) -> Vec<String> {
    prefcurate_core::tokenize::tokens_as_strings(&UnicodeTables::current(), text)
}

/// `text.lower()` as the tokeniser computes it.
#[pyfunction]
fn lower(text: &str) -> String {
    let mut out = String::new();
    UnicodeTables::current().lower_into(text, &mut out);
    out
}

/// The Unicode version of the tables in force.
#[pyfunction]
fn unicode_version() -> String {
    UnicodeTables::current().version().to_string()
}

/// Install tables derived from the running interpreter (see `prefcurate._unicode`).
#[pyfunction]
fn install_unicode_tables(
    version: String,
    word: Vec<(u32, u32)>,
    lower: Vec<(u32, String)>,
    case_ignorable: Vec<(u32, u32)>,
    cased: Vec<(u32, u32)>,
) -> PyResult<()> {
    let t =
        UnicodeTables::from_parts(version, &word, lower, &case_ignorable, &cased).map_err(to_py)?;
    prefcurate_core::unicode::install(Arc::new(t));
    Ok(())
}

#[pyfunction]
fn _after_fork_in_child() {
    FORKED.store(true, Ordering::Relaxed);
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
    m.add_class::<PyBenchmarkIndex>()?;
    m.add_function(wrap_pyfunction!(tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(encode_strings, m)?)?;
    m.add_function(wrap_pyfunction!(select_top, m)?)?;
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
    m.add_function(wrap_pyfunction!(pairs::pair_ids, m)?)?;
    m.add_function(wrap_pyfunction!(lower, m)?)?;
    m.add_function(wrap_pyfunction!(unicode_version, m)?)?;
    m.add_function(wrap_pyfunction!(install_unicode_tables, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    Ok(())
}
