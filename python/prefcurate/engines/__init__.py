"""Engines execute stages: ``local`` (this process, the default) and ``ray``
(Ray Data).  An engine imports the stages it runs; no stage imports an
engine.  :func:`get` picks one by name (Ray's module is imported only when
asked for)."""

from __future__ import annotations

from types import ModuleType

from ..errors import InvalidInputError
from . import local

NAMES = ("local", "ray")


def get(name: str) -> ModuleType:
    """The engine module called ``name``."""
    if name == "local":
        return local
    if name == "ray":
        from . import ray

        return ray
    raise InvalidInputError(f"engine must be 'local' or 'ray', got {name!r}")
