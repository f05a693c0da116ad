"""Thresholds from the scores of texts known to be unrelated.

Cosine scales differ from model to model (unrelated pairs average 0.77
with gte-large; paraphrases score 0.49-0.76 with MiniLM), so a threshold is
read off the distribution of the *best* cosine that unrelated texts reach
against the benchmark: the threshold at rate ``r`` is the lowest value that
at most a share ``r`` of those texts reach.

Two sources of unrelated texts:

``reference`` (recommended)
    A corpus known not to contain the benchmark (another data set's
    prompts, a held-out set): each text's best cosine against the whole
    benchmark is exactly the statistic a clean training row has.
``self`` (no reference given)
    The benchmark against itself.  Each item's ``leave_out`` nearest
    neighbours are left out, because benchmarks hold near copies of their
    own items (the same task in six languages in HumanEvalPack, templated
    prompts in XSTest); the other items stand in for unrelated text.  What
    remains is a runner-up, the ``m + 1``-th best cosine (``m =
    leave_out``), where a clean training row's statistic is a maximum; the
    gap is restored from the tail of the item's own scores: by the Rényi
    representation of order statistics from an exponential tail, the
    normalised spacings ``r (s_r - s_(r+1))`` are independent draws of the
    tail's scale ``beta``, and ``E[s_1 - s_(m+1)] = beta (1 + 1/2 + ... +
    1/m)``.  So each item scores ``s_(m+1) + beta_hat * H_m``, with
    ``beta_hat`` from the normalised spacings of its next ``SPACINGS`` ranks
    (a robust estimate: :func:`tail_corrected`)
    (fewer when the benchmark is small: the ranks used stay in its top
    tenth; under 5 of them, no correction: the runner-up itself, which errs
    low, so more rows are flagged).  A small benchmark has few near copies
    per item: at most one neighbour per 50 items is left out.
    For light (Gaussian-like) tails this slightly overstates the maximum,
    so the threshold errs high (fewer rows flagged); a reference corpus
    avoids the approximation.  Items are sampled (``sample``) for large
    benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .search import exact_topk


@dataclass
class Calibration:
    """A calibrated threshold and the scores it was read from.

    ``threshold``: the cosine from which a text counts as a match;
    ``scores``: the best cosine of each unrelated text (float32, as
    computed); ``rate``: the false-positive rate asked for;
    ``achieved_rate``: the share of ``scores`` at or above ``threshold``;
    ``method``: ``reference`` or ``self``; ``leave_out``: neighbours left
    out (self)."""

    threshold: float
    scores: np.ndarray
    rate: float
    method: str
    embedder: str = ""
    leave_out: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def achieved_rate(self) -> float:
        return float(np.mean(self.scores >= np.float32(self.threshold))) if self.n else 0.0

    @property
    def resolvable(self) -> bool:
        """Whether there are enough unrelated texts to resolve the rate
        (at least ``1 / rate``); with fewer, the threshold is just above
        the highest score."""
        return self.n * self.rate >= 1

    def exceedance(self, scores: Any) -> np.ndarray:
        """Per score, the share of unrelated texts that reach it (an
        empirical p-value: where a flagged row sits on the distribution)."""
        s = np.sort(self.scores)
        q = np.asarray(scores, dtype=np.float32)
        if not len(s):
            return np.full(q.shape, np.nan)
        return (len(s) - np.searchsorted(s, q, side="left")) / len(s)

    def histogram(
        self, bins: int = 50, range: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) of the scores, for a plot."""
        return np.histogram(self.scores, bins=bins, range=range)

    def summary(self) -> dict[str, Any]:
        s = self.scores
        qs = np.quantile(s, [0.5, 0.9, 0.99, 0.999]).tolist() if len(s) else []
        return {
            "threshold": float(self.threshold),
            "rate": self.rate,
            "achieved_rate": self.achieved_rate,
            "method": self.method,
            "n": self.n,
            "leave_out": self.leave_out,
            "embedder": self.embedder,
            "resolvable": self.resolvable,
            "quantiles": dict(zip(("0.5", "0.9", "0.99", "0.999"), qs)),
            **self.info,
        }

    def __repr__(self) -> str:
        return (
            f"Calibration(threshold={self.threshold:.4f}, rate={self.rate:g}, method={self.method!r}, "
            f"n={self.n}, achieved_rate={self.achieved_rate:.2g})"
        )


def threshold_at(scores: np.ndarray, rate: float) -> float:
    """The lowest float32 value that at most ``rate`` of ``scores`` reach."""
    if not 0 < rate < 1:
        raise InvalidInputError(f"false_positive_rate must be in (0, 1), got {rate!r}")
    s = np.sort(np.asarray(scores, np.float32))[::-1]
    if not len(s):
        raise InvalidInputError("calibration: no unrelated texts to calibrate on")
    allowed = int(np.floor(rate * len(s) + 1e-9))
    if allowed >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.float32(np.inf)))


#: ranks past the left-out neighbours whose spacings estimate the tail (self method)
SPACINGS = 20
#: fewer usable spacings (a small benchmark): no correction, the runner-up itself
MIN_SPACINGS = 5


def tail_corrected(top: np.ndarray, leave_out: int) -> np.ndarray:
    """Per row of descending scores ``top`` (``(n, >= leave_out + 1)``),
    the estimated best score had the ``leave_out`` best been unrelated:
    ``s_(m+1) + beta_hat * H_m`` (see the module docstring).  ``beta_hat``
    is robust: the median normalised spacing (over ``ln 2``: an
    exponential's median), half the row's own and half the median over all
    rows, so that one jump (a group of near copies of another item among the
    ranks used) or a noisy row does not inflate it."""
    m = leave_out
    base = top[:, m].astype(np.float64)
    tail = top[:, m:].astype(np.float64)
    if m == 0 or tail.shape[1] < 2:
        return base.astype(np.float32)
    ranks = np.arange(m + 1, m + tail.shape[1], dtype=np.float64)
    spacings = (tail[:, :-1] - tail[:, 1:]) * ranks[None, :]
    spacings = np.where(np.isfinite(spacings), spacings, np.nan)
    own = np.nan_to_num(np.nanmedian(spacings, axis=1)) / np.log(2)
    pooled = float(np.nan_to_num(np.nanmedian(spacings))) / np.log(2)
    beta = 0.5 * own + 0.5 * pooled
    harmonic = float(np.sum(1.0 / np.arange(1, m + 1)))
    return (base + beta * harmonic).astype(np.float32)


def self_scores(
    vectors: np.ndarray, leave_out: int, *, sample: int, seed: int, block_size: int, device: str | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Each sampled item's estimated best cosine to unrelated items: its
    ``leave_out`` nearest neighbours left out, the gap restored from the
    tail (:func:`tail_corrected`)."""
    n = len(vectors)
    # a small benchmark has few near copies per item, and a deep runner-up
    # would be far from the maximum: at most one left out per 50 items
    leave_out = min(leave_out, n // 50)
    if n < leave_out + 2:
        raise InvalidInputError(
            f"calibration: {n} item(s) cannot be calibrated on themselves; pass a reference corpus or a threshold"
        )
    rows = np.arange(n)
    if sample and n > sample:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    # the spacings must come from the tail: ranks within the top tenth
    spacings = min(SPACINGS, n // 10 - leave_out - 1)
    corrected = leave_out > 0 and spacings >= MIN_SPACINGS
    k = leave_out + 1 + (spacings if corrected else 0)
    _, sc = exact_topk(vectors[rows], vectors, k, block_size=block_size, self_rows=rows, device=device)
    info = {
        "sampled": len(rows),
        "items": n,
        "runner_up_median": float(np.median(sc[:, leave_out])),
        "tail_corrected": bool(corrected),
        "leave_out": leave_out,
    }
    scores = tail_corrected(sc, leave_out) if corrected else sc[:, leave_out].astype(np.float32)
    return np.minimum(scores, np.float32(1.0)), info


def reference_scores(
    reference: np.ndarray, vectors: np.ndarray, *, sample: int, seed: int, block_size: int, device: str | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Each (sampled) reference text's best cosine against all items."""
    rows = np.arange(len(reference))
    if sample and len(rows) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))
    _, sc = exact_topk(reference[rows], vectors, 1, block_size=block_size, device=device)
    return sc[:, 0].astype(np.float32), {"sampled": len(rows), "reference_texts": len(reference)}


def calibrate_vectors(
    vectors: np.ndarray,
    reference: np.ndarray | None = None,
    false_positive_rate: float = 1e-3,
    *,
    leave_out: int = 10,
    sample: int = 20000,
    seed: int = 0,
    block_size: int = 4096,
    device: str | None = None,
    embedder: str = "",
) -> Calibration:
    """:func:`prefcurate.stages.semantic.calibrate_threshold` on vectors."""
    if reference is not None:
        scores, info = reference_scores(
            reference, vectors, sample=sample, seed=seed, block_size=block_size, device=device
        )
        method, lo = "reference", 0
    else:
        scores, info = self_scores(
            vectors, leave_out, sample=sample, seed=seed, block_size=block_size, device=device
        )
        method, lo = "self", int(info["leave_out"])
    thr = threshold_at(scores, false_positive_rate)
    return Calibration(thr, scores, float(false_positive_rate), method, embedder, lo, info)
