"""Source adapters: every preference-pair format in, the canonical pair table out.

An adapter turns a batch of source rows (a :class:`pyarrow.Table` in the
source's own schema) into canonical pairs: ``chosen`` and ``rejected``
message lists (prompt turns, then the answer), an optional source ``id``,
and the adapter's extra columns (``score``, ``category``, ``chosen_score``,
...).  Every input row ends up in exactly one of three places: in a pair, in
the *invalid* rows (quarantined or raised by :mod:`prefcurate.io.convert`),
or in the rows the adapter *removed* by one of its documented rules (a
HelpSteer2 tie, a WildGuardMix prompt without both kinds of response, a
RewardBench prompt-only row), each with a reason.

The work is vectorised over Arrow columns; only the formats that need text
parsing (HH-RLHF transcripts, HelpSteer2 multi-turn prompts) or grouping
(WildGuardMix) touch rows one by one.  :mod:`prefcurate.io.convert` does the
rest (validation of every message list, ``prompt``, ids, ``source``).

This module is the registry (:data:`ADAPTERS`, :func:`get_adapter`,
:func:`detect_format`); the adapters live in :mod:`.chat`, :mod:`.magpie`
and :mod:`.labelled`.  See ``docs/adapters.md`` for the formats, their
detection rules and examples.
"""

from __future__ import annotations

import pyarrow as pa

from ...errors import InvalidInputError
from .base import CANONICAL_EXTRA, Adapter, AdapterOutput, BatchContext, Problem
from .chat import HHRLHF, TRL, ShareGPT, Skywork, UltraFeedback, parse_hh
from .labelled import (
    HelpSteer2,
    OffsetBias,
    RewardBench,
    SkyworkPromptSample,
    StackExchangePaired,
    WildGuardMix,
    parse_helpsteer2_prompt,
)
from .magpie import MAGPIE_VARIANTS, MagpieDPO, MagpieUltra, variant_from_name

__all__ = [
    "ADAPTERS",
    "ALIASES",
    "CANONICAL_EXTRA",
    "FORMATS",
    "MAGPIE_VARIANTS",
    "Adapter",
    "AdapterOutput",
    "BatchContext",
    "Problem",
    "detect_format",
    "get_adapter",
    "parse_helpsteer2_prompt",
    "parse_hh",
    "variant_from_name",
]

#: Detection order, most specific first: the first adapter whose ``detect``
#: accepts the columns wins (Magpie DPO rows also hold chosen / rejected
#: message lists; RewardBench rows also hold prompt / chosen / rejected).
ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        MagpieDPO(),
        MagpieUltra(),
        HelpSteer2(),
        WildGuardMix(),
        OffsetBias(),
        ShareGPT(),
        RewardBench(),
        UltraFeedback(),
        Skywork(),
        TRL(),
        HHRLHF(),
        StackExchangePaired(),
        SkyworkPromptSample(),
    )
}

ALIASES = {
    "canonical": "skywork",
    "wildguard": "wildguardmix",
    "evalbiasbench": "offsetbias",
    "llama_factory": "sharegpt",
    "llamafactory": "sharegpt",
    "openrlhf": "skywork",
    "trl-explicit": "trl",
    "magpie": "magpie_dpo",
    "hh": "hh_rlhf",
    "anthropic_hh": "hh_rlhf",
}

FORMATS = tuple(ADAPTERS)


def get_adapter(name: str) -> Adapter:
    """The adapter of a format name (or one of its aliases)."""
    key = ALIASES.get(name, name)
    if key not in ADAPTERS:
        raise InvalidInputError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)} (or 'auto')")
    return ADAPTERS[key]


def detect_format(table: pa.Table | pa.Schema, *, where: str = "input") -> str:
    """The name of the adapter for a table (or schema) of source rows."""
    if isinstance(table, pa.Schema):
        schema, sample = table, table.empty_table()
    else:
        schema, sample = table.schema, table.slice(0, 50)
    for a in ADAPTERS.values():
        if a.detect(schema, sample):
            return a.name
    raise InvalidInputError(
        f"{where}: cannot tell the pair format from the columns {schema.names}; pass format= one of "
        f"{', '.join(FORMATS)} (see docs/adapters.md)"
    )
