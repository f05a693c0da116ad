"""The dataset card (``README.md``) of a recipe run, in the form of the seed's.

prefcurate's seed is the Skywork-Reward-Preference-80K card: the data
mixture (the source datasets), the curation rules (the Magpie top fractions
with their per-source offsets, the reward-model margin filter of WildGuard),
and the decontamination note with the removed pairs published beside the
data.  :func:`build_card` writes that card for any recipe run from what the
run measured (:meth:`PipelineResult.summary`, each stage's ``info``, the
recipe's settings), with the YAML front matter the Hugging Face Hub reads
(``configs`` and their ``data_files``, ``size_categories``,
``task_categories``, ``license``, ``language``).  It is a pure function:
``Pipeline`` writes its text to ``OUT/README.md`` as the run's last file.

Every count in the card is one of ``summary.json``'s (the pairs per
category: counts of the output file's ``category`` column); the rules are
the recipe's settings.  See ``docs/card.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..embed.base import describe
from ..stages.decontaminate import DecontaminateConfig
from ..stages.semantic import SemanticDecontaminateConfig

if TYPE_CHECKING:
    from .run import PipelineResult

#: the Hub's task categories for preference pairs: reward models are
#: sequence classifiers; DPO / RLHF is reinforcement learning
TASK_CATEGORIES = ("text-classification", "reinforcement-learning")
TAGS = ("preference", "reward-modeling", "dpo", "prefcurate")
#: the Hub's size categories (upper bound exclusive, name)
SIZE_CATEGORIES = (
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)
#: the split of the curated pairs in the card's default config
SPLIT = "train"
#: what each layout's columns are, for the card's file table (docs/layouts.md)
LAYOUT_COLUMNS = {
    "trl": "`chosen`, `rejected`: message lists (the prompt turns, then the answer): TRL's conversational "
    "preference format, read as written by RewardTrainer and DPOTrainer",
    "trl-explicit": "`prompt`: the prompt turns; `chosen`, `rejected`: the answer as a one-message list: "
    "TRL's conversational format with an explicit prompt",
    "openrlhf": "`chosen`, `rejected`: message lists (the prompt turns, then the answer): OpenRLHF's "
    "default keys (train with `--apply_chat_template`)",
    "llamafactory": "`conversations`, `chosen`, `rejected` in LLaMA-Factory's sharegpt ranking format, "
    "registered in `dataset_info.json`",
    "skywork": "`chosen`, `rejected`: message lists (the prompt turns, then the answer), and `source`: "
    "the schema of Skywork-Reward-Preference-80K",
    "canonical": "prefcurate's pair table (`id`, `source`, `chosen`, `rejected`, `prompt`, ...), the input "
    "of prefcurate's own stages",
}
LEVELS = {
    "prompt": "the prompt turns",
    "prompt_chosen": "the prompt turns and the chosen answer",
    "pair": "the whole pair (prompt turns, chosen and rejected answers)",
}


# ---------------------------------------------------------------- small helpers


def removed_file(stage: str) -> str:
    """The removed rows of ``stage``, relative to the output folder."""
    return f"removed/{stage.replace(':', '-')}.parquet"


def removed_config(stage: str) -> str:
    """The card's config name of the removed rows of ``stage``."""
    return f"removed-{stage.replace(':', '-')}"


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows."""
    for bound, name in SIZE_CATEGORIES:
        if n < bound:
            return name
    return "n>1T"


def _num(x: Any) -> str:
    """A count with thousands separators, a float in at most 4 significant digits."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def _pct(fraction: float) -> str:
    return f"{_num(round(fraction * 100, 10))} %"


def _code(x: Any) -> str:
    return f"`{x}`"


def _reasons(by_reason: dict[str, int]) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in by_reason.items()) or "-"


def _table(header: list[str], rows: Iterable[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return (v if isinstance(v, str) else _num(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """``value`` (dicts, lists, strings, numbers, booleans) as block YAML;
    strings are written as JSON strings, which YAML reads unchanged."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines += _yaml(v, indent + (0 if isinstance(v, list) else 2))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict) and v:
                sub = _yaml(v, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {_scalar(v)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (dict, list)):
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(str(v), ensure_ascii=False)


# ---------------------------------------------------------------- what the run measured


def _output(result: PipelineResult) -> dict[str, Any]:
    """How the pairs were written (``result.output``; the recipe's [output]
    with its defaults when the result has none)."""
    if result.output:
        return result.output
    o = result.recipe.output
    fmt = o.get("format", "parquet")
    language = o.get("language", [])
    return {
        "file": result.recipe.name if fmt == "dataset" else f"{result.recipe.name}.{fmt}",
        "format": fmt,
        "layout": o.get("layout", "trl"),
        "margin": o.get("margin", False),
        "language": [language] if isinstance(language, str) else list(language),
    }


def removed_configs(o: dict[str, Any]) -> bool:
    """Whether the card lists each stage's removed rows as a config of their
    own: only when the pairs are Parquet too, since ``datasets`` loads every
    config of a repository with one builder, chosen by the first config's
    files (a JSON builder cannot read ``removed/*.parquet``)."""
    return str(o["format"]) == "parquet"


def _data_files(o: dict[str, Any]) -> str:
    """The ``data_files`` pattern of the curated pairs."""
    return f"{o['file']}/*.arrow" if o["format"] == "dataset" else str(o["file"])


def _licenses(result: PipelineResult, kept: dict[str, int]) -> str:
    """The card's ``license``: the sources' one when every source with pairs
    in the output names the same, else ``other``."""
    names = {str(s.get("license", "")).lower() for s in result.recipe.sources if kept.get(s["name"], 0)}
    if len(names) == 1 and "" not in names:
        return names.pop()
    return "other"


def front_matter(result: PipelineResult) -> dict[str, Any]:
    """The card's YAML metadata (the keys the Hugging Face Hub reads)."""
    summary = result.summary()
    o = _output(result)
    kept = _kept_by_source(summary)
    configs: list[dict[str, Any]] = [
        {"config_name": "default", "data_files": [{"split": SPLIT, "path": _data_files(o)}]}
    ]
    for s in result.stages:
        if s.n_removed and removed_configs(o):
            configs.append(
                {
                    "config_name": removed_config(s.stage),
                    "data_files": [{"split": SPLIT, "path": removed_file(s.stage)}],
                }
            )
    meta: dict[str, Any] = {"pretty_name": result.recipe.name, "license": _licenses(result, kept)}
    if o.get("language"):
        meta["language"] = list(o["language"])
    meta["size_categories"] = [size_category(summary["output_rows"])]
    meta["task_categories"] = list(TASK_CATEGORIES)
    meta["tags"] = list(TAGS)
    meta["configs"] = configs
    return meta


def _kept_by_source(summary: dict[str, Any]) -> dict[str, int]:
    """Pairs per source in the output: the last stage's kept rows by source."""
    if not summary["stages"]:
        return {}
    return {k: v["kept"] for k, v in summary["stages"][-1].get("by_source", {}).items()}


def _categories(final: pa.Table) -> tuple[list[str], dict[str, dict[str, int]], int]:
    """(sources with a category, {category: {source: pairs}}, pairs without one)."""
    if "category" not in final.column_names or "source" not in final.column_names:
        return [], {}, final.num_rows
    cats = final.column("category").to_pylist()
    srcs = final.column("source").to_pylist()
    per: dict[str, dict[str, int]] = {}
    sources: list[str] = []
    for c, s in zip(cats, srcs):
        if c is None:
            continue
        per.setdefault(str(c), {})
        per[str(c)][s] = per[str(c)].get(s, 0) + 1
        if s not in sources:
            sources.append(s)
    return sources, per, sum(1 for c in cats if c is None)


# ---------------------------------------------------------------- sections


def _dataset_cell(s: dict[str, Any]) -> str:
    parts = []
    if s.get("hf"):
        name = s["hf"] + (f" ({s['config']})" if s.get("config") else "")
        parts.append(f"[{name}](https://huggingface.co/datasets/{s['hf']})")
    if s.get("homepage"):
        parts.append(f"[homepage]({s['homepage']})")
    if not parts and s.get("path"):
        parts.append(_code(s["path"]))
    return ", ".join(parts) or "-"


def _mixture(result: PipelineResult, summary: dict[str, Any]) -> str:
    stages = {s["name"]: s for s in summary["stages"]}
    kept = _kept_by_source(summary)
    rows = []
    for s in result.recipe.sources:
        read = stages.get(f"read:{s['name']}", {})
        rows.append(
            [
                s["name"],
                _dataset_cell(s),
                s.get("format", "auto"),
                read.get("records_in", read.get("input", "-")),
                read.get("pairs_out", read.get("kept", "-")),
                kept.get(s["name"], 0),
                s.get("license", "not stated"),
            ]
        )
    rows.append(["**total**", "", "", "", "", f"**{_num(summary['output_rows'])}**", ""])
    out = [
        "## Data mixture",
        "",
        f"The {_num(summary['output_rows'])} pairs come from these sources "
        "(records read from each, the pairs its adapter made of them, and the pairs in this dataset):",
        "",
        _table(
            ["source", "dataset", "format", "records read", "pairs read", "pairs here", "license"],
            rows,
        ),
        "",
        "The pairs are not edited: each source's adapter (`format`) turns its records into chosen / "
        "rejected message lists, and every stage below only keeps or removes whole pairs.",
    ]
    cat_sources, per, none = _categories(result.final)
    if per:
        order = sorted(per, key=lambda c: (-sum(per[c].values()), c))
        out += [
            "",
            "### By category",
            "",
            "Pairs per value of the `category` column"
            + (f" ({_num(none)} pairs have none)" if none else "")
            + ":",
            "",
            _table(
                ["category", *cat_sources, "pairs"],
                [[c, *(per[c].get(s, 0) for s in cat_sources), sum(per[c].values())] for c in order],
            ),
        ]
    return "\n".join(out)


def _select_rule(result: PipelineResult, st: Any) -> list[str]:
    cfg = result.recipe.select_config()
    spec = result.recipe.select or {}
    if cfg is None:
        return []
    text = f"**Select** from the pooled sources {', '.join(map(_code, spec.get('sources', [])))}: rank by `{cfg.score}`"
    if cfg.offsets:
        offs = ", ".join(f"{k} {_num(float(v))}" for k, v in cfg.offsets.items())
        text += f" plus an offset per `{cfg.offset_by}` ({offs})"
    if cfg.group_by:
        by = ", ".join(map(_code, cfg.group_by if isinstance(cfg.group_by, list) else [cfg.group_by]))
        text += f", grouped by {by}"
        if cfg.group_map:
            groups = ", ".join(dict.fromkeys(str(v) for v in cfg.group_map.values()))
            text += f" ({groups}"
            text += f"; every other value: {cfg.group_default})" if cfg.group_default is not None else ")"
    text += "; each group is ranked on its own and keeps its top rows"
    if spec.get("preset"):
        text += f" (preset `{spec['preset']}`)"
    lines = [text + ":", ""]
    groups = (st.get("info") or {}).get("groups", {})
    rows = []
    for g, v in groups.items():
        q = v.get("quota", ["all"])
        rule = f"top {_pct(q[1])}" if q[0] == "ratio" else f"top {_num(q[1])}" if q[0] == "k" else "all"
        cutoff = v.get("cutoff")
        rows.append(
            [str(g), rule, v.get("ranked", "-"), v.get("kept", "-"), "-" if cutoff is None else cutoff]
        )
    if rows:
        lines.append(_table(["group", "rule", "ranked", "kept", "lowest kept score"], rows))
    return lines


def _margin_rule(result: PipelineResult, st: Any) -> list[str]:
    spec = result.recipe.margin or {}
    configs = result.recipe.margin_configs()
    if configs is None:
        return []
    score_cfg, margin_cfg = configs
    info = st.get("info") or {}
    if score_cfg.model:
        by = f"the reward model `{score_cfg.model}` scores the chosen and the rejected answer of every pair"
    else:
        c, r = spec.get("chosen_score", "chosen_score"), spec.get("rejected_score", "rejected_score")
        by = f"the scores of columns `{c}` / `{r}` rate the chosen and the rejected answer"
    text = (
        f"**Reward-model margin** on {', '.join(map(_code, spec.get('sources', [])))}: {by}; a pair stays when "
        f"score(chosen) - score(rejected) > {_num(float(margin_cfg.min_margin))}."
    )
    check = info.get("parity_check")
    if check:
        verdict = "passed" if check.get("passed") else "FAILED"
        text += (
            f" Parity check before scoring ({_num(len(check.get('rows', [])))} rows scored both by the scorer "
            f"and by the model's own forward): {verdict}, largest difference {_num(check.get('max_abs_diff'))} "
            f"(tolerance {_num(check.get('tolerance'))})."
        )
    elif score_cfg.model:
        text += " No parity check was run (`check = 0`)."
    return [text]


def _dedup_rule(result: PipelineResult, st: Any) -> list[str]:
    cfg = result.recipe.dedup_config()
    if cfg is None:
        return []
    text = f"**Deduplicate** at level `{cfg.level}` (keys of {LEVELS.get(cfg.level, cfg.level)}), method `{cfg.method}`: "
    if cfg.method == "minhash":
        text += (
            f"exact keys, then near duplicates by MinHash at Jaccard similarity >= {_num(float(cfg.threshold))} "
            f"({cfg.shingle} {_num(cfg.ngram)}-gram shingles, {_num(cfg.num_perm)} permutations)"
        )
    else:
        text += "exact keys (after normalisation)"
    keep = ", ".join(cfg.keep) if isinstance(cfg.keep, (list, tuple)) else cfg.keep
    text += f"; the row kept of each cluster: `{keep}`."
    s = ((st.get("info") or {}).get("summary")) or {}
    measured = [
        f"{k.replace('_', ' ')} {_num(s[k])}" for k in ("candidates", "near_links", "clusters") if k in s
    ]
    if measured:
        text += f" Measured: {', '.join(measured)}."
    return [text]


def _benchmark(result: PipelineResult) -> str:
    spec = result.recipe.decontaminate or {}
    parts = []
    if spec.get("hf"):
        parts.append(
            f"[{spec['hf']}](https://huggingface.co/datasets/{spec['hf']}) split `{spec.get('split', 'filtered')}`"
        )
    if spec.get("benchmark"):
        parts.append(("local copy " if parts else "") + _code(spec["benchmark"]))
    return " (".join(parts) + (")" if len(parts) > 1 else "") if parts else "-"


def _semantic_method(cfg: SemanticDecontaminateConfig) -> str:
    how = (
        f"a cosine of at least {cfg.threshold}"
        if cfg.threshold is not None
        else f"a cosine over the threshold calibrated so that {cfg.false_positive_rate:g} of unrelated texts reach it"
    )
    return (
        f"method `semantic`: a pair is contaminated when its prompt's embedding ({describe(cfg.embedder)}) "
        f"has {how} with a benchmark prompt's (exact search)"
    )


def _decontaminate_method(result: PipelineResult) -> str:
    cfg = result.recipe.decontaminate_config()
    assert cfg is not None
    tier = result.recipe.semantic_tier()
    extra = f"; then a semantic tier: {_semantic_method(tier)}" if tier is not None else ""
    if isinstance(cfg, SemanticDecontaminateConfig):
        return _semantic_method(cfg) + extra
    return _ngram_method(cfg) + extra


def _ngram_method(cfg: DecontaminateConfig) -> str:
    if cfg.method == "reference":
        lo, hi = cfg.ngram_range
        return (
            f"method `reference` (the RewardBench author's published check, exact to it): a pair is "
            f"contaminated when its prompt (the first user turn) shares a {_num(lo)}- to {_num(hi)}-gram of "
            "words (sklearn CountVectorizer's lower-cased tokens of two or more characters) with a benchmark prompt"
        )
    return (
        f"method `precise`: a pair is contaminated when its prompt holds at least {_pct(cfg.min_coverage)} of "
        f"a benchmark prompt's distinct {_num(cfg.n)}-grams; benchmark prompts under {_num(cfg.min_tokens)} "
        f"tokens are skipped, and n-grams in more than {_num(cfg.max_train_df)} training prompts or "
        f"{_num(cfg.max_benchmark_df)} benchmark prompts are templates, not evidence"
    )


def _decontamination(result: PipelineResult, st: dict[str, Any]) -> str:
    info = st.get("info") or {}
    removed_by = {k: v["removed"] for k, v in st.get("by_source", {}).items() if v["removed"]}
    where = ", ".join(f"{k} {_num(v)}" for k, v in removed_by.items()) or "none"
    lines = [
        "## Decontamination",
        "",
        f"Against the benchmark {_benchmark(result)}, {_decontaminate_method(result)}.",
        "",
        f"{_num(st['input'])} pairs checked, **{_num(st['removed'])} removed** "
        f"({_reasons(st['by_reason'])}; by source: {where}), {_num(st['kept'])} kept"
        + (
            f"; {_num(info['matches'])} matches of a pair with a benchmark item."
            if "matches" in info
            else "."
        ),
    ]
    subsets = info.get("summary") or []
    if subsets:
        lines += [
            "",
            _table(
                ["benchmark subset", "benchmark items", "items matched", "pairs removed"],
                [
                    [
                        str(x.get("benchmark_subset")),
                        x.get("benchmark_items", "-"),
                        x.get("items_matched", "-"),
                        x.get("train_rows_removed", "-"),
                    ]
                    for x in subsets
                ],
            ),
        ]
    if st["removed"]:
        res = result.stage("decontaminate")
        cols = [
            c
            for c in (
                "benchmark_id",
                "benchmark_subset",
                "matched_span",
                "matched_tokens",
                "n_benchmark_matches",
            )
            if c in getattr(res.removed, "column_names", [])
        ]
        path = removed_file("decontaminate")
        config = (
            f"config `{removed_config('decontaminate')}`"
            if removed_configs(_output(result))
            else f'`load_dataset("parquet", data_files="{path}")`'
        )
        lines += [
            "",
            f"The removed pairs are published beside the data: [{path}]({path}) ({config}), each with `reason`"
            + (f" and the benchmark item it matched ({', '.join(map(_code, cols))})" if cols else "")
            + ", so that a false positive can be judged and put back.",
        ]
    return "\n".join(lines)


def _curation(result: PipelineResult, summary: dict[str, Any]) -> str:
    r = result.recipe
    stages = {s["name"]: s for s in summary["stages"]}
    steps: list[list[str]] = []
    dropped = [
        f"{s['name'].split(':', 1)[1]}: {_reasons(s['by_reason'])}"
        for s in summary["stages"]
        if s["name"].startswith("read:") and s["removed"]
    ]
    steps.append(
        [
            "**Read** each source with its adapter (`format`); records that make no pair are dropped"
            + (f" ({'; '.join(dropped)})." if dropped else " (none here).")
        ]
    )
    for s in r.sources:
        if s.get("where"):
            cond = " and ".join(f"`{k}` = {json.dumps(v)}" for k, v in s["where"].items())
            steps.append([f"**Filter** `{s['name']}`: keep the rows with {cond}."])
    if r.select and "select" in stages:
        steps.append(_select_rule(result, stages["select"]))
    if r.margin and "margin" in stages:
        steps.append(_margin_rule(result, stages["margin"]))
    steps.append(["**Merge** the sources."])
    if r.dedup and "dedup" in stages:
        steps.append(_dedup_rule(result, stages["dedup"]))
    if r.decontaminate and "decontaminate" in stages:
        steps.append(["**Decontaminate** against a benchmark: see [Decontamination](#decontamination)."])
    out = [
        "## Curation",
        "",
        "Every stage keeps or removes whole pairs and accounts for every one (in = kept + removed, "
        "checked during the run):",
        "",
    ]
    for i, step in enumerate(steps, 1):
        out.append(f"{i}. {step[0]}")
        out += [f"   {line}" if line else "" for x in step[1:] for line in x.split("\n")]
    rows = []
    for s in summary["stages"]:
        link = f"[{removed_file(s['name'])}]({removed_file(s['name'])})" if s["removed"] else "-"
        rows.append([s["name"], s["input"], s["kept"], s["removed"], _reasons(s["by_reason"]), link])
    out += [
        "",
        "Pairs in, kept and removed by each stage (a read stage's in: the pairs it made and the records it "
        "dropped); the removed rows of every stage, with `stage` and `reason`, are in `removed/`:",
        "",
        _table(["stage", "in", "kept", "removed", "reasons", "removed rows"], rows),
    ]
    return "\n".join(out)


def _files(result: PipelineResult, summary: dict[str, Any], o: dict[str, Any]) -> str:
    layout = o["layout"]
    what = LAYOUT_COLUMNS.get(layout, layout)
    if o["margin"]:
        src = "margin" if o["margin"] is True else o["margin"]
        what += f"; `margin`: the reward margin (from `{src}`) for a margin loss"
    if layout != "canonical":
        what += "; `pc_*`: prefcurate's bookkeeping (`pc_id`, `pc_source`, scores, categories), which trainers ignore"
    rows = [[_code(_data_files(o)), summary["output_rows"], f"the curated pairs, layout `{layout}`: {what}"]]
    if layout == "llamafactory":
        rows.append(["`dataset_info.json`", "-", "LLaMA-Factory's entry for the pairs"])
    rows.append(
        [
            "`removed/<stage>.parquet`",
            "-",
            "the rows each stage removed, with `stage` and `reason`"
            + ("; config `removed-<stage>`" if removed_configs(o) else ""),
        ]
    )
    rows.append(
        ["`summary.json`", "-", "every stage's counts, by reason and by source, and its measurements"]
    )
    rows.append(["`report.md`, `report.html`, `plots/`", "-", "the audit report with its plots"])
    name = result.recipe.path.name if result.recipe.path else None
    fmt = o["format"]
    loader = (
        f'load_from_disk("{o["file"]}")'
        if fmt == "dataset"
        else f'load_dataset("{"parquet" if fmt.startswith("parquet") else "json"}", '
        f'data_files="{o["file"]}", split="{SPLIT}")'
    )
    removed = (
        'the removed rows: load_dataset("<org>/<name>", "removed-<stage>")'
        if removed_configs(o)
        else 'the removed rows: load_dataset("parquet", data_files="hf://datasets/<org>/<name>/removed/<stage>.parquet")'
    )
    lines = [
        "## Files",
        "",
        _table(["file", "rows", "what"], rows),
        "",
        "```python",
        f"from datasets import {'load_from_disk' if fmt == 'dataset' else 'load_dataset'}",
        "",
        f"pairs = {loader}  # this folder",
        "# from the Hub (prefcurate push OUT <org>/<name>):",
        f'# load_dataset("<org>/<name>", split="{SPLIT}")',
        f"# {removed}",
        "```",
        "",
        "`prefcurate.read_pairs` reads the file back into prefcurate's pair table (the same pairs, "
        "sources and ids).",
        "",
        "## Reproduce",
        "",
        f"Written by prefcurate {summary['prefcurate']} from the recipe "
        + (f"`{name}` (name `{result.recipe.name}`)" if name else f"`{result.recipe.name}`")
        + ":",
        "",
        "```",
        f"prefcurate run {name or result.recipe.name + '.toml'} --out OUT [--data-dir DIR]",
        "```",
    ]
    return "\n".join(lines)


def _license_section(result: PipelineResult, kept: dict[str, int], license: str) -> str:
    used = [s for s in result.recipe.sources if kept.get(s["name"], 0)]
    named = [f"{s['name']}: {s['license']}" for s in used if s.get("license")]
    if license != "other":
        text = f"Every source of these pairs is under {license} (the recipe says so), hence `license: {license}`."
    else:
        missing = [s["name"] for s in used if not s.get("license")]
        text = (
            "The sources keep their own licenses and terms"
            + (f" ({'; '.join(named)})" if named else "")
            + (
                f"; the recipe does not state the license of {', '.join(map(_code, missing))}: see each "
                "dataset's own card"
                if missing
                else ""
            )
            + ". The card's metadata says `license: other`: use the pairs of each source under that source's terms."
        )
    return "\n".join(["## License", "", text])


def build_card(result: PipelineResult, out: str | Path | None = None) -> str:
    """The dataset card (``README.md``) of a recipe run: YAML front matter,
    then the data mixture, the curation rules with their counts, the
    decontamination with a pointer to the removed pairs, the files, how to
    reproduce it, and the license.  ``out`` (default ``result.out``) is the
    folder the card's paths are relative to; nothing is read from it."""
    del out  # every path in the card is relative to the output folder
    summary = result.summary()
    o = _output(result)
    meta = front_matter(result)
    kept = _kept_by_source(summary)
    stages = {s["name"]: s for s in summary["stages"]}
    parts = ["---", *_yaml(meta), "---", "", f"# {result.recipe.name}", ""]
    if result.recipe.description:
        parts += [result.recipe.description, ""]
    deco = stages.get("decontaminate")
    if deco is not None:
        path = removed_file("decontaminate")
        parts += [
            f"> **Decontaminated.** {_num(deco['removed'])} pairs whose prompt overlaps a prompt of the "
            f"benchmark {_benchmark(result)} were removed"
            + (f": they are published beside the data in [{path}]({path})" if deco["removed"] else "")
            + ". See [Decontamination](#decontamination).",
            "",
        ]
    parts += [
        f"**{_num(summary['output_rows'])}** preference pairs, curated by prefcurate {summary['prefcurate']} "
        f"with the recipe `{result.recipe.name}`. This card was written by the run from what it measured: "
        "every count below is in `summary.json`.",
        "",
        _mixture(result, summary),
        "",
        _curation(result, summary),
        "",
    ]
    if deco is not None:
        parts += [_decontamination(result, deco), ""]
    parts += [_files(result, summary, o), "", _license_section(result, kept, meta["license"]), ""]
    return "\n".join(parts)
