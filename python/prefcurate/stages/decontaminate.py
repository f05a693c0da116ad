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
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from .._progress import ProgressArg, progress_callback
from ..arrays import array, constant_strings, from_numpy, strings, to_numpy
from ..config import StageConfig, in_range, is_bool, param
from ..errors import InvalidInputError
from ..inputs import Resolved, resolve
from ..schema import EngineRows, Splitter, StageResult
from .index import METHODS, BenchmarkIndex, check_range

STAGE = "decontaminate"
REASONS = {
    "reference": "benchmark_ngram_overlap",
    "precise": "benchmark_coverage",
    "semantic": "benchmark_semantic",
}


def _df_limit(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        return "a positive number (below 1: a fraction of the training rows)"
    return None


def _range(v: Any) -> str | None:
    try:
        check_range(v)
    except InvalidInputError:
        return "a pair of ints with 1 <= min <= max <= 64"
    return None


@dataclass(frozen=True)
class DecontaminateConfig(StageConfig):
    """The decontamination stage's settings (see the module docstring)."""

    stage: ClassVar[str] = STAGE

    method: str = param("reference", "reference (exact to the published script) or precise", choices=METHODS)
    ngram_range: tuple[int, int] = param(
        (7, 13),
        "the reference method's n-gram range (sklearn's ngram_range)",
        check=_range,
        convert=lambda v: tuple(int(x) for x in v),
        metavar=("MIN", "MAX"),
    )
    text: str | None = param(
        None, "text column of the training data (default: prompt, else a chat column)", metavar="COLUMN"
    )
    benchmark_text: str | None = param(None, "text column of the benchmark", metavar="COLUMN")
    benchmark_id: str = param("id", "benchmark column naming each item, for attribution")
    benchmark_subset: str = param("subset", "benchmark column naming each item's subset, for attribution")
    n: int = param(13, "precise: n-gram size", check=in_range(1, 64, integer=True))
    min_tokens: int = param(
        5,
        "precise: benchmark prompts under this many tokens are skipped",
        check=in_range(1, 1 << 20, integer=True),
    )
    max_train_df: float = param(
        0.001,
        "precise: an n-gram in more training prompts is a template (below 1: a fraction of the rows, at least 10)",
        check=_df_limit,
        parse=float,
    )
    max_benchmark_df: int = param(
        10,
        "precise: an n-gram in more benchmark prompts is a template",
        check=in_range(1, 1 << 62, integer=True),
    )
    min_coverage: float = param(
        0.5,
        "precise: share of a benchmark prompt's distinct n-grams a training prompt must hold",
        check=in_range(0.0, 1.0),
    )
    spans: bool = param(True, "compute the longest matched span of each removed row", check=is_bool)

    def df_limit(self, n_train: int) -> int:
        """``max_train_df`` in rows for ``n_train`` training rows."""
        if self.max_train_df < 1:
            return max(10, int(float(self.max_train_df) * n_train))
        return int(self.max_train_df)

    def index_ngrams(self) -> tuple[int, int]:
        """The n-grams an index for this config holds."""
        return tuple(self.ngram_range) if self.method == "reference" else (self.n, self.n)  # type: ignore[return-value]


@dataclass
class DecontaminationResult(EngineRows):
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
    _splitter: Splitter | None = field(default=None, repr=False)
    _split: tuple[Any, Any] | None = field(default=None, repr=False)
    #: the training rows as a table, where they were one (for counts by source)
    _table: pa.Table | None = field(default=None, repr=False)

    def _split_args(self) -> tuple[np.ndarray, pa.Table, str]:
        return self.contaminated, self.attribution, "train_index"

    @property
    def n_removed(self) -> int:
        return int(self.contaminated.sum())

    def stage_result(self) -> StageResult:
        """As a :class:`StageResult` (tables, or lazy Ray datasets on Ray)."""
        n = len(self.contaminated)
        info = {"summary": self.summary().to_pylist(), "matches": self.matches.num_rows}
        reason = REASONS[self.method]
        by_reason = {reason: self.n_removed} if self.n_removed else {}
        return StageResult(
            STAGE,
            self.kept,
            self.removed,
            n,
            info,
            n_kept=n - self.n_removed,
            by_reason=by_reason,
            rows_ops=self._rows_ops(),
        )

    def summary(self) -> pa.Table:
        """Per benchmark subset: its items, how many of them matched any
        training row, and how many training rows were removed with their best
        match in that subset."""
        subsets = np.array(self.index.subsets, dtype=object)
        names, counts = np.unique(subsets, return_counts=True)
        matched_items = np.unique(to_numpy(self.matches.column("benchmark_index")))
        matched_per: dict[str, int] = {}
        for s in subsets[matched_items]:
            matched_per[s] = matched_per.get(s, 0) + 1
        removed_per: dict[str, int] = {}
        for s in self.attribution.column("benchmark_subset").to_pylist():
            removed_per[s] = removed_per.get(s, 0) + 1
        return pa.Table.from_pydict(
            {
                "benchmark_subset": strings(names.tolist()),
                "benchmark_items": from_numpy(counts.astype(np.int64)),
                "items_matched": from_numpy(np.array([matched_per.get(s, 0) for s in names], np.int64)),
                "train_rows_removed": from_numpy(np.array([removed_per.get(s, 0) for s in names], np.int64)),
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


def resolve_train(train: Any, text: str | None) -> Resolved:
    return resolve(train, text=text, what="train")


def benchmark_index(
    benchmark: Any, config: DecontaminateConfig, *, num_threads: int | None = None
) -> BenchmarkIndex:
    """The benchmark's index for ``config``: built, or checked when given."""
    if isinstance(benchmark, BenchmarkIndex):
        if benchmark.method != config.method:
            raise InvalidInputError(
                f"the benchmark index was built for method={benchmark.method!r}, but method={config.method!r} was asked for"
            )
        want = config.index_ngrams()
        if benchmark.ngram_range != want:
            raise InvalidInputError(
                f"the benchmark index was built with n-grams {benchmark.ngram_range}, but {want} were asked for"
            )
        return benchmark
    return BenchmarkIndex(
        benchmark,
        text=config.benchmark_text,
        id=config.benchmark_id,
        subset=config.benchmark_subset,
        method=config.method,
        ngram_range=config.ngram_range,
        n=config.n,
        min_tokens=config.min_tokens,
        num_threads=num_threads,
    )


@dataclass
class Found:
    """What a scan found, in row numbers of the scanned input: every match
    (``train``, ``bench``, ``score``, and ``coverage`` for the precise
    method), and per flagged row its best match, match count and span."""

    train: np.ndarray
    bench: np.ndarray
    score: np.ndarray
    rows: np.ndarray
    best_bench: np.ndarray
    best_score: np.ndarray
    counts: np.ndarray
    span_text: list
    span_tokens: np.ndarray
    coverage: np.ndarray | None = None
    best_coverage: np.ndarray | None = None


def scan(
    index: BenchmarkIndex,
    res: Resolved,
    config: DecontaminateConfig,
    *,
    num_threads: int | None = None,
    progress: ProgressArg = False,
) -> Found:
    """The scan kernel: one batch of training texts against the index."""
    with progress_callback(progress, "decontaminate") as cb, _labelled(res):
        if config.method == "reference":
            out = index._inner.scan(res.texts, spans=config.spans, num_threads=num_threads, progress=cb)
            return Found(
                out["train"],
                out["bench"],
                out["score"],
                out["flagged_train"],
                out["flagged_bench"],
                out["flagged_score"],
                out["flagged_matches"],
                list(out["span_text"]),
                np.asarray(out["span_tokens"]),
            )
        t_idx, b_idx, score, coverage = index._inner.scan_precise(
            res.texts,
            max_train_df=config.df_limit(len(res)),
            max_bench_df=int(config.max_benchmark_df),
            min_coverage=float(config.min_coverage),
            num_threads=num_threads,
            progress=cb,
        )
        rows, pick, counts = _best_per_row(t_idx, b_idx, score, coverage)
        best_b, best_score = b_idx[pick], score[pick]
        if config.spans and len(rows):
            pairs = index._inner.longest_spans(
                res.texts, rows.tolist(), best_b.tolist(), num_threads=num_threads
            )
        else:
            pairs = [(None, 0)] * len(rows)
        return Found(
            t_idx,
            b_idx,
            score,
            rows,
            best_b,
            best_score,
            counts,
            [p[0] for p in pairs],
            np.array([p[1] for p in pairs], dtype=np.int64),
            coverage,
            coverage[pick],
        )


def decide(
    index: BenchmarkIndex, config: DecontaminateConfig, n_train: int, found: Found
) -> DecontaminationResult:
    """The decision step: flags, the matches table and the attribution of
    each removed row (the same on every engine)."""
    f = found
    # per benchmark item, taken per match (no Python string per match)
    ids = strings(index.ids)
    subsets = strings(index.subsets)
    b_idx = np.asarray(f.bench).astype(np.int64)
    b_arr = from_numpy(b_idx)
    cols = {
        "train_index": from_numpy(np.asarray(f.train).astype(np.int64)),
        "benchmark_index": b_arr,
        "score": from_numpy(np.asarray(f.score).astype(np.int64)),
        "benchmark_id": ids.take(b_arr),
        "benchmark_subset": subsets.take(b_arr),
    }
    if f.coverage is not None:
        cols["coverage"] = array(f.coverage)
    matches = pa.Table.from_pydict(cols)
    rows = np.asarray(f.rows).astype(np.int64)
    best_b = np.asarray(f.best_bench).astype(np.int64)
    best_arr = from_numpy(best_b)
    contaminated = np.zeros(n_train, dtype=bool)
    contaminated[rows] = True
    n_rows = len(rows)
    attr = {
        "stage": constant_strings(STAGE, n_rows),
        "reason": constant_strings(REASONS[config.method], n_rows),
        "train_index": from_numpy(rows),
        "benchmark_index": best_arr,
        "benchmark_id": ids.take(best_arr),
        "benchmark_subset": subsets.take(best_arr),
        "score": from_numpy(np.asarray(f.best_score).astype(np.int64)),
        "n_benchmark_matches": from_numpy(np.asarray(f.counts).astype(np.int64)),
        "matched_span": strings(f.span_text),
        "matched_tokens": from_numpy(np.asarray(f.span_tokens).astype(np.int64)),
    }
    if f.best_coverage is not None:
        attr["coverage"] = array(f.best_coverage)
    return DecontaminationResult(
        contaminated=contaminated,
        matches=matches,
        method=config.method,
        index=index,
        attribution=pa.Table.from_pydict(attr),
    )
