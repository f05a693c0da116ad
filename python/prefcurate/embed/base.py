"""Embedders: anything that turns a list of texts into one vector per text.

:func:`as_embedder` accepts

* a callable ``list[str] -> array (n, d)`` (wrapped in :class:`CallableEmbedder`);
* an object with ``name``, ``dim`` and ``embed(texts)`` (used as it is);
* a string: a sentence-transformers model name or folder, or a model2vec
  static model (a folder whose ``config.json`` says ``model2vec``, a
  ``model2vec:NAME`` string, or ``backend="model2vec"``): the classes of
  :mod:`prefcurate.embed.models`.

Nothing here imports torch, sentence-transformers or model2vec: the model
classes import them when a model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInputError

BACKENDS = ("auto", "sentence-transformers", "model2vec")
DTYPES = ("auto", "float32", "float16", "bfloat16")
#: prefixes that pick a backend in a model string
PREFIXES = {
    "model2vec:": "model2vec",
    "sentence-transformers:": "sentence-transformers",
    "st:": "sentence-transformers",
}
#: Hub organisations whose models are model2vec static models
MODEL2VEC_ORGS = ("minishlab/",)


@runtime_checkable
class Embedder(Protocol):
    """What the semantic stages need from a model: a ``name`` (recorded in
    results and indexes; with :attr:`identity`, the key of cached
    embeddings), the vectors' dimension ``dim`` (None until known), and
    ``embed(texts) -> array (len(texts), dim)``."""

    name: str

    @property
    def dim(self) -> int | None: ...

    def embed(self, texts: Sequence[str]) -> Any: ...


def identity(embedder: Any) -> dict[str, Any] | None:
    """What the cache key of an embedder's vectors covers (None: do not
    cache: an unnamed callable)."""
    ident = getattr(embedder, "identity", None)
    if callable(ident):
        ident = ident()
    if ident is None and isinstance(embedder, CallableEmbedder):
        return None
    if ident is None:
        ident = {"kind": type(embedder).__qualname__, "name": str(embedder.name)}
    return dict(ident)


def identity_key(ident: dict[str, Any]) -> bytes:
    """A 32-byte key for an identity (the cache's model key)."""
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(blob, digest_size=32).digest()


class CallableEmbedder:
    """A function ``list[str] -> array (n, d)`` as an embedder.

    ``name`` names it in results; give one (the model and its version) to
    let the disk cache hold its vectors: an unnamed function's vectors are
    never cached, since two functions cannot be told apart by their names."""

    def __init__(self, fn: Callable[[list[str]], Any], name: str | None = None, dim: int | None = None):
        if not callable(fn):
            raise InvalidInputError(f"embedder: expected a callable, got {type(fn).__name__}")
        self.fn = fn
        self.named = name is not None
        self.name = name if name is not None else f"callable:{getattr(fn, '__qualname__', type(fn).__name__)}"
        self._dim = dim

    @property
    def dim(self) -> int | None:
        return self._dim

    def identity(self) -> dict[str, Any] | None:
        return {"kind": "callable", "name": self.name} if self.named else None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = as_matrix(self.fn(list(texts)), len(texts), self.name)
        self._dim = out.shape[1]
        return out

    def __repr__(self) -> str:
        return f"CallableEmbedder({self.name!r})"


def as_matrix(out: Any, n: int, name: str) -> np.ndarray:
    """An embedder's output as a float32 ``(n, d)`` array, checked."""
    if hasattr(out, "detach"):  # a torch tensor (no torch import)
        out = out.detach().float().cpu().numpy()
    try:
        arr = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(
            f"embedder {name!r} returned {type(out).__name__}, not an array: {e}"
        ) from None
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
        raise InvalidInputError(
            f"embedder {name!r} returned an array of shape {arr.shape} for {n} texts; expected ({n}, dim)"
        )
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InvalidInputError(f"embedder {name!r} returned a non-finite vector (text {row} of its batch)")
    return arr


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    out = x / np.where(norms > 0, norms, 1.0).astype(np.float32)
    return np.ascontiguousarray(out, dtype=np.float32)


def describe(embedder: Any) -> str:
    """How a result names an embedder given in any form."""
    if isinstance(embedder, (str, Path)):
        return str(embedder)
    return str(getattr(embedder, "name", getattr(embedder, "__qualname__", type(embedder).__name__)))


def fingerprint(path: Path) -> str:
    """A fingerprint of a local model folder: the small files' contents and
    the large files' sizes with their first and last MiB (a changed weight
    file changes it; no full read of gigabytes)."""
    h = hashlib.blake2b(digest_size=16)
    files = sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
    for f in files:
        rel = f.relative_to(path).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with f.open("rb") as fh:
            if size <= 4 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), 2)
                h.update(fh.read(1 << 20))
    return h.hexdigest()
