"""Ray Data plumbing shared by the stages' Ray runners: options, row
numbering, reading shards, batching, per-row results looked up by row range,
lazy kept / removed datasets, errors raised on workers.  No stage logic."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import IndexFileError, InvalidInputError, PrefcurateError
from ...inputs import resolve, take

ROW = "__prefcurate_row"
__all__ = [
    "ROW",
    "ROWS_OPS",
    "FailOnce",
    "RayOptions",
    "splitter",
    "to_table",
    "write_parquet",
]


# ---------------------------------------------------------------- options


@dataclass
class RayOptions:
    """How the Ray engine runs.

    batch_size:
        Rows per ``map_batches`` batch (memory per worker is about one batch
        of rows plus the small per-stage state; in-memory inputs are cut into
        blocks of ``4 * batch_size`` rows).
    num_partitions:
        Shuffle partitions (default: twice the cluster's CPUs, at least 2,
        more when there are many records to group).
    num_cpus:
        CPUs per map task; the Rust core uses that many threads in a task.
    max_retries:
        Retries of the engine's own Ray tasks (row numbering) when a worker
        dies; Ray Data's map and shuffle tasks are retried by Ray Data itself.
    shuffle:
        ``"sort"`` (Ray Data's task-based pull shuffle: plain tasks, retried
        like any task) or ``"hash"`` (Ray Data's hash shuffle with aggregator
        actors).
    annotation_rows:
        Rows per object of per-row results that map tasks look up by row range.
    concurrency:
        Scoring actors (default: one per GPU of the cluster, else 1).
    batch_hook:
        ``callable(stage, batch)`` called at the start of every map task
        (instrumentation, fault injection in tests: see :class:`FailOnce`).
    """

    batch_size: int = 4096
    num_partitions: int | None = None
    num_cpus: float = 1.0
    max_retries: int = 3
    shuffle: str = "sort"
    annotation_rows: int = 65536
    concurrency: int | None = None
    batch_hook: Callable[[str, pa.Table], Any] | None = None

    @property
    def threads(self) -> int:
        return max(1, int(self.num_cpus))


def _opts(options: Any) -> RayOptions:
    if options is None:
        o = RayOptions()
    elif isinstance(options, RayOptions):
        o = options
    elif isinstance(options, Mapping):
        names = {f.name for f in fields(RayOptions)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise InvalidInputError(f"ray_options: unknown option(s) {unknown}; known: {sorted(names)}")
        o = RayOptions(**dict(options))
    else:
        raise InvalidInputError(f"ray_options must be a dict or RayOptions, got {type(options).__name__}")
    if o.batch_size < 1 or o.annotation_rows < 1:
        raise InvalidInputError("ray_options: batch_size and annotation_rows must be positive")
    if o.shuffle not in ("sort", "hash"):
        raise InvalidInputError(f"ray_options: shuffle must be 'sort' or 'hash', got {o.shuffle!r}")
    return o


class FailOnce:
    """A ``batch_hook`` that kills the worker process (``os._exit(1)``) the
    first time a map task of ``stage`` sees a batch holding row ``row``; a
    marker file in ``marker_dir`` remembers it across processes.  For
    fault-tolerance tests: Ray retries the task on another worker and the
    result must not change."""

    def __init__(self, marker_dir: str | os.PathLike, stage: str, row: int = 0) -> None:
        self.marker_dir = str(marker_dir)
        self.stage = stage
        self.row = int(row)

    def __call__(self, stage: str, batch: pa.Table) -> None:
        if stage != self.stage or ROW not in batch.column_names:
            return
        rows = batch.column(ROW).to_numpy()
        if not (rows == self.row).any():
            return
        marker = Path(self.marker_dir) / f"killed-{stage}-{self.row}"
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


# ---------------------------------------------------------------- ray plumbing


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("engine='ray' needs Ray Data: pip install 'prefcurate[ray]'") from e
    if not ray.is_initialized():
        ray.init()
    return ray


def _configure(ds: Any, o: RayOptions) -> Any:
    """Keep block order and pick the shuffle on a dataset this engine created
    (its context is a private copy, shared with the datasets derived from it)."""
    ctx = ds.context
    ctx.execution_options.preserve_order = True
    try:
        from ray.data.context import ShuffleStrategy

        ctx.shuffle_strategy = (
            ShuffleStrategy.SORT_SHUFFLE_PULL_BASED if o.shuffle == "sort" else ShuffleStrategy.HASH_SHUFFLE
        )
    except (ImportError, AttributeError):  # older Ray: sort-based shuffle is the default
        pass
    return ds


_REMOTES: dict[str, Any] = {}


def _remote(fn: Callable[..., Any], o: RayOptions) -> Any:
    ray = _ray()
    r = _REMOTES.get(fn.__name__)
    if r is None:
        r = _REMOTES[fn.__name__] = ray.remote(fn)
    return r.options(max_retries=o.max_retries, num_cpus=o.num_cpus)


_ERROR_LINE = re.compile(r"prefcurate\.errors\.(InvalidInputError|IndexFileError): (.*)")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Re-raise prefcurate's errors from Ray tasks as themselves (Ray Data
    wraps them and keeps only their text)."""
    try:
        yield
    except PrefcurateError:
        raise
    except Exception as e:
        cause: BaseException | None = e
        seen: set[int] = set()
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, PrefcurateError):
                raise cause from None
            cause = getattr(cause, "cause", None) or cause.__cause__
        found = _ERROR_LINE.findall(str(e))
        if found:
            kind, msg = found[-1]
            raise (InvalidInputError if kind == "InvalidInputError" else IndexFileError)(msg) from None
        raise


_ROW_REF = re.compile(r"\brow (\d+)\b")


def _relabel(e: InvalidInputError, rows: np.ndarray) -> InvalidInputError:
    """The error with batch-local row numbers replaced by the global ones."""

    def sub(m: re.Match[str]) -> str:
        k = int(m.group(1))
        return f"row {int(rows[k])}" if k < len(rows) else m.group(0)

    return InvalidInputError(_ROW_REF.sub(sub, str(e)))


@contextlib.contextmanager
def _rows_named(rows: np.ndarray) -> Iterator[None]:
    try:
        yield
    except InvalidInputError as e:
        raise _relabel(e, rows) from None


_GOT: dict[str, Any] = {}


def _get_cached(ref: Any) -> Any:
    """``ray.get`` once per worker process (for the broadcast index)."""
    import ray

    key = ref.hex()
    if key not in _GOT:
        if len(_GOT) >= 4:
            _GOT.clear()
        _GOT[key] = ray.get(ref)
    return _GOT[key]


def _hook(hook: Callable[[str, pa.Table], Any] | None, stage: str, batch: pa.Table) -> None:
    if hook is not None:
        hook(stage, batch)


def _map_kwargs(o: RayOptions) -> dict[str, Any]:
    return {"batch_format": "pyarrow", "batch_size": o.batch_size, "num_cpus": o.num_cpus}


def _partitions(o: RayOptions, records: int = 0) -> int:
    if o.num_partitions is not None:
        return max(1, int(o.num_partitions))
    ray = _ray()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(2, 2 * cpus, math.ceil(records / (8 * o.batch_size)))


def _empty_like(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _collect(ds: Any, schema: pa.Schema) -> pa.Table:
    """The rows of a (small) dataset on the driver, in order."""
    ray = _ray()
    with _errors():
        refs = ds.to_arrow_refs()
        tables = [t for t in ray.get(refs) if t.num_rows]
    if not tables:
        return _empty_like(schema)
    return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])


def _refs_in_order(ds: Any) -> list[Any]:
    """Execute ``ds`` with its rows in order; its blocks' object refs."""
    eo = ds.context.execution_options
    old = eo.preserve_order
    eo.preserve_order = True
    try:
        with _errors():
            return list(ds.to_arrow_refs())
    finally:
        eo.preserve_order = old


def to_table(ds: Any) -> pa.Table:
    """Gather a (small) Ray dataset on the driver as one ``pyarrow.Table``,
    in order; for tests and small results."""
    ray = _ray()
    tables = ray.get(_refs_in_order(ds))
    nonempty = [t for t in tables if t.num_rows]
    if nonempty:
        return pa.concat_tables(nonempty, promote_options="permissive")
    if tables:
        return tables[0]
    schema = ds.schema()
    base = getattr(schema, "base_schema", schema)
    return base.empty_table() if isinstance(base, pa.Schema) else pa.table({})


def write_parquet(result: Any, path: str | os.PathLike) -> dict[str, str]:
    """Write a Ray-engine result's ``kept`` and ``removed`` rows as Parquet
    shards under ``path/kept`` and ``path/removed``."""
    out = {}
    for name in ("kept", "removed"):
        target = str(Path(path) / name)
        with _errors():
            getattr(result, name).write_parquet(target)
        out[name] = target
    return out


# ---------------------------------------------------------------- inputs and row numbers


@dataclass
class _Numbered:
    """The input rows as a dataset in row order with a ``ROW`` column."""

    ds: Any
    n: int
    schema: pa.Schema  # the user's columns (no ROW)
    text: str | None  # the text column to use (forced to "text" for bare lists / arrays)
    options: RayOptions | None = None
    specs: list[dict[str, Any]] | None = None  # Parquet row groups, read lazily

    def dataset(self, columns: list[str] | None = None) -> Any:
        """The rows with only ``columns`` (and ``ROW``); all of them for None.
        Parquet is then read for those columns only."""
        if columns is None:
            return self.ds
        cols = [c for c in self.schema.names if c in set(columns)]
        if self.specs is not None:
            assert self.options is not None
            return _parquet_dataset(self.specs, self.options, cols)
        return self.ds.select_columns([*cols, ROW])


def _is_ray_dataset(obj: Any) -> bool:
    return (type(obj).__module__ or "").startswith("ray.data") and hasattr(obj, "map_batches")


def _parquet_files(path: str | os.PathLike) -> list[str] | None:
    from ...io import _shards, _split_suffix

    p = Path(path)
    if p.is_file():
        return [str(p)] if _split_suffix(p)[0] == "parquet" and _split_suffix(p)[1] is None else None
    if p.is_dir():
        shards = _shards(p)
        if shards and all(_split_suffix(s) == ("parquet", None) for s in shards):
            return [str(s) for s in shards]
    return None


def _add_rows(table: pa.Table, start: int) -> pa.Table:
    if ROW in table.column_names:
        table = table.drop_columns([ROW])
    return table.append_column(ROW, pa.array(np.arange(start, start + table.num_rows, dtype=np.int64)))


def _count_rows(table: pa.Table) -> int:
    return table.num_rows


def _number_dataset(ds: Any, o: RayOptions) -> tuple[Any, int, pa.Schema]:
    """Execute ``ds`` in order, then number its blocks (offsets from their
    row counts)."""
    ray = _ray()
    refs = _refs_in_order(ds)
    counts = ray.get([_remote(_count_rows, o).remote(r) for r in refs])
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    numbered = [_remote(_add_rows, o).remote(r, int(s)) for r, s in zip(refs, starts[:-1])]
    if not numbered:
        raise InvalidInputError("the dataset has no blocks")
    out = _configure(ray.data.from_arrow_refs(numbered), o)
    schema = ray.get(numbered[0]).schema
    return out, int(starts[-1]), schema.remove(schema.get_field_index(ROW))


def _as_table(data: Any, text: str | None, what: str) -> tuple[pa.Table, str | None]:
    """In-memory inputs as a table (bare strings in a ``text`` column)."""
    if isinstance(data, (str, os.PathLike)):
        from ...io import read_table

        return read_table(data), text
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]), text
    if isinstance(data, pa.Table):
        return data, text
    if isinstance(data, (list, tuple, pa.Array, pa.ChunkedArray)):
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], str):
            bad = next((i for i, v in enumerate(data) if not isinstance(v, str)), None)
            if bad is not None:
                raise InvalidInputError(f"{what}: row {bad} is {type(data[bad]).__name__}, not a str")
        arr = data if isinstance(data, (pa.Array, pa.ChunkedArray)) else pa.array(list(data))
        return pa.table({"text": arr}), "text"
    mod = type(data).__module__ or ""
    if mod.startswith("polars"):
        if type(data).__name__ == "Series":
            return pa.table({"text": data.to_arrow()}), "text"
        if type(data).__name__ == "LazyFrame":
            data = data.collect()
        return data.to_arrow(), text
    if mod.startswith("datasets") and type(data).__name__ != "DatasetDict":
        from ...io import dataset_table

        return dataset_table(data), text
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data), text
    res = resolve(data, text=text, what=what)
    if res.table is None:
        return pa.table({"text": res.texts}), "text"
    return res.table, text


def _read_row_group(specs: pa.Table, batch_size: int, columns: list[str] | None) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    for path, rg, start in zip(*(specs.column(c).to_pylist() for c in ("path", "rg", "start"))):
        f = pq.ParquetFile(path)
        for batch in f.iter_batches(batch_size=batch_size, row_groups=[rg], columns=columns):
            t = pa.Table.from_batches([batch])
            yield _add_rows(t, start)
            start += t.num_rows


def _parquet_dataset(specs: list[dict[str, Any]], o: RayOptions, columns: list[str] | None) -> Any:
    ray = _ray()
    items = _configure(ray.data.from_items(specs, override_num_blocks=len(specs)), o)
    # one task per row group; the repartition keeps the stage's map tasks
    # from being fused into (and serialised behind) the read of a row group
    return items.map_batches(
        _read_row_group,
        fn_kwargs={"batch_size": o.batch_size, "columns": columns},
        batch_format="pyarrow",
        batch_size=1,
        num_cpus=o.num_cpus,
    ).repartition(target_num_rows_per_block=o.batch_size)


def _read_parquet_numbered(files: list[str], o: RayOptions, text: str | None) -> _Numbered:
    """Local Parquet shards, read lazily in every pass (one task per row
    group, ``batch_size`` rows at a time, only the columns a pass needs);
    row numbers from the footers, in the order :func:`prefcurate.read_table`
    concatenates the shards.  On a cluster the files must be on storage
    that every node sees."""
    import pyarrow.parquet as pq

    ray = _ray()
    specs: list[dict[str, Any]] = []
    start = 0
    schema: pa.Schema | None = None
    for f in files:
        pf = pq.ParquetFile(f)
        if schema is None:
            schema = pf.schema_arrow
        for rg in range(pf.num_row_groups):
            rows = pf.metadata.row_group(rg).num_rows
            if rows:
                specs.append({"path": f, "rg": rg, "start": start})
                start += rows
    assert schema is not None
    if not specs:
        ds = _configure(ray.data.from_arrow(_add_rows(schema.empty_table(), 0)), o)
        return _Numbered(ds, 0, schema, text, o)
    return _Numbered(_parquet_dataset(specs, o, None), start, schema, text, o, specs)


def _fsspec_http_guard() -> None:
    """Ray Data's path listing threads all try ``from
    fsspec.implementations.http import HTTPFileSystem`` and treat only
    ModuleNotFoundError as "not installed"; when fsspec is installed without
    aiohttp, concurrent attempts can see the half-imported module and raise
    ImportError instead.  Make that broken optional module fail the same way
    every time."""
    import importlib.util
    import sys

    name = "fsspec.implementations.http"
    if name in sys.modules or importlib.util.find_spec("fsspec") is None:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = None  # type: ignore[assignment]


def _numbered(data: Any, o: RayOptions, *, text: str | None, what: str) -> _Numbered:
    ray = _ray()
    if _is_ray_dataset(data):
        ds, n, schema = _number_dataset(data, o)
        return _Numbered(ds, n, schema, text)
    if isinstance(data, str) and "://" in data:  # remote storage: Ray Data reads it
        _fsspec_http_guard()
        with _errors():
            src = ray.data.read_parquet(data)
        ds, n, schema = _number_dataset(src, o)
        return _Numbered(ds, n, schema, text)
    if isinstance(data, (str, os.PathLike)):
        if not Path(data).exists():
            raise FileNotFoundError(f"{data}: no such file or directory")
        files = _parquet_files(data)
        if files is not None:
            return _read_parquet_numbered(files, o, text)
    table, text = _as_table(data, text, what)
    block = 4 * o.batch_size
    n = table.num_rows
    blocks = [_add_rows(table.slice(a, block), a) for a in range(0, n, block)] or [_add_rows(table, 0)]
    ds = _configure(ray.data.from_arrow(blocks), o)
    return _Numbered(ds, n, table.schema, text)


def _positions(rows: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in ``rows`` (distinct, any order) of the ``wanted`` rows."""
    order = np.argsort(rows, kind="stable")
    return order[np.searchsorted(rows[order], wanted)].astype(np.int64)


def _strip(batch: pa.Table) -> tuple[pa.Table, np.ndarray]:
    rows = batch.column(ROW).to_numpy()
    return batch.drop_columns([ROW]), rows


# ---------------------------------------------------------------- per-row results looked up by row range


@dataclass
class _Chunks:
    """A table sorted by ``ROW``, cut into row ranges held in the object store;
    a map task fetches only the ranges of its batch."""

    starts: np.ndarray
    ends: np.ndarray
    refs: list[Any]
    schema: pa.Schema

    def lookup(self, lo: int, hi: int) -> pa.Table:
        import ray

        a = int(np.searchsorted(self.ends, lo, side="left"))
        b = int(np.searchsorted(self.starts, hi, side="right"))
        if a >= b:
            return self.schema.empty_table()
        t = pa.concat_tables(ray.get(self.refs[a:b]))
        rows = t.column(ROW).to_numpy()
        i, j = np.searchsorted(rows, lo, side="left"), np.searchsorted(rows, hi, side="right")
        return t.slice(int(i), int(j - i))


def _chunks(table: pa.Table, o: RayOptions) -> _Chunks:
    ray = _ray()
    rows = table.column(ROW).to_numpy() if table.num_rows else np.zeros(0, np.int64)
    if len(rows) > 1 and (np.diff(rows) < 0).any():
        order = np.argsort(rows, kind="stable")
        table = table.take(pa.array(order))
        rows = rows[order]
    step = o.annotation_rows
    starts, ends, refs = [], [], []
    for a in range(0, table.num_rows, step):
        part = table.slice(a, step)
        starts.append(int(rows[a]))
        ends.append(int(rows[min(a + step, len(rows)) - 1]))
        refs.append(ray.put(part))
    return _Chunks(np.array(starts, np.int64), np.array(ends, np.int64), refs, table.schema)


def _split_batch(
    batch: pa.Table,
    chunks: _Chunks,
    which: str,
    mode: str,
    stage: str,
    hook: Callable[[str, pa.Table], Any] | None,
) -> pa.Table:
    """One batch of kept or removed rows.  The rows found in ``chunks`` are
    ``"hits"``; ``which`` is ``"hits"`` or ``"misses"``.  Hits get the chunk
    columns: ``mode="append"`` drops columns of the same name and appends
    them (``split_rows``), ``"replace"`` replaces them in place
    (``with_columns``), ``"none"`` adds nothing."""
    _hook(hook, stage, batch)
    table, rows = _strip(batch)
    if len(rows):
        ann = chunks.lookup(int(rows.min()), int(rows.max()))
    else:
        ann = chunks.schema.empty_table()
    arows = ann.column(ROW).to_numpy() if ann.num_rows else np.zeros(0, np.int64)
    pos = np.searchsorted(arows, rows)
    hit = np.zeros(len(rows), dtype=bool)
    if len(arows):
        ok = pos < len(arows)
        hit[ok] = arows[pos[ok]] == rows[ok]
    idx = np.flatnonzero(hit if which == "hits" else ~hit)
    out = pa.Table.from_pydict({c: take(table.column(c), idx) for c in table.column_names})
    if mode == "none" or which != "hits":
        return out
    extra = ann.drop_columns([ROW]).take(pa.array(pos[idx], type=pa.int64()))
    for name in extra.column_names:
        col = extra.column(name)
        if mode == "replace" and name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, col)
        else:
            if name in out.column_names:
                out = out.drop_columns([name])
            out = out.append_column(name, col)
    return out


def _split_ds(nd: _Numbered, chunks: _Chunks, which: str, mode: str, stage: str, o: RayOptions) -> Any:
    fn = functools.partial(
        _split_batch, chunks=chunks, which=which, mode=mode, stage=stage, hook=o.batch_hook
    )
    functools.update_wrapper(fn, _split_batch)
    fn.__name__ = stage.replace(".", "_")  # type: ignore[attr-defined]
    return nd.ds.map_batches(fn, **_map_kwargs(o))


# ---------------------------------------------------------------- results


def _counts_batch(batch: pa.Table, column: str) -> pa.Table:
    if column not in batch.column_names:
        return pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
    vc = batch.column(column).cast(pa.string()).value_counts()
    return pa.table({"value": vc.field("values"), "count": vc.field("counts").cast(pa.int64())})


def _value_counts(ds: Any, column: str) -> dict[Any, int]:
    """Rows per value of ``column`` (none if the column is missing)."""
    schema = ds.schema()
    names = getattr(schema, "names", None) or []
    if column not in names:
        return {}
    counts = ds.select_columns([column]).map_batches(
        _counts_batch, fn_kwargs={"column": column}, batch_format="pyarrow", batch_size=None
    )
    out: dict[Any, int] = {}
    t = _collect(counts, pa.schema([("value", pa.string()), ("count", pa.int64())]))
    for v, c in zip(t.column("value").to_pylist(), t.column("count").to_pylist()):
        out[v] = out.get(v, 0) + c
    return out


class RowsOps:
    """:class:`prefcurate.StageResult`'s operations on lazy Ray rows."""

    @staticmethod
    def value_counts(ds: Any, column: str) -> dict[Any, int]:
        return _value_counts(ds, column)

    @staticmethod
    def to_table(ds: Any) -> pa.Table:
        return to_table(ds)


ROWS_OPS = RowsOps()


def splitter(nd: _Numbered, o: RayOptions, stage: str) -> Any:
    """Lazy kept / removed Ray datasets (rows in order, the attribution's
    columns appended to the removed ones): the Ray engine's rows of a result."""

    def split(mask: np.ndarray, attribution: pa.Table, row_column: str) -> tuple[Any, Any]:
        ann = attribution.append_column(ROW, attribution.column(row_column))
        if row_column == "row_index":
            ann = ann.drop_columns(["row_index"])
        ch = _chunks(ann, o)
        kept = _split_ds(nd, ch, "misses", "append", f"{stage}.kept", o)
        removed = _split_ds(nd, ch, "hits", "append", f"{stage}.removed", o)
        return kept, removed

    split.rows_ops = ROWS_OPS  # type: ignore[attr-defined]
    split.write_parquet = write_parquet  # type: ignore[attr-defined]
    return split
