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

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from ..arrays import constant_strings, from_numpy, scalar, strings, to_numpy
from ..config import StageConfig, param
from ..errors import InvalidInputError
from ..inputs import as_strings
from ..schema import StageResult, split_table, with_columns

STAGE = "select"
#: a group's quota as the core takes it: ("k", k, 1), ("ratio", num, den) or ("all", 0, 1)
Quota = tuple[Literal["all", "k", "ratio"], int, int]
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


def _column(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise InvalidInputError(f"select: no {what} column {name!r}; columns are {table.column_names}")
    return table.column(name)


def _group_key(table: pa.Table, group_by: str | list[str] | None) -> pa.ChunkedArray | None:
    if group_by is None:
        return None
    if isinstance(group_by, str):
        return as_strings(_column(table, group_by, "group_by"))
    cols = [as_strings(_column(table, g, "group_by")) for g in group_by]
    # a composite key; a null part makes the key null
    return pc.binary_join_element_wise(*cols, scalar("\x1f"))


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
    return np.ascontiguousarray(to_numpy(col.cast(pa.float64()), fill=np.nan))


def _quota_arg(v: Any) -> str | None:
    vals = list(v.values()) if isinstance(v, Mapping) else [v]
    for x in vals:
        if x is not None and (
            isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0
        ):
            return "a non-negative number, or a dict of them per group"
    return None


def _offsets(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        return "a dict of finite numbers per value of offset_by"
    for x in v.values():
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
            return "a dict of finite numbers per value of offset_by"
    return None


def _group_by(v: Any) -> str | None:
    if (
        v is None
        or isinstance(v, str)
        or (isinstance(v, (list, tuple)) and all(isinstance(g, str) for g in v))
    ):
        return None
    return "a column name, a list of them, or nothing"


def _as_list(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@dataclass(frozen=True)
class SelectConfig(StageConfig):
    """The selection stage's settings (see the module docstring)."""

    stage: ClassVar[str] = STAGE

    score: str = param("score", "the score column (numbers; NaN or null: removed as missing_score)")
    group_by: Any = param(
        "category",
        "the group column, a list of columns, or none for one group",
        check=_group_by,
        convert=_as_list,
        cli=False,
    )
    k: Any = param(None, "rows to keep per group: N, or a dict per group", check=_quota_arg, cli=False)
    fraction: Any = param(
        None,
        "share of each group to keep (floor of fraction x rows with a score): F, or a dict per group",
        check=_quota_arg,
        cli=False,
    )
    default_fraction: float | None = param(
        None, "fraction for groups not named in a fraction dict", check=_quota_arg, cli=False
    )
    offset_by: str | None = param("source", "column whose value picks a score offset", cli=False)
    offsets: Mapping[Any, float] | None = param(
        None, "score offsets by value of offset_by (ranked: score + offset)", check=_offsets, cli=False
    )
    tie_break: str | None = param(
        "id", "column ordering equal scores (ascending, nulls last), then row order", cli=False
    )
    default_k: int | None = param(None, "k for groups not named in a k dict", check=_quota_arg, cli=False)
    group_map: Mapping[Any, Any] | None = param(
        None, "merge groups before selection: group_map[g], else group_default, else g", cli=False
    )
    group_default: Any = param(None, "the group of values not in group_map", cli=False)

    def validate(self) -> None:
        k_kind = self.k is not None or self.default_k is not None
        f_kind = self.fraction is not None or self.default_fraction is not None
        if self.k is not None and self.fraction is not None:
            raise InvalidInputError("select: give k or fraction, not both")
        if k_kind and f_kind:
            raise InvalidInputError("select: mix of k and fraction quotas; use one kind")
        if self.offsets and self.offset_by is None:
            raise InvalidInputError("select: offsets given without offset_by")

    def quota_for(self, name: Any) -> Quota:
        """The quota of group ``name`` as the core takes it."""
        if self.k is not None or self.default_k is not None:
            q = _quota(self.k, self.default_k, name, "k")
            return ("k", int(q), 1) if q is not None else ("all", 0, 1)
        if self.fraction is not None or self.default_fraction is not None:
            q = _quota(self.fraction, self.default_fraction, name, "fraction")
            if q is None:
                return ("all", 0, 1)
            r = as_ratio(q)
            return ("ratio", r.numerator, r.denominator)
        raise InvalidInputError("select: no quota: give k, fraction, default_k or default_fraction")


def adjusted_scores(table: pa.Table, config: SelectConfig, num_threads: int | None) -> np.ndarray:
    """Per row: its score plus the offset of its ``offset_by`` value (a value
    without an offset, or null, adds 0); NaN where the score is missing."""
    scores = _scores(table, config.score)
    if not config.offsets:
        return scores
    assert config.offset_by is not None  # checked by the config
    ids, names = _core.encode_strings(
        as_strings(_column(table, config.offset_by, "offset_by")), num_threads=num_threads
    )
    per = np.array([float(config.offsets.get(v, 0.0)) for v in names] + [0.0])  # last: null
    return scores + per[np.minimum(ids, len(names))]


def rank(table: pa.Table, config: SelectConfig, *, ranks: bool, num_threads: int | None) -> dict[str, Any]:
    """The selection kernel: per row its adjusted score and group, then the
    core's top-k per group (reason per row, and ranks and cut-offs when
    ``ranks``)."""
    c = config
    group_by = c.group_by
    group_map, group_default, tie_break = c.group_map, c.group_default, c.tie_break
    n = table.num_rows
    adjusted = adjusted_scores(table, c, num_threads)
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
    quotas = [c.quota_for(g) for g in group_names]
    tie = None
    if tie_break is not None and tie_break in table.column_names:
        tie = as_strings(table.column(tie_break))
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


def decide(t: pa.Table, config: SelectConfig, out: dict[str, Any]) -> StageResult:
    """Kept and removed rows.  Removed rows carry ``stage``, ``reason``,
    ``select_group``, ``rank`` (1-based within the group), ``adjusted_score``
    and ``cutoff_score`` (the group's last kept score; null if it keeps none)."""
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
            "stage": constant_strings(STAGE, len(rem)),
            "reason": strings([REASONS[int(r)] for r in reason[rem]]),
            "select_group": strings(label[g_rem].tolist()),
            "rank": from_numpy(rank, mask=rank == 0),
            "adjusted_score": from_numpy(adjusted, mask=np.isnan(adjusted)),
            "cutoff_score": from_numpy(cut, mask=np.isnan(cut)),
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
