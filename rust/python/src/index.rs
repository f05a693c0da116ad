//! Bindings of `prefcurate_core::index` and `persist`: the `BenchmarkIndex`
//! class (build, save / load / pickle, scans).

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1};
use prefcurate_core::{persist, BenchmarkIndex, Method, PreciseParams, UnicodeTables};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::arrow_in::Texts;
use crate::exec::core_call;

/// `out[name] = ` the values as a numpy array.
fn put<T: numpy::Element>(
    out: &Bound<'_, PyDict>,
    name: &str,
    values: impl Iterator<Item = T>,
) -> PyResult<()> {
    out.set_item(name, values.collect::<Vec<T>>().into_pyarray(out.py()))
}

/// An immutable n-gram index of benchmark texts.
#[pyclass(frozen, module = "prefcurate._core", name = "BenchmarkIndex")]
pub struct PyBenchmarkIndex {
    inner: Arc<BenchmarkIndex>,
}

impl PyBenchmarkIndex {
    fn new(index: BenchmarkIndex) -> Self {
        PyBenchmarkIndex {
            inner: Arc::new(index),
        }
    }
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
        let method = Method::from_name(method, ngram_range, n, min_tokens)
            .map_err(crate::errors::Error::from)?;
        let cols = Texts::import(texts, "benchmark text")?;
        let owned: Vec<String> = cols
            .strs("benchmark text")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let tables = UnicodeTables::current();
        let built = core_call(py, num_threads, owned.len(), None, |ctx| {
            BenchmarkIndex::build_with(tables, method, owned, ids, subsets, ctx)
        })?;
        Ok(Self::new(built))
    }

    /// Read an index written by `save` (re-tokenised under the tables in force).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let tables = UnicodeTables::current();
        let idx = core_call(py, None, usize::MAX, None, |ctx| {
            persist::load_with(&path, tables, ctx)
        })?;
        Ok(Self::new(idx))
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        core_call(py, None, self.inner.len(), None, |_| {
            persist::save(&self.inner, &path)
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &persist::to_bytes(&self.inner))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let tables = UnicodeTables::current();
        let buf = data.to_vec();
        // about one benchmark text per 256 bytes
        let idx = core_call(py, None, buf.len() / 256, None, |ctx| {
            persist::from_bytes_with(&buf, std::path::Path::new("<bytes>"), tables, ctx)
        })?;
        Ok(Self::new(idx))
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
        self.inner.method().name()
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
        let inner = &self.inner;
        let all = core_call(py, num_threads, strs.len(), progress.as_ref(), |ctx| {
            inner.scan(&strs, spans, ctx)
        })?;
        let out = PyDict::new(py);
        let (m, f) = (&all.matches, &all.flagged);
        put(&out, "train", m.iter().map(|x| x.train))?;
        put(&out, "bench", m.iter().map(|x| x.bench))?;
        put(&out, "score", m.iter().map(|x| x.score))?;
        put(&out, "flagged_train", f.iter().map(|x| x.train))?;
        put(&out, "flagged_bench", f.iter().map(|x| x.bench))?;
        put(&out, "flagged_score", f.iter().map(|x| x.score))?;
        put(&out, "flagged_matches", f.iter().map(|x| x.n_matches))?;
        put(
            &out,
            "span_tokens",
            f.iter()
                .map(|x| x.span.as_ref().map_or(0, |s| s.tokens as u64)),
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
        let params = PreciseParams {
            max_train_df,
            max_bench_df,
            min_coverage,
        };
        let cols = Texts::import(texts, "training text")?;
        let strs = cols.strs("training text")?;
        let inner = &self.inner;
        let found = core_call(py, num_threads, strs.len(), progress.as_ref(), |ctx| {
            inner.scan_precise(&strs, params, ctx)
        })?;
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
        let cols = Texts::import(texts, "training text")?;
        let strs = cols.strs("training text")?;
        let inner = &self.inner;
        let spans = core_call(py, num_threads, rows.len(), None, |ctx| {
            inner.longest_spans(&strs, &rows, &docs, ctx)
        })?;
        Ok(spans
            .iter()
            .zip(&rows)
            .map(|(s, &r)| match s {
                Some(s) => (Some(strs[r as usize][s.start..s.end].to_string()), s.tokens),
                None => (None, 0),
            })
            .collect())
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
