"""The Skywork recipe end to end: read -> filter -> select -> score and margin
filter -> merge -> dedup -> decontaminate -> write, with an audit.

A recipe is a TOML file (``recipes/*.toml``)::

    name = "skywork-80k-v0.2"
    [[sources]]
    name = "magpie_air"                   # the source column of its pairs
    path = "magpie_air.parquet"           # under --data-dir; or
    hf = "Magpie-Align/Magpie-Air-DPO-100K-v0.1"   # datasets.load_dataset
    split = "train"
    format = "magpie_dpo"                 # an adapter (default: detect)
    where = { adversarial = true }        # keep only rows with these values
    [select]                              # on the pooled sources named
    sources = ["magpie_air", ...]
    preset = "skywork-magpie"             # or k / fraction / offsets ...
    [margin]                              # reward-model margin filter
    sources = ["wildguard"]
    model = "Skywork/Skywork-Reward-Llama-3.1-8B"   # or scores from columns
    [dedup]                               # optional
    level = "pair"
    [decontaminate]                       # optional
    benchmark = "rewardbench.jsonl"       # under --data-dir, or hf = ...
    [output]
    format = "jsonl"                      # jsonl, json, parquet (default), dataset; .gz/.zst/... too
    layout = "trl"                        # a write_pairs layout (docs/layouts.md); default trl
    margin = false                        # true: a margin column for TRL's / OpenRLHF's margin loss
    language = ["en"]                     # the dataset card's language, if known

Every stage is a function ``table -> (kept, removed)`` from the stage modules
(:func:`select_top_result`, :func:`filter_margin`, :func:`dedup`,
:func:`decontaminate`); ``input == kept + removed`` is checked at every stage
and a violation stops the run.  Each stage's decisions (not copies of its
tables: :mod:`.cache`) are cached under ``OUT/.cache`` by a key chained from
the inputs' fingerprints and the stage parameters, so a re-run (after a crash
or a change) starts at the first stage whose inputs changed, and produces the
same output.  ``engine = "ray"`` (or ``Pipeline(engine="ray")``) runs every
stage on Ray Data.

The curated pairs are written with :func:`prefcurate.io.write_pairs` in the
recipe's layout (``trl`` unless ``[output] layout`` or ``Pipeline(layout=)``
says otherwise), so trainers read the file as written, and every run writes
the dataset card ``README.md`` (:mod:`.card`) last: the mixture, the rules of
every stage with their counts, the decontamination and the removed rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__, engines, hub
from ..api import decontaminate, dedup, select_top_result
from ..embed import SemanticIndex
from ..errors import PrefcurateError
from ..schema import StageResult, with_columns
from ..stages.margin import filter_margin
from ..stages.semantic import SemanticDecontaminationResult
from .cache import StageCache, numbered
from .recipe import Recipe

log = logging.getLogger("prefcurate.pipeline")

#: The margin model name that stands for the demo's tiny reward model.
DEMO_MODEL = "prefcurate-demo-tiny"

STAGE_KINDS = ("read", "filter", "select", "margin", "merge", "dedup", "decontaminate")

#: the settings of a recipe's [output] section
OUTPUT_KEYS = ("format", "layout", "margin", "language")
#: the formats of the curated pairs (``dataset``: a ``save_to_disk`` folder)
OUTPUT_FORMATS = ("jsonl", "json", "parquet", "dataset")


class PipelineError(PrefcurateError):
    """A recipe that cannot run, or a stage that broke the accounting."""


# ---------------------------------------------------------------- fingerprints


def _fingerprint_path(p: Path) -> dict[str, Any]:
    """Size and modification time of a file, or of every file in a folder."""
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory (a recipe source; see --data-dir)")
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    return {
        "path": str(p.resolve()),
        "files": [
            (str(f.relative_to(p)) if f != p else "", f.stat().st_size, f.stat().st_mtime_ns) for f in files
        ],
    }


def _key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


# ---------------------------------------------------------------- results


@dataclass
class PipelineResult:
    """What a run produced."""

    recipe: Recipe
    out: Path
    final: pa.Table
    stages: list[StageResult]
    timings: dict[str, float]
    cached: list[str]
    #: how the curated pairs were written: ``file`` (relative to ``out``),
    #: ``format``, ``layout``, ``margin``, ``language`` (set by the run's write)
    output: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.name,
            "prefcurate": __version__,
            "output_rows": self.final.num_rows,
            "stages": [
                {
                    **s.summary(),
                    **_read_counts(s),
                    "seconds": round(self.timings.get(s.stage, 0.0), 3),
                    "cached": s.stage in self.cached,
                }
                for s in self.stages
            ],
        }

    def stage(self, name: str) -> StageResult:
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(name)


def _index_settings(config: Any) -> dict[str, Any]:
    return {
        "text": config.benchmark_text,
        "id": config.benchmark_id,
        "subset": config.benchmark_subset,
        "cache_dir": config.cache_dir,
    }


def _read_counts(s: StageResult) -> dict[str, Any]:
    """A read stage's own units: records in (as the file holds them), pairs
    out, records dropped.  Formats that pair two records (HelpSteer2,
    WildGuardMix) make fewer pairs than records, so a read stage's ``input``
    (pairs made + records dropped) is not the file's record count."""
    conv = s.info.get("convert") if s.stage.startswith("read:") else None
    if not conv or "rows_read" not in conv:
        return {}
    return {"records_in": conv["rows_read"], "pairs_out": s.n_kept, "records_dropped": s.n_removed}


# ---------------------------------------------------------------- the pipeline


def _output_settings(recipe: Recipe, layout: str | None) -> dict[str, Any]:
    """The recipe's [output] section, checked, with its defaults: the pairs'
    ``file`` (relative to the output folder), ``format``, ``layout`` (the
    ``layout`` argument, else the recipe's, else ``trl``), ``margin`` and the
    card's ``language``."""
    from ..io import LAYOUTS
    from ..io.tables import COMPRESSIONS
    from ..io.writer import MARGIN_LAYOUTS

    where = f"{recipe.path or 'recipe'}: [output]"
    o = dict(recipe.output)
    unknown = sorted(set(o) - set(OUTPUT_KEYS))
    if unknown:
        raise PipelineError(f"{where}: unknown setting(s) {unknown}; known: {', '.join(OUTPUT_KEYS)}")
    fmt = o.get("format", "parquet")
    base, _, compression = str(fmt).partition(".")
    if base not in OUTPUT_FORMATS or (
        compression and (base not in ("jsonl", "json") or f".{compression}" not in COMPRESSIONS)
    ):
        raise PipelineError(
            f"{where}: format {fmt!r} is not one of {', '.join(OUTPUT_FORMATS)} "
            f"(jsonl and json may be compressed: jsonl.gz, jsonl.zst, ...)"
        )
    lay = layout if layout is not None else o.get("layout", "trl")
    if lay not in LAYOUTS:
        what = "layout" if layout is not None else f"{where}: layout"
        raise PipelineError(f"{what} {lay!r} is not one of {', '.join(LAYOUTS)} (docs/layouts.md)")
    margin = o.get("margin", False)
    if not isinstance(margin, (bool, str)) or margin == "":
        raise PipelineError(f"{where}: margin must be true, false or the name of a column, got {margin!r}")
    if margin is not False and lay not in MARGIN_LAYOUTS:
        raise PipelineError(
            f"{where}: margin = {margin!r}, but layout {lay!r} has no margin column; "
            f"use one of {', '.join(MARGIN_LAYOUTS)} or leave margin out"
        )
    if lay == "llamafactory" and (base == "dataset" or compression):
        raise PipelineError(
            f"{where}: layout 'llamafactory' needs format jsonl, json or parquet, got {fmt!r}"
        )
    language = o.get("language", [])
    language = [language] if isinstance(language, str) else language
    if not isinstance(language, list) or not all(isinstance(x, str) and x for x in language):
        raise PipelineError(f"{where}: language must be a language code or a list of them, got {language!r}")
    file = recipe.name if base == "dataset" else f"{recipe.name}.{fmt}"
    return {"file": file, "format": fmt, "layout": lay, "margin": margin, "language": language}


def _unscored(table: pa.Table, column: str) -> str | None:
    """Where the margin column ``column`` of the curated pairs is missing, as a
    sentence (counts by source, a few ids); None when every pair has one."""
    import numpy as np

    if column not in table.column_names:
        return f"the curated pairs have no {column!r} column"
    col = table.column(column)
    try:
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return f"column {column!r} is {col.type}, not numbers"
    bad = np.isnan(values)  # nulls are NaN here
    if not bad.any():
        return None
    sources = table.column("source").to_pylist() if "source" in table.column_names else ["?"] * len(bad)
    per: dict[str, int] = {}
    for i in np.flatnonzero(bad):
        per[str(sources[i])] = per.get(str(sources[i]), 0) + 1
    ids = table.column("id").filter(pa.array(bad)).to_pylist()[:3] if "id" in table.column_names else []
    counts = ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
    return (
        f"{int(bad.sum())} of {len(bad)} curated pairs have no {column!r} ({counts}; first ids: "
        f"{', '.join(map(str, ids))})"
    )


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


class Pipeline:
    """Run a :class:`Recipe` (see the module docstring).

    Parameters
    ----------
    recipe:
        A Recipe, or the path of a TOML recipe.
    out:
        The output folder: the curated pairs (``<recipe name>.<format>``),
        the removed rows per stage, ``summary.json``, ``report.md`` /
        ``report.html`` and their plots, and the dataset card ``README.md``.
    data_dir:
        Where the sources' and the benchmark's ``path`` entries are (default:
        the recipe's folder).
    scorer:
        A ready :class:`prefcurate.RewardScorer` for the margin stage, instead
        of loading the recipe's ``model``; or a function ``table -> (chosen
        scores, rejected scores)`` when the scores come from elsewhere.
    stage_hook:
        Called as ``stage_hook(name, "start" | "end")`` around every stage
        (benchmarks measure with it).
    cache:
        Reuse cached stage outputs (``OUT/.cache``).  Stage outputs are
        written to the cache either way (in background threads, so that a
        later run can resume); ``False`` only ignores what is there.
    progress:
        Show progress bars.
    layout:
        The layout of the curated pairs (:data:`prefcurate.io.LAYOUTS`:
        ``trl``, ``trl-explicit``, ``openrlhf``, ``llamafactory``,
        ``skywork``, ``canonical``), instead of the recipe's ``[output]
        layout`` (default ``trl``).
    """

    def __init__(
        self,
        recipe: Recipe | str | os.PathLike,
        out: str | os.PathLike,
        *,
        data_dir: str | os.PathLike | None = None,
        scorer: Any = None,
        cache: bool = True,
        progress: bool = False,
        num_threads: int | None = None,
        stage_hook: Any = None,
        engine: str | None = None,
        ray_options: Any = None,
        layout: str | None = None,
    ) -> None:
        self.recipe = recipe if isinstance(recipe, Recipe) else Recipe.load(recipe)
        # the [output] section is checked now: a bad setting fails before the stages run
        self.output = _output_settings(self.recipe, layout)
        self.engine = engine or self.recipe.engine
        engines.get(self.engine)  # an unknown engine fails here
        self.ray_options = ray_options
        self.out = Path(out)
        base = self.recipe.path.parent if self.recipe.path else Path.cwd()
        self.data_dir = Path(data_dir) if data_dir is not None else base
        self.scorer = scorer
        self.cache = cache
        self.progress = progress
        self.num_threads = num_threads
        self.stage_hook = stage_hook
        # stage outputs are written to the cache in a background thread,
        # overlapping the next stage; a stage's cache entry is complete once
        # its done.json exists (written last, then the folder renamed)
        self._cache = StageCache(self.out / ".cache", cache)

    # -- planning

    def plan(self) -> list[str]:
        """The stages a run would execute, one line each (``--dry-run``)."""
        r = self.recipe
        lines = []
        for s in r.sources:
            local = self._local(s)
            where = str(local) if local is not None else f"hf {s['hf']!r} split {s.get('split', 'train')!r}"
            lines.append(f"read:{s['name']}: {where} (format {s.get('format', 'auto')})")
            if s.get("where"):
                lines.append(f"filter:{s['name']}: keep rows with {s['where']}")
        if r.select:
            params = {k: v for k, v in r.select.items() if k != "sources"}
            lines.append(f"select: pool {r.select['sources']} with {params}")
        if r.margin:
            how = (
                r.margin.get("model")
                or f"score columns {r.margin.get('chosen_score', 'chosen_score')}/{r.margin.get('rejected_score', 'rejected_score')}"
            )
            lines.append(
                f"margin: {r.margin['sources']} scored by {how}, keep margin > {r.margin.get('min_margin', 0.0)}"
            )
        lines.append(f"merge: {[s['name'] for s in r.sources]}")
        if r.dedup:
            lines.append(f"dedup: {r.dedup}")
        if r.decontaminate:
            lines.append(f"decontaminate: { {k: v for k, v in r.decontaminate.items() if k != 'semantic'} }")
            if r.semantic_tier() is not None:
                lines.append(
                    f"decontaminate:semantic: {r.decontaminate['semantic']} (on the rows the n-gram tier kept)"
                )
        o = self.output
        margin = (
            f", margin from {o['margin'] if isinstance(o['margin'], str) else 'margin'}"
            if o["margin"]
            else ""
        )
        lines.append(
            f"write: {self.out / o['file']} ({o['format']}, layout {o['layout']}{margin}), "
            "removed/, summary.json, report.md, report.html, README.md (the dataset card)"
        )
        return lines

    # -- caching

    # -- stages

    def _local(self, s: dict[str, Any]) -> Path | None:
        """The local copy of a source: its ``path`` under the data folder, if
        it exists (or if the source has no ``hf`` name to fall back on)."""
        if "path" not in s:
            return None
        p = self.data_dir / s["path"]
        return p if p.exists() or "hf" not in s else None

    def _read(self, s: dict[str, Any]) -> StageResult:
        from ..io import convert_pairs

        src: Any = self._local(s)
        if src is None:
            try:
                import datasets
            except ImportError:
                raise PipelineError(
                    f"source {s['name']!r}: reading {s['hf']!r} needs `datasets` (pip install 'prefcurate[hf]')"
                ) from None
            hub.check(s["hf"], f"source {s['name']!r}: dataset", kind="dataset")
            src = datasets.load_dataset(s["hf"], s.get("config"), split=s.get("split", "train"))
        res = convert_pairs(
            src,
            s.get("format", "auto"),
            source=s["name"],
            split=s.get("split"),
            on_invalid=s.get("on_invalid", "quarantine"),
        )
        removed = _concat([res.removed, res.quarantine])
        if removed.num_rows and "stage" in removed.column_names:
            # every dropped record is counted under its source (quarantined
            # records have no pair columns, and so no source of their own)
            removed = with_columns(
                removed,
                {
                    "stage": pa.array([f"read:{s['name']}"] * removed.num_rows, pa.string()),
                    "source": pa.array([s["name"]] * removed.num_rows, pa.string()),
                },
            )
        # formats that pair two records (HelpSteer2, WildGuardMix) make fewer
        # pairs than records: the stage counts pairs made + records dropped,
        # and the records read are in info["convert"]["rows_read"]
        n = res.pairs.num_rows + removed.num_rows
        return StageResult(f"read:{s['name']}", res.pairs, removed, n, {"convert": res.stats})

    def _filter(self, name: str, table: pa.Table, where: dict[str, Any]) -> StageResult:
        import numpy as np

        keep = np.ones(table.num_rows, dtype=bool)
        why = np.array([None] * table.num_rows, dtype=object)
        for col, value in where.items():
            if col not in table.column_names:
                raise PipelineError(
                    f"filter:{name}: no column {col!r} to filter on; columns are {table.column_names}"
                )
            vals = table.column(col).to_pylist()
            ok = np.array([v == value for v in vals], dtype=bool)
            why[keep & ~ok] = f"{col}_not_{str(value).lower()}"
            keep &= ok
        from ..schema import split_stage

        kept, removed = split_stage(table, keep, f"filter:{name}", why[~keep].tolist())
        return StageResult(f"filter:{name}", kept, removed, table.num_rows)

    def _select(self, pool: pa.Table) -> StageResult:

        return select_top_result(pool, self.recipe.select_config(), **self._engine_kw()).to_tables()

    def _engine_kw(self) -> dict[str, Any]:
        """Keywords that run a stage on the pipeline's engine."""
        if self.engine == "ray":
            return {"engine": "ray", "ray_options": self.ray_options}
        return {"num_threads": self.num_threads}

    def _margin(self, table: pa.Table) -> StageResult:
        m = self.recipe.margin or {}
        configs = self.recipe.margin_configs()
        assert configs is not None
        score_cfg, margin_cfg = configs
        if self.scorer is not None and callable(self.scorer) and not hasattr(self.scorer, "score_pairs"):
            # scores computed elsewhere: scorer(table) -> (chosen scores, rejected scores)
            res = filter_margin(table, self.scorer(table), margin_cfg)
            return StageResult("margin", res.kept, res.removed, res.n_input, res.info)
        if score_cfg.model is not None or self.scorer is not None:
            scorer = self.scorer
            if scorer is None and score_cfg.model == DEMO_MODEL:
                from ..demo_model import tiny_reward_model

                model, tokenizer = tiny_reward_model()
                scorer = score_cfg.replace(device="cpu").scorer(model, tokenizer)
            if scorer is None:
                if score_cfg.cache_dir is None:
                    score_cfg = score_cfg.replace(cache_dir=str(self.out / ".cache" / "scores"))
                scorer = score_cfg.scorer()
            if self.engine == "ray":
                # the model scores the pairs in Ray actors; the margin rule is the stage's own
                check = None
                if margin_cfg.check and table.num_rows:
                    convs = table.column("chosen").to_pylist()[: margin_cfg.check]
                    check = scorer.check(convs, n=margin_cfg.check).as_dict()
                scored = engines.get("ray").to_table(
                    scorer.score_pairs(table, engine="ray", ray_options=self.ray_options)
                )
                res = filter_margin(scored, None, margin_cfg)
                res.info["model"] = scorer.model_id
                if check is not None:
                    res.info["parity_check"] = check
            else:
                res = filter_margin(table, scorer, margin_cfg)
        else:
            c, r = m.get("chosen_score", "chosen_score"), m.get("rejected_score", "rejected_score")
            for col in (c, r):
                if col not in table.column_names:
                    raise PipelineError(
                        f"margin: no model and no score column {col!r}; columns are {table.column_names}"
                    )
            scores = (
                table.column(c).to_numpy(zero_copy_only=False),
                table.column(r).to_numpy(zero_copy_only=False),
            )
            res = filter_margin(table, scores, margin_cfg)
        return StageResult("margin", res.kept, res.removed, res.n_input, res.info)

    def _dedup(self, table: pa.Table) -> StageResult:

        res = dedup(table, self.recipe.dedup_config(), **self._engine_kw())
        st = res.stage_result().to_tables()
        return StageResult("dedup", st.kept, st.removed, st.n_input, {"summary": res.summary()})

    def _benchmark(self) -> Any:
        spec = self.recipe.decontaminate or {}
        local = self.data_dir / spec["benchmark"] if "benchmark" in spec else None
        if "hf" in spec and (local is None or not local.exists()):
            import datasets

            hub.check(spec["hf"], "[decontaminate] benchmark", kind="dataset")
            return datasets.load_dataset(spec["hf"], split=spec.get("split", "filtered"))
        if local is not None:
            if not local.exists():
                raise FileNotFoundError(f"{local}: the benchmark file of [decontaminate] (see --data-dir)")
            return local
        raise PipelineError("[decontaminate] needs benchmark = <path> or hf = <name>")

    def _decontaminate(self, table: pa.Table) -> StageResult:
        res = decontaminate(table, self._benchmark(), self.recipe.decontaminate_config(), **self._engine_kw())
        return res.stage_result().to_tables()

    def _semantic_tier(self, table: pa.Table, first: StageResult) -> StageResult:
        """The semantic tier on the rows the n-gram tier kept; the rows that
        tier removed are scored too (not removed again), for the overlap."""
        config = self.recipe.semantic_tier()
        assert config is not None
        bench = self._benchmark()
        index = SemanticIndex.build(bench, config.make_embedder(), **_index_settings(config))
        res = cast(SemanticDecontaminationResult, decontaminate(table, index, config, **self._engine_kw()))
        st = res.stage_result().to_tables()
        info = dict(st.info)
        prior = first.removed
        both = 0
        if prior.num_rows and "prompt" in prior.column_names:
            again = cast(
                SemanticDecontaminationResult,
                decontaminate(prior.select(["prompt"]), index, config.replace(text="prompt")),
            )
            both = int(again.contaminated.sum())
            info["ngram_removed_scores"] = again.best_score.tolist()
        info["tiers"] = {
            "ngram_removed": first.n_removed,
            "semantic_removed": st.n_removed,
            "flagged_by_both": both,
            "ngram_only": first.n_removed - both,
            "semantic_only": st.n_removed,
        }
        info["flagged_scores"] = res.best_score[res.contaminated].tolist()
        if res.calibration is not None:
            counts, edges = res.calibration.histogram()
            info["calibration_histogram"] = {"counts": counts.tolist(), "edges": edges.tolist()}
        return StageResult("decontaminate:semantic", st.kept, st.removed, st.n_input, info)

    # -- running

    def _bench_fingerprint(self) -> Any:
        spec = self.recipe.decontaminate or {}
        if "benchmark" in spec and (self.data_dir / spec["benchmark"]).exists():
            return _fingerprint_path(self.data_dir / spec["benchmark"])
        return [spec.get("hf"), spec.get("split")]

    def run(self) -> PipelineResult:
        """Run every stage (reusing the cache), write the outputs and the report."""
        try:
            return self._run()
        except BaseException:
            self._cache.flush(quiet=True)  # what was computed stays cached for the next run
            raise

    def _run(self) -> PipelineResult:
        r = self.recipe
        self.out.mkdir(parents=True, exist_ok=True)
        stages: list[StageResult] = []
        timings: dict[str, float] = {}
        cached: list[str] = []
        steps = self.plan()

        with self._progress(len(steps)) as advance:

            def stage(
                name: str, key: str, fn: Any, inp: pa.Table | None = None, *, cache: bool = True
            ) -> StageResult:
                """Run ``fn`` (on ``inp`` numbered, when the stage has an
                input table), or make its result from the cache."""
                if self.stage_hook:
                    self.stage_hook(name, "start")
                t0 = time.perf_counter()
                res = self._cache.load(name, key, inp) if cache else None
                if res is not None:
                    cached.append(name)
                    log.info("%s: cached (%s)", name, key)
                else:
                    res = fn() if inp is None else fn(numbered(inp))
                    if res.kept.num_rows + res.removed.num_rows != res.n_input:
                        raise PipelineError(
                            f"{name}: {res.n_input} rows in but {res.kept.num_rows} kept + {res.removed.num_rows} removed"
                        )
                    entry = None
                    if inp is not None:
                        res, entry = self._cache.decisions(res, inp)
                    if cache:
                        self._cache.store(key, res, entry)
                timings[name] = time.perf_counter() - t0
                log.info(
                    "%s: %d in, %d kept, %d removed (%.2f s)",
                    name,
                    res.n_input,
                    res.kept.num_rows,
                    res.removed.num_rows,
                    timings[name],
                )
                stages.append(res)
                advance(name)
                if self.stage_hook:
                    self.stage_hook(name, "end")
                return res

            per_source: dict[str, tuple[pa.Table, str]] = {}
            for s in r.sources:
                local = self._local(s)
                fp = (
                    _fingerprint_path(local)
                    if local is not None
                    else {"hf": s["hf"], "config": s.get("config"), "split": s.get("split")}
                )
                key = _key("read", __version__, s, fp)
                res = stage(f"read:{s['name']}", key, lambda s=s: self._read(s))
                table = res.kept
                if s.get("where"):
                    key = _key("filter", key, s["where"])
                    res = stage(
                        f"filter:{s['name']}",
                        key,
                        lambda t, s=s: self._filter(s["name"], t, s["where"]),
                        table,
                    )
                    table = res.kept
                per_source[s["name"]] = (table, key)

            if r.select:
                names = r.select["sources"]
                key = _key("select", r.select, [per_source[n][1] for n in names])
                pool = _concat([per_source[n][0] for n in names])
                res = stage("select", key, self._select, pool)
                for n in names:  # the selected rows, back to their sources in pool order
                    per_source[n] = (res.kept.filter(pc.equal(res.kept.column("source"), n)), key)

            if r.margin:
                names = r.margin["sources"]
                key = _key(
                    "margin",
                    {k: v for k, v in r.margin.items() if k != "cache_dir"},
                    [per_source[n][1] for n in names],
                )
                part = _concat([per_source[n][0] for n in names])
                res = stage("margin", key, self._margin, part)
                for n in names:
                    per_source[n] = (res.kept.filter(pc.equal(res.kept.column("source"), n)), key)

            merged = _concat([per_source[s["name"]][0] for s in r.sources])
            key = _key("merge", [per_source[s["name"]][1] for s in r.sources])
            # a concatenation: made again on every run, nothing to cache
            res = stage(
                "merge",
                key,
                lambda: StageResult("merge", merged, merged.slice(0, 0), merged.num_rows),
                cache=False,
            )
            table = res.kept

            if r.dedup:
                key = _key("dedup", r.dedup, key)
                table = stage("dedup", key, self._dedup, table).kept
            if r.decontaminate:
                tiers = {k: v for k, v in r.decontaminate.items() if k != "semantic"}
                key = _key("decontaminate", tiers, self._bench_fingerprint(), key)
                first = stage("decontaminate", key, self._decontaminate, table)
                table = first.kept
                if self.recipe.semantic_tier() is not None:
                    key = _key("decontaminate:semantic", r.decontaminate["semantic"], key)
                    table = stage(
                        "decontaminate:semantic",
                        key,
                        lambda t, first=first: self._semantic_tier(t, first),
                        table,
                    ).kept

            result = PipelineResult(r, self.out, table, stages, timings, cached)
            self._write(result)
            advance("write")
        return result

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        if not self.progress:
            yield lambda name: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as bar:
            task = bar.add_task(self.recipe.name, total=total)

            def advance(name: str) -> None:
                bar.update(task, advance=1, description=f"{self.recipe.name}: {name}")

            yield advance

    def _write(self, result: PipelineResult) -> None:
        from ..io import write_pairs, write_table
        from .card import build_card, removed_file
        from .report import write_report

        o = self.output
        result.output = dict(o)
        if o["margin"] is not False:
            column = "margin" if o["margin"] is True else o["margin"]
            problem = _unscored(result.final, column)
            if problem is not None:
                scored = (self.recipe.margin or {}).get("sources")
                raise PipelineError(
                    f"[output] margin = {o['margin']!r}: {problem}. A margin loss (TRL, OpenRLHF) needs a "
                    f"margin for every pair, and the [margin] stage scored "
                    + (f"only the sources {scored}" if scored else "nothing (the recipe has no [margin])")
                    + ": score every source in [margin] (sources = all of them; that also applies its "
                    "margin rule to them), or remove margin from [output] to write the pairs without one "
                    "(the stages are cached: the next run only writes)"
                )
        # the card is written last: a folder with README.md holds a whole run
        # (prefcurate push checks for it)
        card = self.out / "README.md"
        card.unlink(missing_ok=True)
        dest = self.out / o["file"]
        if o["format"] == "dataset" and dest.is_dir():
            shutil.rmtree(dest)  # the previous run's save_to_disk folder (write_pairs does not overwrite one)
        write_pairs(
            result.final,
            dest,
            format="dataset" if o["format"] == "dataset" else None,
            layout=o["layout"],
            margin=o["margin"],
            dataset_name=self.recipe.name,
        )
        (self.out / "summary.json").write_text(
            json.dumps(result.summary(), indent=2, default=str) + "\n", encoding="utf-8"
        )
        write_report(result, self.out)
        # the removed rows, written once here (the cache holds decisions);
        # the cache writes end first: a failed one is logged, the run's output
        # is complete either way
        self._cache.flush(quiet=True)
        removed_dir = self.out / "removed"
        removed_dir.mkdir(exist_ok=True)
        for s in result.stages:
            dest = self.out / removed_file(s.stage)
            if s.removed.num_rows:
                write_table(s.removed, dest)
            else:
                dest.unlink(missing_ok=True)  # an earlier run's file would mislead
        tmp = card.with_name(f".{card.name}.{os.getpid()}.tmp")
        tmp.write_text(build_card(result, self.out), encoding="utf-8")
        os.replace(tmp, card)


def run_recipe(recipe: str | os.PathLike | Recipe, out: str | os.PathLike, **kwargs: Any) -> PipelineResult:
    """``Pipeline(recipe, out, **kwargs).run()``."""
    return Pipeline(recipe, out, **kwargs).run()


def recipes_dir() -> Path:
    """The recipes shipped with prefcurate."""
    from importlib import resources

    return Path(str(resources.files("prefcurate") / "recipes"))


def _main_log() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
