"""Reading and writing tables: JSON Lines, JSON, Parquet, CSV (optionally
gzip / zstd / bz2 / xz compressed), folders of shards, and datasets saved with
``datasets.Dataset.save_to_disk``.

This module is the one place that opens a data file: :func:`open_compressed`
(every read of a possibly compressed file goes through it, so a truncated or
corrupt stream is always an :class:`InvalidInputError` naming the file),
:func:`parquet_batches`, :func:`read_hf_saved`, and the JSON parsing shared by
:func:`read_table` and the pair readers (:func:`json_block`,
:func:`json_line`, :func:`json_document`).

Every reader returns a :class:`pyarrow.Table`; every failure names the file
and, where it can, the line.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import InvalidInputError

COMPRESSIONS = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".bz2": "bz2",
    ".xz": "lzma",
}
FILE_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".arrow": "arrow",
}
#: the command that tests a compressed file of each kind (for error messages)
_CHECK_TOOL = {"gzip": "gzip -t", "zstd": "zstd -t", "bz2": "bzip2 -t", "lzma": "xz -t"}
_KIND = {"gzip": "gzip", "zstd": "zstd", "bz2": "bzip2", "lzma": "xz"}


def split_suffix(path: Path) -> tuple[str | None, str | None]:
    """(format, compression) from a file name such as ``x.jsonl.zst``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS:
        compression = COMPRESSIONS[suffixes.pop()]
    fmt = FILE_FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def file_format(path: str | os.PathLike) -> str | None:
    """The table format a path holds, from its name (``None`` if unknown)."""
    p = Path(path)
    if p.is_dir():
        return "dataset" if is_hf_saved(p) else "folder"
    return split_suffix(p)[0]


def is_hf_saved(p: Path) -> bool:
    """Whether ``p`` is a ``save_to_disk`` folder of one dataset."""
    return (p / "state.json").is_file() and (p / "dataset_info.json").is_file()


def shards(path: Path) -> list[Path]:
    """The table files under a folder (any depth), in name order."""
    return sorted(p for p in Path(path).rglob("*") if p.is_file() and split_suffix(p)[0] is not None)


# ---------------------------------------------------------------- opening files


def _decompress_errors() -> tuple[type[BaseException], ...]:
    import lzma

    return (OSError, EOFError, lzma.LZMAError, zlib.error, pa.ArrowInvalid)


class CompressedReader:
    """A binary file (optionally compressed) whose ``read`` turns a truncated
    or corrupt stream into an :class:`InvalidInputError` naming the file."""

    def __init__(self, path: Path, compression: str | None) -> None:
        self.path = path
        self.compression = compression
        self._f: Any
        if compression == "lzma":
            import lzma

            self._f = lzma.open(path, "rb")  # noqa: SIM115 - closed by close()
        elif compression == "bz2":
            import bz2

            self._f = bz2.open(path, "rb")  # noqa: SIM115 - closed by close()
        else:
            self._f = pa.input_stream(str(path), compression=compression)
        self.pos = 0  # decompressed bytes read so far

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._f.read() if n is None or n < 0 else self._f.read(n)
        except _decompress_errors() as e:
            raise self._error(e) from None
        self.pos += len(data)
        return bytes(data)

    def _error(self, e: BaseException) -> InvalidInputError:
        if self.compression is None:
            return InvalidInputError(f"{self.path}: cannot read the file after byte {self.pos}: {e}")
        kind = _KIND.get(self.compression, self.compression)
        detail = str(e) or type(e).__name__
        after = f" after {self.pos:,} decompressed bytes" if self.pos else ""
        return InvalidInputError(
            f"{self.path}: the {kind} stream is truncated or corrupt{after} ({type(e).__name__}: {detail}); "
            f"the file is incomplete or damaged: download or write it again "
            f"(`{_CHECK_TOOL[self.compression]} {self.path}` checks it)"
        )

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CompressedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_compressed(path: Path, compression: str | None) -> CompressedReader:
    """Open ``path`` for reading, decompressing ``compression`` (``gzip``,
    ``zstd``, ``bz2``, ``lzma`` or ``None``)."""
    try:
        return CompressedReader(path, compression)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InvalidInputError(f"{path}: cannot open the {compression} stream: {e}") from None


def read_bytes(path: Path, compression: str | None) -> bytes:
    """The whole (decompressed) content of a file."""
    with open_compressed(path, compression) as f:
        return f.read()


def strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


# ---------------------------------------------------------------- JSON


def _no_timestamps(t: pa.DataType) -> pa.DataType:
    """``t`` with pyarrow's inferred timestamps turned back into strings."""
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _no_timestamps(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_no_timestamps(t.value_type))
    return t


def json_block(block: bytes) -> pa.Table | None:
    """JSON Lines bytes parsed by pyarrow in one go (strings that look like
    dates stay strings, UTF-8 checked), or ``None`` where pyarrow cannot:
    then parse line by line with :func:`json_line` to name the bad line."""
    import pyarrow.json as pj

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
        return table
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def json_line(raw: bytes) -> tuple[Any, str | None, str]:
    """One line of JSON Lines: ``(record, None, text)``, or ``(None, code,
    detail)`` with code ``invalid_utf8``, ``invalid_json`` or ``not_an_object``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, "invalid_utf8", f"not valid UTF-8 (byte {e.start} of the line)"
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        return None, "invalid_json", f"invalid JSON: {e.msg} at column {e.colno}"
    if not isinstance(rec, dict):
        return None, "not_an_object", f"expected a JSON object, got {type(rec).__name__}"
    return rec, None, text


def json_document(path: Path, data: bytes) -> list[Any] | pa.Table | None:
    """A whole JSON document: the list of records (any JSON values: the
    caller checks they are objects), a table of equal-length columns, or
    ``None`` when the file is JSON Lines under a ``.json`` name.

    Accepted shapes: ``[records]``, ``{"data": [records]}`` (one list),
    ``{group: [records], ...}`` (several lists of records, e.g. EvalBiasBench's
    bias categories: each record gets ``group`` unless it has one), and
    ``{"a": [...], "b": [...]}`` (columns)."""
    try:
        doc = json.loads(strip_bom(data).decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{path}: not valid UTF-8 at byte {e.start}") from None
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON Lines named .json
            return None
        raise InvalidInputError(f"{path}:{e.lineno}: invalid JSON: {e.msg} at column {e.colno}") from None
    if isinstance(doc, dict):
        lists = {k: v for k, v in doc.items() if isinstance(v, list)}
        if lists and len(lists) == len(doc) and all(isinstance(r, dict) for v in lists.values() for r in v):
            if len(lists) == 1:
                return next(iter(lists.values()))
            return [{**r, "group": k} if "group" not in r else r for k, v in lists.items() for r in v]
        if lists and len(lists) == len(doc) and len({len(v) for v in lists.values()}) == 1:
            try:
                return pa.Table.from_pydict(lists)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise InvalidInputError(f"{path}: {e}") from None
        raise InvalidInputError(
            f"{path}: expected a list of records, a dict holding lists of records, or equal-length "
            f"columns; got an object with keys {sorted(doc)[:8]}"
        )
    if not isinstance(doc, list):
        raise InvalidInputError(f"{path}: expected a JSON list of records, got {type(doc).__name__}")
    return doc


def _lines_to_table(path: Path, data: bytes) -> pa.Table:
    """Slow path of JSON Lines: parse line by line so that errors name the line."""
    rows = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        rec, code, detail = json_line(raw)
        if code is not None:
            raise InvalidInputError(f"{path}:{lineno}: {detail}")
        rows.append(rec)
    return _rows_to_table(path, rows)


def _rows_to_table(path: Path, rows: list) -> pa.Table:
    if not rows:
        return pa.Table.from_pydict({})
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInputError(f"{path}: fields with inconsistent types across rows: {e}") from None


def _read_jsonl(path: Path, data: bytes) -> pa.Table:
    data = strip_bom(data)
    if not data.strip():
        return pa.Table.from_pydict({})
    table = json_block(data)
    # pyarrow's messages do not name the line; find it (or read what
    # pyarrow's block-wise type inference refused)
    return table if table is not None else _lines_to_table(path, data)


def _read_json(path: Path, compression: str | None) -> pa.Table:
    data = read_bytes(path, compression)
    doc = json_document(path, data)
    if doc is None:
        return _read_jsonl(path, data)
    if isinstance(doc, pa.Table):
        return doc
    for i, r in enumerate(doc):
        if not isinstance(r, dict):
            raise InvalidInputError(f"{path}: record {i} is a {type(r).__name__}, expected an object")
    return _rows_to_table(path, doc)


def _read_csv(path: Path, compression: str | None, delimiter: str) -> pa.Table:
    import pyarrow.csv as pc

    src: Any = str(path) if compression is None else pa.BufferReader(read_bytes(path, compression))
    try:
        return pc.read_csv(src, parse_options=pc.ParseOptions(delimiter=delimiter, newlines_in_values=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInputError(f"{path}: {e}") from None


def read_hf_saved(path: Path) -> pa.Table:
    """A ``save_to_disk`` folder: Arrow IPC stream files listed in state.json."""
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        files = [f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"{path}: unreadable state.json of a saved dataset: {e}") from None
    if state.get("_indices_data_files"):
        raise InvalidInputError(
            f"{path}: the saved dataset has an indices mapping; load it with datasets.load_from_disk and "
            "pass the Dataset instead"
        )
    tables = []
    for name in files:
        try:
            with pa.memory_map(str(path / name)) as src:
                tables.append(pa.ipc.open_stream(src).read_all())
        except (OSError, pa.ArrowInvalid) as e:
            raise InvalidInputError(
                f"{path / name}: unreadable Arrow shard of a saved dataset: {e}"
            ) from None
    return pa.concat_tables(tables, promote_options="default") if tables else pa.Table.from_pydict({})


def parquet_batches(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The record batches of a Parquet file, read incrementally; a truncated
    or corrupt file is an :class:`InvalidInputError` naming it."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInputError(f"{path}: unreadable Parquet file (truncated or corrupt?): {e}") from None
    row = 0
    it = pf.iter_batches(batch_size=batch_size)
    while True:
        try:
            b = next(it)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInputError(f"{path}: unreadable Parquet data after row {row}: {e}") from None
        row += b.num_rows
        yield b


def _read_arrow(p: Path) -> pa.Table:
    try:
        with pa.memory_map(str(p)) as src:
            try:
                return pa.ipc.open_file(src).read_all()
            except pa.ArrowInvalid:
                src.seek(0)
                return pa.ipc.open_stream(src).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInputError(f"{p}: unreadable Arrow IPC file: {e}") from None


def read_table(path: str | os.PathLike, *, format: str | None = None) -> pa.Table:
    """Read a local table file or folder into a :class:`pyarrow.Table`.

    ``format`` overrides detection from the name: ``jsonl``, ``json``,
    ``parquet``, ``csv``, ``tsv``, ``arrow``, ``dataset`` (a ``save_to_disk``
    folder) or ``folder`` (shards of any of these, concatenated in name order).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if p.is_dir():
        kind = format or ("dataset" if is_hf_saved(p) else "folder")
        if kind == "dataset":
            return read_hf_saved(p)
        found = shards(p)
        if not found:
            raise InvalidInputError(f"{p}: folder holds no .jsonl/.json/.parquet/.csv/.arrow files")
        tables = [read_table(s) for s in found]
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"{p}: shards have incompatible schemas: {e}") from None
    detected, compression = split_suffix(p)
    fmt: str | None = format or detected
    if fmt is None:
        raise InvalidInputError(
            f"{p}: cannot tell the format from the name; use a .jsonl/.json/.parquet/.csv/.tsv/.arrow "
            "name (optionally .gz/.zst/.bz2/.xz) or pass format="
        )
    if fmt == "jsonl":
        return _read_jsonl(p, read_bytes(p, compression))
    if fmt == "json":
        return _read_json(p, compression)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(str(p)).read()  # pq.read_table imports pandas
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInputError(f"{p}: unreadable Parquet file (truncated or corrupt?): {e}") from None
    if fmt in ("csv", "tsv"):
        return _read_csv(p, compression, "," if fmt == "csv" else "\t")
    if fmt == "arrow":
        return _read_arrow(p)
    raise InvalidInputError(f"{p}: unknown format {fmt!r}")


def iter_batches(path: str | os.PathLike, *, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
    """Record batches of a table file, reading Parquet incrementally."""
    p = Path(path)
    if p.is_file() and split_suffix(p)[0] == "parquet":
        yield from parquet_batches(p, batch_size)
        return
    yield from read_table(p).to_batches(max_chunksize=batch_size)


def _open_write(p: Path, compression: str | None) -> Any:
    if compression == "lzma":
        import lzma

        return lzma.open(p, "wb")
    if compression == "bz2":
        import bz2

        return bz2.open(p, "wb")
    return pa.output_stream(str(p), compression=compression)


def _csv_ready(table: pa.Table) -> pa.Table:
    """Nested columns (message lists, structs, maps) as JSON text: CSV has no
    nested values."""
    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_nested(t):
            text = [
                None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, f.name, pa.array(text, pa.string()))
    return table


def _write(table: pa.Table, p: Path, fmt: str, compression: str | None) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, str(p), compression="zstd")
    elif fmt in ("jsonl", "json"):
        with _open_write(p, compression) as out:
            rows = table.to_pylist()
            if fmt == "jsonl":
                for r in rows:
                    out.write(json.dumps(r, ensure_ascii=False, default=str).encode("utf-8"))
                    out.write(b"\n")
            else:
                out.write(json.dumps(rows, ensure_ascii=False, default=str, indent=1).encode("utf-8"))
    else:
        import pyarrow.csv as pc

        with _open_write(p, compression) as out:
            pc.write_csv(
                _csv_ready(table), out, write_options=pc.WriteOptions(delimiter="," if fmt == "csv" else "\t")
            )


def write_table(table: pa.Table, path: str | os.PathLike, *, format: str | None = None) -> Path:
    """Write a table as JSON Lines, JSON, Parquet or CSV (chosen from the name
    or ``format``); ``.gz`` / ``.zst`` / ``.bz2`` / ``.xz`` names are compressed."""
    p = Path(path)
    detected, compression = split_suffix(p)
    fmt = format or detected
    if fmt not in ("parquet", "jsonl", "json", "csv", "tsv"):
        raise InvalidInputError(f"{p}: cannot write format {fmt!r}; use .jsonl, .json, .parquet or .csv")
    p.parent.mkdir(parents=True, exist_ok=True)
    # written beside and renamed: a failed write leaves no partial file
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        _write(table, tmp, fmt, compression)
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
