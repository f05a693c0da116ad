"""The curation pipeline: a TOML recipe (:mod:`.run`'s :class:`Recipe`), the
stage cache, the run on an engine (``local`` or ``ray``) and the audit
report (:mod:`.report`)."""

from __future__ import annotations

from .recipe import Recipe, _toml_loads
from .run import DEMO_MODEL, Pipeline, PipelineError, PipelineResult, recipes_dir, run_recipe

__all__ = [
    "DEMO_MODEL",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Recipe",
    "_toml_loads",
    "recipes_dir",
    "run_recipe",
]
