"""Reading and writing tables: JSON Lines, JSON, Parquet, CSV (optionally
gzip / zstd / bz2 / xz compressed), folders of shards, and datasets saved with
``datasets.Dataset.save_to_disk``.

Every reader returns a :class:`pyarrow.Table`; every failure names the file
and, where it can, the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from .errors import InvalidInputError

_COMPRESSIONS = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".bz2": "bz2",
    ".xz": "lzma",
}
_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".arrow": "arrow",
}


def _split_suffix(path: Path) -> tuple[str | None, str | None]:
    """(format, compression) from a file name such as ``x.jsonl.zst``."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = _COMPRESSIONS[suffixes.pop()]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def file_format(path: str | os.PathLike) -> str | None:
    """The table format a path holds, from its name (``None`` if unknown)."""
    p = Path(path)
    if p.is_dir():
        return "dataset" if _is_hf_saved(p) else "folder"
    return _split_suffix(p)[0]


def _is_hf_saved(p: Path) -> bool:
    return (p / "state.json").is_file() and (p / "dataset_info.json").is_file()


def _open(path: Path, compression: str | None):
    if compression == "lzma":
        import lzma

        return lzma.open(path, "rb")
    if compression == "bz2":
        import bz2

        return bz2.open(path, "rb")
    return pa.input_stream(str(path), compression=compression)


def _read_bytes(path: Path, compression: str | None) -> bytes:
    with _open(path, compression) as f:
        return f.read()


def _lines_to_table(path: Path, data: bytes) -> pa.Table:
    """Slow path of JSON Lines: parse line by line so that errors name the line."""
    rows = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInputError(
                f"{path}:{lineno}: not valid UTF-8 (byte {e.start} of the line)"
            ) from None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{path}:{lineno}: invalid JSON: {e.msg} at column {e.colno}") from None
        if not isinstance(row, dict):
            raise InvalidInputError(
                f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}"
            )
        rows.append(row)
    return _rows_to_table(path, rows)


def _rows_to_table(path: Path, rows: list) -> pa.Table:
    if not rows:
        return pa.Table.from_pydict({})
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInputError(f"{path}: fields with inconsistent types across rows: {e}") from None


def _read_jsonl(path: Path, compression: str | None) -> pa.Table:
    import pyarrow.json as pj

    data = _read_bytes(path, compression)
    if not data.strip():
        return pa.Table.from_pydict({})
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=1 << 26))
        table.validate(full=True)  # pyarrow's JSON reader does not check UTF-8
        return table
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # pyarrow's messages do not name the line; find it (or read what
        # pyarrow's block-wise type inference refused)
        return _lines_to_table(path, data)


def _read_json(path: Path, compression: str | None) -> pa.Table:
    data = _read_bytes(path, compression)
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{path}: not valid UTF-8 at byte {e.start}") from None
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON Lines with a .json name
            return _lines_to_table(path, data)
        raise InvalidInputError(f"{path}:{e.lineno}: invalid JSON: {e.msg} at column {e.colno}") from None
    if isinstance(doc, dict):
        # {"data": [...]} / {"train": [...]} / column-oriented {"a": [...], "b": [...]}
        lists = {k: v for k, v in doc.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            doc = next(iter(lists.values()))
        elif lists and len(lists) == len(doc) and len({len(v) for v in lists.values()}) == 1:
            try:
                return pa.Table.from_pydict(lists)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise InvalidInputError(f"{path}: {e}") from None
        else:
            raise InvalidInputError(
                f"{path}: expected a list of records, a dict holding one list of records, or "
                f"equal-length columns; got an object with keys {sorted(doc)[:8]}"
            )
    if not isinstance(doc, list):
        raise InvalidInputError(f"{path}: expected a JSON list of records, got {type(doc).__name__}")
    for i, r in enumerate(doc):
        if not isinstance(r, dict):
            raise InvalidInputError(f"{path}: record {i} is a {type(r).__name__}, expected an object")
    return _rows_to_table(path, doc)


def _read_csv(path: Path, compression: str | None, delimiter: str) -> pa.Table:
    import pyarrow.csv as pc

    try:
        with _open(path, compression) as f:
            return pc.read_csv(f, parse_options=pc.ParseOptions(delimiter=delimiter, newlines_in_values=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInputError(f"{path}: {e}") from None


def _read_hf_saved(path: Path) -> pa.Table:
    """A ``save_to_disk`` folder: Arrow IPC stream files listed in state.json."""
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        files = [f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"{path}: unreadable state.json of a saved dataset: {e}") from None
    tables = []
    for name in files:
        try:
            with pa.memory_map(str(path / name)) as src:
                tables.append(pa.ipc.open_stream(src).read_all())
        except (OSError, pa.ArrowInvalid) as e:
            raise InvalidInputError(
                f"{path / name}: unreadable Arrow shard of a saved dataset: {e}"
            ) from None
    if state.get("_indices_data_files"):
        raise InvalidInputError(
            f"{path}: the saved dataset has an indices mapping; load it with datasets.load_from_disk and "
            "pass the Dataset instead"
        )
    return pa.concat_tables(tables, promote_options="default") if tables else pa.Table.from_pydict({})


def _shards(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and _split_suffix(p)[0] is not None)


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
        kind = format or ("dataset" if _is_hf_saved(p) else "folder")
        if kind == "dataset":
            return _read_hf_saved(p)
        shards = _shards(p)
        if not shards:
            raise InvalidInputError(f"{p}: folder holds no .jsonl/.json/.parquet/.csv/.arrow files")
        tables = [read_table(s) for s in shards]
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"{p}: shards have incompatible schemas: {e}") from None
    detected, compression = _split_suffix(p)
    fmt: str | None = format or detected
    if fmt is None:
        raise InvalidInputError(
            f"{p}: cannot tell the format from the name; use a .jsonl/.json/.parquet/.csv/.tsv/.arrow "
            "name (optionally .gz/.zst) or pass format="
        )
    if fmt == "jsonl":
        return _read_jsonl(p, compression)
    if fmt == "json":
        return _read_json(p, compression)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(str(p))
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInputError(f"{p}: unreadable Parquet file: {e}") from None
    if fmt in ("csv", "tsv"):
        return _read_csv(p, compression, "," if fmt == "csv" else "\t")
    if fmt == "arrow":
        try:
            with pa.memory_map(str(p)) as src:
                try:
                    return pa.ipc.open_file(src).read_all()
                except pa.ArrowInvalid:
                    src.seek(0)
                    return pa.ipc.open_stream(src).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInputError(f"{p}: unreadable Arrow IPC file: {e}") from None
    raise InvalidInputError(f"{p}: unknown format {fmt!r}")


def iter_batches(path: str | os.PathLike, *, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
    """Record batches of a table file, reading Parquet incrementally."""
    p = Path(path)
    if p.is_file() and _split_suffix(p)[0] == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(str(p)).iter_batches(batch_size=batch_size)
        return
    yield from read_table(p).to_batches(max_chunksize=batch_size)


def write_table(table: pa.Table, path: str | os.PathLike, *, format: str | None = None) -> Path:
    """Write a table as JSON Lines, JSON, Parquet or CSV (chosen from the name
    or ``format``); ``.gz`` / ``.zst`` names are compressed."""
    p = Path(path)
    detected, compression = _split_suffix(p)
    fmt = format or detected
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, str(p), compression="zstd")
    elif fmt in ("jsonl", "json"):
        with pa.output_stream(str(p), compression=compression) as out:
            rows = table.to_pylist()
            if fmt == "jsonl":
                for r in rows:
                    out.write(json.dumps(r, ensure_ascii=False, default=str).encode("utf-8"))
                    out.write(b"\n")
            else:
                out.write(json.dumps(rows, ensure_ascii=False, default=str, indent=1).encode("utf-8"))
    elif fmt in ("csv", "tsv"):
        import pyarrow.csv as pc

        with pa.output_stream(str(p), compression=compression) as out:
            pc.write_csv(table, out, write_options=pc.WriteOptions(delimiter="," if fmt == "csv" else "\t"))
    else:
        raise InvalidInputError(f"{p}: cannot write format {fmt!r}; use .jsonl, .json, .parquet or .csv")
    return p
