"""Texts to unit vectors: each distinct text embedded once, in chunks, the
vectors of texts seen before read from the disk cache."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .base import as_matrix, identity, normalize
from .cache import EmbeddingCache

#: texts per embedder call (the embedder batches further inside)
CHUNK = 4096
#: vectors held before a cache shard is written
FLUSH = 65536


@dataclass
class EmbedStats:
    """What :func:`embed_texts` did: rows, distinct texts, texts read from
    the cache, texts embedded, damaged cache shards recomputed."""

    rows: int = 0
    distinct: int = 0
    cached: int = 0
    embedded: int = 0
    damaged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "distinct": self.distinct,
            "cached": self.cached,
            "embedded": self.embedded,
            "damaged_cache_files": len(self.damaged),
        }


def as_texts(texts: Any, what: str) -> list[str]:
    """A resolved text column (Arrow or a list) as a list of str; a null or
    non-str row is an error naming it."""
    out = texts.to_pylist() if hasattr(texts, "to_pylist") else list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            kind = "null" if t is None else type(t).__name__
            raise InvalidInputError(f"{what}: row {i} is {kind}, not a str")
    return out


def open_cache(embedder: Any, cache_dir: str | os.PathLike | None) -> EmbeddingCache | None:
    if cache_dir is None:
        return None
    ident = identity(embedder)
    return None if ident is None else EmbeddingCache(cache_dir, ident)


def embed_texts(
    embedder: Any,
    texts: Sequence[str],
    *,
    cache: EmbeddingCache | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int, int], Any] | None = None,
    stats: EmbedStats | None = None,
) -> np.ndarray:
    """Unit vectors (float32, ``(len(texts), d)``) of ``texts``."""
    st = stats if stats is not None else EmbedStats()
    n = len(texts)
    st.rows += n
    first: dict[str, int] = {}
    inverse = np.empty(n, np.int64)
    for i, t in enumerate(texts):
        inverse[i] = first.setdefault(t, len(first))
    uniq = list(first)
    st.distinct += len(uniq)
    vecs: np.ndarray | None = None
    todo = np.arange(len(uniq))
    keys = None
    if cache is not None and uniq:
        keys = cache.keys(uniq)
        found, got = cache.lookup(keys)
        st.damaged.extend(cache.damaged)
        if got is not None and len(got):
            vecs = np.empty((len(uniq), got.shape[1]), np.float32)
            vecs[found] = got
            st.cached += int(found.sum())
        todo = np.flatnonzero(~found)
    done = len(uniq) - len(todo)
    if progress is not None:
        progress(done, len(uniq))
    name = str(getattr(embedder, "name", "embedder"))
    for a in range(0, len(todo), max(1, chunk)):
        part = todo[a : a + chunk]
        out = normalize(as_matrix(embedder.embed([uniq[i] for i in part.tolist()]), len(part), name))
        if vecs is None:
            vecs = np.empty((len(uniq), out.shape[1]), np.float32)
        elif out.shape[1] != vecs.shape[1]:
            raise InvalidInputError(
                f"embedder {name!r} returned vectors of dimension {out.shape[1]}, earlier (or cached) "
                f"ones have {vecs.shape[1]}"
            )
        vecs[part] = out
        st.embedded += len(part)
        if cache is not None and keys is not None:
            cache.add(keys[part], out)
            if cache.pending >= FLUSH:
                cache.flush()
        done += len(part)
        if progress is not None:
            progress(done, len(uniq))
    if cache is not None:
        cache.flush()
    if vecs is None:  # no text at all
        dim = getattr(embedder, "dim", None)
        return np.zeros((0, int(dim) if isinstance(dim, int) else 0), np.float32)
    return vecs[inverse]
