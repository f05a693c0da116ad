"""The command line and the bundled demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from prefcurate import cli, read_table
from reference import sklearn_triples

TRAIN, BENCH = cli.demo_files()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefcurate.cli", *args], capture_output=True, text=True)


def test_demo_counts_match_the_planted_rows(tmp_path):
    """The demo's sample was written with known plants (see its train.jsonl):
    a verbatim code prompt, a math prompt with a suffix, a partial span, a
    short prompt copied whole, and twelve prompts sharing one benchmark
    prompt's role-play template."""
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    ids = read_table(TRAIN).column("id").to_pylist()
    templates = sorted(i for i in ids if i.startswith("demo-template-"))
    assert len(templates) == 12

    ref = json.loads((tmp_path / "reference" / "summary.json").read_text())
    removed = [json.loads(x)["id"] for x in open(tmp_path / "reference" / "removed.jsonl")]
    assert sorted(removed) == sorted(["demo-leak-code", "demo-leak-partial", "demo-leak-math", *templates])
    assert ref["input"] == 32 and ref["removed"] == 15 and ref["kept"] == 17

    precise = json.loads((tmp_path / "precise" / "summary.json").read_text())
    removed = [json.loads(x)["id"] for x in open(tmp_path / "precise" / "removed.jsonl")]
    assert sorted(removed) == sorted(["demo-leak-code", "demo-leak-math", "demo-leak-short"])
    assert precise["removed"] == 3 and precise["by_reason"] == {"benchmark_coverage": 3}

    # the reference run agrees with sklearn on the demo
    prompts = [r[0]["content"] for r in read_table(TRAIN).column("chosen").to_pylist()]
    bench = read_table(BENCH).column("prompt").to_pylist()
    m = pq.read_table(tmp_path / "reference" / "matches.parquet")
    got = list(zip(m["train_index"].to_pylist(), m["benchmark_index"].to_pylist(), m["score"].to_pylist()))
    assert got == sklearn_triples(bench, prompts)


def test_decontaminate_command_writes_kept_removed_summary(tmp_path):
    out = tmp_path / "out"
    r = run("decontaminate", str(TRAIN), "--benchmark", str(BENCH), "--out", str(out), "--format", "parquet")
    assert r.returncode == 0, r.stderr
    kept = pq.read_table(out / "kept.parquet")
    removed = pq.read_table(out / "removed.parquet")
    assert kept.num_rows + removed.num_rows == 32
    assert {
        "benchmark_id",
        "benchmark_subset",
        "score",
        "matched_span",
        "chosen",
        "rejected",
        "source",
    } <= set(removed.column_names)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["removed"] == removed.num_rows == 15
    assert summary["by_source"] == {"demo_general": 2, "demo_math": 1, "demo_roleplay": 12}
    assert "chat-hard" in r.stderr  # the table by subset is printed


def test_index_command_and_reuse(tmp_path):
    r = run("index", str(BENCH), "--out", str(tmp_path / "bench"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bench.pcidx").exists()
    r = run(
        "decontaminate",
        str(TRAIN),
        "--benchmark",
        str(tmp_path / "bench.pcidx"),
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["removed"] == 15


def test_errors_are_reported_without_traceback(tmp_path):
    r = run(
        "decontaminate", str(tmp_path / "missing.jsonl"), "--benchmark", str(BENCH), "--out", str(tmp_path)
    )
    assert r.returncode == 2
    assert "missing.jsonl" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n{"prompt": null}\n')
    r = run("decontaminate", str(bad), "--benchmark", str(BENCH), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "row 1 is null" in r.stderr and "bad.jsonl" in r.stderr
