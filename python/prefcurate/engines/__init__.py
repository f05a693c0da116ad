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


def semantic(name: str) -> ModuleType:
    """The semantic stages' runners of the engine called ``name``."""
    if name == "local":
        from . import local_semantic

        return local_semantic
    if name == "ray":
        from .ray import semantic as ray_semantic

        return ray_semantic
    raise InvalidInputError(f"engine must be 'local' or 'ray', got {name!r}")
