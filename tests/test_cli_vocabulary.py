"""One CLI vocabulary: every command's help, a small job per command with
``--out DIR`` holding its tables and summary.json, and the first-contact
mistakes ending in one ``error:`` line (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import prefcurate
from prefcurate import cli, read_table, write_table

DEMO = cli.demo_dir()
BENCH = DEMO / "benchmark.jsonl"
FIX = Path(__file__).parent / "fixtures"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefcurate.cli", *args], capture_output=True, text=True)


def one_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """The demo's Magpie sources, converted (with their sources) into one table."""
    d = tmp_path_factory.mktemp("pool")
    tables = [
        prefcurate.read_pairs(DEMO / "sources" / f"{name}.jsonl", source=name)
        for name in ("magpie_pro_llama3.1", "magpie_pro", "magpie_air")
    ]
    path = d / "pool.parquet"
    write_table(pa.concat_tables(tables, promote_options="default"), path)
    return path


def test_every_command_has_help_and_every_option_says_what_it_does():
    commands = subcommands()
    assert {
        "decontaminate",
        "index",
        "select",
        "dedup",
        "dedup-index",
        "convert",
        "score",
        "filter-margin",
    } <= set(commands)
    assert {"run", "demo"} <= set(commands)
    for name, p in commands.items():
        r = run(name, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, (name, r.stderr)
        for action in p._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{name} {action.option_strings} has no help text"
        # the output vocabulary is the same everywhere a command writes tables
        if name in ("decontaminate", "select", "dedup", "convert", "filter-margin", "score"):
            opts = {o for a in p._actions for o in a.option_strings}
            assert {"--out", "--output-format", "--quiet"} <= opts, name


def test_stage_options_come_from_the_stage_configs():
    opts = {o for a in subcommands()["dedup"]._actions for o in a.option_strings}
    for field in prefcurate.DedupConfig.names():
        if field == "text":
            continue
        flag = "--" + field.rstrip("_").replace("_", "-")
        assert flag in opts, flag
    helps = {a.dest: a.help for a in subcommands()["dedup"]._actions}
    assert "(default: 0.8)" in helps["threshold"]


def test_select_takes_one_number_for_every_group(pool, tmp_path):
    r = run("select", str(pool), "--out", str(tmp_path / "k"), "--k", "2")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "k" / "summary.json").read_text())
    assert s["kept"] == sum(min(2, v["ranked"]) for v in s["info"]["groups"].values())
    assert (tmp_path / "k" / "kept.parquet").exists()  # the input's format
    r = run(
        "select", str(pool), "--out", str(tmp_path / "f"), "--fraction", "0.5", "--output-format", "jsonl"
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f" / "kept.jsonl").exists() and (tmp_path / "f" / "removed.jsonl").exists()


def test_a_bad_offset_or_quota_is_one_error_line(pool, tmp_path):
    line = one_error(
        run("select", str(pool), "--out", str(tmp_path / "o"), "--k", "2", "--offset", "magpie_air=abc")
    )
    assert "magpie_air" not in line or "abc" in line
    line = one_error(run("select", str(pool), "--out", str(tmp_path / "o"), "--k", "two"))
    assert "two" in line


def test_offsets_must_be_finite():
    t = pa.table({"score": [1.0, 2.0], "category": ["a", "a"], "source": ["x", "y"]})
    for bad in (math.nan, math.inf):
        with pytest.raises(prefcurate.InvalidInputError, match="offsets must be"):
            prefcurate.select_top(t, k=1, offsets={"x": bad})


def test_csv_output_of_a_pair_table(pool, tmp_path):
    for cmd, extra in (
        ("select", ["--k", "2"]),
        ("dedup", []),
        ("decontaminate", ["--benchmark", str(BENCH)]),
    ):
        out = tmp_path / cmd
        r = run(cmd, str(pool), "--out", str(out), "--output-format", "csv", *extra)
        assert r.returncode == 0, (cmd, r.stderr)
        kept = pacsv.read_csv(out / "kept.csv")
        assert kept.num_rows > 0
        # message lists are JSON text in CSV
        first = json.loads(kept.column("chosen")[0].as_py())
        assert first[0]["role"] in ("system", "user")


def test_out_must_be_a_folder_and_an_empty_input_says_so(pool, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    line = one_error(run("dedup", str(pool), "--out", str(f)))
    assert "folder" in line
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for cmd in ("dedup", "select", "convert"):
        args = ["--k", "1"] if cmd == "select" else []
        line = one_error(run(cmd, str(empty), "--out", str(tmp_path / f"o-{cmd}"), *args))
        assert "empty" in line, (cmd, line)


def test_the_older_spellings_still_work_with_a_warning(pool, tmp_path):
    r = run("dedup", str(pool), "--out", str(tmp_path / "d"), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d" / "kept.jsonl").exists() and "deprecated" in r.stderr
    r = run(
        "convert", str(FIX / "magpie_dpo.jsonl"), "--out", str(tmp_path / "c.jsonl"), "--format", "magpie_dpo"
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.jsonl").exists() and r.stderr.count("deprecated") == 2


def test_convert_writes_a_folder_with_its_summary(tmp_path):
    out = tmp_path / "c"
    r = run("convert", str(FIX / "helpsteer2.jsonl"), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "" or all(x.startswith("warning:") for x in r.stderr.splitlines())
    s = json.loads((out / "summary.json").read_text())
    pairs = read_table(out / "pairs.jsonl")
    assert s["pairs"] == pairs.num_rows and s["rows_read"] >= pairs.num_rows


def test_a_preset_naming_absent_sources_warns(tmp_path):
    t = prefcurate.read_pairs(DEMO / "sources" / "magpie_pro.jsonl")  # no --source: one generic label
    src = tmp_path / "unlabelled.parquet"
    write_table(
        t.set_column(t.column_names.index("source"), "source", pa.array(["magpie_dpo"] * t.num_rows)), src
    )
    r = run("select", str(src), "--out", str(tmp_path / "s"), "--preset", "skywork-magpie")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "magpie_air" in r.stderr and "do not apply" in r.stderr


def test_output_is_not_wrapped_in_a_pipe(pool, tmp_path):
    long_out = tmp_path / ("x" * 120)
    r = run("dedup", str(pool), "--out", str(long_out))
    assert r.returncode == 0, r.stderr
    assert any(str(long_out) in line for line in r.stderr.splitlines())


@pytest.mark.parametrize("cmd", ["score", "convert"])
def test_an_unreachable_hub_name_fails_in_seconds(cmd, tmp_path):
    import os

    # a closed local port stands for the Hub: the connection is refused at once
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    args = ["--model", "org/no-such-model"] if cmd == "score" else []
    src = str(FIX / "trl.jsonl") if cmd == "score" else "org/no-such-dataset"
    r = subprocess.run(
        [sys.executable, "-m", "prefcurate.cli", cmd, src, *args, "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,  # the libraries' own retries take longer than this
    )
    line = one_error(r)
    assert "cannot be reached" in line and "HF_HUB_OFFLINE" in line
