"""The pipeline on the bundled demo: every stage's counts as derived by hand
from the sample (scripts/make_demo_data.py documents the plants), the report,
the cache, and a killed run that resumes to the same output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import test_layouts
from test_layouts import train_one_step

from prefcurate import cli
from prefcurate.errors import InvalidInputError
from prefcurate.pipeline import Pipeline, PipelineError, Recipe, recipes_dir

DEMO = recipes_dir() / "demo.toml"
#: a tokenizer with a chat template and a tiny Llama config (tests/test_layouts.py)
trl_setup = test_layouts.trl_setup

# (stage, input, kept, removed, by_reason), derived from the sample's design:
EXPECTED = [
    ("read:magpie_pro_llama3.1", 20, 20, 0, {}),
    ("read:magpie_pro", 20, 20, 0, {}),
    ("read:magpie_air", 20, 20, 0, {}),
    ("read:magpie_ultra", 20, 20, 0, {}),
    # 6 prompts x 2 responses: 5 pairs, and the two responses of the tied prompt
    ("read:helpsteer2", 7, 5, 2, {"tie": 2}),
    ("read:offsetbias", 6, 6, 0, {}),
    # 8 prompts with a refusal and a compliance: 8 pairs; a prompt-only row; a lone refusal
    ("read:wildguard", 10, 8, 2, {"prompt_only": 1, "unpaired": 1}),
    ("filter:wildguard", 8, 6, 2, {"adversarial_not_true": 2}),
    # pooled 20 Math, 20 Code, 40 other: floor(0.3 * 20) + floor(0.3 * 20) + floor(0.1 * 40)
    ("select", 80, 16, 64, {"below_cutoff": 64}),
    # the chosen refusal that ends with "!" scores below its rejected answer
    ("margin", 6, 5, 1, {"non_positive_margin": 1}),
    ("merge", 32, 32, 0, {}),
    # ultra repeats a kept Coding prompt; OffsetBias edits a HelpSteer2 prompt by a word;
    # two OffsetBias rows prefer opposite answers
    ("dedup", 32, 28, 4, {"exact_duplicate": 1, "near_duplicate": 1, "contradictory_pair": 2}),
    # two kept magpie_ultra prompts hold benchmark prompts
    ("decontaminate", 28, 26, 2, {"benchmark_ngram_overlap": 2}),
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert cli.main(["demo", "--out", str(out)]) == 0
    return out


def test_demo_counts_per_stage_equal_the_hand_derived_ones(demo_run):
    summary = json.loads((demo_run / "summary.json").read_text())
    got = [(s["name"], s["input"], s["kept"], s["removed"], s["by_reason"]) for s in summary["stages"]]
    assert got == EXPECTED
    assert summary["output_rows"] == 26
    rows = [json.loads(x) for x in open(demo_run / "demo.jsonl")]
    assert len(rows) == 26
    # the trl layout: the pair's source is prefcurate's bookkeeping, pc_source
    # Air rows had the highest raw score of every group; the -0.1 offset dropped them all
    assert not any(r["pc_source"] == "magpie_air" for r in rows)
    by_source = {}
    for r in rows:
        by_source[r["pc_source"]] = by_source.get(r["pc_source"], 0) + 1
    # selection kept 3 + 3 + 2 of pro_llama3.1 and ultra; dedup took one ultra row,
    # decontamination two more; 4 offsetbias rows of 6 survive dedup
    assert by_source == {
        "magpie_pro_llama3.1": 8,
        "magpie_ultra": 5,
        "helpsteer2": 5,
        "offsetbias": 3,
        "wildguard": 5,
    }


def test_removed_rows_explain_themselves(demo_run):
    import pyarrow.parquet as pq

    dedup = pq.read_table(demo_run / "removed" / "dedup.parquet").to_pylist()
    near = next(r for r in dedup if r["reason"] == "near_duplicate")
    assert near["source"] == "offsetbias" and near["duplicate_of_id"].startswith("helpsteer2-")
    assert 0.8 <= near["similarity"] < 1.0
    contam = pq.read_table(demo_run / "removed" / "decontaminate.parquet").to_pylist()
    assert sorted(r["benchmark_id"] for r in contam) == ["demo-chat-1", "demo-math-1"]
    margin = pq.read_table(demo_run / "removed" / "margin.parquet").to_pylist()
    assert len(margin) == 1 and margin[0]["margin"] < 0
    select = pq.read_table(demo_run / "removed" / "select.parquet").to_pylist()
    air = [r for r in select if r["source"] == "magpie_air"]
    assert all(abs(r["adjusted_score"] - (r["score"] - 0.1)) < 1e-9 for r in air)


# ---------------------------------------------------------------- the output file: what trainers read

#: names trainers give a meaning to (docs/layouts.md); the trl layout writes none of them
RESERVED = {"prompt", "margin", "score", "label", "completion", "messages", "tools", "chat_template_kwargs"}
SOURCES = cli.demo_dir() / "sources"


def test_demo_output_is_written_in_the_trl_layout(demo_run):
    rows = [json.loads(x) for x in open(demo_run / "demo.jsonl")]
    names = list(rows[0])
    # chosen / rejected conversations, then prefcurate's bookkeeping under pc_
    assert names[:2] == ["chosen", "rejected"]
    assert all(n.startswith("pc_") for n in names[2:]) and not RESERVED & set(names)
    assert {"pc_id", "pc_source", "pc_score", "pc_category", "pc_margin"} <= set(names)
    for r in rows:
        assert r["chosen"][:-1] == r["rejected"][:-1] and r["chosen"][-1]["role"] == "assistant"


def test_every_reader_reads_the_demo_output_back(demo_run, tmp_path):
    import pyarrow as pa

    from prefcurate import iter_pairs, read_pairs

    res = Pipeline(DEMO, demo_run, data_dir=cli.demo_dir()).run()  # cached: the run's final table
    back = read_pairs(demo_run / "demo.jsonl")
    # the same pairs, sources, ids and other columns, in the same order
    assert back.column_names == res.final.column_names
    assert back.to_pylist() == res.final.to_pylist()
    streamed = pa.Table.from_batches(list(iter_pairs(demo_run / "demo.jsonl")))
    assert streamed.to_pylist() == res.final.to_pylist()
    # a recipe that reads the output (its source name replaces the pairs' source)
    again = Pipeline(
        Recipe.from_dict(
            {"name": "again", "sources": [{"name": "demo", "path": str(demo_run / "demo.jsonl")}]}
        ),
        tmp_path / "again",
        cache=False,
    ).run()
    for col in ("id", "chosen", "rejected", "prompt"):
        assert again.final.column(col).equals(res.final.column(col)), col


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_trl_trains_one_step_on_the_demo_output_as_written(demo_run, trl_setup, tmp_path, kind):
    # the file as the run wrote it: no conversion, no column dropped
    tok, config = trl_setup
    logs = train_one_step(kind, demo_run / "demo.jsonl", tok, config, tmp_path / "out")
    assert "loss" in logs


def small_recipe(sources: tuple[str, ...] = ("magpie_ultra",), **output) -> Recipe:
    """magpie_ultra (and other demo sources) with a margin stage on magpie_ultra's
    own score columns (chosen_score / rejected_score): no model, fast."""
    formats = {"magpie_ultra": "magpie_ultra", "offsetbias": "offsetbias", "helpsteer2": "helpsteer2"}
    return Recipe.from_dict(
        {
            "name": "small",
            "sources": [
                {"name": n, "path": str(SOURCES / f"{n}.jsonl"), "format": formats[n]} for n in sources
            ],
            "margin": {"sources": ["magpie_ultra"], "min_margin": -1000.0},
            "output": {"format": "jsonl", **output},
        }
    )


def test_output_margin_only_when_the_recipe_asks_and_never_null(tmp_path, trl_setup):
    out = tmp_path / "plain"
    Pipeline(small_recipe(), out).run()
    plain = [json.loads(x) for x in open(out / "small.jsonl")]
    assert "margin" not in plain[0] and "pc_margin" in plain[0]  # bookkeeping, not TRL's margin
    out = tmp_path / "margin"
    res = Pipeline(small_recipe(margin=True), out).run()
    rows = [json.loads(x) for x in open(out / "small.jsonl")]
    assert [r["margin"] for r in rows] == res.final.column("margin").to_pylist()
    assert all(isinstance(r["margin"], float) for r in rows) and "pc_margin" not in rows[0]
    tok, config = trl_setup
    assert "loss" in train_one_step("reward", out / "small.jsonl", tok, config, tmp_path / "trl")
    # unscored pairs (offsetbias has no margin): the error says which and what to do, nothing is written
    out = tmp_path / "unscored"
    with pytest.raises(PipelineError) as e:
        Pipeline(small_recipe(("magpie_ultra", "offsetbias"), margin=True), out).run()
    msg = str(e.value)
    assert "6 of 26 curated pairs have no 'margin' (offsetbias 6; first ids: offsetbias-" in msg
    assert "only the sources ['magpie_ultra']" in msg and "remove margin from [output]" in msg
    assert not (out / "small.jsonl").exists() and not (out / "README.md").exists()
    assert (
        cli.main(
            [
                "run",
                str(_toml(tmp_path, small_recipe(("magpie_ultra", "offsetbias"), margin=True))),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def _toml(tmp_path, recipe: Recipe):
    """A recipe as a TOML file (for the command line)."""
    lines = [f'name = "{recipe.name}"']
    for s in recipe.sources:
        lines += ["[[sources]]", *(f"{k} = {json.dumps(v)}" for k, v in s.items())]
    for section in ("margin", "output"):
        lines.append(f"[{section}]")
        for k, v in (getattr(recipe, section) or {}).items():
            lines.append(f"{k} = {json.dumps(v)}")
    p = tmp_path / f"{recipe.name}.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_output_layout_from_the_recipe_or_the_pipeline(tmp_path):
    from prefcurate import read_pairs

    res = Pipeline(small_recipe(layout="skywork", format="parquet"), tmp_path / "a").run()
    t = pq.read_table(tmp_path / "a" / "small.parquet")
    assert t.column_names[:3] == ["chosen", "rejected", "source"] and "pc_source" not in t.column_names
    assert read_pairs(tmp_path / "a" / "small.parquet").to_pylist() == res.final.to_pylist()
    # Pipeline(layout=) overrides the recipe's
    Pipeline(small_recipe(layout="skywork"), tmp_path / "b", layout="trl-explicit").run()
    row = json.loads(open(tmp_path / "b" / "small.jsonl").readline())
    assert list(row)[:3] == ["prompt", "chosen", "rejected"] and len(row["chosen"]) == 1
    # a save_to_disk folder, written again by a second run
    for _ in range(2):
        Pipeline(small_recipe(format="dataset"), tmp_path / "c").run()
    assert read_pairs(tmp_path / "c" / "small").to_pylist() == res.final.to_pylist()


@pytest.mark.parametrize(
    "output, layout, match",
    [
        ({"layot": "trl"}, None, r"unknown setting\(s\) \['layot'\]"),
        ({"layout": "axolotl"}, None, "layout 'axolotl' is not one of trl, trl-explicit"),
        ({}, "nope", "layout 'nope' is not one of"),
        ({"format": "csv"}, None, "format 'csv' is not one of"),
        ({"format": "parquet.gz"}, None, "format 'parquet.gz' is not one of"),
        ({"layout": "llamafactory", "margin": True}, None, "layout 'llamafactory' has no margin column"),
        ({"margin": 1}, None, "margin must be true, false or the name of a column"),
        ({"language": 3}, None, "language must be a language code"),
    ],
)
def test_output_settings_are_checked_before_the_run(tmp_path, output, layout, match):
    recipe = small_recipe()
    recipe.output = output
    with pytest.raises(PipelineError, match=match):
        Pipeline(recipe, tmp_path / "o", layout=layout)
    assert not (tmp_path / "o").exists()


def test_report_files(demo_run):
    html = (demo_run / "report.html").read_text()
    md = (demo_run / "report.md").read_text()
    for section in ("Stages", "Final mixture", "Selection", "Reward margin", "Duplicates", "Contamination"):
        assert section in html and section in md
    for png in (
        "stages.png",
        "mixture.png",
        "scores.png",
        "margins.png",
        "duplicates.png",
        "contamination.png",
    ):
        p = demo_run / "plots" / png
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"plots/{png}" in html


def test_cache_is_reused(demo_run, tmp_path):
    res = Pipeline(DEMO, demo_run, data_dir=cli.demo_dir()).run()
    # merge is a concatenation, made again on every run; every other stage comes from the cache
    assert set(res.cached) == {e[0] for e in EXPECTED} - {"merge"}
    assert res.final.num_rows == 26


def test_the_cache_holds_decisions_not_tables(demo_run):
    """Read stages keep their tables; every later stage keeps row numbers and
    the columns it added (margin scores, removed rows' reasons), and a cached
    run gives the same output byte for byte."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefcurate.pipeline.cache import ROW

    entries = [json.loads(p.read_text()) for p in (demo_run / ".cache").glob("*/done.json")]
    decided = [e for e in entries if "kept_columns" in e]
    assert len(decided) >= 5  # filter, select, margin, dedup, decontaminate
    for p in (demo_run / ".cache").glob("*/done.json"):
        meta = json.loads(p.read_text())
        if "kept_columns" not in meta:
            continue
        kept = pq.read_table(p.parent / "kept.parquet")
        assert ROW in kept.column_names
        # message lists are never copied into a decision entry
        assert "chosen" not in kept.column_names and "rejected" not in kept.column_names
    before = (demo_run / "demo.jsonl").read_bytes()
    removed_before = {p.name: p.read_bytes() for p in (demo_run / "removed").glob("*.parquet")}
    res = Pipeline(DEMO, demo_run, data_dir=cli.demo_dir()).run()
    assert len(res.cached) >= 10
    assert (demo_run / "demo.jsonl").read_bytes() == before
    after = {p.name: pq.read_table(p) for p in (demo_run / "removed").glob("*.parquet")}
    assert set(after) == set(removed_before)
    for name, data in removed_before.items():
        assert pq.read_table(pa.BufferReader(data)).equals(after[name]), name


def test_killed_run_resumes_to_the_same_output(tmp_path, demo_run):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "prefcurate.cli",
        "run",
        str(DEMO),
        "--out",
        str(out),
        "--data-dir",
        str(cli.demo_dir()),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill it once the first stages are cached (before the run finishes)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list((out / ".cache").glob("*/done.json")) if (out / ".cache").exists() else []
        if len(done) >= 8 or p.poll() is not None:
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "summary.json").exists()
    res = Pipeline(DEMO, out, data_dir=cli.demo_dir()).run()
    assert len(res.cached) >= 8
    assert (out / "demo.jsonl").read_bytes() == (demo_run / "demo.jsonl").read_bytes()
    # the removed rows too (written from the stage cache's files)
    names = sorted(f.name for f in (demo_run / "removed").iterdir())
    assert names and names == sorted(f.name for f in (out / "removed").iterdir())
    for name in names:
        assert pq.read_table(out / "removed" / name).equals(pq.read_table(demo_run / "removed" / name)), name
        # copies of the cache's files, not links: rewriting an output leaves the cache alone
        assert (out / "removed" / name).stat().st_nlink == 1


def test_recipe_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="at least one"):
        Recipe.from_dict({"name": "x"})
    with pytest.raises(InvalidInputError, match="needs path"):
        Recipe.from_dict({"sources": [{"name": "a"}]})
    with pytest.raises(InvalidInputError, match="unknown sections"):
        Recipe.from_dict({"sources": [{"name": "a", "path": "x"}], "selct": {}})
    with pytest.raises(InvalidInputError, match="not among"):
        Recipe.from_dict({"sources": [{"name": "a", "path": "x"}], "select": {"sources": ["b"]}})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(InvalidInputError, match="invalid TOML"):
        Recipe.load(bad)
    missing = Pipeline(
        Recipe.from_dict({"sources": [{"name": "a", "path": "nope.jsonl"}]}),
        tmp_path / "o",
        data_dir=tmp_path,
    )
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        missing.run()


def test_dry_run_plans_the_shipped_recipes(capsys):
    for name in ("skywork-80k-v0.1", "skywork-80k-v0.2"):
        assert cli.main(["run", name, "--out", "/nonexistent", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "Magpie-Align/Magpie-Llama-3.1-Pro-DPO-100K-v0.1" in err and "allenai/reward-bench" in err
    assert "skywork-magpie" in err


def test_a_failed_run_keeps_the_stages_it_finished_cached(tmp_path):
    ended: list[str] = []

    def hook(name: str, phase: str) -> None:
        if phase == "end":
            ended.append(name)
        elif name == "select":
            raise RuntimeError("stop at select")

    out = tmp_path / "failed"
    with pytest.raises(RuntimeError, match="stop at select"):
        Pipeline(DEMO, out, data_dir=cli.demo_dir(), stage_hook=hook).run()
    # the cache writes run in the background: every finished stage is there
    assert ended and len(list((out / ".cache").glob("*/done.json"))) == len(ended)
    res = Pipeline(DEMO, out, data_dir=cli.demo_dir()).run()
    assert res.cached == ended


def test_read_stages_count_records_in_and_pairs_out_per_source(demo_run):
    stages = {s["name"]: s for s in json.loads((demo_run / "summary.json").read_text())["stages"]}
    wg = stages["read:wildguard"]
    # 18 records (prompt + response rows) make 8 pairs; 2 records are dropped
    assert (wg["records_in"], wg["pairs_out"], wg["records_dropped"]) == (18, 8, 2)
    assert wg["by_source"] == {"wildguard": {"kept": 8, "removed": 2}}
    hs = stages["read:helpsteer2"]
    assert hs["by_source"]["helpsteer2"]["removed"] == 2 and hs["records_in"] == 12
    assert "records_in" not in stages["dedup"]


def test_an_unreadable_cache_entry_is_computed_again(tmp_path, caplog):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out)]) == 0
    first = (out / "demo.jsonl").read_text()
    cache = out / ".cache"
    damaged = 0
    for kept in cache.glob("*/kept.parquet"):
        data = kept.read_bytes()
        kept.write_bytes(data[: len(data) // 2])  # truncated
        damaged += 1
    assert damaged >= 5
    with caplog.at_level("WARNING", logger="prefcurate.pipeline"):
        assert cli.main(["demo", "--out", str(out)]) == 0
    assert (out / "demo.jsonl").read_text() == first
    assert sum("computing it again" in r.getMessage() for r in caplog.records) >= damaged
