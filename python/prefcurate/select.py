"""Score-based selection: the top ``k`` or the top fraction of each group.

Skywork's Magpie step (RECIPE.md section 1.1) pools four datasets, lowers two
of them by a score offset, merges the task categories into Math / Coding &
Debugging / everything else, and keeps the top 30 % / 30 % / 10 % of each:

    kept = prefcurate.select_top(pool, **prefcurate.SKYWORK_MAGPIE)

Rules (also in the docstring of :func:`select_top`):

- rank by ``score + offsets[row's offset_by value]`` (a value without an
  offset, or null, adds 0), descending; ties by the ``tie_break`` column
  (ascending, nulls last), then by row order;
- a group keeps ``k`` rows (all if it has fewer), or ``floor(fraction * n)``
  where ``n`` counts its rows with a score, in exact decimal arithmetic (0.29
  of 100 rows is 29); a group with no quota (not named in a dict and no
  default) keeps every row;
- a row whose score is NaN or null is removed with reason ``missing_score``,
  a row whose group is null with reason ``missing_group``; the others that
  fall below the cut with ``below_cutoff``.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _core
from .errors import InvalidInputError
from .schema import StageResult, split_table, with_columns

STAGE = "select"
REASONS = {1: "below_cutoff", 2: "missing_score", 3: "missing_group"}

#: The Magpie task categories Skywork kept apart; everything else is "other".
MAGPIE_CATEGORY_MAP = {"Math": "Math", "Coding & Debugging": "Coding & Debugging"}

#: Skywork-Reward-Preference-80K's Magpie selection (RECIPE.md section 1.1):
#: source names as used by prefcurate's recipes (magpie_pro_llama3.1,
#: magpie_pro for Magpie-Pro-DPO on Llama 3, magpie_air, magpie_ultra).
SKYWORK_MAGPIE: dict[str, Any] = {
    "score": "score",
    "group_by": "category",
    "group_map": MAGPIE_CATEGORY_MAP,
    "group_default": "other",
    "fraction": {"Math": 0.3, "Coding & Debugging": 0.3},
    "default_fraction": 0.1,
    "offset_by": "source",
    "offsets": {"magpie_air": -0.1, "magpie_pro": -0.05},
}

PRESETS = {"skywork-magpie": SKYWORK_MAGPIE}

QuotaArg = int | float | Mapping[Any, int | float] | None


def _table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    mod = type(data).__module__ or ""
    if mod.startswith("polars"):
        return data.to_arrow()
    if mod.startswith("datasets"):
        from ._inputs import dataset_table

        return dataset_table(data)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise InvalidInputError(
        f"select: expected a table (pyarrow, polars, datasets), got {type(data).__name__}"
    )


def _column(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InvalidInputError(f"select: no {what} column {name!r}; columns are {table.column_names}")
    return table.column(name)


def _as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return col
    return col.cast(pa.string())


def _group_key(table: pa.Table, group_by: str | list[str] | None) -> pa.ChunkedArray | None:
    if group_by is None:
        return None
    if isinstance(group_by, str):
        return _as_strings(_column(table, group_by, "group_by"))
    cols = [_as_strings(_column(table, g, "group_by")) for g in group_by]
    # a composite key; a null part makes the key null
    return pc.binary_join_element_wise(*cols, "\x1f")


def _group_name(name: str, group_by: str | list[str] | None) -> Any:
    return tuple(name.split("\x1f")) if isinstance(group_by, list) else name


def _quota(value: QuotaArg, default: int | float | None, name: Any, kind: str) -> float | None:
    if isinstance(value, Mapping):
        v = value.get(name, default)
    else:
        v = value if value is not None else default
    if v is None:
        return None
    if kind == "k":
        if isinstance(v, bool) or not float(v).is_integer() or v < 0:
            raise InvalidInputError(f"select: k for group {name!r} must be a non-negative integer, got {v!r}")
    elif not 0.0 <= float(v) <= 1.0:
        raise InvalidInputError(f"select: fraction for group {name!r} must be in [0, 1], got {v!r}")
    return float(v)


def as_ratio(fraction: float) -> Fraction:
    """The fraction as the decimal it was written as (0.29 -> 29/100): the
    quota ``floor(fraction * n)`` is then exact, free of float rounding."""
    return Fraction(repr(float(fraction))).limit_denominator(10**15)


def _scores(table: pa.Table, score: str) -> np.ndarray:
    col = _column(table, score, "score")
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_decimal(col.type)):
        raise InvalidInputError(f"select: score column {score!r} is {col.type}, expected numbers")
    arr = col.cast(pa.float64())
    if arr.null_count:
        arr = pc.fill_null(arr, float("nan"))
    return np.ascontiguousarray(arr.to_numpy())


def _run(
    table: pa.Table,
    *,
    score: str,
    group_by: str | list[str] | None,
    k: QuotaArg,
    fraction: QuotaArg,
    default_k: int | None,
    default_fraction: float | None,
    offset_by: str | None,
    offsets: Mapping[Any, float] | None,
    tie_break: str | None,
    group_map: Mapping[Any, Any] | None,
    group_default: Any,
    ranks: bool,
    num_threads: int | None,
) -> dict[str, Any]:
    if k is not None and fraction is not None:
        raise InvalidInputError("select: give k or fraction, not both")
    if (default_k is not None and fraction is not None) or (default_fraction is not None and k is not None):
        raise InvalidInputError("select: mix of k and fraction quotas; use one kind")
    n = table.num_rows
    scores = _scores(table, score)
    adjusted = scores
    if offsets:
        if offset_by is None:
            raise InvalidInputError("select: offsets given without offset_by")
        ids, names = _core.encode_strings(
            _as_strings(_column(table, offset_by, "offset_by")), num_threads=num_threads
        )
        per = np.array([float(offsets.get(v, 0.0)) for v in names] + [0.0])  # last: null
        adjusted = scores + per[np.minimum(ids, len(names))]
    key = _group_key(table, group_by)
    if key is None:
        gids = np.zeros(n, dtype=np.uint32)
        raw_names: list[str] = [""]
        group_names: list[Any] = [None]
    else:
        gids, raw_names = _core.encode_strings(key, num_threads=num_threads)
        group_names = [_group_name(s, group_by) for s in raw_names]
    if group_map is not None:
        merged: list[Any] = []
        remap = np.empty(len(group_names) + 1, dtype=np.uint32)
        for i, g in enumerate(group_names):
            target = group_map.get(g, g if group_default is None else group_default)
            if target not in merged:
                merged.append(target)
            remap[i] = merged.index(target)
        remap[-1] = np.iinfo(np.uint32).max
        gids = remap[np.minimum(gids, len(group_names))]
        group_names = merged
    quotas: list[tuple[str, int, int]] = []
    for g in group_names:
        if k is not None or default_k is not None:
            q = _quota(k, default_k, g, "k")
            quotas.append(("k", int(q), 1) if q is not None else ("all", 0, 1))
        elif fraction is not None or default_fraction is not None:
            q = _quota(fraction, default_fraction, g, "fraction")
            if q is None:
                quotas.append(("all", 0, 1))
            else:
                r = as_ratio(q)
                quotas.append(("ratio", r.numerator, r.denominator))
        else:
            raise InvalidInputError("select: no quota: give k, fraction, default_k or default_fraction")
    tie = None
    if tie_break is not None and tie_break in table.column_names:
        tie = _as_strings(table.column(tie_break))
    elif tie_break is not None and tie_break != "id":
        raise InvalidInputError(
            f"select: no tie_break column {tie_break!r}; columns are {table.column_names}"
        )
    out = _core.select_top(
        np.ascontiguousarray(adjusted, dtype=np.float64),
        np.ascontiguousarray(gids, dtype=np.uint32),
        quotas,
        tie=tie,
        ranks=ranks,
        num_threads=num_threads,
    )
    out.update(adjusted=adjusted, groups=gids, group_names=group_names, quotas=quotas)
    return out


def _on_ray(engine: str) -> bool:
    from .ray_engine import check_engine

    return check_engine(engine)


def _ray_args(args: dict[str, Any]) -> dict[str, Any]:
    """The selection arguments, for the Ray engine."""
    names = (
        "score",
        "group_by",
        "k",
        "fraction",
        "default_fraction",
        "offset_by",
        "offsets",
        "tie_break",
        "default_k",
        "group_map",
        "group_default",
    )
    return {n: args[n] for n in names}


_DOC_PARAMS = """
    Parameters
    ----------
    table:
        A pyarrow table (or polars DataFrame, datasets.Dataset).
    score:
        The score column (numbers; NaN or null: removed as ``missing_score``).
    group_by:
        The group column, a list of columns (groups are then tuples), or None
        for one group.
    k, fraction:
        Rows to keep per group: a number for every group, or a dict per group
        (``default_k`` / ``default_fraction`` for groups not named).  A
        fraction keeps ``floor(fraction * rows with a score)``.
    offset_by, offsets:
        ``score + offsets[value of offset_by]`` is ranked (missing: + 0).
    tie_break:
        Column ordering equal scores (ascending, nulls last), then row order.
        The default ``"id"`` falls back to row order if there is no id column.
    group_map, group_default:
        Merge groups before selection: ``group_map[g]``, else ``group_default``
        (if given), else ``g``.  Skywork: Math, Coding & Debugging, other.
    num_threads:
        Threads (default: all cores); the result does not depend on it.
    engine, ray_options:
        ``"local"`` (default) or ``"ray"``: select on a Ray Data cluster
        (``table`` may also be a ``ray.data.Dataset`` or Parquet shards); the
        same rows, with the table results as lazy Ray datasets
        (``select_top_result`` gives a :class:`prefcurate.ray_engine.RayStageResult`).
"""


def select_top_indices(
    table: Any,
    score: str = "score",
    group_by: str | list[str] | None = "category",
    k: QuotaArg = None,
    fraction: QuotaArg = None,
    default_fraction: float | None = None,
    offset_by: str | None = "source",
    offsets: Mapping[Any, float] | None = None,
    tie_break: str | None = "id",
    *,
    default_k: int | None = None,
    group_map: Mapping[Any, Any] | None = None,
    group_default: Any = None,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
) -> np.ndarray:
    """Indices (ascending, int64) of the rows :func:`select_top` keeps."""
    if _on_ray(engine):
        from . import ray_engine

        return ray_engine.select_top_indices(table, _ray_args(locals()), ray_options)
    t = _table(table)
    out = _run(
        t,
        score=score,
        group_by=group_by,
        k=k,
        fraction=fraction,
        default_k=default_k,
        default_fraction=default_fraction,
        offset_by=offset_by,
        offsets=offsets,
        tie_break=tie_break,
        group_map=group_map,
        group_default=group_default,
        ranks=False,
        num_threads=num_threads,
    )
    return np.flatnonzero(out["reason"] == 0)


def select_top(
    table: Any,
    score: str = "score",
    group_by: str | list[str] | None = "category",
    k: QuotaArg = None,
    fraction: QuotaArg = None,
    default_fraction: float | None = None,
    offset_by: str | None = "source",
    offsets: Mapping[Any, float] | None = None,
    tie_break: str | None = "id",
    *,
    default_k: int | None = None,
    group_map: Mapping[Any, Any] | None = None,
    group_default: Any = None,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
) -> pa.Table:
    """The top rows of each group, in their original order."""
    if _on_ray(engine):
        from . import ray_engine

        return ray_engine.select_top(table, _ray_args(locals()), ray_options)
    t = _table(table)
    idx = select_top_indices(
        t,
        score,
        group_by,
        k,
        fraction,
        default_fraction,
        offset_by,
        offsets,
        tie_break,
        default_k=default_k,
        group_map=group_map,
        group_default=group_default,
        num_threads=num_threads,
    )
    return t.take(pa.array(idx))


def select_top_result(
    table: Any,
    score: str = "score",
    group_by: str | list[str] | None = "category",
    k: QuotaArg = None,
    fraction: QuotaArg = None,
    default_fraction: float | None = None,
    offset_by: str | None = "source",
    offsets: Mapping[Any, float] | None = None,
    tie_break: str | None = "id",
    *,
    default_k: int | None = None,
    group_map: Mapping[Any, Any] | None = None,
    group_default: Any = None,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
) -> StageResult:
    """Kept and removed rows.  Removed rows carry ``stage``, ``reason``,
    ``select_group``, ``rank`` (1-based within the group), ``adjusted_score``
    and ``cutoff_score`` (the group's last kept score; null if it keeps none)."""
    if _on_ray(engine):
        from . import ray_engine

        # a RayStageResult: the same fields, with kept / removed as Ray datasets
        return ray_engine.select_top_result(table, _ray_args(locals()), ray_options)  # type: ignore[return-value]
    t = _table(table)
    out = _run(
        t,
        score=score,
        group_by=group_by,
        k=k,
        fraction=fraction,
        default_k=default_k,
        default_fraction=default_fraction,
        offset_by=offset_by,
        offsets=offsets,
        tie_break=tie_break,
        group_map=group_map,
        group_default=group_default,
        ranks=True,
        num_threads=num_threads,
    )
    reason = out["reason"]
    rem = np.flatnonzero(reason != 0)
    gids = out["groups"]
    names = out["group_names"]
    cutoff = out["cutoff"]
    label = np.array(
        [str(g) if not isinstance(g, tuple) else "/".join(g) for g in names] + [None], dtype=object
    )
    g_rem = np.minimum(gids[rem], len(names))
    cut = np.append(cutoff, np.nan)[g_rem]
    rank = out["rank"][rem].astype(np.int64)
    adjusted = out["adjusted"][rem]
    kept, removed = split_table(t, reason == 0)
    removed = with_columns(
        removed,
        {
            "stage": pa.array([STAGE] * len(rem), pa.string()),
            "reason": pa.array([REASONS[int(r)] for r in reason[rem]], pa.string()),
            "select_group": pa.array(label[g_rem].tolist(), pa.string()),
            "rank": pa.array(rank, mask=rank == 0),
            "adjusted_score": pa.array(adjusted, mask=np.isnan(adjusted)),
            "cutoff_score": pa.array(cut, mask=np.isnan(cut)),
        },
    )
    info = {
        "groups": {
            str(g) if not isinstance(g, tuple) else "/".join(g): {
                "quota": [q[0], q[1]] if q[0] == "k" else [q[0], q[1] / q[2]] if q[0] == "ratio" else [q[0]],
                "ranked": int(r),
                "kept": int(kk),
                "cutoff": None if np.isnan(c) else float(c),
            }
            for g, q, r, kk, c in zip(names, out["quotas"], out["ranked"], out["kept"], cutoff)
        }
    }
    return StageResult(STAGE, kept, removed, t.num_rows, info)


for _f in (select_top, select_top_indices, select_top_result):
    _f.__doc__ = (_f.__doc__ or "") + "\n" + _DOC_PARAMS
