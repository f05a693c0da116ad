"""Reward-model scoring (the margin filter that uses it is :mod:`prefcurate.stages.margin`).

:class:`RewardScorer` scores conversations with a sequence-classification
reward model (``AutoModelForSequenceClassification``, ``num_labels=1``):

- conversations go through the chat template to text, then to ids
  **without** adding special tokens again (the template already wrote the BOS);
- inputs longer than ``max_length`` are truncated from the **left** (the answer
  at the end is what is scored), keeping a leading BOS; every row records
  whether it was truncated;
- the score is read where the model's own forward reads it on the unpadded
  sequence (the last token, or the last non-pad token when the sequence
  ends with the model's pad id), computed from each row's ids, so padding
  never moves it; the model and tokenizer are never changed;
- rows are sorted by length within chunks of ``chunk_size`` and packed into
  batches of at most ``token_budget`` padded tokens, padded on the right;
  or, with ``packing=True``, concatenated several to a row with positions
  restarting at 0 and attention kept within each; scores come back in input
  order;
- a background thread templates and tokenises the next chunk while one
  worker thread per device scores batches from a shared queue;
- an out-of-memory error halves the batch and retries; no row is lost or
  scored twice;
- with ``cache_dir``, scores are written incrementally as Parquet shards, so
  an interrupted run resumes where it stopped and gives the same scores;
- :meth:`RewardScorer.check` (:func:`parity.check`) compares the scorer with
  the model's plain forward before a long run.

Modules: :mod:`.scorer` (RewardScorer), :mod:`.runner` (the threaded run),
:mod:`.batching` (batch plans and layouts), :mod:`.pooling` (the read
position and the forward), :mod:`.models` (torch / transformers helpers),
:mod:`.cache` (ScoreCache), :mod:`.parity` (the check), :mod:`.config`
(ScoreConfig: the scorer's settings for the CLI and recipes),
:mod:`.inputs` (conversations and pair tables),
:mod:`.results` (results and errors).

torch and transformers (the ``scoring`` extra) are imported only when a scorer
is built, so ``import prefcurate`` stays light.
"""

from __future__ import annotations

from ..inputs import as_pair_table as _as_pair_table
from . import parity
from .batching import plan_batches, plan_packs
from .cache import ScoreCache
from .inputs import _check_conversation
from .models import CAUSAL_DECODERS, EAGER_MODEL_TYPES
from .parity import ParityError, ParityResult
from .results import ScoreResult, ScoringError, ScoringStats
from .scorer import RewardScorer

__all__ = [
    "CAUSAL_DECODERS",
    "EAGER_MODEL_TYPES",
    "ParityError",
    "ParityResult",
    "RewardScorer",
    "ScoreCache",
    "ScoreResult",
    "ScoringError",
    "ScoringStats",
    "_as_pair_table",
    "_check_conversation",
    "parity",
    "plan_batches",
    "plan_packs",
]
