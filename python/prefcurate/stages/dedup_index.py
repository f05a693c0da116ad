"""A reference dataset to deduplicate against (``dedup(a, against=index)``).

The index holds ``b``'s key columns and its LSH band keys; it is saved as a
Parquet file whose metadata carries the settings, the format version and a
BLAKE2b digest of the settings and the table (checked on load: a file changed
on disk is an :class:`~prefcurate.errors.IndexFileError`, never a silently
different deduplication).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from .._unicode import ensure_tables
from ..arrays import from_numpy, strings, to_numpy
from ..errors import IndexFileError, InvalidInputError
from .dedup import MESSAGES_LARGE, DedupConfig, DedupData, as_data

#: The saved index's format.  2: the "fast" MinHash family hashes a word
#: shingle from its words' hashes (band keys of version 1 are recomputed on
#: load).  3: a digest of the settings and the table.
INDEX_VERSION = 3
_META = b"prefcurate.dedup_index"


def str_list(lst: list, what: str = "text") -> pa.Array:
    """A list of str as an Arrow array; a non-str item is an error naming its
    row (as the Rust reader of a list reports it)."""
    try:
        arr = strings(lst, pa.large_string())
        if isinstance(arr, pa.Array) and not arr.null_count:
            return arr
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        pass
    for i, x in enumerate(lst):
        if not isinstance(x, str):
            raise InvalidInputError(
                f"{what}: row {i} is {'None' if x is None else type(x).__name__}, not a str"
            )
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"{what}: row {i} is not valid UTF-8 (a lone surrogate)") from None
    raise InvalidInputError(f"{what}: cannot read the list as text")  # pragma: no cover - caught above


def common(a: Any, b: Any, typ: pa.DataType) -> pa.ChunkedArray:
    """``a`` then ``b`` as one chunked array of ``typ``."""

    def chunks(x: Any) -> list[pa.Array]:
        if isinstance(x, list):
            return [str_list(x)]
        arr = x if isinstance(x, pa.ChunkedArray) else pa.chunked_array([x])
        return [c.cast(typ) for c in arr.chunks]

    return pa.chunked_array(chunks(a) + chunks(b), type=typ)


def _digest(settings: bytes, table: pa.Table) -> str:
    """BLAKE2b of the settings and the table's record batches as Arrow IPC
    messages (buffers and lengths: what a Parquet round trip keeps, unlike
    the names it gives list items)."""
    h = hashlib.blake2b(settings, digest_size=16)
    for batch in table.combine_chunks().to_batches():
        h.update(batch.serialize())
    return h.hexdigest()


class DedupIndex:
    """A reference dataset to deduplicate against: build it once from ``b``,
    save it, and call ``dedup(a, against=index)`` later; ``b`` is never
    changed.  Holds ``b``'s key columns and its LSH band keys.  Settings are
    :class:`~prefcurate.stages.dedup.DedupConfig`'s (keywords or ``config=``)."""

    def __init__(
        self,
        data: Any,
        config: DedupConfig | None = None,
        *,
        num_threads: int | None = None,
        **settings: Any,
    ) -> None:
        ensure_tables()
        unknown = set(settings) - set(DedupConfig.names())
        if unknown:
            raise InvalidInputError(f"DedupIndex: unknown settings {sorted(unknown)}")
        config = config.replace(**settings) if config is not None else DedupConfig(**settings)
        d = as_data(data, config.text)
        self.config = config
        self.pairs = d.pairs
        cols: dict[str, Any] = {}
        if d.pairs:
            cols["chosen"] = d.chosen.cast(MESSAGES_LARGE)
            cols["rejected"] = d.rejected.cast(MESSAGES_LARGE)
        else:
            t = d.texts
            cols["text"] = str_list(t) if isinstance(t, list) else t.cast(pa.large_string())
        if d.table is not None and "id" in d.table.column_names:
            cols["id"] = d.table.column("id").cast(pa.string())
        self.table = pa.Table.from_pydict(cols)
        self.keys = self._band_keys(num_threads)

    @property
    def params(self) -> dict[str, Any]:
        """The settings that decide what is a duplicate (no keep policy: the
        reference always wins)."""
        p = self.config.params()
        p.pop("keep", None)
        return p

    def data(self) -> DedupData:
        if self.pairs:
            return DedupData(
                None, None, chosen=self.table.column("chosen"), rejected=self.table.column("rejected")
            )
        return DedupData(None, None, texts=self.table.column("text"))

    def _band_keys(self, num_threads: int | None = None) -> np.ndarray | None:
        """The LSH band keys of the reference rows (None for exact dedup)."""
        if self.config.method != "minhash":
            return None
        return _core.dedup_band_keys(
            **self.config.near_kwargs(self.pairs), num_threads=num_threads, **self.data().kwargs()
        )

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        p = self.params
        what = "pairs" if self.pairs else "texts"
        return (
            f"DedupIndex({len(self)} {what}, level={p['level']!r}, method={p['method']!r}, "
            f"threshold={p['threshold']})"
        )

    def _table_to_save(self) -> pa.Table:
        t = self.table
        if self.keys is not None:
            bands = self.config.banding[0]
            t = t.append_column(
                "__band_keys", pa.FixedSizeListArray.from_arrays(from_numpy(self.keys), bands)
            )
        return t

    def save(self, path: str | os.PathLike) -> None:
        """Write the index (a Parquet file with the settings, the format
        version and a digest in its metadata; :meth:`load` reads older
        formats too)."""
        import pyarrow.parquet as pq

        t = self._table_to_save()
        settings = json.dumps({"params": self.params, "pairs": self.pairs}, sort_keys=True).encode()
        meta = {
            _META: json.dumps(
                {
                    "version": INDEX_VERSION,
                    "params": self.params,
                    "pairs": self.pairs,
                    "blake2b": _digest(settings, t),
                }
            ).encode()
        }
        tmp = Path(str(path) + ".tmp")
        pq.write_table(t.replace_schema_metadata(meta), tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DedupIndex:
        """Read an index written by :meth:`save`; a file that does not match
        its digest is an :class:`IndexFileError`."""
        import pyarrow.parquet as pq

        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            t = pq.ParquetFile(os.fspath(path)).read()  # one file (pq.read_table would import pandas)
            meta = (t.schema.metadata or {}).get(_META)
            m = json.loads(meta) if meta is not None else None
        except (OSError, pa.ArrowException, ValueError, UnicodeDecodeError) as e:
            raise IndexFileError(f"{path}: not a readable dedup index ({e})") from None
        if m is None:
            raise IndexFileError(f"{path}: not a dedup index (no prefcurate.dedup_index metadata)")
        version = m.get("version", 1)
        if version > INDEX_VERSION:
            raise IndexFileError(
                f"{path}: a dedup index of format {version}, made by a newer prefcurate "
                f"(this one reads up to {INDEX_VERSION})"
            )
        t = t.replace_schema_metadata(None)
        try:
            params, pairs = m["params"], bool(m["pairs"])
            if version >= 3:
                settings = json.dumps({"params": params, "pairs": pairs}, sort_keys=True).encode()
                if _digest(settings, t) != m.get("blake2b"):
                    raise IndexFileError(
                        f"{path}: the dedup index does not match its checksum (the file was changed or "
                        "damaged); build it again"
                    )
            config = DedupConfig.from_params(params)
        except (KeyError, TypeError, ValueError, InvalidInputError) as e:
            if isinstance(e, IndexFileError):
                raise
            raise IndexFileError(f"{path}: the dedup index's settings are damaged ({e})") from None
        obj = cls.__new__(cls)
        obj.config, obj.pairs = config, pairs
        obj.keys = None
        if "__band_keys" in t.column_names:
            obj.keys = np.ascontiguousarray(
                to_numpy(pc.list_flatten(t.column("__band_keys"))), dtype=np.uint64
            )
            t = t.drop_columns(["__band_keys"])
        obj.table = t
        if version < 2:
            # keys saved by the first version hash shingles another way: made again
            obj.keys = obj._band_keys()
        return obj
