"""Source rows in batches, with where each row came from: local files and
folders (opened through :mod:`.tables`), ``save_to_disk`` folders,
``datasets.Dataset`` / ``DatasetDict``, Hugging Face dataset names, pyarrow
tables, polars DataFrames and lists of records.

JSON Lines and Parquet are read in bounded blocks; a JSON Lines block that
pyarrow cannot parse in one go is parsed line by line so that every bad line
is reported (as an :class:`Issue` with its file, row and line) and the good
ones are kept.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import hub
from ..errors import InvalidInputError
from . import tables

#: Bytes of JSON Lines parsed per block.
JSONL_BLOCK_BYTES = 32 << 20


# ---------------------------------------------------------------- rows with their origin


@dataclass
class Rows:
    """Source rows and where each came from."""

    table: pa.Table
    file: np.ndarray  # int32 index into the reader's file list
    row: np.ndarray  # int64 row within its file (or within the input)
    line: np.ndarray  # int64 1-based line (JSON Lines), else -1

    @property
    def n(self) -> int:
        return self.table.num_rows

    @staticmethod
    def make(table: pa.Table, file: int, row0: int, lines: np.ndarray | None = None) -> Rows:
        n = table.num_rows
        return Rows(
            table,
            np.full(n, file, dtype=np.int32),
            np.arange(row0, row0 + n, dtype=np.int64),
            lines if lines is not None else np.full(n, -1, dtype=np.int64),
        )

    def slice(self, start: int, stop: int) -> Rows:
        return Rows(
            self.table.slice(start, stop - start),
            self.file[start:stop],
            self.row[start:stop],
            self.line[start:stop],
        )

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        try:
            table = pa.concat_tables([p.table for p in parts], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"blocks of the input have incompatible columns: {e}") from None
        return Rows(
            table,
            np.concatenate([p.file for p in parts]),
            np.concatenate([p.row for p in parts]),
            np.concatenate([p.line for p in parts]),
        )


@dataclass
class Issue:
    """One invalid or removed input row."""

    stage: str
    reason: str
    field: str | None
    file: str | None
    row: int | None
    line: int | None
    message: str
    record: str | None


IssueSink = Callable[[Issue], None]


def where(label: str, file: str | None, row: int | None, line: int | None) -> str:
    """``file:line``, or ``file: row N`` (``label`` for in-memory input)."""
    if file is not None and line is not None and line > 0:
        return f"{file}:{line}"
    return f"{file if file is not None else label}: row {row}"


def message(at: str, field: str | None, detail: str) -> str:
    return f"{at}: field {field!r} {detail}" if field else f"{at}: {detail}"


def record_json(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)


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


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


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
        except _ARROW_ERRORS:
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
        except _ARROW_ERRORS:
            pass
        # nested values of different shapes: the most common type wins
        row_types: dict[int, pa.DataType] = {}
        for i in good:
            try:
                row_types[i] = pa.array([values[i]]).type
            except _ARROW_ERRORS as e:
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


# ---------------------------------------------------------------- datasets


def dataset_table(ds: Any) -> pa.Table:
    """The rows of a ``datasets.Dataset`` as a pyarrow Table (zero-copy when no
    indices mapping is pending)."""
    if getattr(ds, "_indices", None) is None:
        t = ds.data
        return t.table if hasattr(t, "table") else pa.table(t)
    return ds.with_format("arrow")[:]


def pick_split(splits: list[str], split: str | None, at: str) -> str:
    if split is not None:
        if split not in splits:
            raise InvalidInputError(f"{at}: no split {split!r}; splits are {splits}")
        return split
    if len(splits) == 1:
        return splits[0]
    raise InvalidInputError(f"{at}: holds several splits {splits}; pass split=, e.g. split={splits[0]!r}")


def looks_like_hub_name(s: str) -> bool:
    if s.startswith((".", "/", "~")) or "\\" in s or s.count("/") > 1:
        return False
    return tables.split_suffix(Path(s))[0] is None


# ---------------------------------------------------------------- the reader


class Reader:
    """Turns a source into batches of :class:`Rows`, reporting unparseable rows."""

    def __init__(self, src: Any, *, split: str | None, batch_rows: int, sink: IssueSink) -> None:
        self.src = src
        self.split = split
        self.batch_rows = batch_rows
        self.sink = sink
        self.files: list[str | None] = []
        self.label = "input"
        #: a dataset name for in-memory input (a hub name, ``Dataset.info.dataset_name``)
        self.name: str | None = None
        self.rows_read = 0  # rows seen, including unparseable ones

    def _file(self, name: str | None) -> int:
        self.files.append(name)
        return len(self.files) - 1

    def _bad_row(
        self, fi: int, row: int, line: int | None, reason: str, detail: str, record: str | None
    ) -> None:
        file = self.files[fi]
        self.sink(
            Issue(
                "read",
                reason,
                None,
                file,
                row,
                line,
                f"{where(self.label, file, row, line)}: {detail}",
                record,
            )
        )

    # -- in-memory

    def _table(self, table: pa.Table, label: str) -> Iterator[Rows]:
        self.label = label
        yield from self._whole(table, self._file(None))

    def _whole(self, table: pa.Table, fi: int) -> Iterator[Rows]:
        row = 0
        for b in table.to_batches(max_chunksize=self.batch_rows):
            if b.num_rows:
                self.rows_read += b.num_rows
                yield Rows.make(pa.Table.from_batches([b]), fi, row)
                row += b.num_rows

    def _records(
        self,
        records: Sequence[Any],
        fi: int,
        rows: Sequence[int] | None = None,
        lines: Sequence[int] | None = None,
    ) -> Iterator[Rows]:
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
                        record_json(r),
                    )
            table, bad = records_to_table([chunk[j] for j in idx])
            for k in sorted(bad):
                j = idx[k]
                f, code, detail = bad[k]
                at = where(self.label, file, where_row[j], where_line[j])
                self.sink(
                    Issue(
                        "read",
                        code,
                        f,
                        file,
                        where_row[j],
                        where_line[j],
                        message(at, f, detail),
                        record_json(chunk[j]),
                    )
                )
            good = [idx[k] for k in range(len(idx)) if k not in bad]
            if table.num_rows:
                out = Rows.make(table, fi, 0)
                out.row = np.array([where_row[j] for j in good], dtype=np.int64)
                if lines is not None:
                    out.line = np.array([where_line[j] for j in good], dtype=np.int64)
                yield out

    # -- files

    def _path(self, p: Path) -> Iterator[Rows]:
        self.label = str(p)
        if p.is_dir():
            yield from self._folder(p)
            return
        fmt, compression = tables.split_suffix(p)
        if fmt is None:
            raise InvalidInputError(
                f"{p}: cannot tell the format from the name; use a .jsonl/.json/.parquet/.csv/.arrow name "
                "(optionally .gz/.zst/.bz2/.xz)"
            )
        fi = self._file(str(p))
        if fmt == "jsonl":
            yield from self._jsonl(p, compression, fi)
        elif fmt == "json":
            yield from self._json(p, compression, fi)
        elif fmt == "parquet":
            row = 0
            for b in tables.parquet_batches(p, self.batch_rows):
                if b.num_rows:
                    self.rows_read += b.num_rows
                    yield Rows.make(pa.Table.from_batches([b]), fi, row)
                    row += b.num_rows
        else:
            yield from self._whole(tables.read_table(p), fi)

    def _folder(self, p: Path) -> Iterator[Rows]:
        if (p / "dataset_dict.json").is_file():
            try:
                splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
            except (OSError, ValueError, KeyError) as e:
                raise InvalidInputError(f"{p}: unreadable dataset_dict.json: {e}") from None
            split = pick_split(list(splits), self.split, str(p))
            yield from self._folder(p / split)
            return
        if tables.is_hf_saved(p):
            fi = self._file(str(p))
            yield from self._whole(tables.read_hf_saved(p), fi)
            return
        found = tables.shards(p)
        if not found:
            raise InvalidInputError(f"{p}: folder holds no .jsonl/.json/.parquet/.csv/.arrow files")
        for s in found:
            yield from self._path(s)
        self.label = str(p)

    def _json(self, p: Path, compression: str | None, fi: int) -> Iterator[Rows]:
        doc = tables.json_document(p, tables.read_bytes(p, compression))
        if doc is None:  # JSON Lines named .json
            yield from self._jsonl(p, compression, fi)
        elif isinstance(doc, pa.Table):
            yield from self._whole(doc, fi)
        else:
            yield from self._records(doc, fi)

    def _jsonl(self, p: Path, compression: str | None, fi: int) -> Iterator[Rows]:
        line0, row0 = 1, 0
        carry = b""
        with tables.open_compressed(p, compression) as f:
            first = True
            while True:
                chunk = f.read(JSONL_BLOCK_BYTES)
                if first:
                    chunk = tables.strip_bom(chunk)
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
                    for rows, n_rec in self._jsonl_block(block, fi, line0, row0):
                        row0 += n_rec
                        if rows is not None:
                            yield rows
                    line0 += n_lines
                if not chunk:
                    return

    def _jsonl_block(self, block: bytes, fi: int, line0: int, row0: int) -> Iterator[tuple[Rows | None, int]]:
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
        table = tables.json_block(block)
        if table is not None and table.num_rows == n:
            self.rows_read += n
            for s in range(0, n, self.batch_rows):
                e = min(n, s + self.batch_rows)
                yield Rows.make(table.slice(s, e - s), fi, row0 + s, lines[s:e]), e - s
            return
        # slow path: line by line, so that every bad line is named
        records: list[Any] = []
        rec_lines: list[int] = []
        rec_rows: list[int] = []
        for k in range(n):
            raw = block[starts[k] : ends[k]]
            line = int(lines[k])
            rec, code, detail = tables.json_line(raw)
            if code is not None:
                shown = raw.decode("utf-8", errors="backslashreplace")
                self._bad_row(fi, row0 + k, line, code, detail, shown)
                continue
            records.append(rec)
            rec_lines.append(line)
            rec_rows.append(row0 + k)
        self.rows_read += n - len(records)
        for rows in self._records(records, fi, rec_rows, rec_lines):
            yield rows, 0
        yield None, n

    # -- dispatch

    def batches(self) -> Iterator[Rows]:
        src = self.src
        if isinstance(src, (str, os.PathLike)):
            p = Path(src)
            if p.exists():
                yield from self._path(p)
                return
            if isinstance(src, str) and looks_like_hub_name(src):
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

    def _dataset(self, ds: Any, label: str | None = None) -> Iterator[Rows]:
        if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
            split = pick_split(list(ds), self.split, label or "DatasetDict")
            yield from self._dataset(ds[split], f"{label or 'DatasetDict'}[{split}]")
            return
        if type(ds).__name__ == "IterableDataset":
            raise InvalidInputError(
                "an IterableDataset is not supported; load the dataset without streaming=True"
            )
        if self.name is None:
            info = getattr(ds, "info", None)
            self.name = getattr(info, "dataset_name", None) or None
        yield from self._table(dataset_table(ds), label or "datasets.Dataset")

    def _hub(self, name: str) -> Iterator[Rows]:
        try:
            import datasets
        except ImportError:
            raise InvalidInputError(
                f"{name!r} is not a local path; reading a Hugging Face dataset needs the `datasets` package "
                "(pip install prefcurate[hf])"
            ) from None
        self.name = name
        hub.check(name, "dataset", kind="dataset")
        ds = datasets.load_dataset(name, split=self.split) if self.split else datasets.load_dataset(name)
        label = f"{name}[{self.split}]" if self.split else name
        yield from self._dataset(ds, label)
