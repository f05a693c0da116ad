"""The stage cache: what each stage decided, not copies of its tables.

A read stage's entry holds the pairs it made and the records it dropped (its
output is made from files outside the run).  Every later stage runs on a
table the run already holds (its input), so its entry holds only its
*decisions*: the input row numbers it kept and removed, in order, and the
columns it added or changed (the margin's scores, the removed rows'
reasons and provenance).  A cached stage is made again from its input and
its decisions; its removed rows are written once, to ``removed/``, when the
run writes its output.

An entry is a folder ``.cache/<key>/`` with Parquet files and ``done.json``
(written last; the folder is renamed into place), and a digest of the files
in ``done.json``: a damaged entry is computed again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrays import from_numpy as index_array
from ..schema import StageResult, split_table

log = logging.getLogger("prefcurate.pipeline")

#: The row numbers a stage's input carries while the stage runs.
ROW = "__pc_input_row"
FORMAT = 2


def numbered(table: pa.Table) -> pa.Table:
    """``table`` with its row numbers (for a stage to carry through)."""
    return table.append_column(ROW, index_array(np.arange(table.num_rows, dtype=np.int64)))


#: text columns a stage may write over an input column of the same name
#: (its removed rows' attribution); every other text column is carried
ATTRIBUTION_TEXT = frozenset(
    {
        "stage",
        "reason",
        "select_group",
        "benchmark_id",
        "benchmark_subset",
        "benchmark_text",
        "matched_span",
        "duplicate_of_id",
        "duplicate_in",
    }
)


def _carried(name: str, t: pa.DataType) -> bool:
    """Columns the stages carry as they are: message lists, and text other
    than the attribution's (comparing them would cost a copy of the text)."""
    if pa.types.is_nested(t):
        return True
    text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    return text and name not in ATTRIBUTION_TEXT


def _changed(part: pa.Table, inp: pa.Table, rows: np.ndarray) -> list[str]:
    """The columns of ``part`` (rows ``rows`` of ``inp``, after a stage) that
    the stage added or changed (numbers and attribution text are compared)."""
    out = []
    taken: pa.Table | None = None
    for name in part.column_names:
        if name == ROW:
            continue
        if name not in inp.column_names or part.column(name).type != inp.column(name).type:
            out.append(name)
            continue
        if _carried(name, part.column(name).type):
            continue
        if taken is None:
            cols = [
                c
                for c in part.column_names
                if c in inp.column_names and not pa.types.is_nested(inp.column(c).type)
            ]
            taken = inp.select(cols).take(index_array(rows))
        if not part.column(name).equals(taken.column(name)):
            out.append(name)
    return out


def _rows(part: pa.Table) -> np.ndarray:
    return np.asarray(part.column(ROW).to_numpy(), dtype=np.int64)


def _rebuild(inp: pa.Table, decided: pa.Table, order: list[str], part_of_input: pa.Table | None) -> pa.Table:
    """Rows ``decided[ROW]`` of ``inp`` with the stage's own columns."""
    rows = _rows(decided)
    if len(rows) > 1 and np.all(rows[1:] > rows[:-1]):
        mask = np.zeros(inp.num_rows, dtype=bool)
        mask[rows] = True
        base = split_table(inp, mask)[0] if part_of_input is None else part_of_input
    else:
        base = inp.take(index_array(rows))
    cols = {
        name: (decided.column(name) if name in decided.column_names else base.column(name)) for name in order
    }
    return pa.table(cols)


def _digest(paths: list[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class StageCache:
    """The cache folder of a run (``OUT/.cache``), written in background
    threads while the next stages run."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def _dir(self, key: str) -> Path:
        return self.root / key

    # -- reading

    def load(self, name: str, key: str, inp: pa.Table | None) -> StageResult | None:
        """The cached result of stage ``name`` on ``inp`` (None for a read
        stage), or None when there is none or it cannot be read."""
        d = self._dir(key)
        if not (self.enabled and (d / "done.json").exists()):
            return None
        try:
            meta = json.loads((d / "done.json").read_text())
            files = [d / f for f in meta["files"]]
            if meta.get("format") != FORMAT or _digest(files) != meta["digest"]:
                raise ValueError("its files do not match their digest")
            kept_t = pq.read_table(d / "kept.parquet")
            removed_t = pq.read_table(d / "removed.parquet")
            if inp is None:
                return StageResult(name, kept_t, removed_t, meta["n_input"], meta.get("info", {}))
            if meta["n_input"] != inp.num_rows:
                raise ValueError(f"it was made from {meta['n_input']} rows, the input has {inp.num_rows}")
            kept_mask = np.zeros(inp.num_rows, dtype=bool)
            kept_mask[_rows(kept_t)] = True
            kept_part, removed_part = split_table(inp, kept_mask)
            kept = _rebuild(inp, kept_t, meta["kept_columns"], kept_part)
            removed = _rebuild(inp, removed_t, meta["removed_columns"], removed_part)
            return StageResult(name, kept, removed, meta["n_input"], meta.get("info", {}))
        except (OSError, ValueError, KeyError, TypeError, AssertionError, IndexError, pa.ArrowException) as e:
            # a damaged entry (truncated file, edited folder): computed again
            log.warning("%s: the cached result in %s cannot be read (%s); computing it again", name, d, e)
            return None

    # -- writing

    def decisions(self, res: StageResult, inp: pa.Table) -> tuple[StageResult, dict[str, Any]]:
        """``res`` (computed on ``numbered(inp)``) without the row numbers,
        and what its cache entry holds."""
        entry: dict[str, Any] = {}
        for which in ("kept", "removed"):
            part = getattr(res, which)
            rows = _rows(part)
            changed = _changed(part, inp, rows)
            entry[which] = part.select([ROW, *changed])
            entry[f"{which}_columns"] = [c for c in part.column_names if c != ROW]
        kept = res.kept.drop_columns([ROW])
        removed = res.removed.drop_columns([ROW])
        clean = StageResult(res.stage, kept, removed, res.n_input, res.info)
        return clean, entry

    def store(self, key: str, res: StageResult, entry: dict[str, Any] | None = None) -> None:
        """Write the entry in the background: the decisions (``entry``) or,
        for a read stage, its tables."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(2, thread_name_prefix="prefcurate-cache")
        self._pending.append(self._writer.submit(self._store_now, key, res, entry))

    def _store_now(self, key: str, res: StageResult, entry: dict[str, Any] | None) -> None:
        d = self._dir(key)
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        kept = res.kept if entry is None else entry["kept"]
        removed = res.removed if entry is None else entry["removed"]
        pq.write_table(kept, tmp / "kept.parquet", compression="zstd")
        pq.write_table(removed, tmp / "removed.parquet", compression="zstd")
        files = ["kept.parquet", "removed.parquet"]
        meta: dict[str, Any] = {
            "format": FORMAT,
            "n_input": res.n_input,
            "info": res.info,
            "files": files,
            "digest": _digest([tmp / f for f in files]),
        }
        if entry is not None:
            meta["kept_columns"] = entry["kept_columns"]
            meta["removed_columns"] = entry["removed_columns"]
        (tmp / "done.json").write_text(json.dumps(meta, default=str))
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)

    def flush(self, *, quiet: bool = False) -> None:
        """Wait for the writes; raise the first error unless ``quiet`` (the
        run already failed: its error is the one to see)."""
        pending, self._pending = self._pending, []
        errors = []
        for f in pending:
            try:
                f.result()
            except Exception as e:
                errors.append(e)
        if errors and not quiet:
            raise errors[0]
        for err in errors:
            log.warning("writing the stage cache failed: %s", err)
