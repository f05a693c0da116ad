"""Arrow arrays from numpy arrays and Python lists, and numpy arrays from
Arrow columns, without importing pandas.

pyarrow's own converters (``pa.array``, ``pa.scalar``, ``Array.to_numpy``,
``Table.from_pydict`` of lists, and every compute call given a Python scalar)
ask pyarrow's pandas shim whether the value is a pandas object, which imports
pandas (about half a second) whenever it is installed.  The functions here
build the buffers themselves (``pa.Array.from_buffers``) and read them back
with ``np.frombuffer``; the results equal what ``pa.array`` /
``to_numpy(zero_copy_only=False)`` give (property-tested in
``tests/test_first_call.py``).  Numeric numpy arrays are wrapped without a
copy, as ``pa.array`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "array",
    "constant_strings",
    "from_numpy",
    "scalar",
    "strings",
    "to_numpy",
    "valid_mask",
]

_INT32_MAX = (1 << 31) - 1


def _bitmap(bits: np.ndarray) -> pa.Buffer:
    """A bool array as an Arrow bitmap (least significant bit first)."""
    return pa.py_buffer(np.packbits(bits, bitorder="little"))


def from_numpy(values: Any, mask: Any = None, type: pa.DataType | None = None) -> pa.Array:
    """``pa.array(values, mask=mask, type=type)`` for a one-dimensional bool,
    integer or float numpy array (``mask``: True where the value is null)."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"expected a one-dimensional array, got shape {values.shape}")
    n = len(values)
    if values.dtype == np.bool_:
        data = _bitmap(values)
        typ = pa.bool_()
    elif values.dtype.kind in "iuf":
        if not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
        values = np.ascontiguousarray(values)
        typ = pa.from_numpy_dtype(values.dtype)
        data = pa.py_buffer(values)
    else:
        raise TypeError(f"from_numpy: expected bool, integer or float values, got {values.dtype}")
    validity, nulls = None, 0
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"mask has shape {mask.shape} for {n} values")
        nulls = int(np.count_nonzero(mask))
        if nulls:
            validity = _bitmap(~mask)
    arr = pa.Array.from_buffers(typ, n, [validity, data], null_count=nulls)
    if type is not None and type != typ:
        arr = arr.cast(type)
    return arr


def _offsets_type(type: pa.DataType) -> type[np.integer]:
    if pa.types.is_string(type) or pa.types.is_binary(type):
        return np.int32
    if pa.types.is_large_string(type) or pa.types.is_large_binary(type):
        return np.int64
    raise TypeError(f"expected a string or binary type, got {type}")


def _encoded(values: Sequence[Any]) -> tuple[list[bytes], np.ndarray | None] | None:
    """Each value as UTF-8 and the null mask (None: no nulls); None when a
    value is neither str nor None (left to ``pa.array``)."""
    try:
        return [v.encode() for v in values], None  # all str: the common case
    except AttributeError:
        pass
    enc: list[bytes] = []
    null = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            null[i] = True
            enc.append(b"")
        elif isinstance(v, str):
            enc.append(v.encode())
        else:
            return None
    return enc, null


def _string_array(enc: list[bytes], null: np.ndarray | None, type: pa.DataType) -> pa.Array:
    n = len(enc)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=n), out=offsets[1:])
    off = offsets.astype(_offsets_type(type), copy=False)
    validity, nulls = None, 0
    if null is not None:
        nulls = int(np.count_nonzero(null))
        if nulls:
            validity = _bitmap(~null)
    return pa.Array.from_buffers(
        type, n, [validity, pa.py_buffer(off), pa.py_buffer(b"".join(enc))], null_count=nulls
    )


def strings(values: Iterable[Any], type: pa.DataType | None = None) -> pa.Array | pa.ChunkedArray:
    """``pa.array(values, type=type)`` for str and None values (``type``:
    string by default, or large_string, binary, large_binary).  Like
    ``pa.array``, more than 2 GiB of text in a 32-bit-offset type gives a
    chunked array; a lone surrogate is a ``UnicodeEncodeError``.  Values of
    other kinds are left to ``pa.array``."""
    type = pa.string() if type is None else type
    vals = values if isinstance(values, (list, tuple)) else list(values)
    wide = _offsets_type(type) is np.int64
    got = _encoded(vals)
    if got is None:
        return pa.array(vals, type=type)
    enc, null = got
    if wide:
        return _string_array(enc, null, type)
    sizes = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
    if int(sizes.sum()) <= _INT32_MAX:
        return _string_array(enc, null, type)
    # more than 32-bit offsets hold: chunks of at most 2 GiB each
    chunks, start, size = [], 0, 0
    for i, s in enumerate(sizes.tolist()):
        if size + s > _INT32_MAX and i > start:
            chunks.append(_string_array(enc[start:i], None if null is None else null[start:i], type))
            start, size = i, 0
        size += s
    chunks.append(_string_array(enc[start:], None if null is None else null[start:], type))
    return pa.chunked_array(chunks, type=type)


def constant_strings(
    value: str | None, n: int, type: pa.DataType | None = None
) -> pa.Array | pa.ChunkedArray:
    """``pa.array([value] * n, type=type)`` (string by default)."""
    type = pa.string() if type is None else type
    if value is None:
        return pa.nulls(n, type)
    b = value.encode()
    off_t = _offsets_type(type)
    if off_t is np.int32 and len(b) * n > _INT32_MAX:
        return strings([value] * n, type)
    offsets = np.arange(n + 1, dtype=np.int64) * len(b)
    return pa.Array.from_buffers(
        type, n, [None, pa.py_buffer(offsets.astype(off_t, copy=False)), pa.py_buffer(b * n)]
    )


def scalar(value: str | None, type: pa.DataType | None = None) -> pa.Scalar:
    """``pa.scalar(value, type)`` for a string (the compute functions take
    it where a Python str would import pandas)."""
    return constant_strings(value, 1, type)[0]


def array(values: Any, type: pa.DataType | None = None) -> pa.Array | pa.ChunkedArray:
    """``pa.array(values, type=type)``: Arrow arrays as they are (cast to
    ``type``), numpy bool / number arrays and lists of str (and None) built
    without pandas, anything else by ``pa.array``."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values if type is None or values.type == type else values.cast(type)
    if isinstance(values, np.ndarray) and values.ndim == 1 and (values.dtype.kind in "biuf"):
        return from_numpy(values, type=type)
    if isinstance(values, (list, tuple)) and (type is None or _is_text(type)):
        has_str = any(isinstance(v, str) for v in values)
        if (has_str or type is not None) and all(v is None or isinstance(v, str) for v in values):
            return strings(values, type)
    return pa.array(values, type=type)


def _is_text(type: pa.DataType) -> bool:
    return (
        pa.types.is_string(type)
        or pa.types.is_large_string(type)
        or pa.types.is_binary(type)
        or pa.types.is_large_binary(type)
    )


def _chunks(arr: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]


def _valid(chunk: pa.Array) -> np.ndarray | None:
    """The chunk's validity as bools (None: no nulls)."""
    if not chunk.null_count:
        return None
    if pa.types.is_null(chunk.type):
        return np.zeros(len(chunk), dtype=bool)
    buf = chunk.buffers()[0]
    assert buf is not None
    bits = np.unpackbits(
        np.frombuffer(buf, dtype=np.uint8), count=chunk.offset + len(chunk), bitorder="little"
    )
    return bits[chunk.offset :].astype(bool)


def valid_mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per value, whether it is not null (``arr.is_valid()`` as numpy)."""
    parts = [_valid(c) for c in _chunks(arr)]
    if not parts:
        return np.zeros(0, dtype=bool)
    return np.concatenate(
        [np.ones(len(c), dtype=bool) if v is None else v for c, v in zip(_chunks(arr), parts)]
    )


def _dtype(t: pa.DataType) -> np.dtype:
    if pa.types.is_boolean(t):
        return np.dtype(bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.dtype(t.to_pandas_dtype())
    raise TypeError(f"to_numpy: expected numbers or bools, got {t}")


def _values(chunk: pa.Array) -> np.ndarray:
    """The chunk's values as numpy (a read-only view for numbers, unpacked
    bits for bools), nulls holding whatever their slots hold."""
    dtype = _dtype(chunk.type)
    n, off = len(chunk), chunk.offset
    buf = chunk.buffers()[1]
    if n == 0 or buf is None:
        return np.zeros(n, dtype=dtype)
    if dtype == np.bool_:
        bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=off + n, bitorder="little")
        return bits[off:].astype(bool)
    view = np.frombuffer(buf, dtype=dtype, count=off + n)[off:]
    view.flags.writeable = False  # Arrow's memory, as to_numpy gives it
    return view


def to_numpy(arr: pa.Array | pa.ChunkedArray, *, fill: Any = None) -> np.ndarray:
    """A bool, integer or float Arrow array (or chunked array) as numpy:
    ``to_numpy(zero_copy_only=False)`` without pandas (a read-only view of a
    single chunk of numbers without nulls, else a copy).  Nulls take the
    value ``fill`` (e.g. ``np.nan``; cast integers to float first); with
    nulls and no ``fill`` it is a ValueError."""
    chunks = _chunks(arr)
    if pa.types.is_null(arr.type) and len(arr) and fill is None:
        raise ValueError("to_numpy: the array is all null; give fill=")
    if pa.types.is_null(arr.type):
        return np.full(len(arr), fill)
    if not chunks:
        return np.zeros(0, dtype=_dtype(arr.type))
    parts = []
    for c in chunks:
        v = _values(c)
        valid = _valid(c)
        if valid is not None:
            if fill is None:
                raise ValueError(f"to_numpy: {c.null_count} null(s); give fill=")
            v = v.copy()
            v[~valid] = fill
        parts.append(v)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
