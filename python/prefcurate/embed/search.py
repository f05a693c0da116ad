"""Nearest neighbours by cosine of unit vectors: exact (blocked matrix
products) and approximate (a faiss IVF or usearch HNSW index), every
returned score recomputed exactly.

Exact search cuts queries and keys into blocks of ``block_size`` rows (the
memory held is one ``block_size x block_size`` float32 score block plus the
running top candidates), keeps each query's best ``k + EXTRA`` candidates by
their float32 score, then recomputes the candidates' scores in float64 from
the float32 vectors (:func:`pair_scores`) and ranks them by (score
descending, index ascending).  A pair's final score therefore does not
depend on the blocking, the engine, the thread count or the index used to
find it, and the extra candidates absorb float32 rounding at the k-th place.

Scores on a GPU (``device="cuda"``) use torch for the products; top-k
selection uses torch whenever it is importable (much faster than numpy's
argpartition), numpy otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError

#: candidates kept beyond k before the exact rescoring
EXTRA = 4
ANN = ("auto", "exact", "faiss", "usearch")


def pair_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of unit vectors row by row, in float64 (the same value for a
    pair whatever else is computed with it)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64)).sum(axis=-1)


def _torch(needed: bool = False) -> Any:
    """torch when it is loaded already (its top-k is faster than numpy's
    partition), or when ``needed`` (a GPU search); never imported just for
    a CPU search: that would cost seconds a numpy search does not."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if not needed or importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _topc(s: np.ndarray, c: int, torch: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values, columns) of the ``c`` largest entries of each row (any order)."""
    if c >= s.shape[1]:
        return s, np.broadcast_to(np.arange(s.shape[1]), s.shape).copy()
    if torch is not None:
        v, i = torch.topk(torch.from_numpy(s), c, dim=1, sorted=False)
        return v.numpy(), i.numpy()
    cols = np.argpartition(-s, c - 1, axis=1)[:, :c]
    return np.take_along_axis(s, cols, axis=1), cols


def _rank(
    q: np.ndarray, keys: np.ndarray, cand: np.ndarray, k: int, q_rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rescore candidates exactly and keep the best ``k`` by (score desc,
    index asc); -1 / -inf where there are fewer.  ``q_rows``: the queries'
    own rows among the keys, left out (self-join)."""
    if cand.shape[1] < k:  # fewer candidates than k: pad (they come back as -1 / -inf)
        cand = np.concatenate([cand, np.full((len(cand), k - cand.shape[1]), -1, np.int64)], axis=1)
    nq, c = cand.shape
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    sc = np.empty((nq, c), np.float64)
    step = max(1, (1 << 22) // max(1, c * q.shape[1]))
    for a in range(0, nq, step):
        sc[a : a + step] = pair_scores(keys[safe[a : a + step]], q[a : a + step, None, :])
    bad = ~valid
    if q_rows is not None:
        bad |= cand == q_rows[:, None]
    # a candidate found twice (an ANN may return one) counts once
    srt = np.sort(np.where(bad, -1, cand), axis=1)
    dup_sorted = np.zeros_like(bad)
    dup_sorted[:, 1:] = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup_sorted.any():
        order = np.argsort(np.where(bad, -1, cand), axis=1, kind="stable")
        dup = np.zeros_like(bad)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        bad |= dup
    sc[bad] = -np.inf
    idx = np.where(bad, np.iinfo(np.int64).max, cand)
    order = np.lexsort((idx, -sc), axis=1)[:, :k]
    top_i = np.take_along_axis(idx, order, axis=1)
    top_s = np.take_along_axis(sc, order, axis=1)
    miss = ~np.isfinite(top_s)
    top_i[miss] = -1
    return top_i.astype(np.int64), top_s.astype(np.float32)


def exact_topk(
    queries: np.ndarray,
    keys: np.ndarray,
    k: int,
    *,
    block_size: int = 4096,
    self_rows: np.ndarray | None = None,
    device: str | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` best keys by cosine: ``(index (nq, k) int64,
    score (nq, k) float32)``, best first (ties: lower index first), -1 and
    -inf past the number of keys.  ``self_rows``: per query, its own row
    among the keys, never returned (a self-join)."""
    q = np.ascontiguousarray(queries, np.float32)
    kv = np.ascontiguousarray(keys, np.float32)
    nq, m = len(q), len(kv)
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    if q.ndim != 2 or kv.ndim != 2 or (nq and m and q.shape[1] != kv.shape[1]):
        raise InvalidInputError(f"vectors of dimension {q.shape[-1]} cannot be compared with {kv.shape[-1]}")
    out_i = np.full((nq, k), -1, np.int64)
    out_s = np.full((nq, k), -np.inf, np.float32)
    if nq == 0 or m == 0:
        return out_i, out_s
    c = min(m, k + EXTRA + (1 if self_rows is not None else 0))
    bs = max(1, int(block_size))
    gpu = device is not None and str(device).startswith("cuda")
    torch = _torch(needed=gpu)
    if gpu:
        if torch is None:
            raise InvalidInputError(f"device={device!r} needs torch")
        kt = torch.from_numpy(kv).to(device)
    for a in range(0, nq, bs):
        qb = q[a : a + bs]
        best_v = np.full((len(qb), 0), -np.inf, np.float32)
        best_i = np.zeros((len(qb), 0), np.int64)
        qt = torch.from_numpy(qb).to(device) if gpu else None
        for b in range(0, m, bs):
            if gpu:
                st = qt @ kt[b : b + bs].T
                v, i = torch.topk(st, min(c, st.shape[1]), dim=1)
                vals, cols = v.float().cpu().numpy(), i.cpu().numpy()
            else:
                s = qb @ kv[b : b + bs].T
                vals, cols = _topc(s, c, torch)
            best_v = np.concatenate([best_v, vals.astype(np.float32)], axis=1)
            best_i = np.concatenate([best_i, cols.astype(np.int64) + b], axis=1)
            if best_v.shape[1] > c:
                vv, pos = _topc(best_v, c, torch)
                best_v, best_i = vv, np.take_along_axis(best_i, pos, axis=1)
        rows = None if self_rows is None else np.asarray(self_rows[a : a + bs], np.int64)
        out_i[a : a + bs], out_s[a : a + bs] = _rank(qb, kv, best_i, k, rows)
        if progress is not None:
            progress(min(a + bs, nq), nq)
    return out_i, out_s


# ---------------------------------------------------------------- approximate


@dataclass
class AnnSettings:
    """``backend``: ``faiss`` (an IVF-Flat index: k-means lists, ``probe`` of
    ``lists`` searched) or ``usearch`` (HNSW with ``connectivity`` links per
    node and ``expansion`` candidates per search).  ``lists=0``: about
    ``4 * sqrt(n)``."""

    backend: str = "faiss"
    lists: int = 0
    probe: int = 16
    connectivity: int = 16
    expansion: int = 64
    seed: int = 0
    threads: int | None = None


def available(backend: str) -> bool:
    return importlib.util.find_spec("faiss" if backend == "faiss" else "usearch") is not None


def _faiss_candidates(x: np.ndarray, c: int, s: AnnSettings) -> np.ndarray:
    import faiss

    if s.threads:
        faiss.omp_set_num_threads(int(s.threads))
    n, d = x.shape
    lists = s.lists or int(max(1, min(n // 39, round(4 * np.sqrt(n)))))
    quant = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quant, d, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(s.seed)
    rng = np.random.default_rng(s.seed)
    sample = x if n <= 64 * lists else x[np.sort(rng.choice(n, 64 * lists, replace=False))]
    index.train(sample)
    index.add(x)
    index.nprobe = min(int(s.probe), lists)
    _, idx = index.search(x, c)
    return np.asarray(idx, np.int64)


def _usearch_candidates(x: np.ndarray, c: int, s: AnnSettings) -> np.ndarray:
    from usearch.index import Index

    n, d = x.shape
    index = Index(
        ndim=d,
        metric="ip",
        dtype="f32",
        connectivity=int(s.connectivity),
        expansion_add=max(int(s.expansion), 2 * int(s.connectivity)),
        expansion_search=int(s.expansion),
    )
    threads = int(s.threads or 0)
    index.add(np.arange(n, dtype=np.uint64), x, threads=threads)
    found: Any = index.search(x, c, threads=threads)
    keys = np.asarray(found.keys).astype(np.int64).reshape(n, -1)
    counts = np.asarray(found.counts).reshape(n)
    keys[np.arange(keys.shape[1])[None, :] >= counts[:, None]] = -1
    return keys


def self_neighbours(
    x: np.ndarray,
    k: int,
    *,
    method: str = "auto",
    exact_below: int = 50_000,
    ann: AnnSettings | None = None,
    block_size: int = 4096,
    device: str | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Each row's ``k`` nearest other rows: ``(index, score, method used)``.
    ``method``: ``exact``, ``faiss``, ``usearch``, or ``auto`` (exact below
    ``exact_below`` rows, else faiss, else usearch).  Approximate
    candidates are rescored exactly, as exact ones are."""
    if method not in ANN:
        raise InvalidInputError(f"ann must be one of {ANN}, got {method!r}")
    x = np.ascontiguousarray(x, np.float32)
    n = len(x)
    rows = np.arange(n, dtype=np.int64)
    if method == "auto":
        if n < exact_below:
            method = "exact"
        else:
            method = next((b for b in ("faiss", "usearch") if available(b)), "")
            if not method:
                raise ImportError(
                    f"semantic dedup of {n} rows needs an approximate index: pip install 'prefcurate[semantic]' "
                    "(faiss-cpu), or pass ann='exact' (quadratic time)"
                )
    if method == "exact" or n <= k + 1:
        i, s = exact_topk(x, x, k, block_size=block_size, self_rows=rows, device=device, progress=progress)
        return i, s, "exact"
    if not available(method):
        raise ImportError(f"ann={method!r} needs the {method} package: pip install 'prefcurate[semantic]'")
    settings = ann if ann is not None else AnnSettings()
    c = min(n, k + EXTRA + 1)
    cand = (_faiss_candidates if method == "faiss" else _usearch_candidates)(x, c, settings)
    out_i = np.empty((n, k), np.int64)
    out_s = np.empty((n, k), np.float32)
    step = 65536
    for a in range(0, n, step):
        out_i[a : a + step], out_s[a : a + step] = _rank(
            x[a : a + step], x, cand[a : a + step], k, rows[a : a + step]
        )
        if progress is not None:
            progress(min(a + step, n), n)
    return out_i, out_s, method
