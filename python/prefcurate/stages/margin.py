"""The margin filter (the WildGuard stage of the Skywork recipe): keep the
pairs whose reward margin ``chosen_score - rejected_score`` is over
``min_margin``.  The scores come from a reward-model scorer
(:class:`prefcurate.RewardScorer`, recognised by its methods: no import of the
scoring package here), from arrays, or from the table's columns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from .._progress import ProgressArg
from ..arrays import from_numpy, to_numpy
from ..config import StageConfig, in_range, param
from ..errors import InvalidInputError
from ..inputs import as_pair_table
from ..schema import StageResult, split_stage, with_columns

STAGE = "filter_margin"


def _finite(v: Any) -> str | None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(float(v))
    return None if ok else "a finite number"


@dataclass(frozen=True)
class MarginConfig(StageConfig):
    """The margin filter's settings."""

    stage: ClassVar[str] = STAGE

    min_margin: float = param(
        0.0, "keep pairs whose chosen_score - rejected_score exceeds this", check=_finite, parse=float
    )
    check: int = param(
        0,
        "before scoring with a model: score this many rows both through the scorer and the model's plain "
        "forward, record the largest difference, and stop if it is over the tolerance (0: no check)",
        check=in_range(0, 1 << 20, integer=True),
    )


def _is_scorer(x: Any) -> bool:
    return callable(getattr(x, "score_pairs", None)) and callable(getattr(x, "check", None))


def _float_column(values: Any, n: int, what: str) -> np.ndarray:
    arr = values
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        t = values.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):  # nulls as NaN, without pandas
            arr = to_numpy(values.cast(pa.float64(), safe=False), fill=np.nan)
        else:
            arr = values.to_numpy(zero_copy_only=False)
    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what}: not numeric: {e}") from None
    if out.shape != (n,):
        raise InvalidInputError(f"{what}: {out.shape[0] if out.ndim else 0} values for {n} pairs")
    return out


def filter_margin(
    pairs: Any,
    scorer_or_scores: Any = None,
    config: MarginConfig | None = None,
    *,
    progress: ProgressArg = None,
    **settings: Any,
) -> StageResult:
    """Keep the pairs whose reward margin ``chosen_score - rejected_score`` is
    greater than ``min_margin`` (the WildGuard stage of the Skywork recipe:
    ``score(chosen) > score(rejected)``).

    ``scorer_or_scores``: a :class:`RewardScorer` (the pairs are scored), a
    ``(chosen_scores, rejected_scores)`` pair of arrays, a mapping with
    ``chosen_score`` and ``rejected_score``, or ``None`` when ``pairs``
    already has those columns.  Kept and removed rows carry ``chosen_score``,
    ``rejected_score`` and ``margin``; removed rows have ``reason``
    ``non_positive_margin`` (``min_margin == 0``), ``margin_below_min``
    (otherwise) or ``nan_score``.
    """
    unknown = sorted(set(settings) - set(MarginConfig.names()))
    if unknown:
        raise TypeError(
            f"filter_margin() got unexpected keyword(s) {unknown}; its settings are {MarginConfig.names()}"
        )
    config = config.replace(**settings) if config is not None else MarginConfig(**settings)
    min_margin = config.min_margin
    table = as_pair_table(pairs)
    n = table.num_rows
    info: dict[str, Any] = {"min_margin": float(min_margin)}
    if _is_scorer(scorer_or_scores):
        if config.check and n:
            # the parity check first: a scorer that reads the wrong token
            # would silently change which pairs survive
            convs = table.column("chosen").to_pylist()[: config.check]
            info["parity_check"] = scorer_or_scores.check(convs, n=config.check).as_dict()
        table = scorer_or_scores.score_pairs(table, progress=progress)
        info["model"] = scorer_or_scores.model_id
        if scorer_or_scores.last_stats is not None:
            info["scoring"] = scorer_or_scores.last_stats.as_dict()
        chosen, rejected = table.column("chosen_score"), table.column("rejected_score")
    elif scorer_or_scores is None:
        missing = [c for c in ("chosen_score", "rejected_score") if c not in table.column_names]
        if missing:
            raise InvalidInputError(
                f"filter_margin: pairs have no {missing} column(s); pass a RewardScorer or the scores"
            )
        chosen, rejected = table.column("chosen_score"), table.column("rejected_score")
    elif isinstance(scorer_or_scores, Mapping):
        try:
            chosen, rejected = scorer_or_scores["chosen_score"], scorer_or_scores["rejected_score"]
        except KeyError as e:
            raise InvalidInputError(f"filter_margin: scores mapping has no {e} key") from None
    elif isinstance(scorer_or_scores, (tuple, list)) and len(scorer_or_scores) == 2:
        chosen, rejected = scorer_or_scores
    else:
        raise InvalidInputError(
            "filter_margin: scorer_or_scores must be a RewardScorer, (chosen, rejected) arrays, a mapping or None; "
            f"got {type(scorer_or_scores).__name__}"
        )
    c = _float_column(chosen, n, "chosen_score")
    r = _float_column(rejected, n, "rejected_score")
    margin = c - r
    table = with_columns(
        table,
        {
            "chosen_score": from_numpy(c, type=pa.float64()),
            "rejected_score": from_numpy(r, type=pa.float64()),
            "margin": from_numpy(margin, type=pa.float64()),
        },
    )
    nan = np.isnan(margin)
    keep = ~nan & (margin > min_margin)
    drop = np.flatnonzero(~keep)
    low_reason = "non_positive_margin" if min_margin == 0 else "margin_below_min"
    reasons = np.where(nan[drop], "nan_score", low_reason).tolist()
    kept, removed = split_stage(table, keep, STAGE, reasons)
    if len(margin) and not nan.all():
        info["margin_quantiles"] = {
            q: round(float(np.nanquantile(margin, float(q))), 6)
            for q in ("0.01", "0.1", "0.5", "0.9", "0.99")
        }
    return StageResult(STAGE, kept, removed, n, info)
