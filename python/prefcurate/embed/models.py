"""Embedding models by name: sentence-transformers (GPU when present,
half precision there) and model2vec static models (fast on CPU).

The model is loaded on the first call that needs it, not when the embedder
is made, and is left out when the embedder is pickled: a Ray actor that
receives one loads its own copy on its own device."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import hub
from ..errors import InvalidInputError
from .base import BACKENDS, DTYPES, MODEL2VEC_ORGS, PREFIXES, CallableEmbedder, as_matrix, fingerprint

_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


def _missing(package: str, e: ImportError) -> ImportError:
    return ImportError(f"this embedder needs {package}: pip install 'prefcurate[semantic]' ({e})")


def _local(model: str) -> Path | None:
    p = Path(model).expanduser()
    return p.resolve() if p.exists() else None


class _Lazy:
    """Shared by the model embedders: the name, the local folder's
    fingerprint, lazy loading, pickling without the model."""

    kind = ""

    def __init__(self, model: str, batch_size: int, max_length: int | None) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidInputError(f"embedder: expected a model name or folder, got {model!r}")
        if batch_size < 1:
            raise InvalidInputError(f"embedder: batch_size must be at least 1, got {batch_size}")
        self.model = model
        path = _local(model)
        self.path = path
        self.name = str(path) if path is not None else model
        self.batch_size = int(batch_size)
        self.max_length = max_length
        self._fingerprint: str | None = None
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None
        return state

    def fingerprint(self) -> str | None:
        """Of the local folder (None for a Hub name: the name is the identity)."""
        if self.path is None:
            return None
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.path) if self.path.is_dir() else None
        return self._fingerprint

    def _check_reachable(self) -> None:
        if self.path is None:
            hub.check(self.model, "embedding model")


class SentenceTransformerEmbedder(_Lazy):
    """A sentence-transformers model (a Hub name or a local folder; a plain
    transformers encoder folder gets mean pooling).  ``device``: ``auto``
    (the first GPU when there is one, else cpu), ``cpu``, ``cuda``,
    ``cuda:1``...  ``dtype``: ``auto`` (float16 on GPU, float32 on CPU),
    ``float32``, ``float16`` or ``bfloat16``.  ``batch_size``: texts per
    forward pass (the library sorts them by length first).  ``max_length``:
    tokens per text (default: the model's)."""

    kind = "sentence-transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
    ) -> None:
        super().__init__(model, batch_size, max_length)
        dtype = _DTYPE_ALIASES.get(dtype, dtype)
        if dtype not in DTYPES:
            raise InvalidInputError(f"embedder dtype must be one of {DTYPES}, got {dtype!r}")
        self.device = device
        self.dtype = dtype

    def _torch(self) -> Any:
        try:
            import torch
        except ImportError as e:
            raise _missing("torch and sentence-transformers", e) from None
        return torch

    def resolved(self) -> tuple[str, str]:
        """(device, dtype) this embedder runs with."""
        torch = self._torch()
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self.dtype
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        return device, dtype

    def identity(self) -> dict[str, Any]:
        _, dtype = self.resolved()
        return {
            "kind": self.kind,
            "name": self.name,
            "fingerprint": self.fingerprint(),
            "dtype": dtype,
            "max_length": self.max_length,
        }

    def load(self) -> Any:
        if self._model is None:
            self._check_reachable()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise _missing("sentence-transformers", e) from None
            device, dtype = self.resolved()
            m = SentenceTransformer(self.name, device=device, local_files_only=self.path is not None)
            if dtype != "float32":
                m = m.to(getattr(self._torch(), dtype))
            if self.max_length is not None:
                m.max_seq_length = int(self.max_length)
            m.eval()
            self._model = m
        return self._model

    @property
    def dim(self) -> int:
        m = self.load()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        m = self.load()
        out = m.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return as_matrix(np.asarray(out, dtype=np.float32), len(texts), self.name)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, device={self.device!r}, dtype={self.dtype!r})"


class Model2VecEmbedder(_Lazy):
    """A model2vec static model (a Hub name such as ``minishlab/potion-base-8M``
    or a local folder): token vectors averaged, no neural network, fast on CPU."""

    kind = "model2vec"

    def __init__(self, model: str, *, batch_size: int = 1024, max_length: int | None = None) -> None:
        super().__init__(model, batch_size, max_length)

    def identity(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "fingerprint": self.fingerprint(),
            "max_length": self.max_length,
        }

    def load(self) -> Any:
        if self._model is None:
            self._check_reachable()
            try:
                from model2vec import StaticModel
            except ImportError as e:
                raise _missing("model2vec", e) from None
            kw: dict[str, Any] = {}
            if "force_download" in inspect.signature(StaticModel.from_pretrained).parameters:
                kw["force_download"] = False  # use the local cache (its default re-downloads)
            self._model = StaticModel.from_pretrained(os.fspath(self.name), **kw)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.load().dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        m = self.load()
        kw: dict[str, Any] = {}
        if self.max_length is not None:
            kw["max_length"] = int(self.max_length)
        out = m.encode(
            list(texts),
            batch_size=max(self.batch_size, 1),
            show_progress_bar=False,
            use_multiprocessing=False,
            **kw,
        )
        return as_matrix(out, len(texts), self.name)

    def __repr__(self) -> str:
        return f"Model2VecEmbedder({self.name!r})"


# ---------------------------------------------------------------- choosing


def _is_model2vec_dir(path: Path) -> bool:
    """A model2vec folder: its config says so, or its only module is a
    static embedding (model2vec's own layout)."""
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        if isinstance(cfg, dict) and cfg.get("model_type") == "model2vec":
            return True
        mods = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(mods, list)
        and len(mods) == 1
        and "StaticEmbedding" in str(mods[0].get("type", ""))
        and (path / "model.safetensors").exists()
    )


def pick_backend(model: str, backend: str = "auto") -> tuple[str, str]:
    """(backend, model) for a model string: a prefix or ``backend`` picks
    it; else a folder holding a model2vec config, or a model2vec Hub org,
    is model2vec; anything else is sentence-transformers."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"embedder backend must be one of {BACKENDS}, got {backend!r}")
    for prefix, name in PREFIXES.items():
        if model.startswith(prefix):
            return name, model[len(prefix) :]
    if backend != "auto":
        return backend, model
    p = Path(model).expanduser()
    if p.is_dir():
        return ("model2vec" if _is_model2vec_dir(p) else "sentence-transformers"), model
    if model.startswith(MODEL2VEC_ORGS):
        return "model2vec", model
    return "sentence-transformers", model


def as_embedder(
    embedder: Any,
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 64,
    max_length: int | None = None,
) -> Any:
    """An embedder from what the user gave (see the module docstring); the
    settings apply to models named by a string."""
    if embedder is None:
        raise InvalidInputError("semantic: no embedder given; pass embedder=<model name, folder or callable>")
    if isinstance(embedder, (str, Path)):
        kind, model = pick_backend(str(embedder), backend)
        if kind == "model2vec":
            return Model2VecEmbedder(model, batch_size=batch_size, max_length=max_length)
        return SentenceTransformerEmbedder(
            model, device=device, dtype=dtype, batch_size=batch_size, max_length=max_length
        )
    if hasattr(embedder, "embed") and hasattr(embedder, "name"):
        return embedder
    if callable(embedder):
        return CallableEmbedder(embedder)
    raise InvalidInputError(
        "embedder must be a model name or folder, a callable list[str] -> array (n, d), "
        f"or an object with name, dim and embed(texts); got {type(embedder).__name__}"
    )
