"""Decontamination on Ray: the index is built once on the driver and shared
through the object store; every batch is scanned by the stage's scan kernel;
the flagged rows come back to the driver for the stage's decision step."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from ..._unicode import ensure_tables
from ...errors import InvalidInputError
from ...inputs import resolve
from ...stages import decontaminate as dc
from .common import (
    ROW,
    _collect,
    _get_cached,
    _hook,
    _map_kwargs,
    _numbered,
    _opts,
    _ray,
    _rows_named,
    _strip,
    splitter,
)


def _decont_scan(
    batch: pa.Table, index: list[Any], config: dc.DecontaminateConfig, threads: int, hook: Any
) -> pa.Table:
    """The stage's scan kernel on one batch; the flagged rows (by original
    row number) with their matches as list columns."""
    ensure_tables()
    _hook(hook, "decontaminate.scan", batch)
    table, rows = _strip(batch)
    idx = _get_cached(index[0])
    with _rows_named(rows):
        res = resolve(table, text=config.text, what="train")
        f = dc.scan(idx, res, config, num_threads=threads)
    t, b, s = (np.asarray(x).astype(np.int64) for x in (f.train, f.bench, f.score))
    order = np.lexsort((b, t))
    t, b, s = t[order], b[order], s[order]
    flagged = np.asarray(f.rows).astype(np.int64)
    lo = np.searchsorted(t, flagged, side="left")
    hi = np.searchsorted(t, flagged, side="right")
    offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int32)
    sel = np.concatenate([np.arange(a, z) for a, z in zip(lo, hi)]) if len(flagged) else np.zeros(0, np.int64)
    return pa.table(
        {
            ROW: pa.array(rows[flagged], pa.int64()),
            "benchmark_index": pa.array(np.asarray(f.best_bench).astype(np.int64)),
            "score": pa.array(np.asarray(f.best_score).astype(np.int64)),
            "n": pa.array(np.asarray(f.counts).astype(np.int64)),
            "span": pa.array(list(f.span_text), pa.string()),
            "span_tokens": pa.array(np.asarray(f.span_tokens).astype(np.int64)),
            "m_bench": pa.ListArray.from_arrays(pa.array(offsets), pa.array(b[sel], pa.int64())),
            "m_score": pa.ListArray.from_arrays(pa.array(offsets), pa.array(s[sel], pa.int64())),
        }
    )


_SCAN_SCHEMA = pa.schema(
    [
        (ROW, pa.int64()),
        ("benchmark_index", pa.int64()),
        ("score", pa.int64()),
        ("n", pa.int64()),
        ("span", pa.string()),
        ("span_tokens", pa.int64()),
        ("m_bench", pa.list_(pa.int64())),
        ("m_score", pa.list_(pa.int64())),
    ]
)


def _flat(col: pa.ChunkedArray) -> np.ndarray:
    return col.combine_chunks().flatten().to_numpy()


def decontaminate(
    train: Any, benchmark: Any, config: dc.DecontaminateConfig, *, options: Any = None
) -> dc.DecontaminationResult:
    """:func:`prefcurate.decontaminate` on Ray: the index is built once on the
    driver and shared through the object store; every batch is scanned by the
    stage's scan kernel; the flagged rows (with their matches) come back to
    the driver for the stage's decision step, so the arrays and tables equal
    the local engine's."""
    if config.method != "reference":
        raise InvalidInputError(
            "engine='ray' runs method='reference' only: the precise method's stop-grams count n-grams "
            "over the whole training set, which the Rust core cannot yet do per batch; use engine='local'"
        )
    o = _opts(options)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    index = dc.benchmark_index(benchmark, config)
    timings["index"] = time.perf_counter() - t0
    ray = _ray()
    t0 = time.perf_counter()
    nd = _numbered(train, o, text=config.text, what="train")
    probe = resolve(nd.schema.empty_table(), text=nd.text, what="train")  # a missing column fails here
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    iref = ray.put(index)
    scan = nd.dataset([probe.column] if probe.column else None).map_batches(
        _decont_scan,
        fn_kwargs={
            "index": [iref],
            "config": config.replace(text=nd.text),  # the column the numbered rows hold
            "threads": o.threads,
            "hook": o.batch_hook,
        },
        **_map_kwargs(o),
    )
    flagged = _collect(scan, _SCAN_SCHEMA)
    timings["scan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = flagged.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    flagged = flagged.take(pa.array(order))
    rows = rows[order]
    counts = flagged.column("n").to_numpy()
    empty = np.zeros(0, np.int64)
    lens = np.diff(flagged.column("m_bench").combine_chunks().offsets.to_numpy()) if len(rows) else counts
    found = dc.Found(
        train=np.repeat(rows, lens),
        bench=_flat(flagged.column("m_bench")) if len(rows) else empty,
        score=_flat(flagged.column("m_score")) if len(rows) else empty,
        rows=rows,
        best_bench=flagged.column("benchmark_index").to_numpy(),
        best_score=flagged.column("score").to_numpy(),
        counts=counts,
        span_text=flagged.column("span").to_pylist(),
        span_tokens=flagged.column("span_tokens").to_numpy(),
    )
    out = dc.decide(index, config, nd.n, found)
    timings["attribute"] = time.perf_counter() - t0
    out.timings = timings
    out._splitter = splitter(nd, o, dc.STAGE)
    return out
