"""What every source adapter is built on: the per-batch account of invalid
and removed rows (:class:`BatchContext`), the adapter's output
(:class:`AdapterOutput`) and the :class:`Adapter` base class with the
helpers the adapters share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...schema import REQUIRED
from ..arrow import as_float, as_string, column, ids_as_string, null_rows, take


@dataclass
class Problem:
    """Why one input row is invalid or was removed."""

    field: str | None
    code: str
    detail: str


class BatchContext:
    """Collects, per input row of one batch, why it is invalid or removed.

    A row is flagged once: the first reason wins.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.flagged = np.zeros(n, dtype=bool)
        self.invalid: dict[int, Problem] = {}
        self.removed: dict[int, Problem] = {}

    def _flag(
        self,
        target: dict[int, Problem],
        rows: Any,
        field: str | None,
        code: str,
        detail: str | Callable[[int], str],
    ) -> None:
        idx = np.asarray(rows)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        if not len(idx):
            return
        idx = idx[~self.flagged[idx]]
        for i in idx.tolist():
            if self.flagged[i]:  # repeated index
                continue
            self.flagged[i] = True
            target[i] = Problem(field, code, detail(i) if callable(detail) else detail)

    def invalid_rows(
        self, rows: Any, field: str | None, code: str, detail: str | Callable[[int], str]
    ) -> None:
        """Mark rows invalid (quarantined, or raised with ``on_invalid="raise"``)."""
        self._flag(self.invalid, rows, field, code, detail)

    def remove_rows(self, rows: Any, code: str, detail: str | Callable[[int], str]) -> None:
        """Mark rows removed by a documented rule of the format."""
        self._flag(self.removed, rows, None, code, detail)

    def ok(self) -> np.ndarray:
        """Indices of the rows not flagged so far."""
        return np.flatnonzero(~self.flagged)


@dataclass
class AdapterOutput:
    """Pairs made from a batch.

    ``table`` holds ``chosen`` and ``rejected`` (canonical message lists), an
    optional ``id`` (the source's own, null where it has none) and ``source``
    (null where the data does not say), then the adapter's extra columns.
    ``rows[k]`` is the input row of pair ``k`` (``rows2[k]`` the second row
    for formats that pair two rows).
    """

    table: pa.Table
    rows: np.ndarray
    rows2: np.ndarray | None = None


#: The canonical types of the optional columns adapters fill.
CANONICAL_EXTRA = {
    "score": pa.float64(),
    "category": pa.string(),
    "chosen_score": pa.float64(),
    "rejected_score": pa.float64(),
}


class Adapter:
    """One source format.  Subclasses set the class attributes and ``convert``."""

    name: ClassVar[str]
    default_source: ClassVar[str]
    summary: ClassVar[str]
    #: columns (all required) that identify the format
    signature: ClassVar[tuple[str, ...]] = ()
    #: ``row``: rows convert independently; ``consecutive``: pairs form from
    #: runs of equal ``group_key`` (runs never split across batches);
    #: ``all``: the whole input is converted at once
    grouping: ClassVar[str] = "row"
    group_key: ClassVar[str | None] = None
    #: input columns represented by the canonical columns (not carried)
    consumes: ClassVar[tuple[str, ...]] = ()

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        return all(c in schema.names for c in self.signature)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        raise NotImplementedError

    def source_from_name(self, name: str | None) -> str | None:
        """The ``source`` a file or dataset name implies for rows whose data
        does not say (``None``: the format's ``default_source``)."""
        return None

    # -- helpers shared by the adapters

    def carried(self, table: pa.Table, extra_consumed: Sequence[str] = ()) -> list[str]:
        skip = set(self.consumes) | set(extra_consumed)
        return [c for c in table.column_names if c not in skip]

    def output(
        self,
        table: pa.Table,
        rows: np.ndarray,
        chosen: pa.Array,
        rejected: pa.Array,
        extra: dict[str, Any] | None = None,
        *,
        id_col: str | None = None,
        source_col: str | None = None,
        extra_consumed: Sequence[str] = (),
    ) -> AdapterOutput:
        """Pairs from single rows: canonical columns, the extras, then every
        input column not consumed (renamed ``original_<name>`` if it clashes)."""
        cols: dict[str, Any] = {"chosen": chosen, "rejected": rejected}
        consumed = list(extra_consumed)
        if id_col and id_col in table.column_names:
            cols["id"] = ids_as_string(take(column(table, id_col), rows), id_col)
            consumed.append(id_col)
        if source_col and source_col in table.column_names:
            cols["source"] = as_string(take(column(table, source_col), rows), source_col)
            consumed.append(source_col)
        for k, v in (extra or {}).items():
            cols[k] = v.cast(CANONICAL_EXTRA[k]) if k in CANONICAL_EXTRA else v
        for c in self.carried(table, consumed):
            name = c if c not in cols and c not in REQUIRED else f"original_{c}"
            cols[name] = take(column(table, c), rows)
        return AdapterOutput(pa.table(cols), rows)


def require(ctx: BatchContext, arr: pa.Array, field: str) -> None:
    """Rows where ``field`` is null or missing are invalid."""
    ctx.invalid_rows(null_rows(arr), field, "missing_field", "is missing or null")


def string_field(table: pa.Table, ctx: BatchContext, name: str, required: bool = True) -> pa.Array:
    """A text column; with ``required``, rows where it is null are invalid."""
    arr = as_string(column(table, name), name)
    if required:
        require(ctx, arr, name)
    return arr


def float_field(table: pa.Table, ctx: BatchContext, name: str) -> pa.Array:
    """A required numeric column; null and NaN rows are invalid."""
    arr = as_float(column(table, name), name)
    require(ctx, arr, name)
    nan = pc.is_nan(arr).fill_null(False).to_numpy(zero_copy_only=False)
    ctx.invalid_rows(nan, name, "bad_value", "is NaN")
    return arr
