"""The semantic stages on Ray: texts are embedded in an actor pool (one
actor per GPU with ``num_gpus=1``, else CPU actors), each holding its own
copy of the model; for decontamination the actors also run the exact top-k
search of their batch against the benchmark's vectors (shared through the
object store); the driver runs the stage's decision step, so the result
equals the local engine's.

Decontamination brings back ``k`` (index, score) per row; dedup brings back
each row's text hash, keep priority, id and vector (the neighbour search
needs them all in one place: the driver holds ``distinct prompts x dim``
float32)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from ..._unicode import ensure_tables
from ...embed.base import describe
from ...embed.cache import text_keys
from ...embed.index import SemanticIndex
from ...errors import InvalidInputError
from ...inputs import optional_column, resolve
from ...stages import semantic as sem
from ...stages.dedup import DedupData, priority
from .common import ROW, _collect, _get_cached, _hook, _numbered, _opts, _ray, _rows_named, _strip, splitter


class _EmbedActor:
    """One embedding model per actor.  ``mode``: ``embed`` (vectors),
    ``search`` (each row's top k against the index), ``dedup`` (vectors,
    text hashes, keep priorities, ids)."""

    def __init__(
        self,
        config: sem.SemanticConfig,
        device: str,
        mode: str,
        index: list[Any],
        text: str | None,
        hook: Any,
    ) -> None:
        ensure_tables()
        self.config = config.replace(device=device)
        self.embedder = self.config.make_embedder()
        self.device = self.config.search_device()
        self.mode = mode
        self.index_ref = index
        self.text = text
        self.hook = hook

    def __call__(self, batch: pa.Table) -> pa.Table:
        _hook(self.hook, f"semantic.{self.mode}", batch)
        table, rows = _strip(batch)
        cfg = self.config
        with _rows_named(rows):
            res = resolve(table, text=self.text, what="train" if self.mode == "search" else "dedup")
            texts = res.texts.to_pylist() if hasattr(res.texts, "to_pylist") else list(res.texts)
            vecs = sem.embed_rows(texts, cfg, self.embedder, res.label or "rows")
        row_col = pa.array(rows, pa.int64())
        if self.mode == "search":
            assert isinstance(cfg, sem.SemanticDecontaminateConfig)
            index = _get_cached(self.index_ref[0])
            top_i, top_s = sem.search(index, vecs, cfg, self.device)
            k = top_i.shape[1]
            return pa.table(
                {
                    ROW: row_col,
                    "top_index": pa.FixedSizeListArray.from_arrays(pa.array(top_i.reshape(-1)), k),
                    "top_score": pa.FixedSizeListArray.from_arrays(pa.array(top_s.reshape(-1)), k),
                }
            )
        dim = vecs.shape[1] if vecs.ndim == 2 else 0
        cols: dict[str, Any] = {
            ROW: row_col,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), dim),
        }
        if self.mode == "dedup":
            assert isinstance(cfg, sem.SemanticDedupConfig)
            keys = text_keys(texts, sem.DEDUP_KEY)
            with _rows_named(rows):
                prio = priority(
                    DedupData(res, table, texts=res.texts), cfg.keep, cfg.score, cfg.source, len(rows)
                )
            cols["key0"] = pa.array(keys[:, 0], pa.uint64())
            cols["key1"] = pa.array(keys[:, 1], pa.uint64())
            cols["prio"] = pa.array(np.asarray(prio, np.float64))
            cols["id"] = (
                table.column("id").cast(pa.string())
                if "id" in table.column_names
                else pa.nulls(len(rows), pa.string())
            )
        return pa.table(cols)


def _pool(config: sem.SemanticConfig, o: Any) -> tuple[dict[str, Any], str, int]:
    """(resources per actor, device, actors): one per GPU when the cluster
    has GPUs and the config does not ask for cpu, else CPU actors."""
    ray = _ray()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus and config.device != "cpu":
        return {"num_gpus": 1}, "cuda" if config.device == "auto" else config.device, o.concurrency or gpus
    return {"num_cpus": o.num_cpus}, "cpu", o.concurrency or 1


def _run(
    nd: Any,
    columns: list[str] | None,
    config: sem.SemanticConfig,
    mode: str,
    o: Any,
    index: list[Any],
    text: str | None,
) -> pa.Table:
    resources, device, actors = _pool(config, o)
    ds = nd.dataset(columns).map_batches(
        _EmbedActor,
        fn_constructor_kwargs={
            "config": config,
            "device": device,
            "mode": mode,
            "index": index,
            "text": text,
            "hook": o.batch_hook,
        },
        batch_format="pyarrow",
        batch_size=o.batch_size,
        concurrency=actors,
        **resources,
    )
    out = _collect(ds, _schema(ds, mode))
    rows = out.column(ROW).to_numpy()
    return out.take(pa.array(np.argsort(rows, kind="stable")))


def _schema(ds: Any, mode: str) -> pa.Schema:
    # an empty input gives no batch: the schema of what the actors return
    base = [(ROW, pa.int64())]
    if mode == "search":
        return pa.schema([*base, ("top_index", pa.list_(pa.int64())), ("top_score", pa.list_(pa.float32()))])
    fields = [*base, ("vector", pa.list_(pa.float32()))]
    if mode == "dedup":
        fields += [("key0", pa.uint64()), ("key1", pa.uint64()), ("prio", pa.float64()), ("id", pa.string())]
    return pa.schema(fields)


def _matrix(col: pa.ChunkedArray, n: int) -> np.ndarray:
    arr = col.combine_chunks()
    if n == 0:
        return np.zeros((0, 0))
    if isinstance(arr, pa.FixedSizeListArray):
        return arr.flatten().to_numpy().reshape(n, arr.type.list_size)
    values = arr.flatten().to_numpy()
    return values.reshape(n, len(values) // n)


def _index(benchmark: Any, config: sem.SemanticDecontaminateConfig, o: Any) -> SemanticIndex:
    """The benchmark's semantic index, its texts embedded by the actors."""
    if isinstance(benchmark, SemanticIndex):
        sem.check_embedder(benchmark, config.make_embedder())
        return benchmark
    res = resolve(benchmark, text=config.benchmark_text, what="benchmark")
    texts = res.texts.to_pylist() if hasattr(res.texts, "to_pylist") else list(res.texts)
    n = len(texts)
    if n == 0:
        raise InvalidInputError("benchmark: it has no rows; there is nothing to decontaminate against")
    nb = _numbered(pa.table({"text": pa.array(texts, pa.large_string())}), o, text="text", what="benchmark")
    got = _run(nb, None, config, "embed", o, [], "text")
    vecs = _matrix(got.column("vector"), n).astype(np.float32)
    ids = optional_column(res.table, config.benchmark_id, n, "{i}")
    subsets = optional_column(res.table, config.benchmark_subset, n, "")
    src = str(benchmark) if isinstance(benchmark, str) else type(benchmark).__name__
    return SemanticIndex(vecs, ids, subsets, texts, describe(config.make_embedder()), src)


def decontaminate(
    train: Any, benchmark: Any, config: sem.SemanticDecontaminateConfig, *, options: Any = None
) -> sem.SemanticDecontaminationResult:
    """Semantic decontamination on Ray (see the module docstring)."""
    o = _opts(options)
    ensure_tables()
    ray = _ray()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    index = _index(benchmark, config, o)
    timings["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nd = _numbered(train, o, text=config.text, what="train")
    probe = resolve(nd.schema.empty_table(), text=nd.text, what="train")  # a missing column fails here
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    threshold, cal = sem.resolve_threshold(config, index.vectors, config.make_embedder(), owner=index)
    timings["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cols = [probe.column] if probe.column else None
    got = _run(nd, cols, config, "search", o, [ray.put(index)], nd.text)
    n = nd.n
    top_i = _matrix(got.column("top_index"), n).astype(np.int64).reshape(n, -1)
    top_s = _matrix(got.column("top_score"), n).astype(np.float32).reshape(n, -1)
    timings["scan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = sem.decide_decontamination(index, config, top_i, top_s, threshold, cal)
    timings["attribute"] = time.perf_counter() - t0
    out.timings = timings
    out._splitter = splitter(nd, o, "decontaminate")
    return out


def dedup(data: Any, config: sem.SemanticDedupConfig, *, options: Any = None) -> sem.SemanticDedupResult:
    """Semantic dedup on Ray (see the module docstring)."""
    o = _opts(options)
    ensure_tables()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    nd = _numbered(data, o, text=config.text, what="dedup")
    probe = resolve(nd.schema.empty_table(), text=nd.text, what="dedup")
    priority(DedupData(probe, probe.table, texts=probe.texts), config.keep, config.score, config.source, 0)
    cols = [c for c in (probe.column, "id", config.score, config.source) if c and c in nd.schema.names]
    got = _run(nd, cols or None, config, "dedup", o, [], nd.text)
    n = nd.n
    timings["embed"] = time.perf_counter() - t0
    keys = (
        np.stack([got.column("key0").to_numpy(), got.column("key1").to_numpy()], axis=1)
        if n
        else np.zeros((0, 2))
    )
    exact = sem.first_rows(keys)
    distinct = np.flatnonzero(exact == np.arange(n))
    vectors = (
        _matrix(got.column("vector"), n).astype(np.float32)[distinct] if n else np.zeros((0, 0), np.float32)
    )
    prio = got.column("prio").to_numpy()
    ids = got.column("id").to_pylist() if "id" in nd.schema.names else None
    t0 = time.perf_counter()
    threshold, cal = sem.dedup_threshold(config, vectors, config.make_embedder())
    timings["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    neighbours = sem.dedup_neighbours(vectors, config, config.search_device())
    timings["search"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = sem.decide_dedup(exact, distinct, vectors, neighbours, prio, config, threshold, cal, ids)
    timings["decide"] = time.perf_counter() - t0
    out.info["timings"] = timings
    out._splitter = splitter(nd, o, "dedup")
    return out
