"""The public stage functions: each builds its stage's config from the
keywords it is given (the config is the one place a parameter, its default
and its check are written) and runs the stage on the engine asked for.

    prefcurate.dedup(table, threshold=0.9)                  # DedupConfig(threshold=0.9), local
    prefcurate.dedup(table, DedupConfig(threshold=0.9), engine="ray")
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np

from . import engines
from ._progress import ProgressArg
from ._unicode import ensure_tables
from .arrays import from_numpy
from .config import StageConfig
from .errors import InvalidInputError
from .inputs import as_table
from .schema import StageResult
from .stages.decontaminate import DecontaminateConfig, DecontaminationResult
from .stages.dedup import DedupConfig, DedupResult
from .stages.dedup_index import DedupIndex
from .stages.select import SelectConfig
from .stages.semantic import SemanticDecontaminateConfig, SemanticDedupConfig

C = TypeVar("C", bound=StageConfig)


def make_config(cls: type[C], config: C | None, settings: dict[str, Any], what: str) -> C:
    """``config`` with ``settings`` applied (or a new config from them);
    an unknown keyword is a TypeError naming the known ones."""
    unknown = sorted(set(settings) - set(cls.names()))
    if unknown:
        raise TypeError(
            f"{what}() got unexpected keyword(s) {unknown}; its settings are {', '.join(cls.names())}"
        )
    if config is None:
        return cls(**settings)
    if not isinstance(config, cls):
        raise InvalidInputError(f"{what}: config must be a {cls.__name__}, got {type(config).__name__}")
    return config.replace(**settings) if settings else config


def _semantic(config: Any, settings: dict[str, Any], cls: type[StageConfig]) -> Any:
    """The semantic config when the call asks for the semantic method
    (``method="semantic"`` or a semantic config), else None."""
    if isinstance(config, cls) or settings.get("method") == "semantic":
        rest = {k: v for k, v in settings.items() if k != "method"}
        return make_config(cls, config if isinstance(config, cls) else None, rest, cls.stage)
    return None


def decontaminate(
    train: Any,
    benchmark: Any,
    config: DecontaminateConfig | SemanticDecontaminateConfig | None = None,
    *,
    num_threads: int | None = None,
    progress: ProgressArg = False,
    engine: str = "local",
    ray_options: Any = None,
    **settings: Any,
) -> DecontaminationResult:
    """Find training prompts that overlap benchmark prompts and split the rows.

    ``train`` and ``benchmark``: a list of str, a pyarrow array or table, a
    ``datasets.Dataset``, a polars DataFrame, a path (jsonl, json, parquet,
    csv, saved dataset), or (benchmark) a :class:`BenchmarkIndex` built with
    the same method and n-grams.  Chat-format message columns give their
    first user turn.  Settings (``method``, ``ngram_range``, ``text``, ...):
    :class:`~prefcurate.stages.decontaminate.DecontaminateConfig`, as
    keywords or ``config=``.  ``num_threads``: threads for the scan (default:
    all cores; results do not depend on it).  ``progress``: ``True`` for a
    progress bar, or a ``callable(done, total)``.  ``engine``: ``"local"`` or
    ``"ray"`` (the reference method; ``kept`` / ``removed`` are then lazy Ray
    datasets), with ``ray_options`` (a dict or
    :class:`prefcurate.engines.ray.RayOptions`)."""
    sem = _semantic(config, settings, SemanticDecontaminateConfig)
    if sem is not None:
        runner = engines.semantic(engine)
        if engine == "ray":
            return runner.decontaminate(train, benchmark, sem, options=ray_options)  # type: ignore[no-any-return]
        return runner.decontaminate(train, benchmark, sem, progress=progress)  # type: ignore[no-any-return]
    cfg = make_config(
        DecontaminateConfig, cast("DecontaminateConfig | None", config), settings, "decontaminate"
    )
    eng = engines.get(engine)
    if engine == "ray":
        return eng.decontaminate(train, benchmark, cfg, options=ray_options)
    return eng.decontaminate(train, benchmark, cfg, num_threads=num_threads, progress=progress)


def dedup(
    data: Any,
    config: DedupConfig | SemanticDedupConfig | None = None,
    *,
    against: DedupIndex | None = None,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
    **settings: Any,
) -> DedupResult:
    """Remove duplicates (see :mod:`prefcurate.stages.dedup`).

    ``data``: a canonical pair table (chosen / rejected message lists:
    pair-aware), or texts as for :func:`decontaminate`.  Settings
    (``level``, ``method``, ``threshold``, ``keep``, ...):
    :class:`~prefcurate.stages.dedup.DedupConfig`, as keywords or
    ``config=``.  ``against``: a :class:`DedupIndex`, to remove the rows that
    duplicate its rows instead (its settings apply; local engine only).
    ``engine`` / ``ray_options``: as for :func:`decontaminate`."""
    sem = _semantic(config, settings, SemanticDedupConfig)
    if sem is not None:
        if against is not None:
            raise InvalidInputError(
                "dedup: method='semantic' does not take against= (a DedupIndex of n-gram keys)"
            )
        runner = engines.semantic(engine)
        if engine == "ray":
            return runner.dedup(data, sem, options=ray_options)  # type: ignore[no-any-return]
        return runner.dedup(data, sem)  # type: ignore[no-any-return]
    cfg = make_config(DedupConfig, cast("DedupConfig | None", config), settings, "dedup")
    eng = engines.get(engine)
    ensure_tables()
    if against is not None:
        if engine != "local":
            raise InvalidInputError(
                "dedup: engine='ray' does not take against= (a DedupIndex); use engine='local'"
            )
        return engines.local.dedup_against(against, data, cfg, num_threads=num_threads)
    if engine == "ray":
        return eng.dedup(data, cfg, options=ray_options)
    return eng.dedup(data, cfg, num_threads=num_threads)


def select_top_result(
    table: Any,
    config: SelectConfig | None = None,
    *,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
    **settings: Any,
) -> StageResult:
    """Kept and removed rows of a score-based selection (see
    :mod:`prefcurate.stages.select`).  Removed rows carry ``stage``,
    ``reason``, ``select_group``, ``rank`` (1-based within the group),
    ``adjusted_score`` and ``cutoff_score``.  Settings (``score``,
    ``group_by``, ``k`` / ``fraction``, ``offsets``, ...):
    :class:`~prefcurate.stages.select.SelectConfig`; on Ray ``kept`` and
    ``removed`` are lazy datasets."""
    cfg = make_config(SelectConfig, config, settings, "select_top_result")
    if engine == "ray":
        return engines.get(engine).select(table, cfg, options=ray_options)
    return engines.get(engine).select(table, cfg, num_threads=num_threads)


def select_top_indices(
    table: Any,
    config: SelectConfig | None = None,
    *,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
    **settings: Any,
) -> np.ndarray:
    """Indices (ascending, int64) of the rows :func:`select_top` keeps."""
    cfg = make_config(SelectConfig, config, settings, "select_top_indices")
    if engine == "ray":
        return engines.get(engine).select_indices(table, cfg, options=ray_options)
    return engines.get(engine).select_indices(table, cfg, num_threads=num_threads)


def select_top(
    table: Any,
    config: SelectConfig | None = None,
    *,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
    **settings: Any,
) -> Any:
    """The top rows of each group, in their original order (a table; a lazy
    Ray dataset on Ray)."""
    cfg = make_config(SelectConfig, config, settings, "select_top")
    if engine == "ray":
        return engines.get(engine).select(table, cfg, options=ray_options).kept
    t = as_table(table)
    return t.take(from_numpy(engines.local.select_indices(t, cfg, num_threads=num_threads)))
