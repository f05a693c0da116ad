"""The parity check to run before a long job: the scorer's scores (batched,
packed if enabled) against the model's plain forward on each unpadded
sequence, one at a time.

:func:`check` returns a :class:`ParityResult` (``as_dict()`` is JSON-ready)
and raises :class:`ParityError` (a :class:`ScoringError`) when a score
differs by more than the tolerance, or when a row ends with the model's pad
id, so that the model's own forward reads the score before the last token
and which token is meant is ambiguous."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .models import _torch
from .pooling import pooled_index
from .results import ScoringError

if TYPE_CHECKING:
    from .scorer import RewardScorer

#: Default tolerance, relative to ``max(1, max |reference score|)``, per dtype.
#: float32: batched and unpadded forwards differ only in summation order
#: (measured: at most 5e-6 on scores up to 23, on the tiny models of the
#: tests).  16-bit: each layer rounds to 8 (bf16) or 11 (fp16) significant
#: bits, and a batch shape picks other kernels, so the same row can move by a
#: unit or so in the last place of the score (measured in bf16: at most one);
#: 2**-5 (bf16: 4 to 8 such units) and 2**-8 (fp16) sit above that and well
#: below what a wrong read position gives (the score of another token: a
#: difference of the order of the scores' spread).  Not calibrated on a GPU.
RELATIVE_TOLERANCE = {"float32": 1e-4, "bfloat16": 2.0**-5, "float16": 2.0**-8}


class ParityError(ScoringError):
    """The scorer's scores are not the model's own (or the read position is
    ambiguous); ``.result`` holds the :class:`ParityResult`."""

    def __init__(self, message: str, result: ParityResult):
        super().__init__(message)
        self.result = result


@dataclass
class ParityResult:
    """One parity check.  Per-row lists are in the order of ``rows`` (the
    positions of the checked conversations in the input)."""

    passed: bool
    tolerance: float
    max_abs_diff: float
    rows: list[int]
    n_tokens: list[int]
    scores: list[float]  # through the scorer
    reference: list[float]  # plain forward, one unpadded sequence at a time
    abs_diff: list[float]
    scorer_token_index: list[int]  # token the scorer read the score at
    scorer_token_id: list[int]
    reference_token_index: list[int]  # token the plain forward read it at
    reference_token_id: list[int]
    ends_with_pad: list[int] = field(default_factory=list)  # rows (positions in the input)
    pad_token_id: int | None = None  # the model's (what its head compares ids with)
    dtype: str = ""
    attn_implementation: str | None = None
    packing: bool = False
    packing_mode: str | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_tolerance(dtype: Any, reference: np.ndarray) -> float:
    """The tolerance used when none is given: :data:`RELATIVE_TOLERANCE` of
    the dtype times ``max(1, max |reference|)``."""
    rel = RELATIVE_TOLERANCE.get(str(dtype).removeprefix("torch."), RELATIVE_TOLERANCE["bfloat16"])
    scale = float(np.max(np.abs(reference))) if len(reference) else 0.0
    return rel * max(1.0, scale)


def reference_scores(scorer: RewardScorer, ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, read index)`` of the model's plain forward on each unpadded
    sequence, one at a time, on the scorer's first device.  The read index
    is observed (the token whose per-token head output equals the returned
    score) where the model has a separable head, else computed."""
    torch = _torch()
    w = scorer._workers[0]
    per_token: list[Any] = []
    hook = None
    if w.head is not None:
        hook = w.head.register_forward_hook(lambda _m, _i, out: per_token.append(out))
    scores = np.zeros(len(ids), dtype=np.float32)
    where = np.zeros(len(ids), dtype=np.int64)
    try:
        with torch.inference_mode():
            for r, x in enumerate(ids):
                per_token.clear()
                t = torch.tensor([list(x)], dtype=torch.long, device=w.device)
                out = w.model(input_ids=t, use_cache=False).logits[0, 0]
                scores[r] = float(out.float().item())
                expected = pooled_index(x, scorer.pool_pad_id, scorer.pool_rule)
                if per_token:
                    hits = torch.nonzero(per_token[-1][0, :, 0] == out).flatten().tolist()
                    where[r] = expected if expected in hits or not hits else int(hits[-1])
                else:
                    where[r] = expected
    finally:
        if hook is not None:
            hook.remove()
    return scores, where


def _pick(n_rows: int, n: int) -> np.ndarray:
    """``n`` row positions spread evenly over ``n_rows`` (all when fewer)."""
    if n >= n_rows:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, n).round().astype(np.int64))


def check(
    scorer: RewardScorer,
    conversations: Sequence[Any],
    n: int = 32,
    tol: float | None = None,
    *,
    allow_pad_end: bool = False,
    raise_on_failure: bool = True,
) -> ParityResult:
    """Score ``n`` of ``conversations`` (spread evenly over them) both
    through ``scorer`` and through the plain forward one at a time; return
    a :class:`ParityResult`.  Raises :class:`ParityError` when the largest
    difference is over ``tol`` (default :func:`default_tolerance`) or, unless
    ``allow_pad_end``, when a row's last token is the model's pad id; with
    ``raise_on_failure=False`` it returns the failed result instead.  The
    score cache is not read or written."""
    convs = list(conversations)
    if not convs:
        raise ScoringError("parity check: no conversations to check")
    rows = _pick(len(convs), max(1, int(n)))
    ids = scorer.encode([convs[k] for k in rows]).ids
    cache, stats = scorer.cache, scorer.last_stats
    scorer.cache = None
    try:
        res = scorer.score_ids(ids)
    finally:
        scorer.cache, scorer.last_stats = cache, stats
    ref, ref_at = reference_scores(scorer, ids)
    got = res.scores.astype(np.float64)
    diff = np.abs(got - ref)
    max_diff = float(diff.max()) if len(diff) else 0.0
    limit = float(tol) if tol is not None else default_tolerance(scorer.dtype, ref)
    at = res.pooled_index if res.pooled_index is not None else np.full(len(ids), -1)
    pad = scorer.pool_pad_id
    pad_end = [int(rows[r]) for r, x in enumerate(ids) if pad is not None and x[-1] == pad]
    result = ParityResult(
        passed=False,
        tolerance=limit,
        max_abs_diff=max_diff,
        rows=[int(k) for k in rows],
        n_tokens=[len(x) for x in ids],
        scores=[float(v) for v in got],
        reference=[float(v) for v in ref],
        abs_diff=[float(v) for v in diff],
        scorer_token_index=[int(v) for v in at],
        scorer_token_id=[int(x[i]) if 0 <= i < len(x) else -1 for x, i in zip(ids, at)],
        reference_token_index=[int(v) for v in ref_at],
        reference_token_id=[int(x[i]) for x, i in zip(ids, ref_at)],
        ends_with_pad=pad_end,
        pad_token_id=pad,
        dtype=str(scorer.dtype).removeprefix("torch."),
        attn_implementation=scorer.attn_implementation,
        packing=scorer.packing,
        packing_mode=scorer.packing_mode,
    )
    problems = []
    if not np.isfinite(max_diff) or max_diff > limit:
        r = int(np.nanargmax(np.where(np.isfinite(diff), diff, np.inf)))
        problems.append(
            f"scores differ from the model's own forward by up to {max_diff:.3g} (tolerance {limit:.3g}, "
            f"{result.dtype}, {len(ids)} rows); worst: row {result.rows[r]} ({len(ids[r])} tokens): scorer "
            f"{got[r]:.6g} read at token {result.scorer_token_index[r]} (id {result.scorer_token_id[r]}), "
            f"plain forward {ref[r]:.6g} read at token {result.reference_token_index[r]} "
            f"(id {result.reference_token_id[r]})"
        )
    if pad_end and not allow_pad_end:
        k = result.rows.index(pad_end[0])
        problems.append(
            f"{len(pad_end)} of {len(ids)} rows end with token id {pad}, which is the model's pad_token_id "
            f"(e.g. row {pad_end[0]}): the model's own forward skips it and reads the score at token "
            f"{result.reference_token_index[k]} of {len(ids[k])} (id {result.reference_token_id[k]}), so the "
            "score depends on a pad id that is also a real token; give the model a pad token that is not the "
            "template's last token if it was trained reading the last token, or pass allow_pad_end=True to "
            "keep transformers' reading"
        )
    result.passed = not problems
    result.message = (
        "; ".join(problems)
        if problems
        else (
            f"scores equal the model's own forward within {limit:.3g} (max difference {max_diff:.3g}, "
            f"{len(ids)} rows)"
        )
    )
    if problems and raise_on_failure:
        raise ParityError(f"parity check failed: {result.message}", result)
    return result
