"""What scoring accepts: conversations (lists of ``{role, content}``) and
pair tables (a pyarrow Table, a path, a list of dicts, polars, a
``datasets.Dataset``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

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
