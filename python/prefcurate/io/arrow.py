"""Arrow column helpers shared by the adapters, the validation and the
conversion engine: typed views of columns (:func:`as_string`,
:func:`as_float`, :func:`as_messages`), message lists built from flat
arrays (:func:`messages`, :func:`single_turn`, :func:`concat_lists`), and
zero-copy access to list and string buffers.

A column that cannot be used for any row of a batch (a wrong type) raises
:class:`ColumnError`; the engine turns it into one invalid-row problem per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import MESSAGE, MESSAGES, plain_type


class ColumnError(Exception):
    """A column that is unusable for every row of the batch (wrong type)."""

    def __init__(self, field: str, code: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field, self.code, self.detail = field, code, detail


def is_string_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)


def struct_names(t: pa.DataType) -> set[str]:
    return {t.field(i).name for i in range(t.num_fields)} if pa.types.is_struct(t) else set()


def is_message_list(t: pa.DataType, keys: tuple[str, str] = ("role", "content")) -> bool:
    """A list of structs with (at least) the fields ``keys``."""
    return is_list_type(t) and set(keys) <= struct_names(t.value_type)


def one(col: Any) -> pa.Array:
    """A column (chunked or not) as one array, without copying when it has one chunk."""
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def column(table: pa.Table, name: str) -> pa.Array:
    """A column as one array; a column the batch lacks is all null (a JSON
    field missing from every row of a block)."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows)
    return one(table.column(name))


def type_name(t: pa.DataType) -> str:
    """A type as a reader would name a JSON value's type."""
    if is_string_type(t):
        return "a string"
    if pa.types.is_integer(t):
        return "an integer"
    if pa.types.is_floating(t):
        return "a number"
    if pa.types.is_boolean(t):
        return "a boolean"
    if is_list_type(t):
        return f"a list ({t})"
    if pa.types.is_struct(t):
        return f"an object ({t})"
    return str(t)


def as_string(arr: pa.Array, field: str) -> pa.Array:
    """``arr`` as ``string``; ColumnError unless it holds text (or only nulls)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.cast(t.value_type), t.value_type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return arr.cast(pa.string())
    raise ColumnError(field, "wrong_type", f"is {type_name(t)}, expected a string")


def as_float(arr: pa.Array, field: str) -> pa.Array:
    """``arr`` as ``float64``; ColumnError unless numeric (or only nulls)."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
        return arr.cast(pa.float64())
    raise ColumnError(field, "wrong_type", f"is {type_name(t)}, expected a number")


def ids_as_string(arr: pa.Array, field: str) -> pa.Array:
    """An id column as strings (integer ids are written in decimal)."""
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.string())
    return as_string(arr, field)


def null_rows(arr: pa.Array) -> np.ndarray:
    """A boolean mask of the null rows."""
    if not arr.null_count:
        return np.zeros(len(arr), dtype=bool)
    return arr.is_null().to_numpy(zero_copy_only=False)


def fill(arr: pa.Array) -> pa.Array:
    """Nulls as empty strings (for rows already marked invalid)."""
    return arr.fill_null("") if arr.null_count else arr


def _take(arr: Any, idx: np.ndarray) -> Any:
    return plain_type(arr).take(pa.array(idx, type=pa.int64()))


def take(arr: Any, idx: np.ndarray) -> Any:
    """``arr.take(idx)`` (also for string_view columns), zero-copy when
    ``idx`` is every row in order."""
    n = len(arr) if not isinstance(arr, pa.Table) else arr.num_rows
    if len(idx) == n and (n == 0 or (idx[0] == 0 and idx[-1] == n - 1 and np.all(np.diff(idx) == 1))):
        return arr
    if isinstance(arr, pa.Table):
        return pa.Table.from_arrays(
            [_take(arr.column(c), idx) for c in arr.column_names], names=arr.column_names
        )
    return _take(arr, idx)


# ---------------------------------------------------------------- lists and strings


def offsets(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.offsets, dtype=np.int64)


def list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(offsets rebased to 0, values sliced to the array's range)."""
    offs = offsets(arr)
    start = int(offs[0])
    return offs - start, arr.values.slice(start, int(offs[-1]) - start)


def string_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(the UTF-8 bytes of a string array's values, offsets into them), zero-copy."""
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    if bufs[2] is None or offs[-1] == offs[0]:
        return np.zeros(0, dtype=np.uint8), offs - offs[0]
    raw = np.frombuffer(bufs[2], dtype=np.uint8)[offs[0] : offs[-1]]
    return raw, offs - offs[0]


# ---------------------------------------------------------------- message lists


def as_messages(arr: pa.Array, field: str, keys: tuple[str, str] = ("role", "content")) -> pa.Array:
    """A message-list column as canonical ``list<struct<role, content>>``.

    Accepts list / large_list / list_view of structs with the fields ``keys``
    (other struct fields are dropped) and text of any string type; raises
    ColumnError otherwise.  Null lists and null messages stay null.
    """
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, MESSAGES)
    if t == MESSAGES:
        return arr
    if pa.types.is_list_view(t):
        arr = arr.cast(pa.large_list(t.value_type))
        t = arr.type
    if not is_message_list(t, keys):
        raise ColumnError(
            field, "wrong_type", f"is {type_name(t)}, expected a list of {{{keys[0]}, {keys[1]}}} messages"
        )
    offs = offsets(arr)
    start, end = int(offs[0]), int(offs[-1])
    values = arr.values.slice(start, end - start)
    role = as_string(pc.struct_field(values, keys[0]), f"{field}[].{keys[0]}")
    content = as_string(pc.struct_field(values, keys[1]), f"{field}[].{keys[1]}")
    structs = pa.StructArray.from_arrays([role, content], fields=list(MESSAGE))
    mask = arr.is_null() if arr.null_count else None
    return pa.ListArray.from_arrays(pa.array(offs - start, pa.int32()), structs, mask=mask)


def messages(roles: pa.Array, contents: pa.Array, offs: np.ndarray) -> pa.Array:
    """Message lists from flat role / content arrays and list offsets."""
    structs = pa.StructArray.from_arrays(
        [as_string(roles, "role"), as_string(contents, "content")], fields=list(MESSAGE)
    )
    return pa.ListArray.from_arrays(pa.array(offs, pa.int32()), structs)


def single_turn(prompt: pa.Array, answer: pa.Array) -> pa.Array:
    """``[{user: prompt}, {assistant: answer}]`` per row."""
    n = len(prompt)
    idx = np.empty(2 * n, dtype=np.int64)
    idx[0::2] = np.arange(n)
    idx[1::2] = n + np.arange(n)
    contents = pa.concat_arrays([as_string(prompt, "prompt"), as_string(answer, "answer")]).take(
        pa.array(idx)
    )
    roles = pa.array(["user", "assistant"]).take(pa.array(np.tile(np.array([0, 1]), n)))
    return messages(roles, contents, np.arange(0, 2 * n + 1, 2))


def one_message(role: str, content: pa.Array) -> pa.Array:
    """``[{role: content}]`` per row."""
    n = len(content)
    roles = pa.array([role]).take(pa.array(np.zeros(n, dtype=np.int64)))
    return messages(roles, content, np.arange(n + 1))


def concat_lists(a: pa.Array, b: pa.Array) -> pa.Array:
    """Per row, the messages of ``a`` followed by those of ``b``."""
    oa, va = list_parts(a)
    ob, vb = list_parts(b)
    la, lb = np.diff(oa), np.diff(ob)
    out = np.zeros(len(la) + 1, dtype=np.int64)
    np.cumsum(la + lb, out=out[1:])
    idx = np.empty(int(out[-1]), dtype=np.int64)
    pa_rows = np.repeat(np.arange(len(la)), la)
    pb_rows = np.repeat(np.arange(len(lb)), lb)
    idx[out[pa_rows] + (np.arange(len(va)) - oa[pa_rows])] = np.arange(len(va))
    idx[out[pb_rows] + la[pb_rows] + (np.arange(len(vb)) - ob[pb_rows])] = len(va) + np.arange(len(vb))
    values = pa.concat_arrays([va, vb]).take(pa.array(idx))
    return pa.ListArray.from_arrays(pa.array(out, pa.int32()), values)


def first_roles(arr: pa.Array) -> np.ndarray:
    """The role of each list's first message (None for empty / null lists)."""
    offs, values = list_parts(arr)
    lens = np.diff(offs)
    out = np.full(len(lens), None, dtype=object)
    has = np.flatnonzero(lens > 0)
    if len(has):
        out[has] = np.asarray(pc.struct_field(values, "role").take(pa.array(offs[:-1][has])).to_pylist())
    return out


def messages_from_py(rows: Sequence[list[dict[str, str]]]) -> pa.Array:
    return pa.array(list(rows), type=MESSAGES)
