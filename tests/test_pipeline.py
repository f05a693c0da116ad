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

from prefcurate import cli
from prefcurate.errors import InvalidInputError
from prefcurate.pipeline import Pipeline, Recipe, recipes_dir

DEMO = recipes_dir() / "demo.toml"

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
    # Air rows had the highest raw score of every group; the -0.1 offset dropped them all
    assert not any(r["source"] == "magpie_air" for r in rows)
    by_source = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
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
    assert set(res.cached) == {e[0] for e in EXPECTED}
    assert res.final.num_rows == 26


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
