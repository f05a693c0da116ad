"""The canonical pair table and the shape of every stage's result.

A pair table is a :class:`pyarrow.Table` with these columns (``DESIGN.md``):

============  ===========================================  ==========================================
column        type                                         meaning
============  ===========================================  ==========================================
``id``        string                                       stable id: the source's own, else a content hash
``source``    string                                       ``magpie_ultra``, ``helpsteer2``, ``wildguard``...
``chosen``    list<struct<role: string, content: string>>  prompt turns + chosen answer (Skywork layout)
``rejected``  list<struct<role: string, content: string>>  prompt turns + rejected answer
``prompt``    string                                       first user turn
============  ===========================================  ==========================================

Optional columns (``score``, ``category``, ``chosen_score``, ...) are carried
through every stage.  Every stage returns a :class:`StageResult`: the rows it
keeps and the rows it removes, the removed ones with ``stage``, ``reason`` and
whatever explains the removal; ``input == kept + removed`` always holds.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .arrays import array, constant_strings, from_numpy, strings
from .errors import InvalidInputError

MESSAGE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

#: The required columns and their types, in order.
REQUIRED: dict[str, pa.DataType] = {
    "id": pa.string(),
    "source": pa.string(),
    "chosen": MESSAGES,
    "rejected": MESSAGES,
    "prompt": pa.string(),
}

ROLES = ("system", "user", "assistant")


def pair_id(source: str, chosen: list[dict], rejected: list[dict]) -> str:
    """A content hash: the same pair from the same source always gets the same id."""
    blob = json.dumps([source, chosen, rejected], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return f"{source}-{hashlib.blake2b(blob.encode('utf-8'), digest_size=8).hexdigest()}"


def check_messages(messages: Any, where: str) -> None:
    """Raise InvalidInputError unless ``messages`` is a non-empty list of
    ``{role, content}`` with string content, roles in ``ROLES``, at most one
    leading system turn, then user / assistant alternating, ending with the
    assistant's answer."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError(
            f"{where}: expected a non-empty list of messages, got {type(messages).__name__}"
        )
    turns = messages
    for k, m in enumerate(turns):
        if not isinstance(m, dict):
            raise InvalidInputError(f"{where}: message {k} is a {type(m).__name__}, not an object")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise InvalidInputError(f"{where}: message {k} has role {role!r}; expected one of {ROLES}")
        if not isinstance(content, str):
            raise InvalidInputError(
                f"{where}: message {k} ({role}) has {type(content).__name__} content, not str"
            )
    body = turns[1:] if turns[0]["role"] == "system" else turns
    if not body:
        raise InvalidInputError(f"{where}: only a system message")
    for k, m in enumerate(body):
        want = "user" if k % 2 == 0 else "assistant"
        if m["role"] != want:
            raise InvalidInputError(
                f"{where}: turn {k + (len(turns) - len(body))} is {m['role']!r} where {want!r} was expected "
                "(turns must alternate user / assistant, after at most one system message)"
            )
    if body[-1]["role"] != "assistant":
        raise InvalidInputError(f"{where}: the last message must be the assistant's answer")


def validate_pairs(table: pa.Table, *, where: str = "pairs", deep: bool = True) -> pa.Table:
    """Check a canonical pair table; return it with the required columns cast
    to their canonical types, in order, and other columns after them.

    ``deep`` also checks every row's messages (roles, order, string content),
    that chosen and rejected share their prompt turns, and that ``prompt`` is
    the first user turn.
    """
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"{where}: missing column(s) {missing}; columns are {table.column_names}")
    cols = []
    for name, typ in REQUIRED.items():
        col = table.column(name)
        if col.type != typ:
            try:
                col = col.cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                raise InvalidInputError(
                    f"{where}: column {name!r} is {col.type}, expected {typ}: {e}"
                ) from None
        if col.null_count:
            row = next(i for i, v in enumerate(col.is_null().to_pylist()) if v)
            raise InvalidInputError(f"{where}: row {row}: {name!r} is null")
        cols.append(col)
    rest = [c for c in table.column_names if c not in REQUIRED]
    out = pa.Table.from_arrays(cols + [table.column(c) for c in rest], names=list(REQUIRED) + rest)
    if deep:
        chosen = out.column("chosen").to_pylist()
        rejected = out.column("rejected").to_pylist()
        prompts = out.column("prompt").to_pylist()
        for i, (c, r, p) in enumerate(zip(chosen, rejected, prompts)):
            check_messages(c, f"{where}: row {i}: chosen")
            check_messages(r, f"{where}: row {i}: rejected")
            if c[:-1] != r[:-1]:
                raise InvalidInputError(f"{where}: row {i}: chosen and rejected have different prompt turns")
            first_user = next(m["content"] for m in c if m["role"] == "user")
            if p != first_user:
                raise InvalidInputError(f"{where}: row {i}: 'prompt' is not the first user turn")
    return out


def empty_pairs(extra: dict[str, pa.DataType] | None = None) -> pa.Table:
    """An empty canonical table (with optional extra columns)."""
    fields = [pa.field(n, t) for n, t in REQUIRED.items()]
    fields += [pa.field(n, t) for n, t in (extra or {}).items()]
    return pa.schema(fields).empty_table()


def with_columns(table: pa.Table, columns: dict[str, Any]) -> pa.Table:
    """``table`` with ``columns`` added (replacing any of the same name)."""
    for name, values in columns.items():
        arr = array(values)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


_split_pool: Any = None


def plain_type(arr: Any) -> Any:
    """string_view / binary_view as large_string / large_binary: pyarrow's
    selection kernels do not take the view types."""
    if pa.types.is_string_view(arr.type):
        return arr.cast(pa.large_string())
    if pa.types.is_binary_view(arr.type):
        return arr.cast(pa.large_binary())
    return arr


def split_table(table: pa.Table, keep: Any) -> tuple[pa.Table, pa.Table]:
    """(the rows where ``keep``, the other rows), both in table order.

    Every column is filtered on its own, the columns in parallel threads
    (Arrow releases the interpreter lock): with long text this is several
    times faster than ``table.take(indices)``, which copies the nested
    message lists on one thread."""
    import numpy as np
    import pyarrow.compute as pc

    global _split_pool
    mask = np.asarray(keep, dtype=bool)
    if len(mask) != table.num_rows:
        raise ValueError(f"keep has {len(mask)} values for {table.num_rows} rows")
    if not table.num_columns:  # rows without columns: slices keep their count
        k = int(mask.sum())
        return table.slice(0, k), table.slice(0, table.num_rows - k)
    masks = (from_numpy(mask), from_numpy(~mask))
    cols = [plain_type(c) for c in table.columns]
    if table.num_rows < 20_000 or len(cols) < 2:
        parts = [[pc.filter(c, m) for c in cols] for m in masks]
    else:
        if _split_pool is None:
            import os
            from concurrent.futures import ThreadPoolExecutor  # only for large tables

            _split_pool = ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1)), "prefcurate-split")
        futs = [[_split_pool.submit(pc.filter, c, m) for c in cols] for m in masks]
        parts = [[f.result() for f in row] for row in futs]
    # the schema with its metadata (view columns as their large types)
    schema = pa.schema(
        [f.with_type(c.type) for c, f in zip(cols, table.schema)], metadata=table.schema.metadata
    )
    return pa.Table.from_arrays(parts[0], schema=schema), pa.Table.from_arrays(parts[1], schema=schema)


#: gives (kept rows, removed rows with the attribution's columns) from a
#: per-row removed mask and the attribution (one row per removed row, whose
#: ``row_column`` holds the row number): each engine has its own (tables in
#: the kind the data came in locally; lazy Ray datasets on Ray).
Splitter = Callable[[Any, pa.Table, str], tuple[Any, Any]]


class EngineRows:
    """What the results of the row-level stages (dedup, decontaminate) share:
    their rows come from the engine's splitter (``_splitter``), made on
    first use (a caller that only needs the flags or the matches does not pay
    for copying the rows): tables (or lists, Datasets, polars frames) in the
    kind the data came in on the local engine, lazy Ray datasets on Ray."""

    _splitter: Splitter | None
    _split: tuple[Any, Any] | None

    def _split_args(self) -> tuple[Any, pa.Table, str]:
        """(removed mask, attribution, its row-number column)."""
        raise NotImplementedError

    def _rows(self) -> tuple[Any, Any]:
        if self._split is None:
            assert self._splitter is not None, "a result made without its rows"
            self._split = self._splitter(*self._split_args())
        return self._split

    @property
    def kept(self) -> Any:
        """The rows that stay, in the kind the data was given."""
        return self._rows()[0]

    @property
    def removed(self) -> Any:
        """The removed rows with their attribution / provenance columns."""
        return self._rows()[1]

    def write_parquet(self, path: Any) -> dict[str, str]:
        """Write ``kept`` and ``removed`` as Parquet shards under ``path/kept``
        and ``path/removed`` (results of ``engine="ray"``, whose rows are lazy)."""
        writer = getattr(self._splitter, "write_parquet", None)
        if writer is None:
            raise InvalidInputError(
                "write_parquet is for results of engine='ray'; write kept / removed with write_table"
            )
        return writer(self, path)

    def _rows_ops(self) -> Any:
        return getattr(self._splitter, "rows_ops", None)


@dataclass
class StageResult:
    """What one stage kept and removed, on any engine.

    ``removed`` holds the removed rows with ``stage`` and ``reason`` columns
    and whatever else explains the removal (``duplicate_of``, ``benchmark_id``,
    ``rank``...).  ``kept`` / ``removed`` are Arrow tables, or lazy Ray
    datasets from the Ray engine (then ``n_kept`` and ``by_reason`` are given,
    since counting them would run the datasets; ``to_tables()`` gathers
    them).  ``input == kept + removed`` is checked on construction.
    """

    stage: str
    kept: Any
    removed: Any
    n_input: int
    info: dict[str, Any] = field(default_factory=dict)
    n_kept: int = -1
    by_reason: dict[str, int] | None = None
    #: the engine's operations on lazy rows: ``value_counts(rows, column)``
    #: and ``to_table(rows)`` (None for tables)
    rows_ops: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.n_kept < 0:
            self.n_kept = self.kept.num_rows
        if self.by_reason is None:
            reasons = self.removed.column("reason").to_pylist() if self.removed.num_rows else []
            self.by_reason = dict(Counter(reasons))
        n_removed = (
            self.removed.num_rows if isinstance(self.removed, pa.Table) else sum(self.by_reason.values())
        )
        if self.n_kept + n_removed != self.n_input:
            raise AssertionError(
                f"stage {self.stage}: {self.n_input} rows in but {self.n_kept} kept + {n_removed} removed"
            )

    @property
    def n_removed(self) -> int:
        return self.n_input - self.n_kept

    @property
    def lazy(self) -> bool:
        """Whether kept / removed are lazy (Ray) datasets rather than tables."""
        return not isinstance(self.kept, pa.Table)

    def to_tables(self) -> StageResult:
        """This result with kept and removed as Arrow tables (gathers lazy
        datasets on the driver: small data only)."""
        if not self.lazy:
            return self
        ops = self.rows_ops
        return StageResult(
            self.stage, ops.to_table(self.kept), ops.to_table(self.removed), self.n_input, self.info
        )

    def summary(self) -> dict[str, Any]:
        """``{name, input, kept, removed, by_reason, by_source}``."""
        kept_src = self._value_counts(self.kept, "source")
        rem_src = self._value_counts(self.removed, "source")
        by_source = {
            str(s): {"kept": kept_src.get(s, 0), "removed": rem_src.get(s, 0)}
            for s in sorted(set(kept_src) | set(rem_src), key=str)
        }
        return {
            "name": self.stage,
            "input": self.n_input,
            "kept": self.n_kept,
            "removed": self.n_removed,
            "by_reason": dict(self.by_reason or {}),
            "by_source": by_source,
            **({"info": self.info} if self.info else {}),
        }

    def _value_counts(self, rows: Any, column: str) -> dict[Any, int]:
        if isinstance(rows, pa.Table):
            return dict(Counter(rows.column(column).to_pylist())) if column in rows.column_names else {}
        return self.rows_ops.value_counts(rows, column)

    def __repr__(self) -> str:
        return f"StageResult({self.stage!r}: {self.n_input} in, {self.n_kept} kept, {self.n_removed} removed)"


def split_stage(
    table: pa.Table, keep: Any, stage: str, reasons: Any, extra: dict[str, Any] | None = None
) -> tuple[pa.Table, pa.Table]:
    """(kept rows, removed rows with ``stage``, ``reason`` and ``extra``
    columns), split with :func:`split_table`; ``reasons`` and ``extra`` hold
    one value per removed row, in table order."""
    kept, out = split_table(table, keep)
    n = out.num_rows
    reasons = [reasons] * n if isinstance(reasons, str) else list(reasons)
    cols: dict[str, Any] = {
        "stage": constant_strings(stage, n),
        "reason": strings(reasons),
    }
    cols.update(extra or {})
    return kept, with_columns(out, cols)
