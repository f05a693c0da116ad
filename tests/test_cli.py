"""The decontaminate / index commands on the bundled sample."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from prefcurate import cli, read_table
from reference import sklearn_triples

ULTRA = cli.demo_dir() / "sources" / "magpie_ultra.jsonl"
BENCH = cli.demo_dir() / "benchmark.jsonl"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefcurate.cli", *args], capture_output=True, text=True)


def test_decontaminate_command_writes_kept_removed_summary(tmp_path):
    out = tmp_path / "out"
    # magpie-ultra rows: the text column is `instruction`
    r = run(
        "decontaminate",
        str(ULTRA),
        "--benchmark",
        str(BENCH),
        "--out",
        str(out),
        "--text",
        "instruction",
        "--format",
        "parquet",
    )
    assert r.returncode == 0, r.stderr
    kept = pq.read_table(out / "kept.parquet")
    removed = pq.read_table(out / "removed.parquet")
    assert kept.num_rows + removed.num_rows == 20
    # the sample plants two benchmark prompts in magpie_ultra instructions
    assert sorted(removed.column("benchmark_id").to_pylist()) == ["demo-chat-1", "demo-math-1"]
    assert {"benchmark_subset", "score", "matched_span", "response", "score_base"} <= set(
        removed.column_names
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["removed"] == 2 and summary["input"] == 20
    assert "chat-hard" in r.stderr  # the table by subset is printed
    # and the scores are the reference's
    prompts = read_table(ULTRA).column("instruction").to_pylist()
    bench = read_table(BENCH).column("prompt").to_pylist()
    m = pq.read_table(out / "matches.parquet")
    got = list(zip(m["train_index"].to_pylist(), m["benchmark_index"].to_pylist(), m["score"].to_pylist()))
    assert got == sklearn_triples(bench, prompts)


def test_index_command_and_reuse(tmp_path):
    r = run("index", str(BENCH), "--out", str(tmp_path / "bench"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bench.pcidx").exists()
    r = run(
        "decontaminate",
        str(ULTRA),
        "--text",
        "instruction",
        "--benchmark",
        str(tmp_path / "bench.pcidx"),
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["removed"] == 2


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
