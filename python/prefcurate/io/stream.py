"""Canonical pairs streamed as record batches with bounded memory:
:func:`iter_pairs` and :class:`PairStream`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..errors import InvalidInputError
from .convert import (
    DEFAULT_BATCH_ROWS,
    ConvertResult,
    Engine,
    OnInvalid,
    issue_order,
    issues_table,
    result,
    run,
)


class PairStream:
    """Canonical record batches of an input, read incrementally.

    Iterate it for :class:`pyarrow.RecordBatch` es of at most ``batch_size``
    pairs; ``stats``, ``removed`` and ``quarantine`` cover what has been read
    so far (everything once the iteration ends).  Parquet and JSON Lines are
    read in bounded blocks; WildGuardMix (which pairs rows of the same prompt
    anywhere in the input) reads the whole input before its first batch, and
    JSON files (one document) are parsed whole.  With ``on_invalid="warn"``
    the warning about quarantined rows comes when the iteration ends.
    """

    def __init__(self, engine: Engine, gen: Iterator[pa.Table], batch_size: int) -> None:
        self._engine = engine
        self._gen = gen
        self._batch_size = batch_size
        self.done = False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        size = self._batch_size
        held: pa.Table | None = None
        for t in self._gen:
            if held is not None and held.num_rows:
                try:
                    t = pa.concat_tables([held, t], promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    # blocks whose carried columns do not unify: flush the held rows as they are
                    yield from _batches(held, size)
            held = None
            full = t.num_rows - t.num_rows % size
            if full:
                yield from _batches(t.slice(0, full), size)
            held = t.slice(full)
        if held is not None and held.num_rows:
            yield from _batches(held, size)
        self.done = True
        self._engine.warn_quarantined(stacklevel=2)

    def result(self) -> ConvertResult:
        """The account so far, with an empty ``pairs`` table (the pairs were streamed)."""
        return result(self._engine, [])

    @property
    def stats(self) -> dict[str, Any]:
        """The counts of :attr:`ConvertResult.stats` for what has been read so far."""
        s = self.result().stats
        s["pairs"] = self._engine.pairs
        return s

    @property
    def quarantine(self) -> pa.Table:
        return issues_table(sorted(self._engine.quarantine, key=issue_order))

    @property
    def removed(self) -> pa.Table:
        return issues_table(self._engine.removed)


def _batches(t: pa.Table, size: int) -> Iterator[pa.RecordBatch]:
    """``t`` as record batches of ``size`` rows (the last may be shorter)."""
    for s in range(0, t.num_rows, size):
        part = t.slice(s, size)
        batches = part.to_batches()
        if len(batches) == 1:
            yield batches[0]
        elif batches:
            yield part.combine_chunks().to_batches()[0]


def iter_pairs(
    src: Any,
    format: str = "auto",
    *,
    source: str | None = None,
    split: str | None = None,
    on_invalid: OnInvalid = "warn",
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> PairStream:
    """Stream the canonical pairs of ``src`` as record batches of at most
    ``batch_size`` pairs, with memory bounded by the batch size (see
    :class:`PairStream`; the arguments are those of
    :func:`prefcurate.io.convert_pairs`)."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    engine, gen = run(src, format, source, split, on_invalid, batch_size)
    return PairStream(engine, gen, batch_size)
