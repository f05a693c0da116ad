"""Recipes: the TOML file that names the sources and the stages' settings.

Each stage section parses into its stage's config (``[dedup]`` into
:class:`~prefcurate.stages.dedup.DedupConfig`, ...), the same object the
Python API and the CLI build, so a recipe setting has the name, default and
check of the keyword and the option.  Besides a stage's settings a section
holds what the pipeline needs: ``sources`` (select, margin), ``preset``
(select), ``benchmark`` / ``hf`` / ``split`` (decontaminate), the model
settings of [margin].
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..scoring.config import ScoreConfig
from ..stages.decontaminate import DecontaminateConfig
from ..stages.dedup import DedupConfig
from ..stages.margin import MarginConfig
from ..stages.select import PRESETS, SelectConfig
from ..stages.semantic import SemanticDecontaminateConfig

#: keys of [select] that are the pipeline's, not the stage's
SELECT_KEYS = ("sources", "preset")
#: keys of [decontaminate] that name the benchmark
DECONTAMINATE_KEYS = ("benchmark", "hf", "split", "semantic")
#: keys of [margin] that are the pipeline's: the sources, and the score
#: columns read when no model is named
MARGIN_KEYS = ("sources", "chosen_score", "rejected_score")


# ---------------------------------------------------------------- recipes


def _toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such recipe") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidInputError(f"{path}: invalid TOML: {e}") from None


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


@dataclass
class Recipe:
    """A curation recipe (see the module docstring for the TOML layout)."""

    name: str
    sources: list[dict[str, Any]]
    select: dict[str, Any] | None = None
    margin: dict[str, Any] | None = None
    dedup: dict[str, Any] | None = None
    decontaminate: dict[str, Any] | None = None
    output: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None
    #: the engine that runs every stage: "local" or "ray" (``engine = "ray"``)
    engine: str = "local"

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        p = Path(path)
        return cls.from_dict(_toml(p), path=p)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, path: Path | None = None) -> Recipe:
        where = str(path or "recipe")
        known = {
            "name",
            "description",
            "engine",
            "sources",
            "select",
            "margin",
            "dedup",
            "decontaminate",
            "output",
        }
        unknown = set(d) - known
        if unknown:
            raise InvalidInputError(f"{where}: unknown sections {sorted(unknown)}; known: {sorted(known)}")
        if not d.get("sources"):
            raise InvalidInputError(f"{where}: a recipe needs at least one [[sources]] entry")
        names = []
        for i, s in enumerate(d["sources"]):
            if "name" not in s:
                raise InvalidInputError(f"{where}: source {i} has no name")
            if "path" not in s and "hf" not in s:
                raise InvalidInputError(
                    f"{where}: source {s['name']!r} needs path = ... (a local copy) or hf = ..."
                )
            names.append(s["name"])
        if len(set(names)) != len(names):
            raise InvalidInputError(f"{where}: source names must be unique, got {names}")
        for section in ("select", "margin"):
            sec = d.get(section)
            if sec:
                missing = [s for s in sec.get("sources", []) if s not in names]
                if missing or not sec.get("sources"):
                    raise InvalidInputError(
                        f"{where}: [{section}] sources {missing or '(none)'} are not among {names}"
                    )
        engine = d.get("engine", "local")
        if engine not in ("local", "ray"):
            raise InvalidInputError(f"{where}: engine must be 'local' or 'ray', got {engine!r}")
        recipe = cls(
            name=d.get("name", path.stem if path else "recipe"),
            description=d.get("description", ""),
            sources=list(d["sources"]),
            select=d.get("select"),
            margin=d.get("margin"),
            dedup=d.get("dedup"),
            decontaminate=d.get("decontaminate"),
            output=d.get("output", {}),
            path=path,
            engine=engine,
        )
        # every stage section parses into its stage's config now: a misspelt
        # setting fails at load time, naming the section and the known settings
        recipe.select_config()
        recipe.dedup_config()
        recipe.decontaminate_config()
        recipe.semantic_tier()
        recipe.margin_configs()
        return recipe

    def margin_configs(self) -> tuple[ScoreConfig, MarginConfig] | None:
        """The [margin] section: the scorer's settings and the filter's."""
        if not self.margin:
            return None
        where = f"{self._where}: [margin]"
        spec = {k: v for k, v in self.margin.items() if k not in MARGIN_KEYS}
        margin = {k: spec.pop(k) for k in MarginConfig.names() if k in spec}
        return ScoreConfig.from_mapping(spec, where=where), MarginConfig.from_mapping(margin, where=where)

    def select_config(self) -> SelectConfig | None:
        """The [select] section as a config (its preset, then its settings)."""
        if not self.select:
            return None
        spec = {k: v for k, v in self.select.items() if k not in SELECT_KEYS}
        preset = self.select.get("preset")
        if preset is not None and preset not in PRESETS:
            raise InvalidInputError(
                f"{self._where}: [select] preset {preset!r} is not one of {sorted(PRESETS)}"
            )
        params = {**(PRESETS[preset] if preset else {}), **spec}
        return SelectConfig.from_mapping(params, where=f"{self._where}: [select]")

    def dedup_config(self) -> DedupConfig | None:
        if not self.dedup:
            return None
        return DedupConfig.from_mapping(self.dedup, where=f"{self._where}: [dedup]")

    def decontaminate_config(self) -> DecontaminateConfig | SemanticDecontaminateConfig | None:
        """The [decontaminate] section's first tier: the n-gram method, or
        the semantic one (``method = "semantic"``)."""
        if not self.decontaminate:
            return None
        spec = {k: v for k, v in self.decontaminate.items() if k not in DECONTAMINATE_KEYS}
        where = f"{self._where}: [decontaminate]"
        if spec.get("method") == "semantic":
            spec.pop("method")
            return SemanticDecontaminateConfig.from_mapping(spec, where=where)
        return DecontaminateConfig.from_mapping(spec, where=where)

    def semantic_tier(self) -> SemanticDecontaminateConfig | None:
        """``[decontaminate.semantic]``: a semantic tier run after the n-gram
        one, on the rows it kept (and scored on the rows it removed, for the
        tiers' overlap)."""
        sem = (self.decontaminate or {}).get("semantic")
        if sem is None:
            return None
        if not isinstance(sem, dict):
            raise InvalidInputError(f"{self._where}: [decontaminate.semantic] must be a table of settings")
        return SemanticDecontaminateConfig.from_mapping(sem, where=f"{self._where}: [decontaminate.semantic]")

    @property
    def _where(self) -> str:
        return str(self.path or "recipe")
