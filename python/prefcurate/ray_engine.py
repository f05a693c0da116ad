"""Deprecated: the Ray engine is :mod:`prefcurate.engines.ray` (this alias
stays for one release)."""

from __future__ import annotations

import warnings

from .engines.ray import ROW, FailOnce, RayOptions, to_table, write_parquet

warnings.warn(
    "prefcurate.ray_engine is deprecated; use prefcurate.engines.ray", DeprecationWarning, stacklevel=2
)

__all__ = ["ROW", "FailOnce", "RayOptions", "to_table", "write_parquet"]
