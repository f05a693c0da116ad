"""The local engine: every stage's per-batch work on the whole input as one
batch, in this process (the Rust core's thread pool does the parallel work),
then the stage's decision step.

Stages know no engine; this module and :mod:`prefcurate.engines.ray` import
the stages and run them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from .._progress import ProgressArg
from .._unicode import ensure_tables
from ..errors import InvalidInputError
from ..inputs import Resolved, as_table, split_rows
from ..schema import StageResult
from ..stages import decontaminate as dc
from ..stages import select as sel
from ..stages.dedup import (
    DedupConfig,
    DedupData,
    DedupResult,
    Links,
    as_data,
    contradictions,
    decide,
    priority,
)
from ..stages.dedup_index import MESSAGES_LARGE, DedupIndex, common
from ..stages.index import BenchmarkIndex

NAME = "local"


def splitter(res: Resolved) -> Any:
    """The local rows of a result: tables (or lists, Datasets, polars) in the
    kind the data came in."""

    def split(mask: np.ndarray, attribution: pa.Table, row_column: str) -> tuple[Any, Any]:
        attr = attribution.drop_columns([row_column]) if row_column == "row_index" else attribution
        return split_rows(res, mask, attr)

    return split


# ---------------------------------------------------------------- dedup


def dedup_links(
    d: DedupData,
    config: DedupConfig,
    *,
    num_threads: int | None,
    n_ref: int = 0,
    ref_keys: np.ndarray | None = None,
) -> Links:
    """The dedup kernels on the whole input: exact keys, degenerate and
    contradictory pairs, LSH candidates verified by their exact Jaccard (one
    core call each)."""
    n = len(d)
    pairs = d.pairs
    level = config.level_for(pairs)
    norm = config.norm
    kw = d.kwargs()

    def jaccard(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.asarray(
            _core.dedup_jaccard(
                level=level,
                norm_opts=norm,
                shingle_kind=config.shingle,
                shingle_n=config.ngram,
                i=lo.astype(np.uint32).tolist(),
                j=hi.astype(np.uint32).tolist(),
                num_threads=num_threads,
                **kw,
            )
        )

    exact = _core.dedup_exact(level=level, norm_opts=norm, num_threads=num_threads, **kw).astype(np.int64)
    links = Links(exact=exact, jaccard=jaccard)
    if pairs and config.pair_checks:
        is_ref = np.zeros(n, dtype=bool)
        is_ref[:n_ref] = True
        degenerate = np.asarray(_core.dedup_degenerate(norm_opts=norm, num_threads=num_threads, **kw), bool)
        g = _core.dedup_exact_two(
            level="pair", other="pair_swapped", norm_opts=norm, num_threads=num_threads, **kw
        ).astype(np.int64)
        alive = ~(degenerate & ~is_ref)
        links.degenerate = degenerate
        links.contra = contradictions(g[:n], g[n:], np.flatnonzero(alive), np.flatnonzero(alive & ~is_ref))
    if config.method == "minhash":
        near = _core.dedup_near(
            **config.near_kwargs(pairs),
            threshold=config.threshold,
            prefix_keys=ref_keys,
            num_threads=num_threads,
            **kw,
        )
        links.near = (
            near["edge_i"].astype(np.int64),
            near["edge_j"].astype(np.int64),
            np.asarray(near["edge_jaccard"], np.float64),
        )
        links.info = {
            "no_shingles": int(near["no_shingles"]),
            "short": int(near["short"]),
            "candidates": int(near["candidates"]),
        }
    return links


def _ids(table: pa.Table | None) -> list | None:
    if table is not None and "id" in table.column_names:
        return table.column("id").to_pylist()
    return None


def dedup(data: Any, config: DedupConfig, *, num_threads: int | None = None) -> DedupResult:
    ensure_tables()
    d = as_data(data, config.text)
    prio = priority(d, config.keep, config.score, config.source, len(d))
    links = dedup_links(d, config, num_threads=num_threads)
    out = decide(links, prio, config, ids=_ids(d.table))
    assert d.res is not None
    out._splitter = splitter(d.res)
    return out


def dedup_against(
    index: DedupIndex, data: Any, config: DedupConfig, *, num_threads: int | None = None
) -> DedupResult:
    """Remove the rows of ``data`` that duplicate the index's rows (and each
    other's); the index's settings decide, ``config``'s keep policy ranks
    the rows of ``data``."""
    ensure_tables()
    d = as_data(data, config.text)
    if d.pairs != index.pairs:
        raise InvalidInputError("dedup: the data and the index must both be pairs or both be texts")
    n_ref = len(index)
    if d.pairs:
        both = DedupData(
            None,
            None,
            chosen=common(index.table.column("chosen"), d.chosen, MESSAGES_LARGE),
            rejected=common(index.table.column("rejected"), d.rejected, MESSAGES_LARGE),
        )
    else:
        both = DedupData(None, None, texts=common(index.table.column("text"), d.texts, pa.large_string()))
    # the reference always wins its clusters
    prio = np.concatenate(
        [np.full(n_ref, -np.inf), priority(d, config.keep, config.score, config.source, len(d))]
    )
    settings = index.config.replace(keep=config.keep)
    links = dedup_links(both, settings, num_threads=num_threads, n_ref=n_ref, ref_keys=index.keys)
    res = decide(links, prio, settings, n_ref=n_ref)
    # the rows of `data`: duplicate_of points into the reference, or (for
    # duplicates within `data`) into `data`, whose rows follow the reference's
    sl = slice(n_ref, None)
    dup = res.duplicate_of[sl].copy()
    inside = dup >= n_ref
    dup[inside] -= n_ref
    # name each cluster by its first row of `data`
    cluster = res.cluster_id[sl].copy()
    rows = np.arange(len(cluster))
    first: dict[int, int] = {}
    for c, r in zip(cluster[cluster >= 0].tolist(), rows[cluster >= 0].tolist()):
        first.setdefault(c, r)
    cluster = np.array([first[c] if c >= 0 else -1 for c in cluster.tolist()], dtype=np.int64)
    ref_ids = _ids(index.table)
    own_ids = _ids(d.table)

    def target_id(x: int, ins: bool) -> str | None:
        src = own_ids if ins else ref_ids
        return None if x < 0 or src is None or src[x] is None else str(src[x])

    dup_ids = [target_id(x, ins) for x, ins in zip(dup.tolist(), inside.tolist())]
    where = [
        None if x < 0 else ("self" if ins else "reference") for x, ins in zip(dup.tolist(), inside.tolist())
    ]
    params = {**res.params, "against": True}
    info = {**res.info, "reference_rows": n_ref}
    out = DedupResult(dup, cluster, res.similarity[sl], res.reason[sl], params, info, dup_ids, where)
    assert d.res is not None
    out._splitter = splitter(d.res)
    return out


# ---------------------------------------------------------------- decontaminate


def decontaminate(
    train: Any,
    benchmark: Any,
    config: dc.DecontaminateConfig,
    *,
    num_threads: int | None = None,
    progress: ProgressArg = False,
) -> dc.DecontaminationResult:
    import time

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    index = dc.benchmark_index(benchmark, config, num_threads=num_threads)
    timings["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = dc.resolve_train(train, config.text)
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = dc.scan(index, res, config, num_threads=num_threads, progress=progress)
    timings["scan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = dc.decide(index, config, len(res), found)
    timings["attribute"] = time.perf_counter() - t0
    out.timings = timings
    out._splitter = splitter(res)
    out._table = res.table
    return out


# ---------------------------------------------------------------- select


def select(table: Any, config: sel.SelectConfig, *, num_threads: int | None = None) -> StageResult:
    t = as_table(table)
    out = sel.rank(t, config, ranks=True, num_threads=num_threads)
    return sel.decide(t, config, out)


def select_indices(table: Any, config: sel.SelectConfig, *, num_threads: int | None = None) -> np.ndarray:
    t = as_table(table)
    out = sel.rank(t, config, ranks=False, num_threads=num_threads)
    return np.flatnonzero(out["reason"] == 0)


__all__ = ["NAME", "BenchmarkIndex", "decontaminate", "dedup", "dedup_against", "select", "select_indices"]
