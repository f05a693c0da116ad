"""Every pair format in, one Arrow table out.

:func:`read_pairs` reads preference pairs from a file, a folder of shards, a
``datasets.Dataset`` / ``DatasetDict``, a Hugging Face dataset name, a
pyarrow table, a polars DataFrame or a list of records, detects the format
from the columns (see :mod:`prefcurate.adapters`) and returns the canonical
pair table (:mod:`prefcurate.schema`).  :func:`convert_pairs` returns the
full account (:class:`ConvertResult`: pairs, removed rows, quarantined rows,
counts), :func:`iter_pairs` streams canonical record batches, and
:func:`write_pairs` writes JSON Lines, Parquet or a ``save_to_disk`` folder.

Every input row is accounted for::

    rows read = rows converted (into pairs) + rows removed + rows quarantined

*removed* rows are dropped by a documented rule of their format (a HelpSteer2
tie, a RewardBench prompt-only row, ...); *quarantined* rows are invalid
(malformed JSON, invalid UTF-8, a missing field, a wrong type, an empty
message, a bad turn order).  With ``on_invalid="raise"`` (the default) the
first invalid row raises :class:`InvalidInputError` naming the file, the line
or row, and the field.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _core
from . import io as _io
from .adapters import (
    CANONICAL_EXTRA,
    Adapter,
    AdapterOutput,
    BatchContext,
    ColumnError,
    _list_parts,
    check_pairs,
    detect_format,
    get_adapter,
)
from .errors import InvalidInputError
from .schema import MESSAGES, REQUIRED

OnInvalid = Literal["raise", "quarantine"]

#: Columns of the quarantine and removed tables.
ISSUE_SCHEMA = pa.schema(
    [
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("field", pa.string()),
        pa.field("file", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("line", pa.int64()),
        pa.field("message", pa.string()),
        pa.field("record", pa.string()),
    ]
)

DEFAULT_BATCH_ROWS = 65_536
JSONL_BLOCK_BYTES = 32 << 20


# ---------------------------------------------------------------- rows with their origin


@dataclass
class _Rows:
    """Source rows and where each came from."""

    table: pa.Table
    file: np.ndarray  # int32 index into the stream's file list
    row: np.ndarray  # int64 row within its file (or within the input)
    line: np.ndarray  # int64 1-based line (JSON Lines), else -1

    @property
    def n(self) -> int:
        return self.table.num_rows

    @staticmethod
    def make(table: pa.Table, file: int, row0: int, lines: np.ndarray | None = None) -> _Rows:
        n = table.num_rows
        return _Rows(
            table,
            np.full(n, file, dtype=np.int32),
            np.arange(row0, row0 + n, dtype=np.int64),
            lines if lines is not None else np.full(n, -1, dtype=np.int64),
        )

    def slice(self, start: int, stop: int) -> _Rows:
        return _Rows(
            self.table.slice(start, stop - start),
            self.file[start:stop],
            self.row[start:stop],
            self.line[start:stop],
        )

    @staticmethod
    def concat(parts: Sequence[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        try:
            table = pa.concat_tables([p.table for p in parts], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"blocks of the input have incompatible columns: {e}") from None
        return _Rows(
            table,
            np.concatenate([p.file for p in parts]),
            np.concatenate([p.row for p in parts]),
            np.concatenate([p.line for p in parts]),
        )


@dataclass
class _Issue:
    stage: str
    reason: str
    field: str | None
    file: str | None
    row: int | None
    line: int | None
    message: str
    record: str | None


def _where(label: str, file: str | None, row: int | None, line: int | None) -> str:
    if file is not None and line is not None and line > 0:
        return f"{file}:{line}"
    return f"{file if file is not None else label}: row {row}"


def _message(where: str, field: str | None, detail: str) -> str:
    return f"{where}: field {field!r} {detail}" if field else f"{where}: {detail}"


def _issues_table(issues: Sequence[_Issue]) -> pa.Table:
    if not issues:
        return ISSUE_SCHEMA.empty_table()
    cols = {name: [getattr(i, name) for i in issues] for name in ISSUE_SCHEMA.names}
    return pa.table(cols, schema=ISSUE_SCHEMA)


# ---------------------------------------------------------------- records -> Arrow


def _kind(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def records_to_table(records: Sequence[dict]) -> tuple[pa.Table, dict[int, tuple[str, str, str]]]:
    """Rows (dicts) as a table, column by column; rows whose value of some
    field has another type than the other rows' are left out and returned as
    ``{row: (field, code, detail)}``."""
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    bad: dict[int, tuple[str, str, str]] = {}
    types: dict[str, pa.DataType | None] = {}
    for k in keys:
        values = [r.get(k) for r in records]
        try:
            types[k] = pa.array(values).type
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            pass
        kinds = [_kind(v) for v in values]
        common = Counter(x for x in kinds if x is not None).most_common(1)[0][0]
        for i, kd in enumerate(kinds):
            if kd is not None and kd != common and i not in bad:
                bad[i] = (k, "wrong_type", f"is a {kd} where the other rows have a {common}")
        good = [i for i in range(len(records)) if kinds[i] in (None, common)]
        try:
            types[k] = pa.array([values[i] for i in good]).type
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            pass
        # nested values of different shapes: the most common type wins
        row_types: dict[int, pa.DataType] = {}
        for i in good:
            try:
                row_types[i] = pa.array([values[i]]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as e:
                bad.setdefault(i, _mixed(k, values[i], e))
        ranked = Counter(str(t) for t in row_types.values()).most_common()
        unified = next(t for t in row_types.values() if str(t) == ranked[0][0])
        for i, t in row_types.items():
            if i in bad:
                continue
            try:
                unified = (
                    pa.unify_schemas(
                        [pa.schema([("x", unified)]), pa.schema([("x", t)])], promote_options="default"
                    )
                    .field("x")
                    .type
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                bad[i] = (k, "wrong_type", f"has type {t} where the other rows have {unified}")
        types[k] = unified
    keep = [i for i in range(len(records)) if i not in bad]
    arrays = []
    for k in keys:
        vals = [records[i].get(k) for i in keep]
        try:
            arrays.append(pa.array(vals, type=types[k]))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # pragma: no cover - unify above prevents it
            raise InvalidInputError(f"field {k!r}: values of several types: {e}") from None
    return pa.Table.from_arrays(arrays, names=list(keys)), bad


def _path_kinds(v: Any, path: str, out: dict[str, set[str]]) -> None:
    if isinstance(v, dict):
        for key, x in v.items():
            _path_kinds(x, f"{path}.{key}", out)
    elif isinstance(v, (list, tuple)):
        for x in v:
            _path_kinds(x, f"{path}[]", out)
    elif v is not None:
        out.setdefault(path, set()).add(_kind(v) or "null")


def _mixed(field: str, value: Any, err: Exception) -> tuple[str, str, str]:
    """(field, code, detail) for a value whose parts have inconsistent types."""
    kinds: dict[str, set[str]] = {}
    _path_kinds(value, field, kinds)
    for path, ks in kinds.items():
        if len(ks) > 1:
            return path, "wrong_type", f"mixes values of types {' and '.join(sorted(ks))}"
    return field, "wrong_type", f"cannot be read: {err}"


def _record_json(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- sources


IssueSink = Callable[[_Issue], None]


def _no_timestamps(t: pa.DataType) -> pa.DataType:
    """``t`` with pyarrow's inferred timestamps turned back into strings."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _no_timestamps(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_no_timestamps(t.value_type))
    return t


class _Reader:
    """Turns a source into batches of :class:`_Rows`, reporting unparseable rows."""

    def __init__(self, src: Any, *, split: str | None, batch_rows: int, sink: IssueSink) -> None:
        self.src = src
        self.split = split
        self.batch_rows = batch_rows
        self.sink = sink
        self.files: list[str | None] = []
        self.label = "input"
        self.rows_read = 0  # rows seen, including unparseable ones

    def _file(self, name: str | None) -> int:
        self.files.append(name)
        return len(self.files) - 1

    def _bad_row(
        self, fi: int, row: int, line: int | None, reason: str, detail: str, record: str | None
    ) -> None:
        file = self.files[fi]
        where = _where(self.label, file, row, line)
        self.sink(_Issue("read", reason, None, file, row, line, f"{where}: {detail}", record))

    # -- in-memory

    def _table(self, table: pa.Table, label: str) -> Iterator[_Rows]:
        self.label = label
        fi = self._file(None)
        row = 0
        for b in table.to_batches(max_chunksize=self.batch_rows):
            if b.num_rows:
                t = pa.Table.from_batches([b])
                self.rows_read += t.num_rows
                yield _Rows.make(t, fi, row)
                row += t.num_rows

    def _records(
        self,
        records: Sequence[Any],
        fi: int,
        rows: Sequence[int] | None = None,
        lines: Sequence[int] | None = None,
    ) -> Iterator[_Rows]:
        """Python records (dicts) in batches; non-objects and wrongly typed
        rows are reported.  ``rows`` / ``lines``: where each record came from
        (default: its position)."""
        file = self.files[fi]
        for s in range(0, len(records), self.batch_rows):
            chunk = records[s : s + self.batch_rows]
            self.rows_read += len(chunk)
            where_row = [rows[s + j] if rows is not None else s + j for j in range(len(chunk))]
            where_line = [lines[s + j] if lines is not None else None for j in range(len(chunk))]
            idx = [j for j, r in enumerate(chunk) if isinstance(r, dict)]
            for j, r in enumerate(chunk):
                if not isinstance(r, dict):
                    self._bad_row(
                        fi,
                        where_row[j],
                        where_line[j],
                        "not_an_object",
                        f"expected an object, got {type(r).__name__}",
                        _record_json(r),
                    )
            table, bad = records_to_table([chunk[j] for j in idx])
            for k in sorted(bad):
                j = idx[k]
                f, code, detail = bad[k]
                where = _where(self.label, file, where_row[j], where_line[j])
                self.sink(
                    _Issue(
                        "read",
                        code,
                        f,
                        file,
                        where_row[j],
                        where_line[j],
                        _message(where, f, detail),
                        _record_json(chunk[j]),
                    )
                )
            good = [idx[k] for k in range(len(idx)) if k not in bad]
            if table.num_rows:
                out = _Rows.make(table, fi, 0)
                out.row = np.array([where_row[j] for j in good], dtype=np.int64)
                if lines is not None:
                    out.line = np.array([where_line[j] for j in good], dtype=np.int64)
                yield out

    # -- files

    def _path(self, p: Path) -> Iterator[_Rows]:
        self.label = str(p)
        if p.is_dir():
            yield from self._folder(p)
            return
        fmt, compression = _io._split_suffix(p)
        if fmt is None:
            raise InvalidInputError(
                f"{p}: cannot tell the format from the name; use a .jsonl/.json/.parquet/.csv/.arrow name "
                "(optionally .gz/.zst)"
            )
        fi = self._file(str(p))
        if fmt == "jsonl":
            yield from self._jsonl(p, compression, fi)
        elif fmt == "json":
            yield from self._json(p, compression, fi)
        elif fmt == "parquet":
            yield from self._parquet(p, fi)
        else:
            table = _io.read_table(p)
            yield from self._whole(table, fi)

    def _whole(self, table: pa.Table, fi: int) -> Iterator[_Rows]:
        row = 0
        for b in table.to_batches(max_chunksize=self.batch_rows):
            if b.num_rows:
                self.rows_read += b.num_rows
                yield _Rows.make(pa.Table.from_batches([b]), fi, row)
                row += b.num_rows

    def _folder(self, p: Path) -> Iterator[_Rows]:
        if (p / "dataset_dict.json").is_file():
            try:
                splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
            except (OSError, ValueError, KeyError) as e:
                raise InvalidInputError(f"{p}: unreadable dataset_dict.json: {e}") from None
            split = _pick_split(list(splits), self.split, str(p))
            yield from self._folder(p / split)
            return
        if _io._is_hf_saved(p):
            fi = self._file(str(p))
            yield from self._whole(_io._read_hf_saved(p), fi)
            return
        shards = _io._shards(p)
        if not shards:
            raise InvalidInputError(f"{p}: folder holds no .jsonl/.json/.parquet/.csv/.arrow files")
        for s in shards:
            yield from self._path(s)
        self.label = str(p)

    def _parquet(self, p: Path, fi: int) -> Iterator[_Rows]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(str(p))
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInputError(f"{p}: unreadable Parquet file (truncated or corrupt?): {e}") from None
        row = 0
        it = pf.iter_batches(batch_size=self.batch_rows)
        while True:
            try:
                b = next(it)
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as e:
                raise InvalidInputError(f"{p}: unreadable Parquet data after row {row}: {e}") from None
            if b.num_rows:
                self.rows_read += b.num_rows
                yield _Rows.make(pa.Table.from_batches([b]), fi, row)
                row += b.num_rows

    def _json(self, p: Path, compression: str | None, fi: int) -> Iterator[_Rows]:
        data = _io._read_bytes(p, compression)
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{p}: not valid UTF-8 at byte {e.start}") from None
        except json.JSONDecodeError as e:
            if e.msg == "Extra data":  # JSON Lines named .json
                yield from self._jsonl(p, compression, fi)
                return
            raise InvalidInputError(f"{p}:{e.lineno}: invalid JSON: {e.msg} at column {e.colno}") from None
        if isinstance(doc, dict):
            lists = {k: v for k, v in doc.items() if isinstance(v, list)}
            if (
                lists
                and len(lists) == len(doc)
                and all(isinstance(r, dict) for v in lists.values() for r in v)
            ):
                if len(lists) == 1:
                    doc = next(iter(lists.values()))
                else:
                    # {group: [records]} (e.g. EvalBiasBench's bias categories)
                    doc = [{**r, "group": k} if "group" not in r else r for k, v in lists.items() for r in v]
            elif lists and len(lists) == len(doc) and len({len(v) for v in lists.values()}) == 1:
                try:
                    yield from self._whole(pa.Table.from_pydict(lists), fi)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    raise InvalidInputError(f"{p}: {e}") from None
                return
            else:
                raise InvalidInputError(
                    f"{p}: expected a list of records, a dict holding lists of records, or equal-length "
                    f"columns; got an object with keys {sorted(doc)[:8]}"
                )
        if not isinstance(doc, list):
            raise InvalidInputError(f"{p}: expected a JSON list of records, got {type(doc).__name__}")
        yield from self._records(doc, fi)

    def _jsonl(self, p: Path, compression: str | None, fi: int) -> Iterator[_Rows]:
        line0, row0 = 1, 0
        carry = b""
        with _io._open(p, compression) as f:
            first = True
            while True:
                chunk = f.read(JSONL_BLOCK_BYTES)
                if first and chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]  # a UTF-8 byte order mark
                first = False
                data = carry + chunk if carry else chunk
                if chunk:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        carry = data
                        continue
                    block, carry = data[:cut], data[cut:]
                else:
                    block, carry = data, b""
                if block:
                    n_lines = block.count(b"\n")
                    for rows, n_rec in self._jsonl_block(p, block, fi, line0, row0):
                        row0 += n_rec
                        if rows is not None:
                            yield rows
                    line0 += n_lines
                if not chunk:
                    return

    def _jsonl_block(
        self, p: Path, block: bytes, fi: int, line0: int, row0: int
    ) -> Iterator[tuple[_Rows | None, int]]:
        import pyarrow.json as pj

        arr = np.frombuffer(block, dtype=np.uint8)
        nl = np.flatnonzero(arr == 10)
        starts = np.concatenate([[0], nl + 1])
        ends = np.concatenate([nl, [len(arr)]])
        keep = starts < ends
        starts, ends, seg = starts[keep], ends[keep], np.flatnonzero(keep)
        if len(starts):
            content = ~np.isin(arr, np.array([32, 9, 13, 10], dtype=np.uint8))
            counts = np.add.reduceat(content, starts, dtype=np.int64)
            # reduceat sums up to the next start; trim to each segment's end
            nonblank = counts > 0
            starts, ends, seg = starts[nonblank], ends[nonblank], seg[nonblank]
            del content
        lines = line0 + seg.astype(np.int64)
        n = len(starts)
        if n == 0:
            return
        table = None
        try:
            opts = pj.ReadOptions(block_size=len(block) + 1)
            table = pj.read_json(pa.BufferReader(block), read_options=opts)
            if any(_no_timestamps(f.type) != f.type for f in table.schema):
                schema = pa.schema([pa.field(f.name, _no_timestamps(f.type)) for f in table.schema])
                table = pj.read_json(
                    pa.BufferReader(block),
                    read_options=opts,
                    parse_options=pj.ParseOptions(explicit_schema=schema),
                )
            table.validate(full=True)  # the JSON reader does not check UTF-8
            if table.num_rows != n:
                table = None
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            table = None
        if table is not None:
            self.rows_read += n
            for s in range(0, n, self.batch_rows):
                e = min(n, s + self.batch_rows)
                rows = _Rows.make(table.slice(s, e - s), fi, row0 + s, lines[s:e])
                yield rows, e - s
            return
        # slow path: line by line, so that every bad line is named
        records: list[Any] = []
        rec_lines: list[int] = []
        rec_rows: list[int] = []
        for k in range(n):
            raw = block[starts[k] : ends[k]]
            line = int(lines[k])
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                self._bad_row(
                    fi,
                    row0 + k,
                    line,
                    "invalid_utf8",
                    f"not valid UTF-8 (byte {e.start} of the line)",
                    raw.decode("utf-8", errors="backslashreplace"),
                )
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                self._bad_row(
                    fi, row0 + k, line, "invalid_json", f"invalid JSON: {e.msg} at column {e.colno}", text
                )
                continue
            if not isinstance(rec, dict):
                self._bad_row(
                    fi,
                    row0 + k,
                    line,
                    "not_an_object",
                    f"expected a JSON object, got {type(rec).__name__}",
                    text,
                )
                continue
            records.append(rec)
            rec_lines.append(line)
            rec_rows.append(row0 + k)
        self.rows_read += n - len(records)
        for rows in self._records(records, fi, rec_rows, rec_lines):
            yield rows, 0
        yield None, n

    # -- dispatch

    def batches(self) -> Iterator[_Rows]:
        src = self.src
        if isinstance(src, (str, os.PathLike)):
            p = Path(src)
            if p.exists():
                yield from self._path(p)
                return
            if isinstance(src, str) and _looks_like_hub_name(src):
                yield from self._hub(src)
                return
            raise FileNotFoundError(f"{p}: no such file or directory")
        if isinstance(src, pa.Table):
            yield from self._table(src, "pyarrow.Table")
            return
        if isinstance(src, pa.RecordBatch):
            yield from self._table(pa.Table.from_batches([src]), "pyarrow.RecordBatch")
            return
        mod = type(src).__module__ or ""
        if mod.startswith("datasets"):
            yield from self._dataset(src)
            return
        if mod.startswith("polars"):
            if type(src).__name__ == "LazyFrame":
                src = src.collect()
            if type(src).__name__ != "DataFrame":
                raise InvalidInputError(f"unsupported polars input {type(src).__name__}; pass a DataFrame")
            yield from self._table(src.to_arrow(), "polars.DataFrame")
            return
        if isinstance(src, (list, tuple)):
            self.label = "records"
            fi = self._file(None)
            yield from self._records(list(src), fi)
            return
        if hasattr(src, "__arrow_c_stream__"):
            yield from self._table(pa.table(src), type(src).__name__)
            return
        raise InvalidInputError(
            f"unsupported input {type(src).__name__}; pass a path, a Hugging Face dataset name, a "
            "datasets.Dataset, a pyarrow Table, a polars DataFrame or a list of records"
        )

    def _dataset(self, ds: Any, label: str | None = None) -> Iterator[_Rows]:
        from ._inputs import dataset_table

        if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
            split = _pick_split(list(ds), self.split, label or "DatasetDict")
            yield from self._dataset(ds[split], f"{label or 'DatasetDict'}[{split}]")
            return
        if type(ds).__name__ == "IterableDataset":
            raise InvalidInputError(
                "an IterableDataset is not supported; load the dataset without streaming=True"
            )
        yield from self._table(dataset_table(ds), label or "datasets.Dataset")

    def _hub(self, name: str) -> Iterator[_Rows]:
        try:
            import datasets
        except ImportError:
            raise InvalidInputError(
                f"{name!r} is not a local path; reading a Hugging Face dataset needs the `datasets` package "
                "(pip install prefcurate[hf])"
            ) from None
        ds = datasets.load_dataset(name, split=self.split) if self.split else datasets.load_dataset(name)
        label = f"{name}[{self.split}]" if self.split else name
        yield from self._dataset(ds, label)


def _pick_split(splits: list[str], split: str | None, where: str) -> str:
    if split is not None:
        if split not in splits:
            raise InvalidInputError(f"{where}: no split {split!r}; splits are {splits}")
        return split
    if len(splits) == 1:
        return splits[0]
    raise InvalidInputError(f"{where}: holds several splits {splits}; pass split=, e.g. split={splits[0]!r}")


def _looks_like_hub_name(s: str) -> bool:
    if s.startswith((".", "/", "~")) or "\\" in s or s.count("/") > 1:
        return False
    return _io._split_suffix(Path(s))[0] is None


# ---------------------------------------------------------------- ids


def _string_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(the UTF-8 bytes of a string array's values, offsets into them), zero-copy."""
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    if bufs[2] is None or offs[-1] == offs[0]:
        return np.zeros(0, dtype=np.uint8), offs - offs[0]
    raw = np.frombuffer(bufs[2], dtype=np.uint8)[offs[0] : offs[-1]]
    return raw, offs - offs[0]


def pair_ids(source: pa.Array, chosen: pa.Array, rejected: pa.Array, *, chunk: int = 1 << 20) -> pa.Array:
    """:func:`prefcurate.schema.pair_id` of every row, exactly: the JSON
    document built and hashed in Rust (in parallel, from the Arrow columns
    in place), ``chunk`` rows per call.  The rows must hold valid canonical
    messages."""
    n = len(chosen)
    out = []
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        try:
            data, offs = _core.pair_ids(source.slice(s, m), chosen.slice(s, m), rejected.slice(s, m))
        except InvalidInputError as e:
            raise InvalidInputError(f"{e} (rows counted from row {s})") if s else e from None
        if offs[-1] >= 2**31:
            raise InvalidInputError(
                f"the ids of rows {s}..{s + m - 1} take over 2 GiB: the source names are too long"
            )
        out.append(pa.StringArray.from_buffers(m, pa.py_buffer(offs.astype(np.int32)), pa.py_buffer(data)))
    if not out:
        return pa.array([], pa.string())
    return out[0] if len(out) == 1 else pa.concat_arrays(out)


# ---------------------------------------------------------------- the engine


@dataclass
class ConvertResult:
    """What :func:`convert_pairs` made of its input.

    ``pairs``: the canonical pair table.  ``removed``: the input rows the
    format's rules dropped (HelpSteer2 ties, RewardBench prompt-only rows,
    ...), ``quarantine``: the invalid rows; both with ``stage``, ``reason``,
    ``field``, ``file``, ``row``, ``line``, ``message`` and ``record`` (the
    row as JSON, or the raw line).  ``rows_read == rows_converted +
    rows_removed + rows_quarantined`` is checked on construction.
    """

    pairs: pa.Table
    removed: pa.Table
    quarantine: pa.Table
    format: str
    rows_read: int
    rows_converted: int
    identical_pairs: int = 0
    sources: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rows_read != self.rows_converted + self.removed.num_rows + self.quarantine.num_rows:
            raise AssertionError(
                f"{self.rows_read} rows read but {self.rows_converted} converted + "
                f"{self.removed.num_rows} removed + {self.quarantine.num_rows} quarantined"
            )

    @property
    def stats(self) -> dict[str, Any]:
        """Counts: rows read / converted / removed / quarantined, pairs, and
        removed and quarantined rows by reason."""
        return {
            "format": self.format,
            "rows_read": self.rows_read,
            "rows_converted": self.rows_converted,
            "pairs": self.pairs.num_rows,
            "rows_removed": self.removed.num_rows,
            "rows_quarantined": self.quarantine.num_rows,
            "removed_by_reason": _by_reason(self.removed),
            "quarantined_by_reason": _by_reason(self.quarantine),
            "identical_pairs": self.identical_pairs,
            "pairs_by_source": dict(self.sources),
        }

    def __repr__(self) -> str:
        return (
            f"ConvertResult({self.format}: {self.rows_read} rows read -> {self.pairs.num_rows} pairs; "
            f"{self.removed.num_rows} removed, {self.quarantine.num_rows} quarantined)"
        )


def _by_reason(t: pa.Table) -> dict[str, int]:
    return dict(Counter(t.column("reason").to_pylist())) if t.num_rows else {}


class _Engine:
    def __init__(self, fmt: str, source: str | None, on_invalid: str, batch_rows: int) -> None:
        if on_invalid not in ("raise", "quarantine"):
            raise InvalidInputError(f"on_invalid must be 'raise' or 'quarantine', got {on_invalid!r}")
        self.adapter: Adapter | None = None if fmt == "auto" else get_adapter(fmt)
        self.source = source
        self.on_invalid = on_invalid
        self.batch_rows = batch_rows
        self.quarantine: list[_Issue] = []
        self.removed: list[_Issue] = []
        self.converted = 0
        self.pairs = 0
        self.identical = 0
        self.sources: Counter[str] = Counter()
        self.pending: list[_Rows] = []
        self.reader: _Reader | None = None

    # issues ---------------------------------------------------------------

    def sink(self, issue: _Issue) -> None:
        if self.on_invalid == "raise":
            raise InvalidInputError(issue.message)
        self.quarantine.append(issue)

    @property
    def label(self) -> str:
        return self.reader.label if self.reader else "input"

    def _issues(self, rows: _Rows, problems: dict[int, Any]) -> list[_Issue]:
        if not problems:
            return []
        idx = sorted(problems)
        records = rows.table.take(pa.array(idx, pa.int64())).to_pylist()
        files = self.reader.files if self.reader else [None]
        out = []
        for i, rec in zip(idx, records):
            p = problems[i]
            file = files[int(rows.file[i])]
            row = int(rows.row[i])
            line = int(rows.line[i]) if rows.line[i] > 0 else None
            where = _where(self.label, file, row, line)
            out.append(
                _Issue(
                    "read",
                    p.code,
                    p.field,
                    file,
                    row,
                    line,
                    _message(where, p.field, p.detail),
                    _record_json(rec),
                )
            )
        return out

    # conversion -----------------------------------------------------------

    def feed(self, rows: _Rows) -> list[pa.Table]:
        if self.adapter is None:
            self.adapter = get_adapter(detect_format(rows.table, where=self.label))
        grouping = self.adapter.grouping
        if grouping == "all":
            self.pending.append(rows)
            return []
        if grouping == "consecutive":
            if self.pending:
                rows = _Rows.concat([*self.pending, rows])
                self.pending = []
            key = self.adapter.group_key
            assert key is not None
            if key in rows.table.column_names and rows.n:
                col = rows.table.column(key)
                last = col[rows.n - 1]
                if last.is_valid:
                    same = pc.equal(col, last).fill_null(False).to_numpy(zero_copy_only=False)
                    k = rows.n
                    while k > 0 and same[k - 1]:
                        k -= 1
                    self.pending = [rows.slice(k, rows.n)]
                    rows = rows.slice(0, k)
        return self._convert(rows) if rows.n else []

    def finish(self) -> list[pa.Table]:
        if not self.pending:
            return []
        rows = _Rows.concat(self.pending)
        self.pending = []
        return self._convert(rows)

    def _convert(self, rows: _Rows) -> list[pa.Table]:
        adapter = self.adapter
        assert adapter is not None
        n = rows.n
        ctx = BatchContext(n)
        out: AdapterOutput | None
        try:
            out = adapter.convert(rows.table, ctx)
        except ColumnError as e:
            ctx.invalid_rows(ctx.ok(), e.field, e.code, e.detail)
            out = None
        pairs = None
        if out is not None and out.table.num_rows:
            pairs = self._finish_pairs(out, ctx)
        self._account(ctx, out, n)
        if self.on_invalid == "raise" and ctx.invalid:
            first = min(ctx.invalid)
            raise InvalidInputError(self._issues(rows, {first: ctx.invalid[first]})[0].message)
        self.quarantine.extend(self._issues(rows, ctx.invalid))
        self.removed.extend(self._issues(rows, ctx.removed))
        if pairs is None or not pairs.num_rows:
            return []
        return [pairs]

    def _account(self, ctx: BatchContext, out: AdapterOutput | None, n: int) -> None:
        used = np.zeros(n, dtype=np.int64)
        if out is not None:
            np.add.at(used, out.rows, 1)
            if out.rows2 is not None:
                np.add.at(used, out.rows2, 1)
        used += ctx.flagged
        if (used != 1).any():  # pragma: no cover - an adapter bug
            bad = int(np.flatnonzero(used != 1)[0])
            raise AssertionError(
                f"adapter {self.adapter.name if self.adapter else '?'}: row {bad} used {used[bad]} times"
            )

    def _finish_pairs(self, out: AdapterOutput, ctx: BatchContext) -> pa.Table:
        t = out.table
        chosen = _one(t.column("chosen"))
        rejected = _one(t.column("rejected"))
        problems, first_user = check_pairs(chosen, rejected)
        keep = np.ones(t.num_rows, dtype=bool)
        if problems:
            from .adapters import Problem

            for k, (fld, code, detail) in problems.items():
                keep[k] = False
                for r in (out.rows, out.rows2):
                    if r is not None:
                        i = int(r[k])
                        ctx.flagged[i] = True
                        ctx.invalid[i] = Problem(fld, code, detail)
            out.rows = out.rows[keep]
            if out.rows2 is not None:
                out.rows2 = out.rows2[keep]
        _, cvals = _list_parts(chosen)
        prompt = pc.struct_field(cvals, "content").take(pa.array(first_user[keep]))
        if problems:
            sel = pa.array(np.flatnonzero(keep))
            t = t.take(sel)
            chosen, rejected = chosen.take(sel), rejected.take(sel)
        m = t.num_rows
        self.converted += m * (2 if out.rows2 is not None else 1)
        assert self.adapter is not None
        if self.source is not None:
            source = pa.repeat(self.source, m).cast(pa.string())
        elif "source" in t.column_names:
            source = _one(t.column("source")).fill_null(self.adapter.default_source)
        else:
            source = pa.repeat(self.adapter.default_source, m).cast(pa.string())
        if "id" in t.column_names:
            ids = _one(t.column("id"))
            if ids.null_count:
                missing = np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))
                sel = pa.array(missing)
                hashed = pair_ids(source.take(sel), chosen.take(sel), rejected.take(sel)).to_pylist()
                fill = ids.to_pylist()
                for j, i in enumerate(missing.tolist()):
                    fill[i] = hashed[j]
                ids = pa.array(fill, pa.string())
        else:
            ids = pair_ids(source, chosen, rejected)
        # identical answers: a pair without a preference (counted, not removed)
        self.identical += _identical_answers(chosen, rejected)
        self.pairs += m
        if self.source is None and "source" in t.column_names:
            for item in pc.value_counts(source).to_pylist():
                self.sources[item["values"]] += item["counts"]
        else:
            self.sources[self.source or self.adapter.default_source] += m
        cols: dict[str, Any] = {
            "id": ids,
            "source": source,
            "chosen": chosen.cast(MESSAGES),
            "rejected": rejected.cast(MESSAGES),
            "prompt": prompt.cast(pa.string()),
        }
        for name in t.column_names:
            if name in ("chosen", "rejected", "id", "source"):
                continue
            col = t.column(name)
            if name in CANONICAL_EXTRA and col.type != CANONICAL_EXTRA[name]:
                try:
                    col = col.cast(CANONICAL_EXTRA[name])
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                    raise InvalidInputError(
                        f"{self.label}: column {name!r} is {col.type}; the canonical {name!r} is "
                        f"{CANONICAL_EXTRA[name]} ({e}); rename the column"
                    ) from None
            cols[name] = col
        return pa.table(cols)


def _one(col: pa.ChunkedArray) -> pa.Array:
    """A column as one array, without copying when it has one chunk."""
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _identical_answers(chosen: pa.Array, rejected: pa.Array) -> int:
    """How many pairs have the same chosen and rejected answer text."""
    ends = []
    for lst in (chosen, rejected):
        offs, values = _list_parts(lst)
        content = pc.struct_field(values, "content")
        _, coffs = _string_bytes(content)
        last = offs[1:] - 1
        ends.append((content, last, coffs[last + 1] - coffs[last]))
    (cc, cl, clen), (rc, rl, rlen) = ends
    cand = np.flatnonzero(clen == rlen)
    if not len(cand):
        return 0
    same = pc.equal(cc.take(pa.array(cl[cand])), rc.take(pa.array(rl[cand])))
    return int(pc.sum(same.cast(pa.int64())).as_py() or 0)


def _run(
    src: Any, fmt: str, source: str | None, split: str | None, on_invalid: str, batch_rows: int
) -> tuple[_Engine, Iterator[pa.Table]]:
    engine = _Engine(fmt, source, on_invalid, batch_rows)
    reader = _Reader(src, split=split, batch_rows=batch_rows, sink=engine.sink)
    engine.reader = reader

    def gen() -> Iterator[pa.Table]:
        for rows in reader.batches():
            yield from engine.feed(rows)
        yield from engine.finish()

    return engine, gen()


def _result(engine: _Engine, tables: list[pa.Table]) -> ConvertResult:
    reader = engine.reader
    assert reader is not None
    if tables:
        try:
            pairs = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"{reader.label}: batches with incompatible columns: {e}") from None
    else:
        pairs = _empty_pairs()
    return ConvertResult(
        pairs=pairs,
        removed=_issues_table(engine.removed),
        quarantine=_issues_table(sorted(engine.quarantine, key=_issue_order)),
        format=engine.adapter.name if engine.adapter else "unknown",
        rows_read=reader.rows_read,
        rows_converted=engine.converted,
        identical_pairs=engine.identical,
        sources=dict(engine.sources),
    )


def _issue_order(i: _Issue) -> tuple:
    return (i.file or "", i.row if i.row is not None else -1)


def _empty_pairs() -> pa.Table:
    return pa.schema([pa.field(n, t) for n, t in REQUIRED.items()]).empty_table()


# ---------------------------------------------------------------- public API


def convert_pairs(
    src: Any,
    format: str = "auto",
    *,
    source: str | None = None,
    split: str | None = None,
    on_invalid: OnInvalid = "raise",
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> ConvertResult:
    """Read preference pairs in any supported format; return the canonical
    pairs with the full account of removed and quarantined rows.

    Parameters
    ----------
    src:
        A local file (``.jsonl``, ``.json``, ``.parquet``, ``.csv``, ``.arrow``,
        optionally ``.gz`` / ``.zst``), a folder of shards, a ``save_to_disk``
        folder, a ``datasets.Dataset`` or ``DatasetDict``, a Hugging Face
        dataset name (loaded with ``datasets.load_dataset(name, split=split)``),
        a pyarrow Table, a polars DataFrame, or a list of records (dicts).
    format:
        ``"auto"`` (detect from the columns) or an adapter name: see
        :data:`prefcurate.adapters.FORMATS`.
    source:
        The ``source`` column of every pair (default: the input's own
        ``source`` column for Skywork-format data, else the format's name,
        e.g. ``magpie_dpo``, ``helpsteer2``, ``wildguard``).
    split:
        The split of a ``DatasetDict`` or hub dataset with several.
    on_invalid:
        ``"raise"``: the first invalid row raises :class:`InvalidInputError`
        naming the file, line or row, and field.  ``"quarantine"``: invalid
        rows go to ``result.quarantine`` with their reason.
    """
    engine, gen = _run(src, format, source, split, on_invalid, batch_size)
    return _result(engine, list(gen))


@overload
def read_pairs(
    src: Any,
    format: str = ...,
    *,
    source: str | None = ...,
    split: str | None = ...,
    on_invalid: Literal["raise"] = ...,
) -> pa.Table: ...
@overload
def read_pairs(
    src: Any,
    format: str = ...,
    *,
    source: str | None = ...,
    split: str | None = ...,
    on_invalid: Literal["quarantine"],
) -> ConvertResult: ...
def read_pairs(
    src: Any,
    format: str = "auto",
    *,
    source: str | None = None,
    split: str | None = None,
    on_invalid: OnInvalid = "raise",
) -> pa.Table | ConvertResult:
    """Read preference pairs in any supported format as the canonical pair table.

    With ``on_invalid="raise"`` (default) returns the :class:`pyarrow.Table`
    and raises :class:`InvalidInputError` at the first invalid row; with
    ``on_invalid="quarantine"`` returns the :class:`ConvertResult` (``.pairs``,
    ``.quarantine``, ``.removed``, ``.stats``).  See :func:`convert_pairs`
    for the arguments.
    """
    res = convert_pairs(src, format, source=source, split=split, on_invalid=on_invalid)
    return res if on_invalid == "quarantine" else res.pairs


class PairStream:
    """Canonical record batches of an input, read incrementally.

    Iterate it for :class:`pyarrow.RecordBatch` es of at most ``batch_size``
    pairs; ``stats``, ``removed`` and ``quarantine`` cover what has been read
    so far (everything once the iteration ends).  Parquet and JSON Lines are
    read in bounded blocks; WildGuardMix (which pairs rows of the same prompt
    anywhere in the input) reads the whole input before its first batch, and
    JSON files (one document) are parsed whole.
    """

    def __init__(self, engine: _Engine, gen: Iterator[pa.Table], batch_size: int) -> None:
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

    def result(self) -> ConvertResult:
        """The account so far, with an empty ``pairs`` table (the pairs were streamed)."""
        return _result(self._engine, [])

    @property
    def stats(self) -> dict[str, Any]:
        """The counts of :attr:`ConvertResult.stats` for what has been read so far."""
        s = self.result().stats
        s["pairs"] = self._engine.pairs
        return s

    @property
    def quarantine(self) -> pa.Table:
        return _issues_table(sorted(self._engine.quarantine, key=_issue_order))

    @property
    def removed(self) -> pa.Table:
        return _issues_table(self._engine.removed)


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
    on_invalid: OnInvalid = "raise",
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> PairStream:
    """Stream the canonical pairs of ``src`` as record batches of at most
    ``batch_size`` pairs, with memory bounded by the batch size (see
    :class:`PairStream`; the arguments are those of :func:`convert_pairs`)."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    engine, gen = _run(src, format, source, split, on_invalid, batch_size)
    return PairStream(engine, gen, batch_size)


def write_pairs(table: pa.Table, path: str | os.PathLike, *, format: str | None = None) -> Path:
    """Write a pair table as JSON Lines / JSON (``.jsonl``, ``.json``,
    optionally ``.gz`` / ``.zst``), Parquet (``.parquet``), or a Hugging Face
    ``save_to_disk`` folder (a path without a suffix, or ``format="dataset"``);
    :func:`read_pairs` reads each back unchanged."""
    p = Path(path)
    fmt = format or (_io._split_suffix(p)[0] if p.suffix else "dataset")
    if fmt == "dataset":
        try:
            import datasets
        except ImportError:
            raise InvalidInputError(
                f"{p}: writing a save_to_disk folder needs the `datasets` package (pip install prefcurate[hf])"
            ) from None
        if p.exists() and any(p.iterdir()):
            raise InvalidInputError(f"{p}: folder exists and is not empty")
        datasets.Dataset(pa.table(table)).save_to_disk(str(p))
        return p
    if fmt not in ("jsonl", "json", "parquet"):
        raise InvalidInputError(
            f"{p}: cannot write pairs as {fmt!r}; use .jsonl, .json, .parquet or a folder"
        )
    return _io.write_table(table, p, format=fmt)
