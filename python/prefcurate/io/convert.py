"""The conversion engine: source rows in, canonical pairs out, every input
row accounted for::

    rows read = rows converted (into pairs) + rows removed + rows quarantined

*removed* rows are dropped by a documented rule of their format (a HelpSteer2
tie, a RewardBench prompt-only row, ...); *quarantined* rows are invalid.
What happens to an invalid row depends on ``on_invalid``:

``"warn"`` (the default)
    A *malformed* record (broken JSON, invalid UTF-8, not an object, a value
    of the wrong type) raises :class:`InvalidInputError` naming the file and
    line.  A well-formed record with a content problem (an empty message, a
    bad turn order, a missing field, prompts that differ between chosen and
    rejected...) goes to the quarantine, and one :class:`InvalidRowsWarning`
    at the end gives the count, the reasons and how to get the rows.  Real
    public data reads with the defaults (HH-RLHF has transcripts that end
    with an empty assistant turn).
``"quarantine"``
    Every invalid row goes to the quarantine, malformed or not, silently.
``"raise"``
    The first invalid row raises, naming the file, line or row, and field.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from ..errors import InvalidInputError
from ..schema import MESSAGES, REQUIRED
from .adapters import (
    CANONICAL_EXTRA,
    Adapter,
    AdapterOutput,
    BatchContext,
    Problem,
    detect_format,
    get_adapter,
)
from .arrow import ColumnError, list_parts, one
from .readers import Issue, Reader, Rows, message, record_json, where
from .validate import MALFORMED, check_pairs, identical_answers

OnInvalid = Literal["warn", "raise", "quarantine"]
ON_INVALID = ("warn", "raise", "quarantine")

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

#: Prefix of the columns :func:`prefcurate.io.write_pairs` writes for
#: prefcurate's own bookkeeping (``pc_id``, ``pc_source``, ``pc_score``...):
#: the engine reads them back under their canonical names.
PC_PREFIX = "pc_"


class InvalidRowsWarning(UserWarning):
    """Rows of the input were invalid and were quarantined (``on_invalid="warn"``)."""


class AmbiguousSourceWarning(UserWarning):
    """Pairs got their format's generic ``source`` (e.g. ``magpie_dpo``)
    because neither the records nor the file name say which set they come
    from; pass ``source=``."""


def issues_table(issues: list[Issue]) -> pa.Table:
    if not issues:
        return ISSUE_SCHEMA.empty_table()
    cols = {name: [getattr(i, name) for i in issues] for name in ISSUE_SCHEMA.names}
    return pa.table(cols, schema=ISSUE_SCHEMA)


def issue_order(i: Issue) -> tuple:
    return (i.file or "", i.row if i.row is not None else -1)


# ---------------------------------------------------------------- ids


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


# ---------------------------------------------------------------- the result


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


# ---------------------------------------------------------------- the engine


class Engine:
    """Feeds batches of source rows to an adapter and finishes its pairs:
    validation, ``prompt``, ``source``, ids, and the account of every row."""

    def __init__(self, fmt: str, source: str | None, on_invalid: str, batch_rows: int) -> None:
        if on_invalid not in ON_INVALID:
            raise InvalidInputError(
                f"on_invalid must be one of {', '.join(map(repr, ON_INVALID))}, got {on_invalid!r}"
            )
        self.adapter: Adapter | None = None if fmt == "auto" else get_adapter(fmt)
        self.source = source
        self.on_invalid = on_invalid
        self.batch_rows = batch_rows
        self.quarantine: list[Issue] = []
        self.removed: list[Issue] = []
        self.converted = 0
        self.pairs = 0
        self.identical = 0
        self.sources: Counter[str] = Counter()
        self.pending: list[Rows] = []
        self.reader: Reader | None = None
        self.warned = False
        #: rows labelled with the format's default source although the
        #: adapter can tell sets apart (Magpie without a variant)
        self.unnamed_source = 0

    # issues ---------------------------------------------------------------

    def _raises(self, code: str) -> bool:
        return self.on_invalid == "raise" or (self.on_invalid == "warn" and code in MALFORMED)

    def sink(self, issue: Issue) -> None:
        if self._raises(issue.reason):
            raise InvalidInputError(issue.message)
        self.quarantine.append(issue)

    @property
    def label(self) -> str:
        return self.reader.label if self.reader else "input"

    def _issues(self, rows: Rows, problems: dict[int, Problem]) -> list[Issue]:
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
            at = where(self.label, file, row, line)
            out.append(
                Issue(
                    "read", p.code, p.field, file, row, line, message(at, p.field, p.detail), record_json(rec)
                )
            )
        return out

    def warn_quarantined(self, stacklevel: int = 3) -> None:
        """With ``on_invalid="warn"``: one warning summarising the quarantine."""
        if self.on_invalid != "warn" or self.warned:
            return
        self.warned = True
        if self.quarantine:
            warnings.warn(quarantine_summary(self), InvalidRowsWarning, stacklevel=stacklevel)
        if self.unnamed_source:
            assert self.adapter is not None
            warnings.warn(
                f"{self.label}: {self.unnamed_source} {self.adapter.name} pairs are labelled source="
                f"{self.adapter.default_source!r}: neither the records nor the file name say which set they "
                "come from (e.g. magpie_air, magpie_pro, magpie_pro_llama3.1); pass source= so that "
                "select's skywork-magpie preset applies its per-source offsets",
                AmbiguousSourceWarning,
                stacklevel=stacklevel,
            )

    # conversion -----------------------------------------------------------

    def feed(self, rows: Rows) -> list[pa.Table]:
        if self.adapter is None:
            self.adapter = get_adapter(detect_format(_without_prefixed(rows.table), where=self.label))
        grouping = self.adapter.grouping
        if grouping == "all":
            self.pending.append(rows)
            return []
        if grouping == "consecutive":
            if self.pending:
                rows = Rows.concat([*self.pending, rows])
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
        rows = Rows.concat(self.pending)
        self.pending = []
        return self._convert(rows)

    def _convert(self, rows: Rows) -> list[pa.Table]:
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
            pairs = self._finish_pairs(out, ctx, rows)
        self._account(ctx, out, n)
        if ctx.invalid:
            raising = [i for i in sorted(ctx.invalid) if self._raises(ctx.invalid[i].code)]
            if raising:
                first = raising[0]
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

    def _fallback_source(self, rows: Rows, pair_rows: np.ndarray) -> pa.Array:
        """Per pair, the source a row's file or dataset name implies, else
        the format's default."""
        adapter = self.adapter
        assert adapter is not None
        files = self.reader.files if self.reader else [None]
        hint = self.reader.name if self.reader else None
        fis = rows.file[pair_rows]
        names = {}
        for fi in np.unique(fis).tolist():
            name = files[fi] if files[fi] is not None else hint
            names[fi] = adapter.source_from_name(name)
        if len(names) == 1:
            value = next(iter(names.values())) or adapter.default_source
            return pa.repeat(value, len(pair_rows)).cast(pa.string())
        return pa.array([names[fi] or adapter.default_source for fi in fis.tolist()], pa.string())

    def _finish_pairs(self, out: AdapterOutput, ctx: BatchContext, rows: Rows) -> pa.Table:
        t = out.table
        chosen = one(t.column("chosen"))
        rejected = one(t.column("rejected"))
        problems, first_user = check_pairs(chosen, rejected)
        keep = np.ones(t.num_rows, dtype=bool)
        if problems:
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
        _, cvals = list_parts(chosen)
        prompt = pc.struct_field(cvals, "content").take(pa.array(first_user[keep]))
        if problems:
            sel = pa.array(np.flatnonzero(keep))
            t = t.take(sel)
            chosen, rejected = chosen.take(sel), rejected.take(sel)
        m = t.num_rows
        self.converted += m * (2 if out.rows2 is not None else 1)
        assert self.adapter is not None
        # prefcurate's own columns written by write_pairs: pc_id, pc_source, pc_<extra>
        t = _unprefix(t)
        if self.source is not None:
            source = pa.repeat(self.source, m).cast(pa.string())
        else:
            given = _coalesce(t, ("source", PC_PREFIX + "source"), m)
            if given is None:
                source = self._fallback_source(rows, out.rows)
            elif given.null_count:
                source = pc.coalesce(given, self._fallback_source(rows, out.rows))
            else:
                source = given
        ids = _coalesce(t, ("id", PC_PREFIX + "id"), m)
        if ids is None:
            ids = pair_ids(source, chosen, rejected)
        elif ids.null_count:
            missing = np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))
            sel = pa.array(missing)
            hashed = pair_ids(source.take(sel), chosen.take(sel), rejected.take(sel)).to_pylist()
            filled = ids.to_pylist()
            for j, i in enumerate(missing.tolist()):
                filled[i] = hashed[j]
            ids = pa.array(filled, pa.string())
        # identical answers: a pair without a preference (counted, not removed)
        self.identical += identical_answers(chosen, rejected)
        self.pairs += m
        for item in pc.value_counts(source).to_pylist():
            self.sources[item["values"]] += item["counts"]
        if self.source is None and type(self.adapter).source_from_name is not Adapter.source_from_name:
            # an adapter that tells sets apart, and neither data nor name did
            self.unnamed_source += int(pc.sum(pc.equal(source, self.adapter.default_source)).as_py() or 0)
        cols: dict[str, Any] = {
            "id": ids,
            "source": source,
            "chosen": chosen.cast(MESSAGES),
            "rejected": rejected.cast(MESSAGES),
            "prompt": prompt.cast(pa.string()),
        }
        for name in t.column_names:
            if name in ("chosen", "rejected", "id", "source", PC_PREFIX + "id", PC_PREFIX + "source"):
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


def _without_prefixed(table: pa.Table) -> pa.Table:
    """``table`` without the ``pc_`` columns (for format detection)."""
    return table.drop_columns([n for n in table.column_names if n.startswith(PC_PREFIX)])


def _unprefix(t: pa.Table) -> pa.Table:
    """``pc_<name>`` columns renamed ``<name>`` where no such column exists
    (``pc_id`` and ``pc_source`` stay: they are read as id and source)."""
    names = set(t.column_names)
    if not any(n.startswith(PC_PREFIX) for n in names):
        return t
    out = []
    for n in t.column_names:
        base = n[len(PC_PREFIX) :]
        keep = not n.startswith(PC_PREFIX) or base in ("id", "source") or base in names or base in REQUIRED
        out.append(n if keep else base)
    return t.rename_columns(out)


def _coalesce(t: pa.Table, names: tuple[str, ...], m: int) -> pa.Array | None:
    """The first non-null value of the columns ``names`` (that exist), as strings."""
    cols = []
    for name in names:
        if name in t.column_names:
            col = one(t.column(name))
            if pa.types.is_integer(col.type):
                col = col.cast(pa.string())
            elif not pa.types.is_string(col.type):
                try:
                    col = col.cast(pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    continue
            cols.append(col)
    if not cols:
        return None
    return cols[0] if len(cols) == 1 else pc.coalesce(*cols)


def quarantine_summary(engine: Engine) -> str:
    """The warning of ``on_invalid="warn"``: how many rows, why, and how to get them."""
    reader = engine.reader
    q = sorted(engine.quarantine, key=issue_order)
    reasons = Counter(i.reason for i in q)
    by = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
    read = reader.rows_read if reader else len(q)
    return (
        f"{engine.label}: {len(q)} of {read} rows were invalid and left out ({by}); first: {q[0].message}. "
        "Get them with prefcurate.convert_pairs(...).quarantine (every row with its reason, file, line "
        "and record; `prefcurate convert` writes them to quarantine.<format> in its --out folder), or pass "
        "on_invalid='raise' to stop at the first invalid row"
    )


def run(
    src: Any, fmt: str, source: str | None, split: str | None, on_invalid: str, batch_rows: int
) -> tuple[Engine, Iterator[pa.Table]]:
    """An engine and the generator of its pair tables (read lazily)."""
    engine = Engine(fmt, source, on_invalid, batch_rows)
    reader = Reader(src, split=split, batch_rows=batch_rows, sink=engine.sink)
    engine.reader = reader

    def gen() -> Iterator[pa.Table]:
        for rows in reader.batches():
            yield from engine.feed(rows)
        yield from engine.finish()

    return engine, gen()


def result(engine: Engine, tables: list[pa.Table]) -> ConvertResult:
    """The account of an engine (with ``tables`` as its pairs)."""
    reader = engine.reader
    assert reader is not None
    if tables:
        try:
            pairs = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInputError(f"{reader.label}: batches with incompatible columns: {e}") from None
    else:
        pairs = pa.schema([pa.field(n, t) for n, t in REQUIRED.items()]).empty_table()
    return ConvertResult(
        pairs=pairs,
        removed=issues_table(engine.removed),
        quarantine=issues_table(sorted(engine.quarantine, key=issue_order)),
        format=engine.adapter.name if engine.adapter else "unknown",
        rows_read=reader.rows_read,
        rows_converted=engine.converted,
        identical_pairs=engine.identical,
        sources=dict(engine.sources),
    )


# ---------------------------------------------------------------- public API


def convert_pairs(
    src: Any,
    format: str = "auto",
    *,
    source: str | None = None,
    split: str | None = None,
    on_invalid: OnInvalid = "warn",
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> ConvertResult:
    """Read preference pairs in any supported format; return the canonical
    pairs with the full account of removed and quarantined rows.

    Parameters
    ----------
    src:
        A local file (``.jsonl``, ``.json``, ``.parquet``, ``.csv``, ``.arrow``,
        optionally ``.gz`` / ``.zst`` / ``.bz2`` / ``.xz``), a folder of
        shards, a ``save_to_disk`` folder, a ``datasets.Dataset`` or
        ``DatasetDict``, a Hugging Face dataset name (loaded with
        ``datasets.load_dataset(name, split=split)``), a pyarrow Table, a
        polars DataFrame, or a list of records (dicts).
    format:
        ``"auto"`` (detect from the columns) or an adapter name: see
        :data:`prefcurate.io.FORMATS`.
    source:
        The ``source`` column of every pair.  Default: the input's own
        ``source`` column (Skywork format, and files written by
        :func:`write_pairs`), else what the records or the file name say
        (the Magpie set: ``magpie_air``, ``magpie_pro``,
        ``magpie_pro_llama3.1``), else the format's name (``magpie_dpo``,
        ``helpsteer2``, ``wildguard``...).
    split:
        The split of a ``DatasetDict`` or hub dataset with several.
    on_invalid:
        ``"warn"`` (default): malformed records (broken JSON, wrong types)
        raise :class:`InvalidInputError` with the file and line; rows with a
        content problem go to ``result.quarantine`` and one
        :class:`InvalidRowsWarning` says how many and why.
        ``"quarantine"``: every invalid row goes to ``result.quarantine``.
        ``"raise"``: the first invalid row raises, naming the file, line or
        row, and field.
    """
    engine, gen = run(src, format, source, split, on_invalid, batch_size)
    res = result(engine, list(gen))
    engine.warn_quarantined()
    return res


@overload
def read_pairs(
    src: Any,
    format: str = ...,
    *,
    source: str | None = ...,
    split: str | None = ...,
    on_invalid: Literal["warn", "raise"] = ...,
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
    on_invalid: OnInvalid = "warn",
) -> pa.Table | ConvertResult:
    """Read preference pairs in any supported format as the canonical pair table.

    With ``on_invalid="warn"`` (default) or ``"raise"`` returns the
    :class:`pyarrow.Table` (``"warn"``: rows with content problems are left
    out with an :class:`InvalidRowsWarning`; ``"raise"``: the first invalid
    row raises); with ``on_invalid="quarantine"`` returns the
    :class:`ConvertResult` (``.pairs``, ``.quarantine``, ``.removed``,
    ``.stats``).  See :func:`convert_pairs` for the arguments.
    """
    engine, gen = run(src, format, source, split, on_invalid, DEFAULT_BATCH_ROWS)
    res = result(engine, list(gen))
    engine.warn_quarantined()
    return res if on_invalid == "quarantine" else res.pairs
