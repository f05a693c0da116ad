"""Semantic decontamination and deduplication: embeddings instead of n-grams.

N-gram overlap misses paraphrases.  These stages compare texts by the
cosine of their embeddings (see ``docs/semantic.md``):

**Decontamination** (``method="semantic"``): every training prompt's top
``k`` benchmark items by cosine, found *exactly* (blocked matrix products,
no approximate index: the recall of a decontamination check must not depend
on an index's luck), every score recomputed in float64.  A row is
contaminated when its best cosine reaches ``threshold``.  ``matches`` holds
every top-``k`` pair at or above it; each removed row is attributed to its
best item (``benchmark_id``, ``benchmark_subset``, ``score``, the
``benchmark_text``).

**Deduplication at the prompt level**: identical prompts are exact
duplicates; the distinct ones are embedded and each gets its ``k`` nearest
neighbours (exact search below ``exact_below`` rows, else an approximate
index: faiss IVF by default), every candidate link is verified by its exact
cosine, and linked rows are clustered (union-find) and one kept per
cluster with dedup's keep policies.  Removed rows say
``semantic_duplicate`` (or ``exact_duplicate``), ``duplicate_of``,
``cluster_id`` and ``similarity`` (the cosine with the kept row).

**Thresholds** are model-specific, so ``threshold=None`` (the default)
calibrates one: the cosine that at most ``false_positive_rate`` of texts
known to be unrelated reach (:func:`calibrate_threshold`; a ``reference``
corpus, else the benchmark, or the data, against itself with each item's
``leave_out`` nearest neighbours left out).  The calibration travels with
the result so a report can show where flagged rows sit against it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
import pyarrow as pa

from ..arrays import constant_strings, from_numpy, strings
from ..config import StageConfig, in_range, is_str, optional_str, param
from ..embed.base import describe
from ..embed.calibrate import Calibration, calibrate_vectors
from ..embed.encode import EmbedStats, as_texts, embed_texts, open_cache
from ..embed.index import SemanticIndex
from ..embed.models import BACKENDS, DTYPES, as_embedder
from ..embed.search import ANN, AnnSettings, exact_topk, pair_scores, self_neighbours
from ..errors import InvalidInputError
from ..inputs import resolve
from ..schema import StageResult
from .decontaminate import DecontaminationResult
from .dedup import DedupConfig, DedupResult, Links, decide

REASON = "benchmark_semantic"
DUP_REASON = "semantic_duplicate"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: the key of the text hashes that group identical prompts in dedup
DEDUP_KEY = b"prefcurate-semantic-dedup"


def _embedder(v: Any) -> str | None:
    if isinstance(v, str) or callable(v) or (hasattr(v, "embed") and hasattr(v, "name")):
        return None
    return "a model name or folder, a callable list[str] -> array (n, d), or an Embedder"


def _threshold(v: Any) -> str | None:
    return None if v is None else in_range(-1.0, 1.0)(v)


def _rate(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
    return None if ok else "a number in (0, 1)"


def _parse_threshold(s: str) -> float | None:
    return None if s.strip().lower() in ("auto", "none", "calibrate") else float(s)


def _same_as(name: str) -> Any:
    """A field of :class:`DedupConfig`, reused as it is."""
    f = next(f for f in dataclasses.fields(DedupConfig) if f.name == name)
    return field(default=f.default, metadata=f.metadata)


@dataclass(frozen=True)
class SemanticConfig(StageConfig):
    """Settings both semantic stages share: the embedder and the threshold's
    calibration (see the module docstring)."""

    embedder: Any = param(
        DEFAULT_MODEL,
        "embedding model: a sentence-transformers name or folder, or a model2vec one (model2vec:NAME)",
        check=_embedder,
        parse=str,
        metavar="NAME_OR_PATH",
    )
    backend: str = param(
        "auto", "embedding library (auto: from the model's folder or name)", choices=BACKENDS
    )
    batch_size: int = param(
        64, "texts per forward pass of the model", check=in_range(1, 1 << 20, integer=True)
    )
    device: str = param("auto", "auto (a GPU when present, else cpu), cpu, cuda, cuda:1", check=is_str)
    dtype: str = param("auto", "model precision (auto: float16 on GPU, float32 on CPU)", choices=DTYPES)
    max_length: int | None = param(
        None,
        "tokens per text (none: the model's limit)",
        check=in_range(1, 1 << 20, integer=True, allow_none=True),
    )
    cache_dir: str | None = param(
        None, "reuse and store embeddings here, keyed by model and text", check=optional_str, metavar="DIR"
    )
    threshold: float | None = param(
        None,
        "cosine from which two texts match (none: calibrated at --false-positive-rate)",
        check=_threshold,
        parse=_parse_threshold,
    )
    false_positive_rate: float = param(
        1e-3, "calibration: share of unrelated texts allowed to reach the threshold", check=_rate, parse=float
    )
    reference: str | None = param(
        None,
        "calibration: a file of texts known to be unrelated (none: the items against themselves)",
        check=optional_str,
        metavar="FILE",
    )
    leave_out: int = param(
        10,
        "calibration without a reference: nearest neighbours left out per item",
        check=in_range(0, 1000, integer=True),
    )
    calibration_sample: int = param(
        10000, "calibration: texts sampled (0: all)", check=in_range(0, 1 << 40, integer=True)
    )
    block_size: int = param(
        4096,
        "rows per block of the exact search (memory: block^2 float32)",
        check=in_range(1, 1 << 20, integer=True),
    )

    def make_embedder(self) -> Any:
        return as_embedder(
            self.embedder,
            backend=self.backend,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )

    def search_device(self) -> str | None:
        """Where the exact search runs: a CUDA device, or None (numpy).  With
        ``device="auto"`` a GPU is looked for only when torch is loaded
        already (the embedding model brought it): a callable or a static
        embedder never pays for importing torch."""
        if self.device == "cpu":
            return None
        if self.device.startswith("cuda"):
            return self.device
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        return "cuda" if torch.cuda.is_available() else None

    def params(self) -> dict[str, Any]:
        out = self.as_dict()
        out["embedder"] = describe(self.embedder)
        out["method"] = "semantic"
        return out


@dataclass(frozen=True)
class SemanticDecontaminateConfig(SemanticConfig):
    """Semantic decontamination (``decontaminate(method="semantic")``)."""

    stage: ClassVar[str] = "decontaminate"

    k: int = param(
        5,
        "benchmark items kept per training row (the top k by cosine)",
        check=in_range(1, 1024, integer=True),
    )
    text: str | None = param(
        None, "text column of the training data (default: prompt, else a chat column)", metavar="COLUMN"
    )
    benchmark_text: str | None = param(None, "text column of the benchmark", metavar="COLUMN")
    benchmark_id: str = param("id", "benchmark column naming each item, for attribution")
    benchmark_subset: str = param("subset", "benchmark column naming each item's subset, for attribution")


@dataclass(frozen=True)
class SemanticDedupConfig(SemanticConfig):
    """Semantic deduplication at the prompt level (``dedup(method="semantic")``)."""

    stage: ClassVar[str] = "dedup"

    k: int = param(10, "neighbours per row checked for a link", check=in_range(1, 1024, integer=True))
    ann: str = param(
        "auto",
        "neighbour search: auto (exact below --exact-below rows, else faiss), exact, faiss, usearch",
        choices=ANN,
    )
    exact_below: int = param(
        50_000,
        "ann=auto: exact search below this many distinct prompts",
        check=in_range(0, 1 << 40, integer=True),
    )
    ann_lists: int = param(
        0, "faiss: inverted lists (0: about 4 sqrt(n))", check=in_range(0, 1 << 24, integer=True)
    )
    ann_probe: int = param(16, "faiss: lists searched per query", check=in_range(1, 1 << 24, integer=True))
    ann_connectivity: int = param(16, "usearch: links per node", check=in_range(2, 1024, integer=True))
    ann_expansion: int = param(64, "usearch: candidates per search", check=in_range(1, 1 << 16, integer=True))
    text: str | None = param(
        None,
        "text column of a table (default: 'prompt', else the first user turn of a chat column)",
        cli=False,
    )
    # dedup's own keep-policy fields (name, default, check and help written once)
    keep: Any = _same_as("keep")
    score: str = _same_as("score")
    source: str = _same_as("source")

    def ann_settings(self) -> AnnSettings:
        return AnnSettings(
            backend=self.ann,
            lists=self.ann_lists,
            probe=self.ann_probe,
            connectivity=self.ann_connectivity,
            expansion=self.ann_expansion,
        )

    def base_config(self) -> DedupConfig:
        """The n-gram dedup config whose decision step this stage reuses."""
        return DedupConfig(
            method="exact", keep=self.keep, score=self.score, source=self.source, text=self.text
        )


# ---------------------------------------------------------------- calibration


def calibrate_threshold(
    embedder: Any,
    benchmark: Any,
    reference: Any = None,
    false_positive_rate: float = 1e-3,
    *,
    leave_out: int = 10,
    sample: int = 10000,
    seed: int = 0,
    text: str | None = None,
    reference_text: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    block_size: int = 4096,
    device: str | None = None,
    **settings: Any,
) -> Calibration:
    """The cosine threshold at which texts known to be unrelated to
    ``benchmark`` match it at ``false_positive_rate``, with their score
    distribution (:class:`~prefcurate.embed.Calibration`: ``.threshold``,
    ``.scores``, ``.rate``).

    ``reference``: texts known to be unrelated (any input the stages take);
    their best cosine against the benchmark.  Without one, the benchmark
    against itself: each item's ``leave_out + 1``-th best cosine among the
    other items (see :mod:`prefcurate.embed.calibrate` for why, and its
    bias).  ``benchmark`` may be a :class:`SemanticIndex` (its vectors are
    used; ``embedder`` may then be None when there is no reference).
    ``sample``: texts scored at most (0: all)."""
    emb = None if embedder is None else as_embedder(embedder, **settings)
    if isinstance(benchmark, SemanticIndex):
        index = benchmark
    else:
        if emb is None:
            raise InvalidInputError("calibrate_threshold: pass an embedder to embed the benchmark")
        index = SemanticIndex.build(benchmark, emb, text=text, cache_dir=cache_dir)
    ref_vecs = None
    if reference is not None:
        if emb is None:
            raise InvalidInputError("calibrate_threshold: pass an embedder to embed the reference")
        check_embedder(index, emb)
        res = resolve(reference, text=reference_text, what="reference")
        ref_vecs = embed_texts(
            emb, as_texts(res.texts, res.label or "reference"), cache=open_cache(emb, cache_dir)
        )
    return calibrate_vectors(
        index.vectors,
        ref_vecs,
        false_positive_rate,
        leave_out=leave_out,
        sample=sample,
        seed=seed,
        block_size=block_size,
        device=device,
        embedder=index.embedder,
    )


def check_embedder(index: SemanticIndex, embedder: Any) -> None:
    name = describe(embedder)
    if index.embedder != name:
        raise InvalidInputError(
            f"the semantic index was embedded with {index.embedder!r}, but embedder {name!r} was given; "
            "texts must be embedded with the index's model"
        )


def resolve_threshold(
    config: SemanticConfig, vectors: np.ndarray, embedder: Any, *, owner: Any = None
) -> tuple[float, Calibration | None]:
    """``config.threshold``, or one calibrated on ``vectors`` (with the
    reference corpus when configured).  ``owner`` (a SemanticIndex) keeps
    calibrations for reuse."""
    if config.threshold is not None:
        return float(config.threshold), None
    key = (config.reference, config.false_positive_rate, config.leave_out, config.calibration_sample)
    memo = getattr(owner, "_calibrations", None) if owner is not None else None
    if memo is not None and key in memo:
        cal = memo[key]
        return cal.threshold, cal
    ref_vecs = None
    if config.reference is not None:
        res = resolve(config.reference, text=None, what="reference")
        ref_vecs = embed_texts(
            embedder,
            as_texts(res.texts, res.label or "reference"),
            cache=open_cache(embedder, config.cache_dir),
        )
    cal = calibrate_vectors(
        vectors,
        ref_vecs,
        config.false_positive_rate,
        leave_out=config.leave_out,
        sample=config.calibration_sample,
        block_size=config.block_size,
        device=config.search_device(),
        embedder=describe(embedder),
    )
    if owner is not None:
        if memo is None:
            memo = {}
            owner._calibrations = memo
        memo[key] = cal
    return cal.threshold, cal


# ---------------------------------------------------------------- decontamination


def dedup_threshold(
    config: SemanticDedupConfig, vectors: np.ndarray, embedder: Any
) -> tuple[float, Calibration | None]:
    """:func:`resolve_threshold` for dedup: with fewer than two distinct
    prompts there is no pair to link, and nothing to calibrate on."""
    if config.threshold is None and config.reference is None and len(vectors) < 2:
        return 1.0, None
    return resolve_threshold(config, vectors, embedder)


def semantic_index(
    benchmark: Any, config: SemanticDecontaminateConfig, embedder: Any = None
) -> SemanticIndex:
    """The benchmark's semantic index for ``config``: built, or checked
    (same embedder) when given."""
    emb = embedder if embedder is not None else config.make_embedder()
    if isinstance(benchmark, SemanticIndex):
        check_embedder(benchmark, emb)
        return benchmark
    return SemanticIndex.build(
        benchmark,
        emb,
        text=config.benchmark_text,
        id=config.benchmark_id,
        subset=config.benchmark_subset,
        cache_dir=config.cache_dir,
    )


def embed_rows(
    texts: Any,
    config: SemanticConfig,
    embedder: Any,
    what: str,
    stats: EmbedStats | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> np.ndarray:
    """The kernel that embeds one batch of rows (cache included)."""
    cache = open_cache(embedder, config.cache_dir)
    return embed_texts(embedder, as_texts(texts, what), cache=cache, stats=stats, progress=progress)


def search(
    index: SemanticIndex, vectors: np.ndarray, config: SemanticDecontaminateConfig, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The search kernel: each row's top ``k`` items, exactly."""
    if len(vectors) and vectors.shape[1] != index.dim:
        raise InvalidInputError(
            f"training vectors have dimension {vectors.shape[1]}, the index's have {index.dim}"
        )
    return exact_topk(vectors, index.vectors, config.k, block_size=config.block_size, device=device)


@dataclass
class SemanticDecontaminationResult(DecontaminationResult):
    """A :class:`DecontaminationResult` (``method="semantic"``) with what a
    semantic check adds: the ``threshold`` used and its ``calibration``
    (None when the threshold was given), and every row's ``best_score``
    (float32 cosine) and ``best_index`` (its best benchmark item), for
    plotting all rows against the calibration.  ``matches.score`` and the
    attribution's ``score`` are float32 cosines."""

    threshold: float = 0.0
    calibration: Calibration | None = None
    best_score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    best_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    embedder: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def stage_result(self) -> StageResult:
        n = len(self.contaminated)
        info = {
            "summary": self.summary().to_pylist(),
            "matches": self.matches.num_rows,
            "method": "semantic",
            "embedder": self.embedder,
            "threshold": self.threshold,
            "calibration": None if self.calibration is None else self.calibration.summary(),
            **self.info,
        }
        return StageResult(
            "decontaminate",
            self.kept,
            self.removed,
            n,
            info,
            n_kept=n - self.n_removed,
            by_reason={REASON: self.n_removed} if self.n_removed else {},
            rows_ops=self._rows_ops(),
        )

    def __repr__(self) -> str:
        return (
            f"SemanticDecontaminationResult(rows={len(self.contaminated)}, removed={self.n_removed}, "
            f"threshold={self.threshold:.4f}, matches={self.matches.num_rows}, embedder={self.embedder!r})"
        )


def decide_decontamination(
    index: SemanticIndex,
    config: SemanticDecontaminateConfig,
    top_index: np.ndarray,
    top_score: np.ndarray,
    threshold: float,
    calibration: Calibration | None = None,
) -> SemanticDecontaminationResult:
    """The decision step (the same on every engine): flags, the matches
    table and the attribution of each removed row, from every row's top-k."""
    n = len(top_index)
    thr = np.float32(threshold)
    k = max(1, np.asarray(top_index).shape[-1]) if np.asarray(top_index).ndim == 2 else 1
    top_index = np.asarray(top_index, np.int64).reshape(n, k)
    top_score = np.asarray(top_score, np.float32).reshape(n, k)
    hit = (top_score >= thr) & (top_index >= 0)
    t, pos = np.nonzero(hit)
    b = top_index[t, pos]
    s = top_score[t, pos]
    order = np.lexsort((b, t))
    t, b, s = t[order].astype(np.int64), b[order], s[order]
    ids, subsets, texts = strings(index.ids), strings(index.subsets), strings(index.texts)
    b_arr = from_numpy(b)
    matches = pa.Table.from_pydict(
        {
            "train_index": from_numpy(t),
            "benchmark_index": b_arr,
            "score": from_numpy(s),
            "benchmark_id": ids.take(b_arr),
            "benchmark_subset": subsets.take(b_arr),
        }
    )
    best_s = top_score[:, 0] if n and top_score.shape[1] else np.full(n, -np.inf, np.float32)
    best_i = top_index[:, 0] if n and top_index.shape[1] else np.full(n, -1, np.int64)
    contaminated: np.ndarray = np.asarray(hit.any(axis=1), bool) if n else np.zeros(0, bool)
    rows = np.flatnonzero(contaminated).astype(np.int64)
    best_arr = from_numpy(best_i[rows])
    attribution = pa.Table.from_pydict(
        {
            "stage": constant_strings("decontaminate", len(rows)),
            "reason": constant_strings(REASON, len(rows)),
            "train_index": from_numpy(rows),
            "benchmark_index": best_arr,
            "benchmark_id": ids.take(best_arr),
            "benchmark_subset": subsets.take(best_arr),
            "score": from_numpy(best_s[rows].astype(np.float32)),
            "n_benchmark_matches": from_numpy(hit[rows].sum(axis=1).astype(np.int64)),
            "benchmark_text": texts.take(best_arr),
        }
    )
    return SemanticDecontaminationResult(
        contaminated=contaminated,
        matches=matches,
        method="semantic",
        index=cast(Any, index),
        attribution=attribution,
        threshold=float(threshold),
        calibration=calibration,
        best_score=best_s.astype(np.float32),
        best_index=best_i.astype(np.int64),
        embedder=index.embedder,
    )


# ---------------------------------------------------------------- dedup


def first_rows(keys: np.ndarray) -> np.ndarray:
    """Per row, the first row with the same key (``keys``: ``(n, 2)`` uint64
    text hashes, or any 1-d array)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64)
    k = np.ascontiguousarray(keys).reshape(n, -1)
    _, first, inverse = np.unique(k, axis=0, return_index=True, return_inverse=True)
    return first[np.asarray(inverse).reshape(-1)].astype(np.int64)


@dataclass
class SemanticDedupResult(DedupResult):
    """A :class:`DedupResult` of semantic dedup: ``similarity`` is the
    cosine with the kept row, ``links`` has columns ``i``, ``j``,
    ``cosine``; plus the ``threshold`` used and its ``calibration``."""

    threshold: float = 0.0
    calibration: Calibration | None = None

    def __repr__(self) -> str:
        return (
            f"SemanticDedupResult(rows={len(self.reason)}, removed={self.n_removed}, threshold={self.threshold:.4f}, "
            f"by_reason={self.summary()['by_reason']})"
        )


def dedup_neighbours(
    vectors: np.ndarray, config: SemanticDedupConfig, device: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The neighbour kernel: each distinct prompt's ``k`` nearest others."""
    return self_neighbours(
        vectors,
        config.k,
        method=config.ann,
        exact_below=config.exact_below,
        ann=config.ann_settings(),
        block_size=config.block_size,
        device=device,
    )


def decide_dedup(
    exact: np.ndarray,
    distinct: np.ndarray,
    vectors: np.ndarray,
    neighbours: tuple[np.ndarray, np.ndarray, str],
    prio: np.ndarray,
    config: SemanticDedupConfig,
    threshold: float,
    calibration: Calibration | None = None,
    ids: list | None = None,
    info: dict[str, Any] | None = None,
) -> SemanticDedupResult:
    """The decision step (the same on every engine).  ``exact``: per row,
    the first row with the same text; ``distinct``: those first rows, whose
    unit ``vectors`` (in that order) were searched; ``neighbours``: the
    search's (index, score, method) among them.  Links are the neighbour
    pairs at or above ``threshold``; dedup's decision step clusters them."""
    nb_i, nb_s, method = neighbours
    thr = np.float32(threshold)
    d = len(distinct)
    a = np.repeat(np.arange(d, dtype=np.int64), nb_i.shape[1] if d else 0)
    b = nb_i.reshape(-1)
    s = nb_s.reshape(-1)
    ok = (b >= 0) & (s >= thr)
    a, b = a[ok], b[ok]
    lo, hi = distinct[np.minimum(a, b)], distinct[np.maximum(a, b)]
    pair = np.unique(lo.astype(np.uint64) << np.uint64(32) | hi.astype(np.uint64))
    ni = (pair >> np.uint64(32)).astype(np.int64)
    nj = (pair & np.uint64(0xFFFFFFFF)).astype(np.int64)
    where = np.full(len(exact), -1, np.int64)
    where[distinct] = np.arange(d)

    def cosine(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return pair_scores(vectors[where[exact[i]]], vectors[where[exact[j]]])

    nv = cosine(ni, nj)
    links = Links(exact=np.asarray(exact, np.int64), jaccard=cosine, near=(ni, nj, nv))
    links.info = {"candidates": int(nb_i.size), "search": method, **(info or {})}
    base = decide(links, prio, config.base_config(), ids=ids)
    reason = base.reason.copy()
    reason[reason == "near_duplicate"] = DUP_REASON
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    values["reason"] = reason
    values["params"] = config.params()
    values["info"] = {
        **base.info,
        "threshold": float(threshold),
        "calibration": None if calibration is None else calibration.summary(),
    }
    values["links"] = pa.Table.from_pydict(
        {"i": from_numpy(ni), "j": from_numpy(nj), "cosine": from_numpy(nv.astype(np.float64))}
    )
    if "semantic_duplicate" in values["info"]:
        del values["info"]["semantic_duplicate"]
    return SemanticDedupResult(**values, threshold=float(threshold), calibration=calibration)
