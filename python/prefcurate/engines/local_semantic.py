"""The local engine's runners of the semantic stages (to be folded into
:mod:`prefcurate.engines.local`): the whole input as one batch in this
process, then the stage's decision step."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._progress import ProgressArg, progress_callback
from .._unicode import ensure_tables
from ..embed.cache import text_keys
from ..embed.encode import EmbedStats, as_texts
from ..inputs import resolve
from ..stages import semantic as sem
from ..stages.dedup import DedupData, priority
from .local import splitter


def decontaminate(
    train: Any,
    benchmark: Any,
    config: sem.SemanticDecontaminateConfig,
    *,
    progress: ProgressArg = False,
) -> sem.SemanticDecontaminationResult:
    """Semantic decontamination of ``train`` against ``benchmark`` (any
    input the n-gram methods take, or a :class:`SemanticIndex`)."""
    ensure_tables()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    embedder = config.make_embedder()
    index = sem.semantic_index(benchmark, config, embedder)
    timings["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = resolve(train, text=config.text, what="train")
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = EmbedStats()
    with progress_callback(progress, "embed") as cb:
        vectors = sem.embed_rows(res.texts, config, embedder, res.label or "train", stats, cb)
    timings["embed"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    threshold, cal = sem.resolve_threshold(config, index.vectors, embedder, owner=index)
    timings["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with progress_callback(progress, "decontaminate (semantic)") as cb:
        if cb is not None:
            cb(0, len(vectors))
        top_i, top_s = sem.search(index, vectors, config, config.search_device())
        if cb is not None:
            cb(len(vectors), len(vectors))
    timings["scan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = sem.decide_decontamination(index, config, top_i, top_s, threshold, cal)
    timings["attribute"] = time.perf_counter() - t0
    out.timings = timings
    out.info = {"embedding": stats.as_dict()}
    out._splitter = splitter(res)
    out._table = res.table
    return out


def dedup(
    data: Any, config: sem.SemanticDedupConfig, *, progress: ProgressArg = False
) -> sem.SemanticDedupResult:
    """Semantic dedup of ``data``'s prompts (a text column, or the prompt
    of a pair table)."""
    ensure_tables()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    res = resolve(data, text=config.text, what="dedup")
    texts = as_texts(res.texts, res.label or "dedup")
    n = len(texts)
    prio = priority(DedupData(res, res.table, texts=res.texts), config.keep, config.score, config.source, n)
    exact = sem.first_rows(text_keys(texts, sem.DEDUP_KEY))
    distinct = np.flatnonzero(exact == np.arange(n))
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    embedder = config.make_embedder()
    stats = EmbedStats()
    with progress_callback(progress, "embed") as cb:
        vectors = sem.embed_rows([texts[i] for i in distinct.tolist()], config, embedder, "dedup", stats, cb)
    timings["embed"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    threshold, cal = sem.dedup_threshold(config, vectors, embedder)
    timings["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    neighbours = sem.dedup_neighbours(vectors, config, config.search_device())
    timings["search"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = (
        res.table.column("id").to_pylist()
        if res.table is not None and "id" in res.table.column_names
        else None
    )
    out = sem.decide_dedup(
        exact,
        distinct,
        vectors,
        neighbours,
        prio,
        config,
        threshold,
        cal,
        ids,
        {"embedding": stats.as_dict()},
    )
    timings["decide"] = time.perf_counter() - t0
    out.info["timings"] = timings
    out._splitter = splitter(res)
    return out
