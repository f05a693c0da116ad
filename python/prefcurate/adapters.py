"""Transition shim: the source adapters moved to :mod:`prefcurate.io.adapters`
(Arrow helpers: ``io.arrow``; message checks: ``io.validate``); import from there."""

from __future__ import annotations

from .io.adapters import (
    ADAPTERS,
    ALIASES,
    CANONICAL_EXTRA,
    FORMATS,
    Adapter,
    AdapterOutput,
    BatchContext,
    Problem,
    detect_format,
    get_adapter,
    parse_helpsteer2_prompt,
    parse_hh,
)
from .io.arrow import ColumnError, as_messages, is_message_list
from .io.validate import MessageCheck, check_messages, check_pairs

__all__ = [
    "ADAPTERS",
    "ALIASES",
    "CANONICAL_EXTRA",
    "FORMATS",
    "Adapter",
    "AdapterOutput",
    "BatchContext",
    "ColumnError",
    "MessageCheck",
    "Problem",
    "as_messages",
    "check_messages",
    "check_pairs",
    "detect_format",
    "get_adapter",
    "is_message_list",
    "parse_helpsteer2_prompt",
    "parse_hh",
]
