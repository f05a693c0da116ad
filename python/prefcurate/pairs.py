"""Transition shim: the pair readers and writer moved to :mod:`prefcurate.io`
(``io.convert``, ``io.stream``, ``io.writer``); import from there."""

from __future__ import annotations

from .io.convert import (
    DEFAULT_BATCH_ROWS,
    ISSUE_SCHEMA,
    ConvertResult,
    InvalidRowsWarning,
    OnInvalid,
    convert_pairs,
    pair_ids,
    read_pairs,
)
from .io.readers import JSONL_BLOCK_BYTES, records_to_table
from .io.stream import PairStream, iter_pairs
from .io.writer import write_pairs

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "ISSUE_SCHEMA",
    "JSONL_BLOCK_BYTES",
    "ConvertResult",
    "InvalidRowsWarning",
    "OnInvalid",
    "PairStream",
    "convert_pairs",
    "iter_pairs",
    "pair_ids",
    "read_pairs",
    "records_to_table",
    "write_pairs",
]
