"""Data in and out: tables, preference pairs in every supported format, and
pair files laid out for trainers.

=====================  =====================================================
module                 job
=====================  =====================================================
:mod:`.tables`         table files: read_table, write_table, iter_batches,
                       formats, compression (the one place files are opened)
:mod:`.readers`        source rows with their origin: files, folders, HF
                       datasets and hub names, Arrow, polars, records
:mod:`.arrow`          Arrow column helpers shared by the modules below
:mod:`.validate`       checks of message lists and pairs
:mod:`.adapters`       every source format -> canonical pairs (registry,
                       detection)
:mod:`.convert`        the conversion engine: convert_pairs, read_pairs,
                       ConvertResult, the quarantine
:mod:`.stream`         iter_pairs, PairStream
:mod:`.writer`         write_pairs and its layouts (trl, trl-explicit,
                       openrlhf, llamafactory, skywork)
=====================  =====================================================
"""

from __future__ import annotations

from .adapters import ADAPTERS, FORMATS, detect_format, get_adapter, parse_helpsteer2_prompt, parse_hh
from .convert import (
    AmbiguousSourceWarning,
    ConvertResult,
    InvalidRowsWarning,
    OnInvalid,
    convert_pairs,
    pair_ids,
    read_pairs,
)
from .readers import dataset_table, records_to_table
from .stream import PairStream, iter_pairs
from .tables import file_format, iter_batches, read_table, shards, split_suffix, write_table
from .writer import LAYOUTS, layout_table, register_llamafactory, write_pairs

# the names the Ray engine used before the io package existed
_shards = shards
_split_suffix = split_suffix

__all__ = [
    "ADAPTERS",
    "FORMATS",
    "LAYOUTS",
    "AmbiguousSourceWarning",
    "ConvertResult",
    "InvalidRowsWarning",
    "OnInvalid",
    "PairStream",
    "convert_pairs",
    "dataset_table",
    "detect_format",
    "file_format",
    "get_adapter",
    "iter_batches",
    "iter_pairs",
    "layout_table",
    "pair_ids",
    "parse_helpsteer2_prompt",
    "parse_hh",
    "read_pairs",
    "read_table",
    "records_to_table",
    "register_llamafactory",
    "shards",
    "split_suffix",
    "write_pairs",
    "write_table",
]
