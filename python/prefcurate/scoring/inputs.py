"""What scoring accepts: conversations (lists of ``{role, content}``) and
pair tables (a pyarrow Table, a path, a list of dicts, polars, a
``datasets.Dataset``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InvalidInputError


def _check_conversation(conv: Any, label: str) -> list[dict[str, str]]:
    if isinstance(conv, np.ndarray):
        conv = conv.tolist()
    if not isinstance(conv, (list, tuple)):
        raise InvalidInputError(
            f"{label}: expected a list of {{role, content}} messages, got {type(conv).__name__}"
        )
    if not conv:
        raise InvalidInputError(f"{label}: empty conversation (no messages)")
    out = []
    for k, m in enumerate(conv):
        if not isinstance(m, Mapping):
            raise InvalidInputError(
                f"{label}: message {k} is a {type(m).__name__}, not a {{role, content}} object"
            )
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise InvalidInputError(f"{label}: message {k} has no role (got {role!r})")
        if not isinstance(content, str):
            raise InvalidInputError(
                f"{label}: message {k} ({role}) has {type(content).__name__} content, expected str"
            )
        out.append({"role": role, "content": content})
    return out


def _as_pair_table(pairs: Any) -> pa.Table:
    if isinstance(pairs, pa.Table):
        return pairs
    if isinstance(pairs, (str, os.PathLike)):
        from ..io import read_table

        return read_table(pairs)
    if isinstance(pairs, list):
        return pa.Table.from_pylist(pairs)
    if hasattr(pairs, "to_arrow"):  # polars
        return pairs.to_arrow()
    if hasattr(pairs, "data") and hasattr(pairs.data, "table"):  # datasets.Dataset
        from ..inputs import dataset_table

        return dataset_table(pairs)
    raise InvalidInputError(
        f"pairs: expected a pyarrow Table, a path or a datasets.Dataset, got {type(pairs).__name__}"
    )
