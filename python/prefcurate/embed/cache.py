"""The embedding cache: vectors on disk keyed by (model, text hash).

``root/<model label>-<model key>/`` holds ``meta.json`` (the model's
identity) and shards ``part-*.emb``, each::

    b"PCEMB001" | u32 header length | header (JSON: n, dim) |
    n keys (16 bytes each) | n x dim float32 (little-endian) | blake2b-256 of all before

A text's key is ``blake2b(utf-8 text, key=model key, 16 bytes)``, so a
vector is reused only for the same model (name, local weights, dtype,
max length) and the same text.  Shards are written under a temporary name
and renamed, so a killed run leaves only whole shards; a shard whose
checksum, size or header does not match is removed (with a warning) and
its texts are embedded again, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import struct
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import identity_key

log = logging.getLogger("prefcurate.embed")

MAGIC = b"PCEMB001"
_DIGEST = 32


def text_keys(texts: Sequence[str], model_key: bytes) -> np.ndarray:
    """Per text, its 16-byte key as a ``(n, 2)`` uint64 array."""
    key = model_key[:64]
    buf = b"".join(hashlib.blake2b(t.encode("utf-8"), digest_size=16, key=key).digest() for t in texts)
    return np.frombuffer(buf, dtype="<u8").reshape(-1, 2).copy() if texts else np.zeros((0, 2), "<u8")


def _encode(keys: np.ndarray, vectors: np.ndarray) -> bytes:
    n, dim = vectors.shape
    header = json.dumps({"n": int(n), "dim": int(dim)}).encode()
    body = (
        MAGIC
        + struct.pack("<I", len(header))
        + header
        + np.ascontiguousarray(keys, dtype="<u8").tobytes()
        + np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    )
    return body + hashlib.blake2b(body, digest_size=_DIGEST).digest()


def _decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of a shard; ValueError when it is damaged."""
    if len(data) < len(MAGIC) + 4 + _DIGEST or data[: len(MAGIC)] != MAGIC:
        raise ValueError("not an embedding shard (bad magic or too short)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != digest:
        raise ValueError("checksum mismatch")
    (hlen,) = struct.unpack_from("<I", body, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(body[start : start + hlen])
    n, dim = int(header["n"]), int(header["dim"])
    off = start + hlen
    if len(body) != off + n * 16 + n * dim * 4:
        raise ValueError("size does not match the header")
    keys = np.frombuffer(body, dtype="<u8", count=2 * n, offset=off).reshape(n, 2)
    vectors = np.frombuffer(body, dtype="<f4", count=n * dim, offset=off + n * 16).reshape(n, dim)
    return keys, vectors


class EmbeddingCache:
    """Vectors of one model in ``root`` (see the module docstring).

    ``EmbeddingCache(root, identity)``; :meth:`lookup` the texts' keys,
    :meth:`add` new vectors, :meth:`flush` to write them as a shard."""

    def __init__(self, root: str | os.PathLike, ident: dict[str, Any]) -> None:
        self.model_key = identity_key(ident)
        label = re.sub(r"[^A-Za-z0-9._-]+", "_", str(ident.get("name", "model"))).strip("_")[-60:] or "model"
        self.dir = Path(root) / f"{label}-{self.model_key.hex()[:16]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            tmp = self.dir / f".meta-{uuid.uuid4().hex[:8]}.json"
            tmp.write_text(json.dumps(ident, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, meta)
        self._keys = np.zeros((0, 2), "<u8")
        self._vectors: np.ndarray | None = None
        self._order = np.zeros(0, np.int64)
        self._loaded = False
        self._pending_keys: list[np.ndarray] = []
        self._pending_vectors: list[np.ndarray] = []
        self.damaged: list[str] = []

    def keys(self, texts: Sequence[str]) -> np.ndarray:
        return text_keys(texts, self.model_key)

    def _load(self) -> None:
        keys: list[np.ndarray] = []
        vecs: list[np.ndarray] = []
        for f in sorted(self.dir.glob("part-*.emb")):
            try:
                k, v = _decode(f.read_bytes())
            except (OSError, ValueError, KeyError, struct.error) as e:
                log.warning("embedding cache: %s is damaged (%s); its texts will be embedded again", f, e)
                self.damaged.append(str(f))
                with contextlib.suppress(OSError):
                    f.unlink()
                continue
            if vecs and v.shape[1] != vecs[0].shape[1]:
                log.warning(
                    "embedding cache: %s has dimension %d, not %d; ignored", f, v.shape[1], vecs[0].shape[1]
                )
                continue
            keys.append(k)
            vecs.append(v)
        if keys:
            self._keys = np.concatenate(keys)
            self._vectors = np.concatenate(vecs)
            # sorted by the first 8 bytes; the second 8 are checked on lookup
            self._order = np.argsort(self._keys[:, 0], kind="stable")
        self._loaded = True

    def __len__(self) -> int:
        if not self._loaded:
            self._load()
        return len(self._keys)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, vectors of the found keys in order)."""
        if not self._loaded:
            self._load()
        n = len(keys)
        if self._vectors is None or n == 0:
            return np.zeros(n, bool), None
        hi = self._keys[self._order, 0]
        pos = np.searchsorted(hi, keys[:, 0])
        pos = np.minimum(pos, len(hi) - 1)
        cand = self._order[pos]
        found = (self._keys[cand, 0] == keys[:, 0]) & (self._keys[cand, 1] == keys[:, 1])
        return found, self._vectors[cand[found]]

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys):
            self._pending_keys.append(np.asarray(keys, "<u8"))
            self._pending_vectors.append(np.asarray(vectors, np.float32))

    @property
    def pending(self) -> int:
        return sum(len(k) for k in self._pending_keys)

    def flush(self) -> None:
        """Write the pending vectors as one shard (atomically)."""
        if not self._pending_keys:
            return
        keys = np.concatenate(self._pending_keys)
        vecs = np.concatenate(self._pending_vectors)
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.emb"
        tmp = self.dir / f".tmp-{name}"
        tmp.write_bytes(_encode(keys, vecs))
        os.replace(tmp, self.dir / name)
        self._pending_keys, self._pending_vectors = [], []
        if self._loaded:  # later lookups in this process see them
            self._keys = np.concatenate([self._keys, keys]) if len(self._keys) else keys
            self._vectors = vecs if self._vectors is None else np.concatenate([self._vectors, vecs])
            self._order = np.argsort(self._keys[:, 0], kind="stable")
