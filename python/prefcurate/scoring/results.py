"""What scoring returns and raises: :class:`ScoringError`,
:class:`ScoringStats`, :class:`ScoreResult`, and the encoded rows
(:class:`Encoded`) passed between tokenisation and the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PrefcurateError


class ScoringError(PrefcurateError, RuntimeError):
    """Scoring could not go on: a single row does not fit in device memory, a
    worker failed, the model is not a reward model, or a parity check found
    scores that differ from the model's own forward."""


@dataclass
class ScoringStats:
    """What one :meth:`RewardScorer.score_detailed` call did."""

    rows: int = 0
    rows_cached: int = 0
    rows_computed: int = 0
    rows_truncated: int = 0
    batches: int = 0
    real_tokens: int = 0  # tokens of the computed rows
    padded_tokens: int = 0  # batch rows x padded length, summed over computed batches
    oom_retries: int = 0
    seconds: float = 0.0
    rows_by_device: dict[str, int] = field(default_factory=dict)

    @property
    def padding_efficiency(self) -> float:
        """Real tokens / padded tokens of the computed batches (1.0 = no padding)."""
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0

    @property
    def tokens_per_second(self) -> float:
        return self.real_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rows_cached": self.rows_cached,
            "rows_computed": self.rows_computed,
            "rows_truncated": self.rows_truncated,
            "batches": self.batches,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "padding_efficiency": round(self.padding_efficiency, 4),
            "oom_retries": self.oom_retries,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "rows_by_device": dict(self.rows_by_device),
        }


@dataclass
class ScoreResult:
    """Scores of a list of conversations, in input order."""

    scores: np.ndarray  # float32
    truncated: np.ndarray  # bool: the row was cut from the left to max_length
    n_tokens: np.ndarray  # int64: tokens scored (after truncation)
    n_tokens_original: np.ndarray  # int64: tokens before truncation
    stats: ScoringStats
    #: int64: the token (index into the scored ids) whose hidden state the
    #: score head read, per row; -1 for rows taken from the cache
    pooled_index: np.ndarray | None = None


@dataclass
class Encoded:
    """Token ids to score (after truncation), per row."""

    ids: list[list[int]]
    truncated: np.ndarray
    n_original: np.ndarray
