"""The dataset card every recipe run writes (README.md, prefcurate.pipeline.card):
its YAML front matter as the Hugging Face Hub reads it, the seed's sections
(data mixture, curation, decontamination), and every number in it taken from
what the run measured (summary.json, the output file)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("yaml")

import yaml

from prefcurate import cli, read_pairs
from prefcurate.pipeline import Pipeline, Recipe, recipes_dir
from prefcurate.pipeline.card import build_card, front_matter, removed_file, size_category

DEMO = recipes_dir() / "demo.toml"
SOURCES = cli.demo_dir() / "sources"
ULTRA = {"name": "magpie_ultra", "path": str(SOURCES / "magpie_ultra.jsonl"), "format": "magpie_ultra"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert cli.main(["demo", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def summary(demo_run) -> dict[str, Any]:
    return json.loads((demo_run / "summary.json").read_text())


def split_card(text: str) -> tuple[dict[str, Any], str]:
    assert text.startswith("---\n")
    end = text.index("\n---\n", 3)
    return yaml.safe_load(text[4:end]), text[end + 5 :]


def sections(body: str) -> dict[str, str]:
    """``## Title`` -> its text (up to the next ``## ``)."""
    parts = re.split(r"^## (.+)$", body, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def table(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose first header cell is ``first_header``."""
    lines = [x.strip() for x in text.splitlines()]
    start = next(i for i, x in enumerate(lines) if x.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for x in lines[start + 2 :]:
        if not x.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in x.strip("|").split(" | ")))))
    return rows


def num(cell: str) -> float:
    return float(cell.strip("*").replace(",", ""))


# ---------------------------------------------------------------- front matter


def test_front_matter_is_what_the_hub_reads(demo_run, summary):
    meta, _ = split_card((demo_run / "README.md").read_text(encoding="utf-8"))
    assert meta["pretty_name"] == "demo"
    assert meta["license"] == "apache-2.0"  # every demo source says so
    assert meta["language"] == ["en"]
    assert meta["size_categories"] == [size_category(summary["output_rows"])] == ["n<1K"]
    assert meta["task_categories"] == ["text-classification", "reinforcement-learning"]
    # the pairs; the removed rows (Parquet) are no config of a JSON Lines dataset, since
    # datasets reads every config with the builder of the first: they are a folder
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "demo.jsonl"}]}
    ]
    assert (demo_run / "demo.jsonl").is_file()


def test_the_hub_card_parser_reads_the_front_matter(demo_run):
    hub = pytest.importorskip("huggingface_hub")
    card = hub.DatasetCard.load(demo_run / "README.md")
    assert card.data.license == "apache-2.0" and card.data.size_categories == ["n<1K"]
    assert next(c["config_name"] for c in card.data.configs) == "default"


def test_the_datasets_library_loads_the_card_s_configs(demo_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(demo_run), split="train")  # the card's default config: demo.jsonl
    assert ds.num_rows == 26 and ds.column_names[:2] == ["chosen", "rejected"]
    # Parquet pairs: every stage's removed rows are a config of their own
    recipe = Recipe.from_dict(
        {
            "name": "pq",
            "sources": [ULTRA],
            "decontaminate": {"benchmark": str(cli.demo_dir() / "benchmark.jsonl")},
            "output": {"format": "parquet"},
        }
    )
    res = Pipeline(recipe, tmp_path / "pq").run()
    meta, body = split_card((tmp_path / "pq" / "README.md").read_text(encoding="utf-8"))
    assert [c["config_name"] for c in meta["configs"]] == ["default", "removed-decontaminate"]
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": "removed/decontaminate.parquet"}]
    assert "(config `removed-decontaminate`)" in body
    assert datasets.load_dataset(str(tmp_path / "pq"), split="train").num_rows == res.final.num_rows
    removed = datasets.load_dataset(str(tmp_path / "pq"), "removed-decontaminate", split="train")
    assert sorted(removed["benchmark_id"]) == ["demo-chat-1", "demo-math-1"]


@pytest.mark.parametrize(
    "n, want",
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1000, "1K<n<10K"),
        (77016, "10K<n<100K"),
        (378273, "100K<n<1M"),
        (10**13, "n>1T"),
    ],
)
def test_size_categories(n, want):
    assert size_category(n) == want


# ---------------------------------------------------------------- the seed's sections, from the run's numbers


def test_sections_match_the_seed(demo_run):
    _, body = split_card((demo_run / "README.md").read_text(encoding="utf-8"))
    names = list(sections(body))
    # the seed's: the mixture, the curation rules, the decontamination note; then files, reproduce, license
    assert names[:3] == ["Data mixture", "Curation", "Decontamination"]
    assert {"Files", "Reproduce", "License"} <= set(names)
    head = body[: body.index("## Data mixture")]
    assert "**Decontaminated.**" in head and f"]({removed_file('decontaminate')})" in head


def test_mixture_counts_equal_the_summary(demo_run, summary):
    _, body = split_card((demo_run / "README.md").read_text(encoding="utf-8"))
    mix = sections(body)["Data mixture"]
    rows = table(mix, "source")
    stages = {s["name"]: s for s in summary["stages"]}
    kept = {k: v["kept"] for k, v in summary["stages"][-1]["by_source"].items()}
    recipe = Recipe.load(DEMO)
    assert [r["source"] for r in rows[:-1]] == [s["name"] for s in recipe.sources]
    for r in rows[:-1]:
        read = stages[f"read:{r['source']}"]
        assert num(r["records read"]) == read["records_in"]
        assert num(r["pairs read"]) == read["pairs_out"]
        assert num(r["pairs here"]) == kept.get(r["source"], 0)
        assert r["license"] == "apache-2.0"
    assert rows[-1]["source"] == "**total**" and num(rows[-1]["pairs here"]) == summary["output_rows"] == 26
    # per category: the output file's category column
    pairs = read_pairs(demo_run / "demo.jsonl").to_pylist()
    cats = table(mix, "category")
    for r in cats:
        for src in r:
            if src not in ("category", "pairs"):
                assert num(r[src]) == sum(
                    p["category"] == r["category"] and p["source"] == src for p in pairs
                )
        assert num(r["pairs"]) == sum(p["category"] == r["category"] for p in pairs)
    assert {r["category"] for r in cats} == {p["category"] for p in pairs if p["category"] is not None}


def test_curation_rules_and_counts_equal_the_summary(demo_run, summary):
    _, body = split_card((demo_run / "README.md").read_text(encoding="utf-8"))
    cur = sections(body)["Curation"]
    rows = table(cur, "stage")
    assert [r["stage"] for r in rows] == [s["name"] for s in summary["stages"]]
    for r, s in zip(rows, summary["stages"]):
        assert (num(r["in"]), num(r["kept"]), num(r["removed"])) == (s["input"], s["kept"], s["removed"])
        assert r["reasons"] == (", ".join(f"{k} {v}" for k, v in s["by_reason"].items()) or "-")
        if s["removed"]:
            assert removed_file(s["name"]) in r["removed rows"]
            assert (demo_run / removed_file(s["name"])).is_file()
    # select: the fractions and offsets of the recipe (preset skywork-magpie), the measured groups
    assert "magpie_air -0.1, magpie_pro -0.05" in cur
    groups = {g["group"]: g for g in table(cur, "group")}
    for name, g in summary["stages"][8]["info"]["groups"].items():
        assert groups[name]["rule"] == f"top {round(g['quota'][1] * 100)} %"
        assert (num(groups[name]["ranked"]), num(groups[name]["kept"])) == (g["ranked"], g["kept"])
        assert num(groups[name]["lowest kept score"]) == pytest.approx(g["cutoff"], abs=5e-4)
    # margin: the rule, the model, the parity check's result
    assert "`prefcurate-demo-tiny`" in cur and "score(chosen) - score(rejected) > 0" in cur
    assert "Parity check before scoring (6 rows" in cur and "passed" in cur
    # dedup: level, method, threshold, measured links and clusters
    dd = summary["stages"][11]["info"]["summary"]
    assert "level `prompt`" in cur and "method `minhash`" in cur and "Jaccard similarity >= 0.8" in cur
    assert f"near links {dd['near_links']}, clusters {dd['clusters']}" in cur


def test_decontamination_section_equals_the_summary(demo_run, summary):
    _, body = split_card((demo_run / "README.md").read_text(encoding="utf-8"))
    dec = sections(body)["Decontamination"]
    st = summary["stages"][-1]
    assert st["name"] == "decontaminate"
    assert "`benchmark.jsonl`" in dec and "method `reference`" in dec and "7- to 13-gram" in dec
    assert f"{st['input']} pairs checked, **{st['removed']} removed**" in dec
    assert "by source: magpie_ultra 2" in dec and f"{st['kept']} kept" in dec
    subsets = table(dec, "benchmark subset")
    assert [
        {
            "benchmark_subset": r["benchmark subset"],
            "benchmark_items": num(r["benchmark items"]),
            "items_matched": num(r["items matched"]),
            "train_rows_removed": num(r["pairs removed"]),
        }
        for r in subsets
    ] == st["info"]["summary"]
    assert "[removed/decontaminate.parquet](removed/decontaminate.parquet)" in dec
    assert 'load_dataset("parquet", data_files="removed/decontaminate.parquet")' in dec


def _numbers(x: Any) -> list[float]:
    if isinstance(x, bool):
        return []
    if isinstance(x, (int, float)):
        return [float(x)]
    if isinstance(x, dict):
        return [v for k, val in x.items() for v in _numbers(val)]
    if isinstance(x, (list, tuple)):
        return [float(len(x)), *(v for val in x for v in _numbers(val))]
    return []


def test_every_number_in_the_card_is_the_runs(demo_run, summary):
    """No number in the card's text that the run did not measure or the recipe
    did not set (fractions also as percentages); counts per category are the
    output file's."""
    _, body = split_card((demo_run / "README.md").read_text(encoding="utf-8"))
    recipe = Recipe.load(DEMO)
    # the stages' settings: the recipe's, with the defaults of the stage configs
    configs = [
        recipe.select_config(),
        recipe.dedup_config(),
        recipe.decontaminate_config(),
        *recipe.margin_configs(),
    ]
    allowed = (
        _numbers(summary) + _numbers(recipe.__dict__) + [v for c in configs for v in _numbers(c.as_dict())]
    )
    allowed += [100 * x for x in allowed if 0 < abs(x) <= 1]
    pairs = read_pairs(demo_run / "demo.jsonl").to_pylist()
    cats = [p["category"] for p in pairs]
    allowed += [float(cats.count(c)) for c in set(cats)]
    allowed += [
        float(sum(p["category"] == c and p["source"] == s for p in pairs))
        for c in set(cats)
        for s in {p["source"] for p in pairs}
    ]
    found = re.findall(r"(?<![\w.\-])-?\d[\d,]*(?:\.\d+)?(?![\w.]*\w)", body)
    assert len(found) > 100
    for text in found:
        v = float(text.replace(",", ""))
        digits = len(text.split(".")[1]) if "." in text else 0
        ok = any(v == a or (digits and math.isclose(v, float(f"{a:.4g}"), rel_tol=1e-9)) for a in allowed)
        assert ok, f"{text} in the card is not a number of the run"


def test_build_card_is_a_pure_function_of_the_result(demo_run):
    res = Pipeline(DEMO, demo_run, data_dir=cli.demo_dir()).run()  # cached
    text = (demo_run / "README.md").read_text(encoding="utf-8")
    assert build_card(res, demo_run) == build_card(res) == text  # no clock, no file read


# ---------------------------------------------------------------- other recipes


def small(tmp_path: Path, sources: list[dict[str, Any]], **output: Any) -> Pipeline:
    recipe = Recipe.from_dict(
        {"name": "small", "sources": sources, "output": {"format": "parquet", **output}}
    )
    return Pipeline(recipe, tmp_path / "out")


def test_license_is_other_unless_every_source_agrees_and_hub_names_link(tmp_path):
    ultra = dict(ULTRA)
    ob = {
        "name": "offsetbias",
        "path": str(SOURCES / "offsetbias.jsonl"),
        "format": "offsetbias",
        "hf": "NCSOFT/offsetbias",
        "license": "bsd-3-clause",
        "homepage": "https://github.com/ncsoft/offsetbias",
    }
    res = small(tmp_path, [ultra, ob]).run()
    meta, body = split_card((tmp_path / "out" / "README.md").read_text(encoding="utf-8"))
    assert meta["license"] == "other" and "language" not in meta
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "small.parquet"}]
    assert "## Decontamination" not in body and "**Decontaminated.**" not in body
    assert "[NCSOFT/offsetbias](https://huggingface.co/datasets/NCSOFT/offsetbias)" in body
    assert "[homepage](https://github.com/ncsoft/offsetbias)" in body
    assert "offsetbias: bsd-3-clause" in body and "does not state the license of `magpie_ultra`" in body
    # the same license everywhere: that license
    res.recipe.sources[0]["license"] = "bsd-3-clause"
    assert front_matter(res)["license"] == "bsd-3-clause"


def test_card_of_a_saved_dataset_and_of_the_llamafactory_layout(tmp_path):
    ultra = dict(ULTRA)
    small(tmp_path / "a", [ultra], format="dataset", language="en").run()
    meta, body = split_card((tmp_path / "a" / "out" / "README.md").read_text(encoding="utf-8"))
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "small/*.arrow"}]
    assert meta["language"] == ["en"] and 'load_from_disk("small")' in body
    small(tmp_path / "b", [ultra], format="json", layout="llamafactory").run()
    _, body = split_card((tmp_path / "b" / "out" / "README.md").read_text(encoding="utf-8"))
    assert "`dataset_info.json`" in body and "layout `llamafactory`" in body
    assert (tmp_path / "b" / "out" / "dataset_info.json").is_file()
