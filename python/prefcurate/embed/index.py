"""The semantic benchmark index: the benchmark's unit vectors with its
ids, subsets, texts and the embedder's name; saved to a file with a
checksum, loaded, pickled (Ray ships it through the object store).

File layout::

    b"PCSEMIX1" | u32 header length | header (JSON: version, embedder,
    source, n, dim, ids, subsets, texts) | n x dim float32 (little-endian) |
    blake2b-256 of all before
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexFileError, InvalidInputError
from ..inputs import optional_column, resolve
from .base import describe
from .encode import EmbedStats, as_texts, embed_texts, open_cache
from .models import as_embedder

MAGIC = b"PCSEMIX1"
VERSION = 1
_DIGEST = 32


class SemanticIndex:
    """Benchmark items as unit vectors, for semantic decontamination.

    Build it with :meth:`build` (or :func:`prefcurate.stages.semantic.semantic_index`),
    reuse it for any number of training sets, ``save`` / ``load`` it.
    ``vectors``: float32 ``(n, dim)``, L2-normalised; ``ids``, ``subsets``,
    ``texts``: one str per item; ``embedder``: the name of the model that
    made the vectors (a training set must be embedded with the same one)."""

    #: recognised by prefcurate.inputs.resolve (its texts) without importing this module
    is_benchmark_index = True

    def __init__(
        self,
        vectors: np.ndarray,
        ids: list[str],
        subsets: list[str],
        texts: list[str],
        embedder: str,
        source: str = "",
    ) -> None:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        n = len(texts)
        if v.ndim != 2 or len(v) != n or len(ids) != n or len(subsets) != n:
            raise InvalidInputError(
                f"SemanticIndex: {v.shape} vectors for {n} texts, {len(ids)} ids, {len(subsets)} subsets"
            )
        if n == 0:
            raise InvalidInputError("benchmark: it has no rows; there is nothing to decontaminate against")
        self.vectors = v
        self.ids = list(map(str, ids))
        self.subsets = list(map(str, subsets))
        self.texts = list(texts)
        self.embedder = str(embedder)
        self.source = source
        self.stats: dict[str, Any] = {}

    @classmethod
    def build(
        cls,
        benchmark: Any,
        embedder: Any,
        *,
        text: str | None = None,
        id: str = "id",
        subset: str = "subset",
        cache_dir: str | os.PathLike | None = None,
        progress: Any = None,
        **settings: Any,
    ) -> SemanticIndex:
        """Embed ``benchmark`` (a path, list of str, table, Dataset, polars
        frame) with ``embedder`` (anything
        :func:`prefcurate.embed.as_embedder` takes; ``settings``: its
        ``backend``, ``device``, ``dtype``, ``batch_size``, ``max_length``)."""
        emb = as_embedder(embedder, **settings)
        res = resolve(benchmark, text=text, what="benchmark")
        texts = as_texts(res.texts, res.label or "benchmark")
        if not texts:
            raise InvalidInputError("benchmark: it has no rows; there is nothing to decontaminate against")
        n = len(texts)
        stats = EmbedStats()
        vecs = embed_texts(emb, texts, cache=open_cache(emb, cache_dir), progress=progress, stats=stats)
        src = str(benchmark) if isinstance(benchmark, (str, os.PathLike)) else type(benchmark).__name__
        out = cls(
            vecs,
            optional_column(res.table, id, n, "{i}"),
            optional_column(res.table, subset, n, ""),
            texts,
            describe(emb),
            src,
        )
        out.stats = stats.as_dict()
        return out

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    # -- files

    def _header(self) -> bytes:
        return json.dumps(
            {
                "version": VERSION,
                "embedder": self.embedder,
                "source": self.source,
                "n": len(self),
                "dim": self.dim,
                "ids": self.ids,
                "subsets": self.subsets,
                "texts": self.texts,
            },
            ensure_ascii=False,
        ).encode("utf-8")

    def to_bytes(self) -> bytes:
        header = self._header()
        body = MAGIC + struct.pack("<I", len(header)) + header + self.vectors.astype("<f4").tobytes()
        return body + hashlib.blake2b(body, digest_size=_DIGEST).digest()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "semantic index") -> SemanticIndex:
        if len(data) < len(MAGIC) + 4 + _DIGEST or data[: len(MAGIC)] != MAGIC:
            raise IndexFileError(f"{where}: not a prefcurate semantic index (bad magic or too short)")
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.blake2b(body, digest_size=_DIGEST).digest() != digest:
            raise IndexFileError(f"{where}: checksum mismatch (the file is damaged or truncated); rebuild it")
        (hlen,) = struct.unpack_from("<I", body, len(MAGIC))
        start = len(MAGIC) + 4
        try:
            h = json.loads(body[start : start + hlen].decode("utf-8"))
            version, n, dim = int(h["version"]), int(h["n"]), int(h["dim"])
        except (ValueError, KeyError, TypeError) as e:
            raise IndexFileError(f"{where}: unreadable header ({e})") from None
        if version != VERSION:
            raise IndexFileError(f"{where}: format version {version}, this prefcurate reads {VERSION}")
        off = start + hlen
        if len(body) - off != n * dim * 4:
            raise IndexFileError(f"{where}: {len(body) - off} bytes of vectors for {n} x {dim}")
        vecs = np.frombuffer(body, dtype="<f4", count=n * dim, offset=off).reshape(n, dim)
        return cls(
            vecs.astype(np.float32), h["ids"], h["subsets"], h["texts"], h["embedder"], h.get("source", "")
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` (atomically)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(self.to_bytes())
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SemanticIndex:
        """Read an index written by :meth:`save` (:class:`IndexFileError`
        when the file is damaged or not one)."""
        data = Path(path).read_bytes()
        return cls.from_bytes(data, os.fspath(path))

    def __reduce__(self) -> Any:
        return (_rebuild, (self.vectors, self.ids, self.subsets, self.texts, self.embedder, self.source))

    def __repr__(self) -> str:
        return f"SemanticIndex({len(self)} items from {self.source or '?'}, embedder={self.embedder!r}, dim={self.dim})"


def _rebuild(
    vectors: np.ndarray, ids: list, subsets: list, texts: list, embedder: str, source: str
) -> SemanticIndex:
    return SemanticIndex(vectors, ids, subsets, texts, embedder, source)
