"""Turning the many things users pass as data into one text column.

A *source* is a list of strings (or of message lists), a pyarrow array,
chunked array or table, a ``datasets.Dataset``, a polars DataFrame or
Series, a path to a local file or folder, or a :class:`BenchmarkIndex`.
:func:`resolve` returns the text column as Arrow plus what is needed to give
rows back in the kind the user passed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrays import from_numpy, strings, to_numpy, valid_mask
from .errors import InvalidInputError
from .io import dataset_table, read_table

#: Columns tried, in order, when ``text`` is not given.
DEFAULT_TEXT_COLUMNS = ("prompt", "chosen", "messages", "conversations")


@dataclass
class Resolved:
    """A source with its text column resolved."""

    kind: str  # "list", "array", "chunked_array", "table", "dataset", "polars", "polars_series", "path", "index"
    texts: pa.ChunkedArray | list  # one string per row (a list of str is passed as is; the core checks it)
    table: pa.Table | None  # the rows as a table (None for bare lists/arrays)
    original: Any
    column: str | None
    name: str  # for messages: "train", "benchmark"
    label: str = ""  # where the texts come from, for error messages

    def __len__(self) -> int:
        return len(self.texts)


def might_be(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class, or one of its bases, comes from ``package``
    (``"polars"``, ``"datasets"``...), without importing it: a package that
    is not imported cannot have made ``obj``."""
    if package not in sys.modules:
        return False
    return any((c.__module__ or "").partition(".")[0] == package for c in type(obj).__mro__)


def take(arr: Any, indices: np.ndarray) -> Any:
    """``arr.take(indices)`` that also works for string_view columns, which
    pyarrow's selection kernels do not handle (they come back as large_string)."""
    from .schema import plain_type

    return plain_type(arr).take(from_numpy(np.asarray(indices, dtype=np.int64)))


def is_message_list(t: pa.DataType) -> bool:
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)):
        return False
    v = t.value_type
    if not pa.types.is_struct(v):
        return False
    names = {v.field(i).name for i in range(v.num_fields)}
    return ("role" in names and "content" in names) or ("from" in names and "value" in names)


def first_user_turn(col: pa.ChunkedArray | pa.Array, what: str) -> pa.ChunkedArray:
    """The first user message of each message list (chat format).

    Accepts ``{role, content}`` (OpenAI / Skywork) and ``{from, value}``
    (ShareGPT, where the user is ``human`` or ``user``).  A row without a user
    turn, or a null list, is an error naming the row.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_list_view(arr.type):
        arr = arr.cast(pa.large_list(arr.type.value_type))
    names = {arr.type.value_type.field(i).name for i in range(arr.type.value_type.num_fields)}
    role_f, content_f = ("role", "content") if "role" in names else ("from", "value")
    n = len(arr)
    if arr.null_count:
        bad = int(np.flatnonzero(~valid_mask(arr))[0])
        raise InvalidInputError(f"{what}: row {bad} has no messages (null)")
    flat = pc.list_flatten(arr)
    parents = to_numpy(pc.list_parent_indices(arr))
    roles = pc.struct_field(flat, role_f)
    contents = pc.struct_field(flat, content_f)
    is_user = to_numpy(pc.is_in(roles, strings(["user", "human"])), fill=False)
    rows, first = np.unique(parents[is_user], return_index=True)
    if len(rows) != n:
        missing = np.setdiff1d(np.arange(n), rows)
        raise InvalidInputError(
            f"{what}: row {int(missing[0])} has no user turn ({len(missing)} rows lack one); "
            "each message list needs a message with role 'user'"
        )
    picked = np.flatnonzero(is_user)[first]
    out = contents.take(from_numpy(picked))
    if out.null_count:
        bad = int(rows[np.flatnonzero(~valid_mask(out))[0]])
        raise InvalidInputError(f"{what}: row {bad}: the first user turn has null content")
    if not (
        pa.types.is_string(out.type)
        or pa.types.is_large_string(out.type)
        or pa.types.is_string_view(out.type)
    ):
        raise InvalidInputError(f"{what}: message content is {out.type}, expected strings")
    return pa.chunked_array([out])


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary column as its values."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as text: text as it is (dictionaries decoded), anything else cast."""
    col = _decoded(col)
    return col if _is_text(col.type) else col.cast(pa.string())


def _string_column(col: pa.ChunkedArray | pa.Array, what: str) -> pa.ChunkedArray:
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col], type=col.type)
    col = _decoded(col)
    t = col.type
    if _is_text(t):
        return col
    if is_message_list(t):
        return first_user_turn(col, what)
    if pa.types.is_null(t):
        if len(col) == 0:
            return pa.chunked_array([], type=pa.string())
        raise InvalidInputError(f"{what}: row 0 is null (the whole column is null)")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        raise InvalidInputError(f"{what}: column holds bytes, not text; decode it to str first")
    raise InvalidInputError(f"{what}: expected text (string) or a chat message list, got column of type {t}")


def _pick_column(table: pa.Table, text: str | None, what: str) -> tuple[str, pa.ChunkedArray]:
    if text is not None:
        if text not in table.column_names:
            raise InvalidInputError(
                f"{what}: no column {text!r}; columns are {table.column_names}. Pass text=<column>."
            )
        return text, _string_column(table.column(text), f"{what} column {text!r}")
    for name in DEFAULT_TEXT_COLUMNS:
        if name in table.column_names:
            col = table.column(name)
            if name == "prompt" or is_message_list(col.type):
                return name, _string_column(col, f"{what} column {name!r}")
    raise InvalidInputError(
        f"{what}: no 'prompt' column and no chat message column; columns are {table.column_names}. "
        "Pass text=<column>."
    )


def _from_list(obj: list, what: str) -> pa.ChunkedArray | list:
    """A list of str is handed to the core as is (it checks every row); a
    list of message lists becomes the first user turns."""
    if obj and isinstance(obj[0], (list, tuple)):
        try:
            return _string_column(pa.array(obj), what)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"{what}: cannot read the message lists: {e}") from None
    return obj


def resolve(obj: Any, *, text: str | None, what: str) -> Resolved:
    """Find the text column of ``obj`` (see the module docstring)."""
    if getattr(type(obj), "is_benchmark_index", False):  # a BenchmarkIndex (no import: no cycle)
        return Resolved("index", obj.texts, None, obj, None, what)
    if isinstance(obj, (str, os.PathLike)):
        table = read_table(obj)
        name, col = _pick_column(table, text, f"{what} {Path(obj)}")
        return Resolved("path", col, table, obj, name, what, f"{what} {Path(obj)} column {name!r}")
    if isinstance(obj, pa.Table):
        name, col = _pick_column(obj, text, what)
        return Resolved("table", col, obj, obj, name, what, f"{what} column {name!r}")
    if isinstance(obj, pa.RecordBatch):
        table = pa.Table.from_batches([obj])
        name, col = _pick_column(table, text, what)
        return Resolved("table", col, table, table, name, what)
    if isinstance(obj, pa.ChunkedArray):
        return Resolved("chunked_array", _string_column(obj, what), None, obj, None, what)
    if isinstance(obj, pa.Array):
        return Resolved("array", _string_column(obj, what), None, obj, None, what)
    if isinstance(obj, (list, tuple)):
        return Resolved("list", _from_list(list(obj), what), None, list(obj), None, what)
    if might_be(obj, "datasets"):
        if type(obj).__name__ == "DatasetDict":
            raise InvalidInputError(
                f"{what}: a DatasetDict holds several splits ({list(obj)}); pass one, e.g. ds['train']"
            )
        table = dataset_table(obj)
        name, col = _pick_column(table, text, what)
        return Resolved("dataset", col, table, obj, name, what, f"{what} column {name!r}")
    if might_be(obj, "polars"):
        if type(obj).__name__ == "Series":
            return Resolved("polars_series", _string_column(obj.to_arrow(), what), None, obj, None, what)
        if type(obj).__name__ == "LazyFrame":
            obj = obj.collect()
        table = obj.to_arrow()
        name, col = _pick_column(table, text, what)
        return Resolved("polars", col, table, obj, name, what, f"{what} column {name!r}")
    if hasattr(obj, "__arrow_c_stream__"):
        table = pa.table(obj)
        name, col = _pick_column(table, text, what)
        return Resolved("table", col, table, table, name, what)
    raise InvalidInputError(
        f"{what}: unsupported input {type(obj).__name__}; pass a list of str, a pyarrow array or table, "
        "a datasets.Dataset, a polars DataFrame, a file path or a BenchmarkIndex"
    )


def optional_column(table: pa.Table | None, name: str | None, n: int, default: str) -> list[str]:
    """A column as a list of str: ``default`` (``"{i}"``: the row number, or a
    constant) where the column or a value is missing."""
    if table is None or name is None or name not in table.column_names:
        return list(map(str, range(n))) if default == "{i}" else [default] * n
    values = table.column(name).to_pylist()
    if default == "{i}":
        return [str(i) if v is None else str(v) for i, v in enumerate(values)]
    return [default if v is None else str(v) for v in values]


def split_rows(res: Resolved, removed_mask: np.ndarray, extra: pa.Table) -> tuple[Any, Any]:
    """(kept, removed) in the kind of ``res.original``; removed rows get the
    columns of ``extra`` (one row per removed row, in order)."""
    keep_idx = np.flatnonzero(~removed_mask)
    rem_idx = np.flatnonzero(removed_mask)
    kind = res.kind
    if kind == "list":
        import itertools

        texts = res.original
        kept = list(itertools.compress(texts, (~removed_mask).tolist()))
        names = ("text", *extra.column_names)
        columns = [[texts[i] for i in rem_idx.tolist()]] + [c.to_pylist() for c in extra.columns]
        removed = [dict(zip(names, row)) for row in zip(*columns)]
        return kept, removed
    if kind in ("array", "chunked_array", "polars_series", "index"):
        base = res.original
        if kind == "polars_series":
            import polars as pl

            kept = base.gather(keep_idx) if hasattr(base, "gather") else base[keep_idx]
            rem_tbl = pa.Table.from_pydict({"text": take(res.texts, rem_idx)})
            for name in extra.column_names:
                rem_tbl = rem_tbl.append_column(name, extra.column(name))
            return kept, pl.from_arrow(rem_tbl)
        if kind == "index":
            kept = [base.texts[i] for i in keep_idx]
            rem_tbl = pa.Table.from_pydict({"text": strings([base.texts[i] for i in rem_idx])})
        else:
            kept = take(base, keep_idx)
            rem_tbl = pa.Table.from_pydict({"text": take(res.texts, rem_idx)})
        for name in extra.column_names:
            rem_tbl = rem_tbl.append_column(name, extra.column(name))
        return kept, rem_tbl
    table = res.table
    assert table is not None
    if kind == "dataset":
        ds = res.original
        kept = ds.select(keep_idx)
        removed = ds.select(rem_idx)
        for name in extra.column_names:
            removed = removed.add_column(name, extra.column(name).to_pylist())
        return kept, removed
    from .schema import split_table

    kept_t, rem_t = split_table(table, ~removed_mask)
    for name in extra.column_names:
        if name in rem_t.column_names:
            rem_t = rem_t.drop_columns([name])
        rem_t = rem_t.append_column(name, extra.column(name))
    if kind == "polars":
        import polars as pl

        return pl.from_arrow(kept_t), pl.from_arrow(rem_t)
    return kept_t, rem_t


def as_table(data: Any, what: str = "select") -> pa.Table:
    """A table input (pyarrow, polars, datasets, anything with
    ``__arrow_c_stream__``) as a pyarrow Table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if might_be(data, "polars"):
        return data.to_arrow()
    if might_be(data, "datasets"):
        return dataset_table(data)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise InvalidInputError(
        f"{what}: expected a table (pyarrow, polars, datasets), got {type(data).__name__}"
    )


def as_pair_table(pairs: Any) -> pa.Table:
    """Pairs as a table: a table input (see :func:`as_table`), a path, or a
    list of row dicts."""
    if isinstance(pairs, (str, os.PathLike)):
        return read_table(pairs)
    if isinstance(pairs, list):
        return pa.Table.from_pylist(pairs)
    return as_table(pairs, "pairs")
