"""The Ray Data engine: the same stages on a cluster, with the same results.

``engine="ray"`` on :func:`prefcurate.decontaminate`, :func:`prefcurate.dedup`,
:func:`prefcurate.select_top` (and ``select_top_indices`` /
``select_top_result``) and :meth:`prefcurate.RewardScorer.score_pairs` runs
the stage on a ``ray.data.Dataset``: ``map_batches`` over Arrow batches call
the same Rust functions as the local engine, shuffles group rows by key, and
the driver only combines small per-row results.  The kept and removed rows are
exactly the local engine's, in the same order (by original row number).

Input: a Parquet file or folder of Parquet shards (read lazily in every pass,
one task per row group and only the columns the pass needs, shards in name
order as :func:`prefcurate.read_table` reads them, row numbers from the
footers), a ``ray.data.Dataset`` (e.g. ``ray.data.read_parquet("s3://...")``;
executed once in order and numbered, so it stays in the object store), or
anything the local engine takes (a table, a ``datasets.Dataset``, a list of
str...; cut into blocks and put in the object store).  Every row carries its
number (a ``__prefcurate_row`` column) so that every result refers to the
original row numbers.

Output: the result objects of the local engine (same fields and methods) whose
``kept`` and ``removed`` are lazy ``ray.data.Dataset`` s in row order; write
them with ``write_parquet`` (:func:`write_parquet` writes both), or gather a
small one with :func:`to_table`.

Connect to a cluster with ``ray.init(address=...)`` before calling; without
it a local Ray instance is started.  ``ray_options=`` (a dict or
:class:`RayOptions`) sets the batch size, shuffle partitions and resources.
See ``docs/scaling.md`` for what runs where.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import _core
from ._inputs import resolve, take
from ._unicode import ensure_tables
from .errors import IndexFileError, InvalidInputError, PrefcurateError

ROW = "__prefcurate_row"
_NO_KEY = np.uint64(np.iinfo(np.uint64).max)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

__all__ = [
    "ROW",
    "FailOnce",
    "RayOptions",
    "RayStageResult",
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


def to_table(ds: Any) -> pa.Table:
    """Gather a (small) Ray dataset on the driver as one ``pyarrow.Table``,
    in order; for tests and small results."""
    ray = _ray()
    eo = ds.context.execution_options
    old = eo.preserve_order
    eo.preserve_order = True
    try:
        with _errors():
            tables = ray.get(ds.to_arrow_refs())
    finally:
        eo.preserve_order = old
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
    from .io import _shards, _split_suffix

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
    eo = ds.context.execution_options
    old = eo.preserve_order
    eo.preserve_order = True
    try:
        with _errors():
            refs = ds.to_arrow_refs()
    finally:
        eo.preserve_order = old
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
        from .io import read_table

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
        from ._inputs import dataset_table

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


class _RayRows:
    """``kept`` / ``removed`` as lazy Ray datasets, built on first use."""

    _numbered: _Numbered | None
    _options: RayOptions | None

    def _ray_rows(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def write_parquet(self, path: str | os.PathLike) -> dict[str, str]:
        """Write ``kept`` and ``removed`` as Parquet shards under ``path/kept``
        and ``path/removed``."""
        return write_parquet(self, path)


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


@dataclass
class RayStageResult:
    """What a stage kept and removed, as lazy Ray datasets in row order.

    ``n_kept`` / ``n_removed`` are known without running the datasets;
    :meth:`to_stage_result` gathers both on the driver as a
    :class:`prefcurate.StageResult` (small data only)."""

    stage: str
    kept: Any
    removed: Any
    n_input: int
    n_kept: int
    n_removed: int
    by_reason: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_kept + self.n_removed != self.n_input:
            raise AssertionError(
                f"stage {self.stage}: {self.n_input} rows in but {self.n_kept} kept + {self.n_removed} removed"
            )

    def to_stage_result(self) -> Any:
        from .schema import StageResult

        return StageResult(self.stage, to_table(self.kept), to_table(self.removed), self.n_input, self.info)

    def write_parquet(self, path: str | os.PathLike) -> dict[str, str]:
        return write_parquet(self, path)

    def summary(self) -> dict[str, Any]:
        """As :meth:`prefcurate.StageResult.summary`; ``by_source`` counts
        the rows in one pass over ``kept`` and ``removed``."""
        kept_src = _value_counts(self.kept, "source")
        rem_src = _value_counts(self.removed, "source")
        by_source = {
            str(s): {"kept": kept_src.get(s, 0), "removed": rem_src.get(s, 0)}
            for s in sorted(set(kept_src) | set(rem_src), key=str)
        }
        return {
            "name": self.stage,
            "input": self.n_input,
            "kept": self.n_kept,
            "removed": self.n_removed,
            "by_reason": dict(self.by_reason),
            "by_source": by_source,
            **({"info": self.info} if self.info else {}),
        }

    def __repr__(self) -> str:
        return (
            f"RayStageResult({self.stage!r}: {self.n_input} in, {self.n_kept} kept, {self.n_removed} removed)"
        )


# ================================================================ decontamination


def _decont_scan(
    batch: pa.Table, index: list[Any], text: str | None, spans: bool, threads: int, hook: Any
) -> pa.Table:
    ensure_tables()
    _hook(hook, "decontaminate.scan", batch)
    table, rows = _strip(batch)
    idx = _get_cached(index[0])
    with _rows_named(rows):
        res = resolve(table, text=text, what="train")
        try:
            out = idx._inner.scan(res.texts, spans=spans, num_threads=threads)
        except InvalidInputError as e:  # name the column, as the local engine does
            raise InvalidInputError(f"{res.label}: {e}" if res.label else str(e)) from None
    t, b, s = (np.asarray(out[k]).astype(np.int64) for k in ("train", "bench", "score"))
    order = np.lexsort((b, t))
    t, b, s = t[order], b[order], s[order]
    flagged = np.asarray(out["flagged_train"]).astype(np.int64)
    lo = np.searchsorted(t, flagged, side="left")
    hi = np.searchsorted(t, flagged, side="right")
    offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int32)
    sel = np.concatenate([np.arange(a, z) for a, z in zip(lo, hi)]) if len(flagged) else np.zeros(0, np.int64)
    return pa.table(
        {
            ROW: pa.array(rows[flagged], pa.int64()),
            "benchmark_index": pa.array(np.asarray(out["flagged_bench"]).astype(np.int64)),
            "score": pa.array(np.asarray(out["flagged_score"]).astype(np.int64)),
            "n": pa.array(np.asarray(out["flagged_matches"]).astype(np.int64)),
            "span": pa.array(list(out["span_text"]), pa.string()),
            "span_tokens": pa.array(np.asarray(out["span_tokens"]).astype(np.int64)),
            "m_bench": pa.ListArray.from_arrays(pa.array(offsets), pa.array(b[sel], pa.int64())),
            "m_score": pa.ListArray.from_arrays(pa.array(offsets), pa.array(s[sel], pa.int64())),
        }
    )


_SCAN_SCHEMA = pa.schema(
    [
        (ROW, pa.int64()),
        ("benchmark_index", pa.int64()),
        ("score", pa.int64()),
        ("n", pa.int64()),
        ("span", pa.string()),
        ("span_tokens", pa.int64()),
        ("m_bench", pa.list_(pa.int64())),
        ("m_score", pa.list_(pa.int64())),
    ]
)


@functools.cache
def _decontamination_result_class() -> Any:
    from .decontaminate import DecontaminationResult

    @dataclass(repr=False)
    class RayDecontaminationResult(DecontaminationResult, _RayRows):
        """:class:`prefcurate.DecontaminationResult` from the Ray engine:
        ``kept`` and ``removed`` are lazy Ray datasets."""

        _numbered: _Numbered | None = field(default=None, repr=False)
        _options: RayOptions | None = field(default=None, repr=False)

        def _rows(self) -> tuple[Any, Any]:
            if self._split is None:
                self._split = self._ray_rows()
            return self._split

        def _ray_rows(self) -> tuple[Any, Any]:
            assert self._numbered is not None and self._options is not None
            ann = self.attribution.append_column(ROW, self.attribution.column("train_index"))
            ch = _chunks(ann, self._options)
            kept = _split_ds(self._numbered, ch, "misses", "append", "decontaminate.kept", self._options)
            removed = _split_ds(self._numbered, ch, "hits", "append", "decontaminate.removed", self._options)
            return kept, removed

    return RayDecontaminationResult


def decontaminate(
    train: Any,
    benchmark: Any,
    *,
    ngram_range: tuple[int, int] = (7, 13),
    method: str = "reference",
    text: str | None = None,
    benchmark_text: str | None = None,
    benchmark_id: str = "id",
    benchmark_subset: str = "subset",
    n: int = 13,
    min_tokens: int = 5,
    spans: bool = True,
    options: Any = None,
    **_ignored: Any,
) -> Any:
    """:func:`prefcurate.decontaminate` on Ray: the index is built once on the
    driver and shared through the object store; every batch is scanned by the
    same Rust scan; the flagged rows (with their matches) come back to the
    driver, whose arrays and tables equal the local engine's."""
    import time

    from .decontaminate import REASONS, STAGE
    from .index import METHODS, BenchmarkIndex, _check_range

    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if method != "reference":
        raise InvalidInputError(
            "engine='ray' runs method='reference' only: the precise method's stop-grams count n-grams "
            "over the whole training set, which the Rust core cannot yet do per batch; use engine='local'"
        )
    o = _opts(options)
    lo, hi = _check_range(ngram_range)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if isinstance(benchmark, BenchmarkIndex):
        index = benchmark
        if index.method != method:
            raise InvalidInputError(
                f"the benchmark index was built for method={index.method!r}, but method={method!r} was asked for"
            )
        if index.ngram_range != (lo, hi):
            raise InvalidInputError(
                f"the benchmark index was built with n-grams {index.ngram_range}, but {(lo, hi)} were asked for"
            )
    else:
        index = BenchmarkIndex(
            benchmark,
            text=benchmark_text,
            id=benchmark_id,
            subset=benchmark_subset,
            method=method,
            ngram_range=(lo, hi),
            n=n,
            min_tokens=min_tokens,
        )
    timings["index"] = time.perf_counter() - t0
    ray = _ray()
    t0 = time.perf_counter()
    nd = _numbered(train, o, text=text, what="train")
    probe = resolve(nd.schema.empty_table(), text=nd.text, what="train")  # a missing column fails here
    timings["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    iref = ray.put(index)
    scan = nd.dataset([probe.column] if probe.column else None).map_batches(
        _decont_scan,
        fn_kwargs={
            "index": [iref],
            "text": nd.text,
            "spans": spans,
            "threads": o.threads,
            "hook": o.batch_hook,
        },
        **_map_kwargs(o),
    )
    flagged = _collect(scan, _SCAN_SCHEMA)
    timings["scan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = flagged.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    flagged = flagged.take(pa.array(order))
    rows = rows[order]
    counts = flagged.column("n").to_numpy()
    lens = np.diff(flagged.column("m_bench").combine_chunks().offsets.to_numpy()) if len(rows) else counts
    t_idx = np.repeat(rows, lens)
    b_idx = (
        flagged.column("m_bench").combine_chunks().flatten().to_numpy()
        if len(rows)
        else np.zeros(0, np.int64)
    )
    score = (
        flagged.column("m_score").combine_chunks().flatten().to_numpy()
        if len(rows)
        else np.zeros(0, np.int64)
    )
    ids = np.array(index.ids, dtype=object)
    subsets = np.array(index.subsets, dtype=object)
    matches = pa.Table.from_pydict(
        {
            "train_index": pa.array(t_idx.astype(np.int64)),
            "benchmark_index": pa.array(b_idx.astype(np.int64)),
            "score": pa.array(score.astype(np.int64)),
            "benchmark_id": pa.array(ids[b_idx].tolist(), type=pa.string()),
            "benchmark_subset": pa.array(subsets[b_idx].tolist(), type=pa.string()),
        }
    )
    contaminated = np.zeros(nd.n, dtype=bool)
    contaminated[rows] = True
    best_b = flagged.column("benchmark_index").to_numpy().astype(np.int64)
    n_rows = len(rows)
    attribution = pa.Table.from_pydict(
        {
            "stage": pa.array([STAGE] * n_rows, type=pa.string()),
            "reason": pa.array([REASONS[method]] * n_rows, type=pa.string()),
            "train_index": pa.array(rows.astype(np.int64)),
            "benchmark_index": pa.array(best_b),
            "benchmark_id": pa.array(ids[best_b].tolist(), type=pa.string()),
            "benchmark_subset": pa.array(subsets[best_b].tolist(), type=pa.string()),
            "score": pa.array(flagged.column("score").to_numpy().astype(np.int64)),
            "n_benchmark_matches": pa.array(counts.astype(np.int64)),
            "matched_span": flagged.column("span").combine_chunks()
            if n_rows
            else pa.array([], type=pa.string()),
            "matched_tokens": pa.array(flagged.column("span_tokens").to_numpy().astype(np.int64)),
        }
    )
    timings["attribute"] = time.perf_counter() - t0
    cls = _decontamination_result_class()
    return cls(
        contaminated=contaminated,
        matches=matches,
        method=method,
        index=index,
        attribution=attribution,
        timings=timings,
        _numbered=nd,
        _options=o,
    )


# ================================================================ deduplication
#
# 1. keys (map): per row the hash of its normalised key, of its straight and
#    swapped pair keys, its degenerate flag and its LSH band keys;
#    records (namespace, hash, row, side) go to partitions by hash.
# 2. groups (shuffle, then per partition): runs of equal (namespace, hash)
#    give exact-key groups, possible contradictions and LSH candidate pairs
#    (the local bucket rule, rows in order).
# 3. verify (map + shuffle): the rows named by step 2 are routed, with their
#    text, to verification buckets, where dedup_exact / dedup_exact_two /
#    dedup_jaccard decide, exactly as the local engine does.
# 4. driver: union-find over the verified links, the keep policy, provenance.

_NS_EXACT = 0
_NS_CONTRA = 1
_NS_BAND = 2  # + band number (bands <= dedup.MAX_PERM, far below the namespaces below)
_NS_DEGENERATE = 65535
_NS_NO_SHINGLES = 65534  # rows without a shingle (counted)
_NS_SHORT = 65533  # rows shorter than one shingle (counted)

_KEY_SCHEMA = pa.schema(
    [("__part", pa.int64()), ("ns", pa.int32()), ("h", pa.uint64()), (ROW, pa.int64()), ("side", pa.int8())]
)
_GROUP_SCHEMA = pa.schema([("kind", pa.int8()), ("a", pa.int64()), ("b", pa.int64()), ("h", pa.uint64())])
_VERIFY_SCHEMA = pa.schema(
    [("kind", pa.int8()), ("a", pa.int64()), ("b", pa.int64()), ("v", pa.float64()), ("s", pa.string())]
)
_K_EXACT, _K_CONTRA, _K_NEAR, _K_DEG, _K_ROW, _K_NO_SHINGLES, _K_SHORT = 0, 1, 2, 3, 4, 5, 6


def _mix(h: np.ndarray, salt: int) -> np.ndarray:
    x = (h.astype(np.uint64) ^ np.uint64(salt)) * _GOLDEN
    return (x >> np.uint64(29)).astype(np.uint64)


def _key_hash(level: str, norm: tuple[bool, bool, bool], kw: dict[str, Any], threads: int) -> np.ndarray:
    """Per row, a 64-bit hash of its normalised key at ``level`` (equal keys
    give equal hashes; groups are verified, so collisions only cost work):
    the one character shingle spanning the whole key, hashed by the MinHash
    code."""
    return _core.dedup_band_keys(
        level=level,
        norm_opts=norm,
        shingle_kind="char",
        shingle_n=1 << 62,
        family_kind="fast",
        a=np.array([1], np.uint32),
        b=np.array([0], np.uint32),
        bands=1,
        rows_per_band=1,
        num_threads=threads,
        **kw,
    )


def _dedup_keys(batch: pa.Table, spec: dict[str, Any]) -> pa.Table:
    from .dedup import _as_data, permutations

    ensure_tables()
    _hook(spec["hook"], "dedup.keys", batch)
    table, rows = _strip(batch)
    threads = spec["threads"]
    with _rows_named(rows):
        d = _as_data(table, spec["text"])
        kw = d.kwargs()
        level = spec["level"] if d.pairs else "prompt"
        norm = spec["norm"]
        ns: list[np.ndarray] = []
        hs: list[np.ndarray] = []
        rs: list[np.ndarray] = []
        sides: list[np.ndarray] = []

        def add(n_: int, h: np.ndarray, r: np.ndarray, side: int = 0) -> None:
            ns.append(np.full(len(r), n_, np.int32))
            hs.append(h.astype(np.uint64))
            rs.append(r)
            sides.append(np.full(len(r), side, np.int8))

        add(_NS_EXACT, _key_hash(level, norm, kw, threads), rows)
        if d.pairs and spec["pair_checks"]:
            deg = np.asarray(_core.dedup_degenerate(norm_opts=norm, num_threads=threads, **kw), bool)
            live = ~deg
            straight = _key_hash("pair", norm, kw, threads)
            swapped = _key_hash("pair_swapped", norm, kw, threads)
            add(_NS_CONTRA, straight[live], rows[live], 0)
            add(_NS_CONTRA, swapped[live], rows[live], 1)
            add(_NS_DEGENERATE, np.zeros(int(deg.sum()), np.uint64), rows[deg])
        if spec["method"] == "minhash":
            a, b = permutations(spec["num_perm"], spec["seed"])
            bands = spec["bands"]
            flat, short = _core.dedup_band_keys(
                level=level,
                norm_opts=norm,
                shingle_kind=spec["shingle"][0],
                shingle_n=spec["shingle"][1],
                family_kind=spec["permutations"],
                a=a,
                b=b,
                bands=bands,
                rows_per_band=spec["rows"],
                num_threads=threads,
                with_short=True,
                **kw,
            )
            keys = flat.reshape(len(rows), bands)
            none = keys[:, 0] == _NO_KEY if bands else np.zeros(len(rows), bool)
            add(_NS_NO_SHINGLES, np.zeros(int(none.sum()), np.uint64), rows[none])
            add(_NS_SHORT, np.zeros(int(short.sum()), np.uint64), rows[short])
            for band in range(bands):
                k = keys[:, band]
                ok = k != _NO_KEY
                add(_NS_BAND + band, k[ok], rows[ok])
    n_ = np.concatenate(ns)
    h_ = np.concatenate(hs)
    part = (_mix(h_, 0) ^ (n_.astype(np.uint64) * _GOLDEN)) % np.uint64(spec["partitions"])
    return pa.table(
        {
            "__part": pa.array(part.astype(np.int64)),
            "ns": pa.array(n_),
            "h": pa.array(h_),
            ROW: pa.array(np.concatenate(rs).astype(np.int64)),
            "side": pa.array(np.concatenate(sides)),
        }
    )


def _bucket_pairs(runs: list[np.ndarray], max_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of LSH buckets (rows ascending), the local rule: every
    pair in a bucket of at most ``max_bucket`` rows, else each row with the
    bucket's first row and with the row before it."""
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    by_size: dict[int, list[np.ndarray]] = {}
    for r in runs:
        if len(r) <= max_bucket:
            by_size.setdefault(len(r), []).append(r)
        else:
            y = np.arange(1, len(r))
            out_i += [r[np.zeros(len(y), np.int64)], r[y - 1]]
            out_j += [r[y], r[y]]
    for m, group in by_size.items():
        stack = np.stack(group)
        x, y = np.triu_indices(m, 1)
        out_i.append(stack[:, x].ravel())
        out_j.append(stack[:, y].ravel())
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def _dedup_groups(part: pa.Table, max_bucket: int) -> pa.Table:
    ns = part.column("ns").to_numpy()
    h = part.column("h").to_numpy()
    rows = part.column(ROW).to_numpy()
    side = part.column("side").to_numpy()
    order = np.lexsort((side, rows, h, ns))
    ns, h, rows, side = ns[order], h[order], rows[order], side[order]
    kinds: list[np.ndarray] = []
    aa: list[np.ndarray] = []
    bb: list[np.ndarray] = []
    hh: list[np.ndarray] = []

    def emit(kind: int, a: np.ndarray, b: np.ndarray, hv: np.ndarray) -> None:
        kinds.append(np.full(len(a), kind, np.int8))
        aa.append(a.astype(np.int64))
        bb.append(b.astype(np.int64))
        hh.append(hv.astype(np.uint64))

    for ns_, kind_ in ((_NS_DEGENERATE, _K_DEG), (_NS_NO_SHINGLES, _K_NO_SHINGLES), (_NS_SHORT, _K_SHORT)):
        sel = ns == ns_
        m = int(sel.sum())
        emit(kind_, rows[sel], np.zeros(m, np.int64), np.zeros(m, np.uint64))
    n = len(ns)
    if n:
        new = np.ones(n, dtype=bool)
        new[1:] = (ns[1:] != ns[:-1]) | (h[1:] != h[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)
        sizes = ends - starts
        multi = sizes > 1
        run_ns = ns[starts]
        # exact keys: every member of a run of two or more rows
        sel = multi & (run_ns == _NS_EXACT)
        if sel.any():
            idx = np.concatenate([np.arange(s, e) for s, e in zip(starts[sel], ends[sel])])
            emit(_K_EXACT, rows[idx], np.zeros(len(idx), np.int64), h[idx])
        # possible contradictions: a straight key and a swapped key of two rows
        sel = multi & (run_ns == _NS_CONTRA)
        for s, e in zip(starts[sel], ends[sel]):
            r, sd = rows[s:e], side[s:e]
            if (sd == 0).any() and (sd == 1).any() and len(np.unique(r)) > 1:
                emit(_K_CONTRA, r, sd.astype(np.int64), h[s:e])
        # LSH buckets
        sel = multi & (run_ns >= _NS_BAND) & (run_ns < _NS_SHORT)
        if sel.any():
            runs = [rows[s:e] for s, e in zip(starts[sel], ends[sel])]
            i, j = _bucket_pairs(runs, max_bucket)
            emit(_K_NEAR, i, j, np.zeros(len(i), np.uint64))
    return pa.table(
        {
            "kind": pa.array(np.concatenate(kinds)),
            "a": pa.array(np.concatenate(aa)),
            "b": pa.array(np.concatenate(bb)),
            "h": pa.array(np.concatenate(hh)),
        },
        schema=_GROUP_SCHEMA,
    )


def _record_parts(batch: pa.Table, partitions: int) -> pa.Table:
    """Partitions by record, so that a candidate pair proposed by several
    bands meets its copies."""
    a = batch.column("a").to_numpy().astype(np.uint64)
    b = batch.column("b").to_numpy().astype(np.uint64)
    part = _mix(a ^ _mix(b, 4), 5) % np.uint64(partitions)
    return batch.append_column("__part", pa.array(part.astype(np.int64)))


def _distinct(part: pa.Table) -> pa.Table:
    cols = [part.column(c).to_numpy() for c in ("kind", "a", "b", "h")]
    order = np.lexsort(cols[::-1])
    srt = [c[order] for c in cols]
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = np.any([c[1:] != c[:-1] for c in srt], axis=0)
    return part.drop_columns(["__part"]).take(pa.array(order[new]))


def _route(batch: pa.Table, chunks: _Chunks, spec: dict[str, Any]) -> pa.Table:
    """The batch's rows that verification needs, once per bucket, with their
    text, id and keep priority."""
    from .dedup import _as_data, _priority

    ensure_tables()
    _hook(spec["hook"], "dedup.route", batch)
    table, rows = _strip(batch)
    ann = chunks.lookup(int(rows.min()), int(rows.max())) if len(rows) else chunks.schema.empty_table()
    with _rows_named(rows):
        d = _as_data(table, spec["text"])
        prio = _priority(d, spec["keep"], spec["score"], spec["source"], len(rows))
    ann = ann.filter(pa.array(np.isin(ann.column(ROW).to_numpy(), rows)))
    pos = _positions(rows, ann.column(ROW).to_numpy())
    ids = (
        table.column("id").cast(pa.string()).take(pa.array(pos))
        if "id" in table.column_names
        else pa.nulls(len(pos), pa.string())
    )
    cols: dict[str, Any] = {
        "__bucket": ann.column("__bucket"),
        ROW: ann.column(ROW),
        "__prio": pa.array(prio[pos], pa.float64()),
        "__id": ids,
    }
    if d.pairs:
        cols["chosen"] = take(d.chosen, pos)
        cols["rejected"] = take(d.rejected, pos)
    else:
        cols["__text"] = take(d.texts, pos)
    return pa.table(cols)


def _dedup_verify(group: pa.Table, work: list[Any], spec: dict[str, Any]) -> pa.Table:
    import ray

    from .dedup import _Data

    ensure_tables()
    _hook(spec["hook"], "dedup.verify", group)
    rows = group.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    group = group.take(pa.array(order))
    rows = rows[order]
    bucket = int(group.column("__bucket")[0].as_py())
    w = ray.get(work[bucket])
    pairs = "chosen" in group.column_names
    norm = spec["norm"]
    level = spec["level"] if pairs else "prompt"
    threads = spec["threads"]

    def data(pos: np.ndarray) -> dict[str, Any]:
        p = pa.array(pos.astype(np.int64))
        if pairs:
            return _Data(
                None, None, chosen=group.column("chosen").take(p), rejected=group.column("rejected").take(p)
            ).kwargs()
        return _Data(None, None, texts=group.column("__text").take(p)).kwargs()

    out: list[pa.Table] = []

    def emit(kind: int, a: np.ndarray, b: np.ndarray, v: np.ndarray | None = None, s: Any = None) -> None:
        m = len(a)
        out.append(
            pa.table(
                {
                    "kind": pa.array(np.full(m, kind, np.int8)),
                    "a": pa.array(a.astype(np.int64)),
                    "b": pa.array(b.astype(np.int64)),
                    "v": pa.array(np.zeros(m) if v is None else v, pa.float64()),
                    "s": s if s is not None else pa.nulls(m, pa.string()),
                },
                schema=_VERIFY_SCHEMA,
            )
        )

    with _rows_named(rows):
        e_rows = w["E"]
        if len(e_rows):
            g = _core.dedup_exact(
                level=level, norm_opts=norm, num_threads=threads, **data(np.searchsorted(rows, e_rows))
            )
            first = e_rows[np.asarray(g, np.int64)]
            moved = first != e_rows
            emit(_K_EXACT, e_rows[moved], first[moved])
        c_rows = w["C"]
        if len(c_rows):
            g = np.asarray(
                _core.dedup_exact_two(
                    level="pair",
                    other="pair_swapped",
                    norm_opts=norm,
                    num_threads=threads,
                    **data(np.searchsorted(rows, c_rows)),
                ),
                np.int64,
            )
            m = len(c_rows)
            straight, swapped = g[:m], g[m:]
            first_swapped: dict[int, int] = {}
            for jj in range(m):
                first_swapped.setdefault(int(swapped[jj]), jj)
            deciding = np.isin(c_rows, w["C0"])
            ci, co = [], []
            for ii in np.flatnonzero(deciding).tolist():
                other = first_swapped.get(int(straight[ii]))
                if other is not None and other != ii:
                    ci.append(int(c_rows[ii]))
                    co.append(int(c_rows[other]))
            emit(_K_CONTRA, np.array(ci, np.int64), np.array(co, np.int64))
        ni, nj = w["Ni"], w["Nj"]
        if len(ni):
            both = np.unique(np.concatenate([ni, nj]))
            sub = data(np.searchsorted(rows, both))
            sims = _core.dedup_jaccard(
                level=level,
                norm_opts=norm,
                shingle_kind=spec["shingle"][0],
                shingle_n=spec["shingle"][1],
                i=np.searchsorted(both, ni).astype(np.uint32).tolist(),
                j=np.searchsorted(both, nj).astype(np.uint32).tolist(),
                num_threads=threads,
                **sub,
            )
            emit(_K_NEAR, ni, nj, np.asarray(sims, np.float64))
    emit(_K_ROW, rows, np.zeros(len(rows), np.int64), group.column("__prio").to_numpy(), group.column("__id"))
    return pa.concat_tables(out)


def _verify(
    nd: _Numbered,
    spec: dict[str, Any],
    o: RayOptions,
    e_groups: tuple[np.ndarray, np.ndarray],
    c_groups: tuple[np.ndarray, np.ndarray, np.ndarray],
    near: tuple[np.ndarray, np.ndarray],
) -> pa.Table:
    """Route the rows named by the work to buckets and verify there; returns
    the verification records."""
    ray = _ray()
    e_rows, e_h = e_groups
    c_rows, c_side, c_h = c_groups
    ni, nj = near
    total = len(e_rows) + len(c_rows) + 2 * len(ni)
    if total == 0:
        return _VERIFY_SCHEMA.empty_table()
    P = _partitions(o, total)
    e_b = (_mix(e_h, 1) % np.uint64(P)).astype(np.int64)
    c_b = (_mix(c_h, 2) % np.uint64(P)).astype(np.int64)
    n_b = (_mix(ni.astype(np.uint64), 3) % np.uint64(P)).astype(np.int64)

    def split(bucket_of: np.ndarray, *arrays: np.ndarray) -> dict[int, list[np.ndarray]]:
        order = np.argsort(bucket_of, kind="stable")
        b = bucket_of[order]
        keys, starts = np.unique(b, return_index=True)
        ends = np.append(starts[1:], len(b))
        srt = [a[order] for a in arrays]
        return {int(k): [a[s:e] for a in srt] for k, s, e in zip(keys, starts, ends)}

    by_e = split(e_b, e_rows)
    by_c = split(c_b, c_rows, c_side)
    by_n = split(n_b, ni, nj)
    empty = np.zeros(0, np.int64)
    work: list[Any] = [None] * P
    for bucket in set(by_e) | set(by_c) | set(by_n):
        (e,) = by_e.get(bucket, [empty])
        c, cs = by_c.get(bucket, [empty, empty])
        bi, bj = by_n.get(bucket, [empty, empty])
        work[bucket] = ray.put(
            {"E": np.unique(e), "C": np.unique(c), "C0": np.unique(c[cs == 0]), "Ni": bi, "Nj": bj}
        )
    route_rows = np.concatenate([e_rows, c_rows, ni, nj])
    route_buckets = np.concatenate([e_b, c_b, n_b, n_b])
    packed = np.unique(route_rows.astype(np.int64) * P + route_buckets)
    routing = pa.table({ROW: pa.array(packed // P), "__bucket": pa.array(packed % P)})
    ch = _chunks(routing, o)
    routed = nd.dataset(spec["columns"] + spec["keep_columns"]).map_batches(
        _route, fn_kwargs={"chunks": ch, "spec": spec}, **_map_kwargs(o)
    )
    verified = routed.groupby("__bucket", num_partitions=P).map_groups(
        _dedup_verify, fn_kwargs={"work": work, "spec": spec}, batch_format="pyarrow", num_cpus=o.num_cpus
    )
    return _collect(verified, _VERIFY_SCHEMA)


@functools.cache
def _dedup_result_class() -> Any:
    from .dedup import STAGE, DedupResult

    @dataclass(repr=False)
    class RayDedupResult(DedupResult, _RayRows):
        """:class:`prefcurate.DedupResult` from the Ray engine: ``kept`` and
        ``removed`` are lazy Ray datasets."""

        _numbered: _Numbered | None = field(default=None, repr=False)
        _options: RayOptions | None = field(default=None, repr=False)

        def _rows(self) -> tuple[Any, Any]:
            if self._split is None:
                self._split = self._ray_rows()
            return self._split

        def _ray_rows(self) -> tuple[Any, Any]:
            assert self._numbered is not None and self._options is not None
            attr = self.attribution()
            ann = attr.drop_columns(["row_index"]).append_column(ROW, attr.column("row_index"))
            ch = _chunks(ann, self._options)
            kept = _split_ds(self._numbered, ch, "misses", "append", "dedup.kept", self._options)
            removed = _split_ds(self._numbered, ch, "hits", "append", "dedup.removed", self._options)
            return kept, removed

        def stage_result(self) -> Any:
            """As a :class:`RayStageResult` (``to_stage_result()`` gathers it)."""
            s = self.summary()
            kept, removed = self._rows()
            return RayStageResult(
                STAGE,
                kept,
                removed,
                s["input"],
                s["kept"],
                s["removed"],
                s["by_reason"],
                {"params": self.params, **self.info},
            )

    return RayDedupResult


def dedup(
    data: Any,
    *,
    level: str,
    method: str,
    threshold: float,
    text: str | None,
    keep: Any,
    score: str,
    source: str,
    nfkc: bool,
    lowercase: bool,
    whitespace: bool,
    shingle: str,
    ngram: int,
    num_perm: int,
    bands: int | None,
    rows: int | None,
    permutations_: str,
    seed: int,
    pair_checks: bool,
    options: Any = None,
) -> Any:
    """:func:`prefcurate.dedup` on Ray (arguments validated by the caller);
    see the steps above.  The result equals the local engine's: the same
    removed rows, reasons, ``duplicate_of``, ``cluster_id``, similarities,
    links and counts."""
    from .dedup import _as_data, _choose, _priority, dedup_params, exact_edges, lookup_pairs

    o = _opts(options)
    ensure_tables()
    nd = _numbered(data, o, text=text, what="dedup")
    probe = _as_data(nd.schema.empty_table(), nd.text)  # the kind of rows, and missing columns
    _priority(probe, keep, score, source, 0)
    params = dedup_params(
        level,
        method,
        threshold,
        keep,
        (nfkc, lowercase, whitespace),
        shingle,
        ngram,
        num_perm,
        bands,
        rows,
        permutations_,
        seed,
    )
    n = nd.n
    if n >= np.iinfo(np.uint32).max:
        raise InvalidInputError("dedup: more than 2^32 - 1 rows")
    pairs = probe.pairs
    spec = {
        "text": nd.text,
        "level": level,
        "norm": (nfkc, lowercase, whitespace),
        "method": method,
        "shingle": (shingle, ngram),
        "num_perm": num_perm,
        "seed": seed,
        "permutations": permutations_,
        "bands": params.get("bands"),
        "rows": params.get("rows"),
        "pair_checks": pair_checks,
        "keep": keep,
        "score": score,
        "source": source,
        "threads": o.threads,
        "hook": o.batch_hook,
        "partitions": 1,
        "columns": (["chosen", "rejected"] if pairs else [])
        + ([probe.res.column] if probe.res is not None and probe.res.column else []),
        "keep_columns": ["id", score, source],
    }
    n_records = n * (1 + (2 if pairs and pair_checks else 0) + int(params.get("bands") or 0))
    spec["partitions"] = _partitions(o, n_records)

    # 1 + 2: keys, grouped
    keys = nd.dataset(spec["columns"]).map_batches(_dedup_keys, fn_kwargs={"spec": spec}, **_map_kwargs(o))
    grouped = keys.groupby("__part", num_partitions=spec["partitions"]).map_groups(
        _dedup_groups, fn_kwargs={"max_bucket": 64}, batch_format="pyarrow", num_cpus=o.num_cpus
    )
    distinct = (
        grouped.map_batches(_record_parts, fn_kwargs={"partitions": spec["partitions"]}, **_map_kwargs(o))
        .groupby("__part", num_partitions=spec["partitions"])
        .map_groups(_distinct, batch_format="pyarrow", num_cpus=o.num_cpus)
    )
    g = _collect(distinct, _GROUP_SCHEMA) if n else _GROUP_SCHEMA.empty_table()
    kind = g.column("kind").to_numpy()
    ga, gb, gh = g.column("a").to_numpy(), g.column("b").to_numpy(), g.column("h").to_numpy()
    deg_rows = ga[kind == _K_DEG]
    e = kind == _K_EXACT
    c = kind == _K_CONTRA
    nn = kind == _K_NEAR
    cand = np.unique(ga[nn].astype(np.uint64) << np.uint64(32) | gb[nn].astype(np.uint64))
    ci = (cand >> np.uint64(32)).astype(np.int64)
    cj = (cand & np.uint64(0xFFFFFFFF)).astype(np.int64)

    # 3: verify
    v = _verify(nd, spec, o, (ga[e], gh[e]), (ga[c], gb[c], gh[c]), (ci, cj))
    vk = v.column("kind").to_numpy()
    va, vb, vv = v.column("a").to_numpy(), v.column("b").to_numpy(), v.column("v").to_numpy()

    # 4: the driver, as the local engine's _run
    reason = np.array([None] * n, dtype=object)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    cluster_id = np.full(n, -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    info: dict[str, Any] = {}
    if pairs and pair_checks:
        degenerate = np.zeros(n, dtype=bool)
        degenerate[deg_rows] = True
        reason[degenerate] = "degenerate_pair"
        alive &= ~degenerate
        m = vk == _K_CONTRA
        ci_, co_ = va[m], vb[m]
        reason[ci_] = "contradictory_pair"
        duplicate_of[ci_] = co_
        cluster_id[ci_] = np.minimum(ci_, co_)
        contra = reason == "contradictory_pair"
        alive &= ~contra
        info["degenerate"] = int(degenerate.sum())
        info["contradictory"] = int(contra.sum())
    exact = np.arange(n, dtype=np.int64)
    m = vk == _K_EXACT
    exact[va[m]] = vb[m]
    ex_i, ex_j = exact_edges(exact, alive)
    edges_i, edges_j = [ex_i], [ex_j]
    m = vk == _K_NEAR
    near_i, near_j, near_v = va[m], vb[m], vv[m]
    order = np.lexsort((near_j, near_i))
    near_i, near_j, near_v = near_i[order], near_j[order], near_v[order]
    linked = near_v >= threshold
    links = (near_i[linked], near_j[linked], near_v[linked])
    if method == "minhash":
        edges_i.append(links[0])
        edges_j.append(links[1])
        info["no_shingles"] = int(np.sum(kind == _K_NO_SHINGLES))
        info["short"] = int(np.sum(kind == _K_SHORT))
        info["candidates"] = len(cand)
        info["near_links"] = len(links[0])
    ei, ej = np.concatenate(edges_i), np.concatenate(edges_j)
    ok = alive[ei] & alive[ej]
    ei, ej = ei[ok], ej[ok]
    cluster = _core.union_clusters(n, ei.astype(np.uint32).tolist(), ej.astype(np.uint32).tolist()).astype(
        np.int64
    )
    m = vk == _K_ROW
    prio = np.zeros(n)
    prio[va[m]] = vv[m]
    ids: dict[int, str | None] = dict(zip(va[m].tolist(), v.column("s").filter(pa.array(m)).to_pylist()))
    sizes = np.bincount(cluster[alive], minlength=n) if n else np.zeros(0, np.int64)
    in_cluster = alive & (sizes[cluster] > 1) if n else np.zeros(0, bool)
    rep = np.where(alive, np.arange(n), -1)
    members_c = np.flatnonzero(in_cluster)
    if len(members_c):
        rep[members_c] = members_c[
            _choose(cluster[members_c], prio[members_c], np.ones(len(members_c), bool))
        ]
    dup = alive & (rep != np.arange(n))
    cluster_id[in_cluster] = cluster[in_cluster]
    members = np.flatnonzero(dup)
    duplicate_of[members] = rep[members]
    same_key = exact[members] == exact[rep[members]]
    reason[members[same_key]] = "exact_duplicate"
    reason[members[~same_key]] = "near_duplicate"
    similarity[members[same_key]] = 1.0
    near_members = members[~same_key]
    if len(near_members):
        lo = np.minimum(near_members, rep[near_members]).astype(np.uint64)
        hi = np.maximum(near_members, rep[near_members]).astype(np.uint64)
        sims, found = lookup_pairs(lo, hi, near_i, near_j, near_v)
        if (~found).any():
            extra = _verify(
                nd,
                spec,
                o,
                (np.zeros(0, np.int64), np.zeros(0, np.uint64)),
                (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64)),
                (lo[~found].astype(np.int64), hi[~found].astype(np.int64)),
            )
            xk = extra.column("kind").to_numpy() == _K_NEAR
            xa, xb = extra.column("a").to_numpy()[xk], extra.column("b").to_numpy()[xk]
            xv = extra.column("v").to_numpy()[xk]
            got = dict(zip(zip(xa.tolist(), xb.tolist()), xv.tolist()))
            miss = np.flatnonzero(~found)
            sims[miss] = [got[(int(a), int(b))] for a, b in zip(lo[miss], hi[miss])]
        similarity[near_members] = sims
    info["clusters"] = int(np.sum(sizes[np.flatnonzero(sizes)] > 1)) if n else 0
    dup_ids = None
    if "id" in nd.schema.names:
        dup_ids = [None if x < 0 else ids.get(x) for x in duplicate_of.tolist()]
    cls = _dedup_result_class()
    out = cls(
        duplicate_of,
        cluster_id,
        similarity,
        reason,
        params,
        info,
        None,
        dup_ids,
        _numbered=nd,
        _options=o,
    )
    out.links = pa.Table.from_pydict(
        {
            "i": pa.array(links[0].astype(np.int64)),
            "j": pa.array(links[1].astype(np.int64)),
            "jaccard": pa.array(links[2].astype(np.float64)),
        }
    )
    return out


# ================================================================ selection


def _select_prepare(table: pa.Table, args: dict[str, Any], threads: int) -> tuple[Any, np.ndarray, Any]:
    """Per row: the merged group label (``repr`` of the group name; None when
    the group is null), the adjusted score, and the tie-break strings; as the
    local engine computes them."""
    from .select import _as_strings, _column, _group_key, _group_name, _scores

    n = table.num_rows
    scores = _scores(table, args["score"])
    adjusted = scores
    offsets = args["offsets"]
    if offsets:
        ids, names = _core.encode_strings(
            _as_strings(_column(table, args["offset_by"], "offset_by")), num_threads=threads
        )
        per = np.array([float(offsets.get(v, 0.0)) for v in names] + [0.0])
        adjusted = scores + per[np.minimum(ids, len(names))]
    group_by = args["group_by"]
    key = _group_key(table, group_by)
    group_map, group_default = args["group_map"], args["group_default"]

    def target(g: Any) -> Any:
        if group_map is None:
            return g
        return group_map.get(g, g if group_default is None else group_default)

    if key is None:
        labels = pa.array([repr(target(None))] * n, pa.string())
    else:
        gids, raw = _core.encode_strings(key, num_threads=threads)
        named = np.array([repr(target(_group_name(s, group_by))) for s in raw] + [None], dtype=object)
        labels = pa.array(named[np.minimum(gids, len(raw))].tolist(), pa.string())
    tie = None
    tb = args["tie_break"]
    if tb is not None and tb in table.column_names:
        tie = _as_strings(table.column(tb)).cast(pa.string())
    return labels, np.ascontiguousarray(adjusted, dtype=np.float64), tie


def _select_quota(target: Any, args: dict[str, Any]) -> tuple[str, int, int]:
    from .select import _quota, as_ratio

    k, fraction = args["k"], args["fraction"]
    if k is not None or args["default_k"] is not None:
        q = _quota(k, args["default_k"], target, "k")
        return ("k", int(q), 1) if q is not None else ("all", 0, 1)
    q = _quota(fraction, args["default_fraction"], target, "fraction")
    if q is None:
        return ("all", 0, 1)
    r = as_ratio(q)
    return ("ratio", r.numerator, r.denominator)


def _label_target(label: str) -> Any:
    import ast

    return ast.literal_eval(label)


_SELECT_KEYS = pa.schema(
    [
        ("__part", pa.int64()),
        (ROW, pa.int64()),
        ("label", pa.string()),
        ("adj", pa.float64()),
        ("tie", pa.string()),
    ]
)


def _select_keys(batch: pa.Table, args: dict[str, Any], spec: dict[str, Any]) -> pa.Table:
    """Small per-row records; with k quotas and no ranks, only each batch's
    top k of each group (a row below them cannot be in the global top k)."""
    import zlib

    _hook(spec["hook"], "select.keys", batch)
    table, rows = _strip(batch)
    with _rows_named(rows):
        labels, adj, tie = _select_prepare(table, args, spec["threads"])
    keep = np.ones(len(rows), dtype=bool)
    if spec["prefilter"]:
        ids, names = _core.encode_strings(labels, num_threads=spec["threads"])
        quotas = [_select_quota(_label_target(s), args) for s in names]
        sel = _core.select_top(
            adj,
            np.ascontiguousarray(ids, np.uint32),
            quotas,
            tie=tie,
            ranks=False,
            num_threads=spec["threads"],
        )
        keep = np.asarray(sel["reason"]) == 0
    elif not spec["all_rows"]:
        keep = np.asarray(labels.is_valid())
    idx = pa.array(np.flatnonzero(keep))
    labels = labels.take(idx)
    P = spec["partitions"]
    cache: dict[Any, int] = {}
    parts = np.array(
        [cache.setdefault(s, zlib.crc32(s.encode()) % P if s is not None else 0) for s in labels.to_pylist()],
        dtype=np.int64,
    )
    return pa.table(
        {
            "__part": pa.array(parts),
            ROW: pa.array(rows[keep]),
            "label": labels,
            "adj": pa.array(adj[keep]),
            "tie": tie.take(idx) if tie is not None else pa.nulls(len(parts), pa.string()),
        },
        schema=_SELECT_KEYS,
    )


_SELECT_OUT = pa.schema(
    [
        (ROW, pa.int64()),
        ("reason", pa.uint8()),
        ("rank", pa.int64()),
        ("adj", pa.float64()),
        ("label", pa.string()),
        ("g_first", pa.int64()),
        ("g_ranked", pa.int64()),
        ("g_kept", pa.int64()),
        ("g_cutoff", pa.float64()),
    ]
)


def _select_groups(part: pa.Table, args: dict[str, Any], spec: dict[str, Any]) -> pa.Table:
    """Whole groups of one partition: the Rust selection, as the local engine runs it."""
    rows = part.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    part = part.take(pa.array(order))
    rows = rows[order]
    labels = part.column("label")
    gids, names = _core.encode_strings(labels, num_threads=spec["threads"])
    gids = np.ascontiguousarray(gids, np.uint32)
    quotas = [_select_quota(_label_target(s), args) for s in names]
    tie = part.column("tie") if spec["tie"] else None
    adj = np.ascontiguousarray(part.column("adj").to_numpy(), np.float64)
    sel = _core.select_top(adj, gids, quotas, tie=tie, ranks=spec["ranks"], num_threads=spec["threads"])
    reason = np.asarray(sel["reason"], np.uint8)
    rank = np.asarray(sel["rank"], np.int64) if spec["ranks"] else np.zeros(len(rows), np.int64)
    g = len(names)
    first = np.full(g, -1, np.int64)
    valid = gids != np.iinfo(np.uint32).max
    if valid.any():
        u, at = np.unique(gids[valid], return_index=True)
        first[u] = rows[valid][at]
    nulls = pa.nulls(len(rows), pa.int64())
    row_part = pa.table(
        {
            ROW: pa.array(rows),
            "reason": pa.array(reason),
            "rank": pa.array(rank),
            "adj": pa.array(adj),
            "label": labels,
            "g_first": nulls,
            "g_ranked": nulls,
            "g_kept": nulls,
            "g_cutoff": pa.nulls(len(rows), pa.float64()),
        },
        schema=_SELECT_OUT,
    )
    group_part = pa.table(
        {
            ROW: pa.nulls(g, pa.int64()),
            "reason": pa.nulls(g, pa.uint8()),
            "rank": pa.nulls(g, pa.int64()),
            "adj": pa.nulls(g, pa.float64()),
            "label": pa.array(list(names), pa.string()),
            "g_first": pa.array(first),
            "g_ranked": pa.array(np.asarray(sel["ranked"], np.int64)),
            "g_kept": pa.array(np.asarray(sel["kept"], np.int64)),
            "g_cutoff": pa.array(np.asarray(sel["cutoff"], np.float64)),
        },
        schema=_SELECT_OUT,
    )
    return pa.concat_tables([row_part, group_part])


def _select_run(
    table: Any, args: dict[str, Any], ranks: bool, options: Any
) -> tuple[_Numbered, pa.Table, RayOptions]:
    from .select import _run

    o = _opts(options)
    nd = _numbered(table, o, text=None, what="select")
    # the local engine on no rows: the same errors for columns and quota kinds
    _run(
        nd.schema.empty_table(),
        **{k: args[k] for k in ("score", "group_by", "k", "fraction", "default_k", "default_fraction")},
        **{k: args[k] for k in ("offset_by", "offsets", "tie_break", "group_map", "group_default")},
        ranks=False,
        num_threads=1,
    )
    only_k = args["fraction"] is None and args["default_fraction"] is None
    tb = args["tie_break"]
    spec = {
        "hook": o.batch_hook,
        "threads": o.threads,
        "prefilter": only_k and not ranks,
        "all_rows": ranks,
        "ranks": ranks,
        "tie": tb is not None and tb in nd.schema.names,
        "partitions": _partitions(o, nd.n),
    }
    if nd.n == 0:
        return nd, _SELECT_OUT.empty_table(), o
    group_cols = (
        []
        if args["group_by"] is None
        else [args["group_by"]]
        if isinstance(args["group_by"], str)
        else list(args["group_by"])
    )
    needed = [args["score"], *group_cols, args["offset_by"] or "", args["tie_break"] or ""]
    keys = nd.dataset(needed).map_batches(
        _select_keys, fn_kwargs={"args": args, "spec": spec}, **_map_kwargs(o)
    )
    out = keys.groupby("__part", num_partitions=spec["partitions"]).map_groups(
        _select_groups, fn_kwargs={"args": args, "spec": spec}, batch_format="pyarrow", num_cpus=o.num_cpus
    )
    return nd, _collect(out, _SELECT_OUT), o


def select_top_indices(table: Any, args: dict[str, Any], options: Any = None) -> np.ndarray:
    """:func:`prefcurate.select_top_indices` on Ray."""
    _, res, _ = _select_run(table, args, False, options)
    rows = res.column(ROW)
    reason = res.column("reason")
    is_row = np.asarray(rows.is_valid())
    kept = rows.to_numpy(zero_copy_only=False)[is_row & (reason.fill_null(255).to_numpy() == 0)]
    return np.sort(kept.astype(np.int64))


def select_top(table: Any, args: dict[str, Any], options: Any = None) -> Any:
    """:func:`prefcurate.select_top` on Ray: the kept rows as a lazy Ray dataset."""
    nd, res, o = _select_run(table, args, False, options)
    rows = res.column(ROW)
    ok = np.asarray(rows.is_valid()) & (res.column("reason").fill_null(255).to_numpy() == 0)
    kept = np.sort(rows.to_numpy(zero_copy_only=False)[ok].astype(np.int64))
    ch = _chunks(pa.table({ROW: pa.array(kept)}), o)
    return _split_ds(nd, ch, "hits", "none", "select.kept", o)


def select_top_result(table: Any, args: dict[str, Any], options: Any = None) -> RayStageResult:
    """:func:`prefcurate.select_top_result` on Ray: a :class:`RayStageResult`
    whose rows, removed-row columns and ``info`` equal the local engine's."""
    from .select import REASONS, STAGE

    nd, res, o = _select_run(table, args, True, options)
    is_row = np.asarray(res.column(ROW).is_valid())
    rows_t = res.filter(pa.array(is_row))
    groups = res.filter(pa.array(~is_row))
    g_labels = groups.column("label").to_pylist()
    g_first = groups.column("g_first").to_numpy()
    order = np.argsort(g_first, kind="stable")
    names = [_label_target(g_labels[i]) for i in order]
    info_groups = {}
    cut_of: dict[str, float] = {}
    for i, g in zip(order.tolist(), names):
        q = _select_quota(g, args)
        c = float(groups.column("g_cutoff")[i].as_py())
        cut_of[g_labels[i]] = c
        name = str(g) if not isinstance(g, tuple) else "/".join(g)
        info_groups[name] = {
            "quota": [q[0], q[1]] if q[0] == "k" else [q[0], q[1] / q[2]] if q[0] == "ratio" else [q[0]],
            "ranked": int(groups.column("g_ranked")[i].as_py()),
            "kept": int(groups.column("g_kept")[i].as_py()),
            "cutoff": None if np.isnan(c) else c,
        }
    rows = rows_t.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    rows_t = rows_t.take(pa.array(order))
    reason = rows_t.column("reason").to_numpy()
    rem = reason != 0
    removed = rows_t.filter(pa.array(rem))
    labels = removed.column("label").to_pylist()
    label_name = {
        lab: (str(t) if not isinstance(t, tuple) else "/".join(t))
        for lab, t in ((lab, _label_target(lab)) for lab in set(labels) if lab is not None)
    }
    rank = removed.column("rank").to_numpy()
    adj = removed.column("adj").to_numpy()
    cut = np.array(
        [cut_of.get(lab, np.nan) if lab is not None else np.nan for lab in labels], dtype=np.float64
    )
    n_rem = removed.num_rows
    ann = pa.table(
        {
            ROW: removed.column(ROW),
            "stage": pa.array([STAGE] * n_rem, pa.string()),
            "reason": pa.array([REASONS[int(r)] for r in removed.column("reason").to_numpy()], pa.string()),
            "select_group": pa.array(
                [label_name.get(lab) if lab is not None else None for lab in labels], pa.string()
            ),
            "rank": pa.array(rank, mask=rank == 0),
            "adjusted_score": pa.array(adj, mask=np.isnan(adj)),
            "cutoff_score": pa.array(cut, mask=np.isnan(cut)),
        }
    )
    ch = _chunks(ann, o)
    kept_ds = _split_ds(nd, ch, "misses", "none", "select.kept", o)
    removed_ds = _split_ds(nd, ch, "hits", "replace", "select.removed", o)
    by_reason: dict[str, int] = {}
    for r in ann.column("reason").to_pylist():
        by_reason[r] = by_reason.get(r, 0) + 1
    return RayStageResult(
        STAGE, kept_ds, removed_ds, nd.n, nd.n - n_rem, n_rem, by_reason, {"groups": info_groups}
    )


# ================================================================ scoring


class _ScoreActor:
    """One reward model per actor (one GPU each, or CPU)."""

    def __init__(self, spec: dict[str, Any], device: str, hook: Any) -> None:
        from .scoring import RewardScorer

        self.scorer = RewardScorer(**{**spec, "device": device})
        self.hook = hook

    def __call__(self, batch: pa.Table) -> pa.Table:
        _hook(self.hook, "score", batch)
        table, rows = _strip(batch)
        with _rows_named(rows):
            return self.scorer.score_pairs(table)


def score_pairs(scorer: Any, pairs: Any, options: Any = None) -> Any:
    """:meth:`prefcurate.RewardScorer.score_pairs` on Ray: an actor pool (one
    actor per GPU with ``num_gpus=1``, or CPU actors) each holding a replica
    built from the scorer's settings (the model by name, or a CPU copy of the
    model object); returns the pairs with ``chosen_score``,
    ``rejected_score``, ``chosen_truncated`` and ``rejected_truncated`` as a
    lazy Ray dataset in row order."""
    ray = _ray()
    o = _opts(options)
    nd = _numbered(pairs, o, text=None, what="pairs")
    for col in ("chosen", "rejected"):
        if col not in nd.schema.names:
            raise InvalidInputError(f"score_pairs: no {col!r} column; columns are {nd.schema.names}")
    gpus = int(ray.cluster_resources().get("GPU", 0))
    wants_cuda = any(getattr(d, "type", str(d)) == "cuda" for d in scorer.devices)
    if gpus and wants_cuda:
        resources: dict[str, Any] = {"num_gpus": 1}
        device = "cuda"
        concurrency = o.concurrency or gpus
    else:
        resources = {"num_cpus": o.num_cpus}
        device = "cpu"
        concurrency = o.concurrency or 1
    return nd.ds.map_batches(
        _ScoreActor,
        fn_constructor_kwargs={"spec": scorer._ray_spec(), "device": device, "hook": o.batch_hook},
        batch_format="pyarrow",
        batch_size=o.batch_size,
        concurrency=concurrency,
        **resources,
    )


def check_engine(engine: str) -> bool:
    """True for ``"ray"``, False for ``"local"``; anything else is an error."""
    if engine == "local":
        return False
    if engine == "ray":
        return True
    raise InvalidInputError(f"engine must be 'local' or 'ray', got {engine!r}")
