"""Benchmark decontamination: the reference n-gram method, exactly, and a
more precise one.

``method="reference"`` reproduces the published check behind
Skywork-Reward-Preference-80K v0.2 (sklearn ``CountVectorizer(ngram_range=(7,
13))`` fitted on benchmark + training prompts, benchmark x training dot
product, any positive score flags the training prompt): ``matches`` holds every
pair with a positive score and the score is that dot product, exactly.

``method="precise"`` cuts false positives from shared templates: it matches
``n``-grams (13 by default, ``min(n, tokens)`` for shorter benchmark prompts)
of the first user turn, ignores stop-grams (n-grams found in more than
``max_train_df`` training prompts or ``max_benchmark_df`` benchmark prompts,
which are templates rather than leaks), and flags a training prompt only when
it shares at least ``min_coverage`` of a benchmark prompt's distinct n-grams.
It misses short partial leaks that the reference catches; see
``docs/decontamination.md`` for the trade-off measured on real data.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ._inputs import Resolved, resolve, split_rows
from ._progress import ProgressArg, progress_callback
from .errors import InvalidInputError
from .index import METHODS, BenchmarkIndex, _check_range

STAGE = "decontaminate"
REASONS = {"reference": "benchmark_ngram_overlap", "precise": "benchmark_coverage"}


@dataclass
class DecontaminationResult:
    """What :func:`decontaminate` found.

    Attributes
    ----------
    contaminated:
        ``numpy`` bool array, one per training row.
    matches:
        ``pyarrow.Table`` with ``train_index``, ``benchmark_index``, ``score``
        (int64; the reference dot product, or for the precise method the
        number of shared non-stop n-grams), ``benchmark_id``,
        ``benchmark_subset`` (and ``coverage`` for the precise method): every
        matching pair, ordered by training row then benchmark item.
    kept, removed:
        The training rows, in the kind ``train`` was given (a table, Dataset,
        polars frame; a list of str gives ``kept`` as a list and ``removed`` as
        a list of dicts; an array gives ``removed`` as a table).  Removed rows
        carry ``stage``, ``reason``, ``train_index``, ``benchmark_index``,
        ``benchmark_id``, ``benchmark_subset``, ``score``, ``n_benchmark_matches``,
        ``matched_span`` (the longest run of tokens shared with the best
        match, as it appears in the training text) and ``matched_tokens``.
    """

    contaminated: np.ndarray
    matches: pa.Table
    method: str
    index: BenchmarkIndex
    attribution: pa.Table
    timings: dict[str, float] = field(default_factory=dict)
    _train: Resolved | None = field(default=None, repr=False)
    _split: tuple[Any, Any] | None = field(default=None, repr=False)

    def _rows(self) -> tuple[Any, Any]:
        # materialised on first use: a scan that only needs the flags or the
        # matches does not pay for copying the rows
        if self._split is None:
            assert self._train is not None
            self._split = split_rows(self._train, self.contaminated, self.attribution)
        return self._split

    @property
    def kept(self) -> Any:
        """The training rows that stay, in the kind ``train`` was given."""
        return self._rows()[0]

    @property
    def removed(self) -> Any:
        """The removed training rows with their attribution columns."""
        return self._rows()[1]

    @property
    def n_removed(self) -> int:
        return int(self.contaminated.sum())

    def summary(self) -> pa.Table:
        """Per benchmark subset: its items, how many of them matched any
        training row, and how many training rows were removed with their best
        match in that subset."""
        subsets = np.array(self.index.subsets, dtype=object)
        names, counts = np.unique(subsets, return_counts=True)
        matched_items = np.unique(self.matches.column("benchmark_index").to_numpy())
        matched_per: dict[str, int] = {}
        for s in subsets[matched_items]:
            matched_per[s] = matched_per.get(s, 0) + 1
        removed_per: dict[str, int] = {}
        for s in self.attribution.column("benchmark_subset").to_pylist():
            removed_per[s] = removed_per.get(s, 0) + 1
        return pa.Table.from_pydict(
            {
                "benchmark_subset": pa.array(names.tolist(), type=pa.string()),
                "benchmark_items": pa.array(counts.tolist(), type=pa.int64()),
                "items_matched": pa.array([matched_per.get(s, 0) for s in names], type=pa.int64()),
                "train_rows_removed": pa.array([removed_per.get(s, 0) for s in names], type=pa.int64()),
            }
        )

    def __repr__(self) -> str:
        return (
            f"DecontaminationResult(method={self.method!r}, rows={len(self.contaminated)}, "
            f"removed={self.n_removed}, matches={self.matches.num_rows})"
        )


def _best_per_row(train: np.ndarray, bench: np.ndarray, score: np.ndarray, coverage: np.ndarray):
    """Per flagged row of the precise method: the match with the highest
    coverage (then shared n-grams, then the lowest benchmark index)."""
    order = np.lexsort((bench, -score, -coverage, train))
    t_sorted = train[order]
    rows, first, counts = np.unique(t_sorted, return_index=True, return_counts=True)
    pick = order[first]
    return rows, pick, counts


@contextlib.contextmanager
def _labelled(res: Resolved):
    """Name the source (file, column) in errors the core reports by row."""
    try:
        yield
    except InvalidInputError as e:
        if res.label:
            raise InvalidInputError(f"{res.label}: {e}") from None
        raise


def _resolve_train(train: Any, text: str | None) -> Resolved:
    return resolve(train, text=text, what="train")


def decontaminate(
    train: Any,
    benchmark: Any,
    *,
    ngram_range: tuple[int, int] = (7, 13),
    method: str = "reference",
    text: str | None = None,
    benchmark_text: str | None = None,
    benchmark_id: str = "id",
    benchmark_subset: str = "subset",
    n: int = 13,
    min_tokens: int = 5,
    max_train_df: int | float = 0.001,
    max_benchmark_df: int = 10,
    min_coverage: float = 0.5,
    spans: bool = True,
    num_threads: int | None = None,
    progress: ProgressArg = False,
    engine: str = "local",
    ray_options: Any = None,
) -> DecontaminationResult:
    """Find training prompts that overlap benchmark prompts and split the rows.

    Parameters
    ----------
    train, benchmark:
        A list of str, a pyarrow array or table, a ``datasets.Dataset``, a
        polars DataFrame, a path (jsonl, json, parquet, csv, saved dataset), or
        a :class:`BenchmarkIndex` (built with the same method and n-grams).
        Chat-format message columns give their first user turn.
    ngram_range:
        The reference method's n-gram range (sklearn's ``ngram_range``).
    method:
        ``"reference"`` (default) or ``"precise"`` (see the module docstring).
    text, benchmark_text:
        Text columns of table inputs (default ``prompt``, else a chat column).
    benchmark_id, benchmark_subset:
        Columns naming benchmark items and subsets, for attribution.
    n, min_tokens, max_train_df, max_benchmark_df, min_coverage:
        Precise method only.  An n-gram in more than ``max_train_df`` training
        prompts (below 1: that fraction of the rows, but at least 10) or more
        than ``max_benchmark_df`` benchmark prompts is a stop-gram (a
        template); a training prompt is flagged when it shares at least
        ``min_coverage`` of a benchmark prompt's distinct n-grams.
    spans:
        Compute the longest matched span of each removed row.
    num_threads:
        Threads for the scan (default: all cores).  Results do not depend on it.
    progress:
        ``True`` for a progress bar, or a ``callable(done, total)``.
    engine, ray_options:
        ``"local"`` (default) or ``"ray"``: scan on a Ray Data cluster (the
        reference method; ``train`` may also be a ``ray.data.Dataset`` or
        Parquet shards); ``kept`` and ``removed`` are then lazy Ray datasets
        and the rest of the result is the same.  ``ray_options``: a dict or
        :class:`prefcurate.ray_engine.RayOptions` (batch size, partitions...).
    """
    from .ray_engine import check_engine

    if check_engine(engine):
        from . import ray_engine

        return ray_engine.decontaminate(
            train,
            benchmark,
            ngram_range=ngram_range,
            method=method,
            text=text,
            benchmark_text=benchmark_text,
            benchmark_id=benchmark_id,
            benchmark_subset=benchmark_subset,
            n=n,
            min_tokens=min_tokens,
            spans=spans,
            options=ray_options,
        )
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    lo, hi = _check_range(ngram_range)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if isinstance(benchmark, BenchmarkIndex):
        index = benchmark
        if index.method != method:
            raise InvalidInputError(
                f"the benchmark index was built for method={index.method!r}, but method={method!r} was asked for"
            )
        want = (lo, hi) if method == "reference" else (n, n)
        if index.ngram_range != want:
            raise InvalidInputError(
                f"the benchmark index was built with n-grams {index.ngram_range}, but {want} were asked for"
            )
    else:
        index = BenchmarkIndex(
            benchmark,
            text=benchmark_text,
            id=benchmark_id,
            subset=benchmark_subset,
            method=method,
            ngram_range=(lo, hi),
            n=n,
            min_tokens=min_tokens,
            num_threads=num_threads,
        )
    timings["index"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = _resolve_train(train, text)
    n_train = len(res)
    timings["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress_callback(progress, "decontaminate") as cb, _labelled(res):
        if method == "reference":
            out = index._inner.scan(res.texts, spans=spans, num_threads=num_threads, progress=cb)
            t_idx, b_idx, score, coverage = out["train"], out["bench"], out["score"], None
            rows, best_b = out["flagged_train"], out["flagged_bench"]
            best_score, counts = out["flagged_score"], out["flagged_matches"]
            span_text, span_tokens = out["span_text"], out["span_tokens"]
        else:
            if not 0.0 <= float(min_coverage) <= 1.0:
                raise InvalidInputError(f"min_coverage must be in [0, 1], got {min_coverage}")
            if max_train_df < 1:
                df_limit = max(10, int(float(max_train_df) * n_train))
            else:
                df_limit = int(max_train_df)
            t_idx, b_idx, score, coverage = index._inner.scan_precise(
                res.texts,
                max_train_df=df_limit,
                max_bench_df=int(max_benchmark_df),
                min_coverage=float(min_coverage),
                num_threads=num_threads,
                progress=cb,
            )
            rows, pick, counts = _best_per_row(t_idx, b_idx, score, coverage)
            best_b, best_score = b_idx[pick], score[pick]
            if spans and len(rows):
                pairs = index._inner.longest_spans(
                    res.texts, rows.tolist(), best_b.tolist(), num_threads=num_threads
                )
            else:
                pairs = [(None, 0)] * len(rows)
            span_text, span_tokens = [p[0] for p in pairs], np.array([p[1] for p in pairs], dtype=np.int64)
    timings["scan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids = np.array(index.ids, dtype=object)
    subsets = np.array(index.subsets, dtype=object)
    cols = {
        "train_index": pa.array(t_idx.astype(np.int64)),
        "benchmark_index": pa.array(b_idx.astype(np.int64)),
        "score": pa.array(score.astype(np.int64)),
        "benchmark_id": pa.array(ids[b_idx].tolist(), type=pa.string()),
        "benchmark_subset": pa.array(subsets[b_idx].tolist(), type=pa.string()),
    }
    if coverage is not None:
        cols["coverage"] = pa.array(coverage)
    matches = pa.Table.from_pydict(cols)

    contaminated = np.zeros(n_train, dtype=bool)
    contaminated[rows] = True
    n_rows = len(rows)
    attr = {
        "stage": pa.array([STAGE] * n_rows, type=pa.string()),
        "reason": pa.array([REASONS[method]] * n_rows, type=pa.string()),
        "train_index": pa.array(rows.astype(np.int64)),
        "benchmark_index": pa.array(best_b.astype(np.int64)),
        "benchmark_id": pa.array(ids[best_b].tolist(), type=pa.string()),
        "benchmark_subset": pa.array(subsets[best_b].tolist(), type=pa.string()),
        "score": pa.array(best_score.astype(np.int64)),
        "n_benchmark_matches": pa.array(counts.astype(np.int64)),
        "matched_span": pa.array(span_text, type=pa.string()),
        "matched_tokens": pa.array(span_tokens.astype(np.int64)),
    }
    if coverage is not None:
        attr["coverage"] = pa.array(coverage[pick])
    attribution = pa.Table.from_pydict(attr)
    timings["attribute"] = time.perf_counter() - t0
    return DecontaminationResult(
        contaminated=contaminated,
        matches=matches,
        method=method,
        index=index,
        attribution=attribution,
        timings=timings,
        _train=res,
    )
