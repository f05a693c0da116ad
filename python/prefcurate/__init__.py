"""prefcurate: curate preference data for reward models and DPO.

Load many pair formats, select by score, filter by reward margin, deduplicate,
decontaminate against benchmarks, and audit every removed row; the heavy
lifting runs in Rust.
"""

from __future__ import annotations

import os as _os

from . import _core
from ._unicode import ensure_tables as _ensure_tables
from .api import decontaminate, dedup, select_top, select_top_indices, select_top_result
from .embed import CallableEmbedder, SemanticIndex
from .errors import IndexFileError, InvalidInputError, PrefcurateError
from .io import (
    ConvertResult,
    PairStream,
    convert_pairs,
    iter_pairs,
    read_pairs,
    read_table,
    write_pairs,
    write_table,
)
from .schema import StageResult, validate_pairs
from .scoring import RewardScorer  # torch is imported only when a scorer is built
from .stages.decontaminate import DecontaminateConfig, DecontaminationResult
from .stages.dedup import DedupConfig, DedupResult
from .stages.dedup_index import DedupIndex
from .stages.index import BenchmarkIndex
from .stages.margin import MarginConfig, filter_margin
from .stages.select import SKYWORK_MAGPIE, SelectConfig
from .stages.semantic import SemanticDecontaminateConfig, SemanticDedupConfig, calibrate_threshold

__version__: str = _core.__version__

__all__ = [
    "SKYWORK_MAGPIE",
    "BenchmarkIndex",
    "CallableEmbedder",
    "ConvertResult",
    "DecontaminateConfig",
    "DecontaminationResult",
    "DedupConfig",
    "DedupIndex",
    "DedupResult",
    "IndexFileError",
    "InvalidInputError",
    "MarginConfig",
    "PairStream",
    "PrefcurateError",
    "RewardScorer",
    "SelectConfig",
    "SemanticDecontaminateConfig",
    "SemanticDedupConfig",
    "SemanticIndex",
    "StageResult",
    "__version__",
    "calibrate_threshold",
    "convert_pairs",
    "decontaminate",
    "dedup",
    "filter_margin",
    "iter_pairs",
    "read_pairs",
    "read_table",
    "select_top",
    "select_top_indices",
    "select_top_result",
    "tokenize",
    "validate_pairs",
    "write_pairs",
    "write_table",
]


def tokenize(text: str) -> list[str]:
    """The reference tokens of ``text``: exactly
    ``re.findall(r"(?u)\\b\\w\\w+\\b", text.lower())``, sklearn's default analyzer."""
    _ensure_tables()
    return _core.tokenize(text)


# rayon's global pool does not survive fork(); children get fresh pools
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_core._after_fork_in_child)
