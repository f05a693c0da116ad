"""The benchmark index: built once, reused across calls and threads, saved to a file."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import _core
from .._unicode import ensure_tables
from ..errors import InvalidInputError
from ..inputs import optional_column, resolve

METHODS = ("reference", "precise")


def check_range(ngram_range: Any) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in ngram_range)
    except (TypeError, ValueError):
        raise InvalidInputError(f"ngram_range must be a pair of ints, got {ngram_range!r}") from None
    if not 1 <= lo <= hi <= 64:
        raise InvalidInputError(f"ngram_range must satisfy 1 <= min <= max <= 64, got {ngram_range!r}")
    return lo, hi


class BenchmarkIndex:
    """An n-gram index of benchmark prompts.

    Build it once and reuse it for any number of :func:`prefcurate.decontaminate`
    calls, from any thread; it is immutable.  ``save`` / ``load`` keep it in a
    file; it also pickles (for process pools and Ray).

    Parameters
    ----------
    benchmark:
        Benchmark rows: a path (jsonl, json, parquet, csv, saved dataset), a
        list of str, a pyarrow table or array, a ``datasets.Dataset``, a polars
        DataFrame.
    text:
        The text column (default: ``prompt``, else the first user turn of a
        chat message column).
    id, subset:
        Columns naming each item and its benchmark subset, carried into the
        attribution of removed rows (defaults ``id`` and ``subset``; rows
        without them are named by position).
    method:
        ``"reference"``: every n-gram with n in ``ngram_range`` (sklearn's
        ``CountVectorizer`` analyzer), for the exact reference scores.
        ``"precise"``: one n-gram size ``n`` per prompt (``min(n, tokens)``,
        prompts under ``min_tokens`` tokens skipped), for coverage-based matching.
    """

    #: recognised by prefcurate.inputs.resolve without importing this module
    is_benchmark_index = True

    def __init__(
        self,
        benchmark: Any,
        *,
        text: str | None = None,
        id: str = "id",
        subset: str = "subset",
        method: str = "reference",
        ngram_range: tuple[int, int] = (7, 13),
        n: int = 13,
        min_tokens: int = 5,
        num_threads: int | None = None,
    ) -> None:
        if method not in METHODS:
            raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
        lo, hi = check_range(ngram_range)
        ensure_tables()
        res = resolve(benchmark, text=text, what="benchmark")
        if len(res) == 0:
            raise InvalidInputError("benchmark: it has no rows; there is nothing to decontaminate against")
        ids = optional_column(res.table, id, len(res), "{i}")
        subsets = optional_column(res.table, subset, len(res), "")
        try:
            inner = _core.BenchmarkIndex.build(
                res.texts,
                ids,
                subsets,
                method=method,  # type: ignore[arg-type]  # checked against METHODS above
                ngram_range=(lo, hi),
                n=int(n),
                min_tokens=int(min_tokens),
                num_threads=num_threads,
            )
        except InvalidInputError as e:
            if res.label:
                raise InvalidInputError(f"{res.label}: {e}") from None
            raise
        self._inner = inner
        self.source = (
            str(benchmark) if isinstance(benchmark, (str, os.PathLike)) else type(benchmark).__name__
        )

    @classmethod
    def _wrap(cls, inner: Any, source: str) -> BenchmarkIndex:
        obj = cls.__new__(cls)
        obj._inner = inner
        obj.source = source
        return obj

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchmarkIndex:
        """Read an index written by :meth:`save`."""
        ensure_tables()
        return cls._wrap(_core.BenchmarkIndex.load(os.fspath(path)), os.fspath(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` (atomically)."""
        self._inner.save(os.fspath(path))

    def __reduce__(self):
        return (_from_bytes, (self._inner.to_bytes(), self.source))

    def __len__(self) -> int:
        return len(self._inner)

    @property
    def texts(self) -> list[str]:
        return self._inner.texts

    @property
    def ids(self) -> list[str]:
        return self._inner.ids

    @property
    def subsets(self) -> list[str]:
        return self._inner.subsets

    @property
    def method(self) -> str:
        return self._inner.method

    @property
    def ngram_range(self) -> tuple[int, int]:
        return self._inner.ngram_range

    @property
    def min_tokens(self) -> int | None:
        return self._inner.min_tokens

    @property
    def n_grams(self) -> int:
        """Distinct n-grams indexed (all lengths)."""
        return self._inner.n_grams

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the index."""
        return self._inner.heap_bytes

    @property
    def unicode_version(self) -> str:
        return self._inner.unicode_version

    def doc_tokens(self) -> np.ndarray:
        """Tokens per benchmark prompt."""
        return self._inner.doc_tokens()

    def __repr__(self) -> str:
        return (
            f"BenchmarkIndex({len(self)} prompts from {self.source}, method={self.method!r}, "
            f"ngram_range={self.ngram_range}, n_grams={self.n_grams})"
        )


def _from_bytes(data: bytes, source: str) -> BenchmarkIndex:
    ensure_tables()
    return BenchmarkIndex._wrap(_core.BenchmarkIndex.from_bytes(data), source)
