#!/usr/bin/env python3
"""One command for every benchmark figure: runs each benchmark and its peers,
each tool in a fresh process, several times, and writes benches/results/.

    python benches/run_all.py                     # everything, 3 runs (about 40 minutes on 2 quiet cores)
    python benches/run_all.py --quick             # small workloads: a smoke test of the whole chain
    python benches/run_all.py --only dedup --runs 5   # replaces dedup's entry, keeps the others
    python benches/run_all.py --skip-peers        # no Python >= 3.12 peer venv (corpus-assay, decontaminate)
    python benches/run_all.py --setup-peers       # install the missing peers first (rensa; the peer venv)

Each run calls every bench script once (benches/decontaminate.py, dedup.py,
select_top.py, pipeline.py, io.py, ray_scaling.py, and rm_scoring_gpu.py where
a GPU is present) with ``--records``: every script runs each tool in a fresh
process and times it "cold", its imports and first call inside the clock
(benches/benchkit.py says how), with warm figures beside it where the script
has them.  Runs are interleaved (run 1 of every bench, then run 2, ...) so that
a noisy minute spreads over the benches; the generated data are made once and
kept in ``--work``.  Ratios ("time vs prefcurate": a tool's seconds over
prefcurate's) are taken within each run, then summarised over the runs.

Written: ``OUT/results.json`` (schema ``prefcurate-bench-results/1``, below),
``OUT/results.md`` (the tables, the targets, the conditions); ``OUT`` is
benches/results (``--quick``: benches/results/quick, kept out of git).  The
README's tables are rendered from results.json by
``python scripts/render_bench_tables.py --write README.md``.  The bench
scripts' own output goes to ``WORK/logs/``.

results.json::

    {"schema": "prefcurate-bench-results/1", "date", "finished", "seconds",
     "command", "quick", "runs", "commit", "dirty",
     "machine": {"cores", "cpu", "memory_gb", "loadavg_start", "loadavg_end",
                 "python", "platform", "versions": {package: version}},
     "peers": {"peer_python", "missing": [...]},
     "benches": {NAME: {
        "title", "script", "command", "status" ("ok" | "failed" | "skipped"), "note",
        "run": {the top-level date, finished, command, quick, runs, commit, dirty,
                machine, peers of the run this bench comes from},
        "bench_seconds": STATS, "workload": {...}, "baseline": TOOL,
        "tools": [{"tool", "label", "role", "baseline", "compare_to", "mode", "threads",
                   "rows", "status" ("ok" | "partial" | "missing" | "failed" | "skipped"),
                   "error", "runs_ok", "seconds": STATS, "warm_seconds": STATS,
                   "peak_rss_mb": STATS, "loaded_rss_mb": STATS,
                   "ratio": STATS, "ratio_scaled", "warm_ratio": STATS,
                   "metrics": {NAME: STATS | value}, "notes"}],
        "checks": [{"name", "ok", "runs": [bool, ...], "detail"}],
        "targets": [{"name", "tool", "field", "op", "target", "unit",
                     "value": STATS, "met", "met_all_runs",
                     "status" ("met" | "met-median" | "missed" | "not measured"), "note"}]}}}

    STATS = {"min", "median", "max", "n", "runs": [one value per run]}
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_SCHEMA = "prefcurate-bench-results/1"
PEER_VENVS = (
    HERE / "peers" / ".peer-venv" / "venv" / "bin" / "python",
    ROOT / ".venv-peers" / "venv" / "bin" / "python",
)


@dataclass
class Bench:
    name: str
    title: str
    script: str
    full: list[str]
    quick: list[str]
    #: minutes one full run takes on the 2-core machine (for the estimate)
    minutes: float
    baseline: str | None
    skip_peers: list[str] = field(default_factory=lambda: ["--skip-peers"])
    gpu: bool = False


BENCHES = [
    Bench(
        "decontaminate",
        "Decontamination",
        "decontaminate.py",
        [],
        ["--rows", "4000", "--sklearn-rows", "500", "--repeat", "3", "--pure-repeat", "2"],
        2.5,
        "prefcurate-t2",
    ),
    Bench("dedup", "Near-duplicates", "dedup.py", [], ["--rows", "4000"], 3.0, "prefcurate-t2"),
    Bench("select_top", "Selection", "select_top.py", [], ["--rows", "200000"], 2.0, "prefcurate"),
    Bench(
        "pipeline",
        "The pipeline",
        "pipeline.py",
        [],
        ["--scale", "0.02"],
        0.9,
        "prefcurate",
        skip_peers=[],
    ),
    Bench("io", "Reading pairs", "io.py", [], ["--rows", "5000"], 1.7, "prefcurate"),
    Bench(
        "ray_scaling",
        "Ray engine",
        "ray_scaling.py",
        [],
        ["--decont-rows", "2000", "--dedup-rows", "2000", "--workers", "1"],
        1.2,
        None,
        skip_peers=[],
    ),
    Bench(
        "rm_scoring_gpu",
        "Reward-model scoring",
        "rm_scoring_gpu.py",
        [],
        ["--tiny"],
        6.0,
        "prefcurate",
        skip_peers=[],
        gpu=True,
    ),
]
#: minutes to generate each bench's data once (kept in --work for the later runs)
GENERATE_MINUTES = {
    "decontaminate": 0.3,
    "dedup": 1.5,
    "select_top": 0.5,
    "pipeline": 1.2,
    "io": 3.0,
    "ray_scaling": 0.3,
}


@dataclass
class Target:
    bench: str
    name: str
    tool: str
    field: str  # "ratio", "seconds", "peak_rss_mb" or "metrics.NAME"
    op: str  # ">=", "<=" or "=="
    target: Any
    unit: str = ""
    digits: int | None = None  # decimals shown (None: by size)


TARGETS = [
    Target(
        "decontaminate",
        "pure-Python 7-gram set / prefcurate (reference method, full scored triples, 2 threads), cold",
        "pure-python",
        "ratio",
        ">=",
        30,
        "x",
    ),
    Target(
        "decontaminate", "prefcurate peak RSS (2 threads)", "prefcurate-t2", "peak_rss_mb", "<=", 1024, "MB"
    ),
    Target(
        "dedup",
        "rensa with 16 bands (its Python shingling included) / prefcurate, cold",
        "rensa-16",
        "ratio",
        ">=",
        8,
        "x",
    ),
    Target(
        "dedup",
        "prefcurate recall on the planted pairs",
        "prefcurate-t2",
        "metrics.recall",
        ">=",
        0.99,
        "",
        3,
    ),
    Target(
        "dedup",
        "prefcurate links under the threshold (every link verified)",
        "prefcurate-t2",
        "metrics.links_below_threshold",
        "<=",
        0,
        "",
        0,
    ),
    Target(
        "select_top",
        "polars `top_k_by` per group (offsets inside the timing) / prefcurate, cold",
        "polars-topk",
        "ratio",
        ">=",
        2,
        "x",
    ),
    Target(
        "select_top",
        "prefcurate keeps the same rows as the pandas reference",
        "prefcurate",
        "metrics.same_rows_as_pandas",
        "==",
        True,
    ),
    # "half of today's 33-41 s": half of the low end
    Target("pipeline", "full CPU recipe, cold (half of 33 s)", "prefcurate", "seconds", "<=", 16.5, " s"),
    Target(
        "pipeline",
        "writing after the stages, share of the total",
        "prefcurate",
        "metrics.write_share",
        "<=",
        0.25,
        "%",
    ),
    Target(
        "pipeline",
        "peak RSS / the pool's in-memory size",
        "prefcurate",
        "metrics.peak_over_pool",
        "<=",
        2,
        "x",
    ),
    Target(
        "pipeline",
        "bytes written (/proc/self/io write_bytes) / the input's size",
        "prefcurate",
        "metrics.written_over_input",
        "<=",
        2,
        "x",
    ),
]


# ---------------------------------------------------------------- helpers


def load_render():
    """scripts/render_bench_tables.py (the same tables as the README's)."""
    spec = importlib.util.spec_from_file_location(
        "render_bench_tables", ROOT / "scripts" / "render_bench_tables.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def stats(values: list[Any]) -> dict | None:
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    if not vals:
        return None
    return {
        "min": min(vals),
        "median": statistics.median(vals),
        "max": max(vals),
        "n": len(vals),
        "runs": vals,
    }


def git(*args: str) -> str | None:
    try:
        p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    from importlib import metadata

    versions = {}
    for pkg in (
        "prefcurate",
        "numpy",
        "pyarrow",
        "polars",
        "pandas",
        "scikit-learn",
        "datasketch",
        "rensa",
        "datasets",
        "ray",
        "torch",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cores": usable,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem,
        "loadavg_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def find_peer_python(args) -> str | None:
    if args.peer_python:
        return args.peer_python if os.access(args.peer_python, os.X_OK) else None
    for py in PEER_VENVS:
        if py.exists():
            return str(py)
    return None


def setup_peers(args) -> None:
    """Install what is missing: rensa into this Python, the peer venv."""
    if importlib.util.find_spec("rensa") is None:
        print("installing rensa==0.5.0 into this Python ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "rensa==0.5.0"], check=False)
    if not args.skip_peers and find_peer_python(args) is None:
        print("setting up the peers' Python >= 3.12 venv (benches/peers/setup_peer_venv.sh) ...", flush=True)
        p = subprocess.run(
            ["bash", str(HERE / "peers" / "setup_peer_venv.sh")], capture_output=True, text=True
        )
        if p.returncode != 0:
            print(f"  peer venv set-up failed:\n{p.stderr[-2000:]}", file=sys.stderr)


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def run_bench(b: Bench, cmd: list[str], log: Path, timeout: float) -> tuple[int, float]:
    """Run one bench script (its own process group, so that a timeout ends all
    of its processes and nothing else); (exit code, seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            f.write(f"\n(timed out after {timeout:.0f} s)\n")
            rc = 124
    return rc, time.perf_counter() - t0


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


# ---------------------------------------------------------------- aggregation


def aggregate_tools(b: Bench, runs: list[list[dict]]) -> list[dict]:
    """One entry per tool over the runs (``runs``: each run's tool records)."""
    order: list[str] = []
    per: dict[str, list[dict | None]] = {}
    n = len(runs)
    for i, recs in enumerate(runs):
        for r in recs:
            t = r["tool"]
            if t not in per:
                order.append(t)
                per[t] = [None] * n
            per[t][i] = r
    out = []
    for t in order:
        recs = per[t]
        got = [r for r in recs if r is not None]
        ok = [r for r in got if r["status"] == "ok"]
        first = ok[0] if ok else got[0]
        baseline = bool(first.get("baseline")) or t == b.baseline
        status = (
            "ok"
            if len(ok) == n
            else "partial"
            if ok
            else next((r["status"] for r in got if r["status"] != "ok"), "failed")
        )
        entry: dict[str, Any] = {
            k: first.get(k)
            for k in ("tool", "label", "role", "compare_to", "mode", "threads", "rows", "notes")
        }
        entry.update(
            baseline=baseline,
            status=status,
            error=next((r.get("error") for r in got if r.get("error")), None),
            runs_ok=len(ok),
            seconds=stats([r["seconds"] if r and r["status"] == "ok" else None for r in recs]),
            warm_seconds=stats(
                [
                    statistics.median(r["warm_seconds"])
                    if r and r["status"] == "ok" and r["warm_seconds"]
                    else None
                    for r in recs
                ]
            ),
            peak_rss_mb=stats([r.get("peak_rss_mb") if r and r["status"] == "ok" else None for r in recs]),
            loaded_rss_mb=stats(
                [r.get("loaded_rss_mb") if r and r["status"] == "ok" else None for r in recs]
            ),
        )
        metrics: dict[str, Any] = {}
        names = [k for r in ok for k in r.get("metrics", {})]
        for k in dict.fromkeys(names):
            vals = [r["metrics"].get(k) if r and r["status"] == "ok" else None for r in recs]
            present = [v for v in vals if v is not None]
            if all(isinstance(v, bool) for v in present):
                metrics[k] = all(present) if present else None
            elif all(isinstance(v, (int, float)) for v in present):
                metrics[k] = stats(vals)
            elif k == "stages":
                # the per-stage table of the run with the median total
                secs = [(r["seconds"], r["metrics"]["stages"]) for r in ok if r["metrics"].get("stages")]
                secs.sort(key=lambda x: x[0])
                metrics["stages_median_run"] = secs[len(secs) // 2][1] if secs else None
            else:
                metrics[k] = present[-1] if present else None
        entry["metrics"] = metrics
        entry["_recs"] = recs
        out.append(entry)
    # ratios within each run
    by_id = {e["tool"]: e for e in out}
    base_id = next((e["tool"] for e in out if e["baseline"]), None)
    for e in out:
        ref_id = e["compare_to"] or (base_id if not e["baseline"] else None)
        ref = by_id.get(ref_id) if ref_id else None
        e["ratio"] = e["warm_ratio"] = None
        e["ratio_scaled"] = False
        if ref is None or e is ref:
            continue
        cold_r, warm_r = [], []
        for mine, theirs in zip(e["_recs"], ref["_recs"]):
            if not (mine and theirs and mine["status"] == "ok" and theirs["status"] == "ok"):
                continue
            scale = 1.0
            if mine.get("rows") and theirs.get("rows") and mine["rows"] != theirs["rows"]:
                scale = theirs["rows"] / mine["rows"]  # a subset: its time scaled linearly to the full rows
                e["ratio_scaled"] = True
            if mine.get("seconds") and theirs.get("seconds"):
                cold_r.append(mine["seconds"] * scale / theirs["seconds"])
            if mine.get("warm_seconds") and theirs.get("warm_seconds"):
                warm_r.append(
                    statistics.median(mine["warm_seconds"])
                    * scale
                    / statistics.median(theirs["warm_seconds"])
                )
        e["ratio"] = stats(cold_r)
        e["warm_ratio"] = stats(warm_r)
    for e in out:
        del e["_recs"]
    return out


def aggregate_checks(runs: list[list[dict]]) -> list[dict]:
    order: dict[str, dict] = {}
    for recs in runs:
        for c in recs:
            e = order.setdefault(c["name"], {"name": c["name"], "runs": [], "detail": c.get("detail")})
            e["runs"].append(c["ok"])
    for e in order.values():
        vals = [v for v in e["runs"] if v is not None]
        e["ok"] = all(vals) if vals else None
    return list(order.values())


def evaluate(t: Target, tools: list[dict]) -> dict:
    out: dict[str, Any] = {
        "name": t.name,
        "tool": t.tool,
        "field": t.field,
        "op": t.op,
        "target": t.target,
        "unit": t.unit,
        "digits": t.digits,
        "value": None,
        "met": None,
        "met_all_runs": None,
        "status": "not measured",
        "note": None,
    }
    e = next((x for x in tools if x["tool"] == t.tool), None)
    if e is None or e["status"] in ("missing", "failed", "skipped"):
        out["note"] = f"{t.tool}: {e['status']}: {e.get('error')}" if e else f"no {t.tool} row"
        return out
    if t.field.startswith("metrics."):
        v = e["metrics"].get(t.field.split(".", 1)[1])
    else:
        v = e.get(t.field)
    if v is None:
        ref_id = e.get("compare_to") or next((x["tool"] for x in tools if x["baseline"]), None)
        ref = next((x for x in tools if x["tool"] == ref_id), None)
        if t.field == "ratio" and ref is not None and ref["status"] not in ("ok", "partial"):
            out["note"] = f"{ref['tool']}: {ref['status']}: {ref.get('error')}"
        else:
            out["note"] = f"{t.tool} has no {t.field}"
        return out
    if isinstance(v, bool):
        out.update(
            value={"min": v, "median": v, "max": v, "n": e["runs_ok"], "runs": [v]}, met=v, met_all_runs=v
        )
        out["status"] = "met" if v else "missed"
        return out
    out["value"] = v

    def ok(x: float) -> bool:
        return x >= t.target if t.op == ">=" else x <= t.target if t.op == "<=" else x == t.target

    worst = v["min"] if t.op == ">=" else v["max"]
    out["met"] = ok(v["median"])
    out["met_all_runs"] = ok(worst) and (t.op != "==" or ok(v["min"]))
    out["status"] = "met" if out["met_all_runs"] else "met-median" if out["met"] else "missed"
    if e["status"] == "partial":
        out["note"] = f"{e['runs_ok']} of the runs"
    return out


def aggregate(
    b: Bench, recs_by_run: list[list[dict]], walls: list[float], rcs: list[int], cmd: list[str]
) -> dict:
    tools_runs = [[r for r in recs if r.get("kind") == "tool"] for recs in recs_by_run]
    checks_runs = [[r for r in recs if r.get("kind") == "check"] for recs in recs_by_run]
    wls = [r["workload"] for recs in recs_by_run for r in recs if r.get("kind") == "workload"]
    tools = aggregate_tools(b, tools_runs)
    failed = [i + 1 for i, rc in enumerate(rcs) if rc != 0]
    return {
        "title": b.title,
        "script": f"benches/{b.script}",
        "command": " ".join(["python", f"benches/{b.script}", *cmd]),
        "status": "failed" if failed and len(failed) == len(rcs) else "ok",
        "note": f"the script exited non-zero in run(s) {failed}" if failed else None,
        "bench_seconds": stats(walls),
        "workload": wls[0] if wls else {},
        "baseline": next((t["tool"] for t in tools if t["baseline"]), None),
        "tools": tools,
        "checks": aggregate_checks(checks_runs),
        "targets": [evaluate(t, tools) for t in TARGETS if t.bench == b.name],
    }


# ---------------------------------------------------------------- console


#: what each bench entry keeps of the run it comes from (``run``)
RUN_KEYS = ("date", "finished", "command", "quick", "runs", "commit", "dirty", "machine", "peers")


def merge_previous(path: Path, result: dict) -> list[str]:
    """With ``--only``: the benches of an earlier results.json at ``path``
    (of the same kind, quick or not) that this run did not measure are kept,
    each with its own ``run``; their names."""
    try:
        prev = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if prev.get("schema") != RESULTS_SCHEMA or prev.get("quick") != result["quick"]:
        return []
    kept = []
    for name, entry in prev.get("benches", {}).items():
        if name not in result["benches"]:
            entry.setdefault("run", {k: prev.get(k) for k in RUN_KEYS})
            result["benches"][name] = entry
            kept.append(name)
    order = [b.name for b in BENCHES]
    result["benches"] = dict(
        sorted(result["benches"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
    )
    return kept


def print_summary(res: dict, render) -> None:
    for name, b in res["benches"].items():
        print(f"\n== {b['title']} ({name}) " + "=" * max(0, 60 - len(name) - len(b["title"])))
        if b["status"] == "skipped":
            print(f"   not run: {b['note']}")
            continue
        if b.get("note"):
            print(f"   {b['note']}")
        print(
            f"   {'tool':52} {'seconds (min-max)':>24} {'warm':>8} {'peak MB':>8} {'vs prefcurate (min-max)':>26}"
        )
        for t in b["tools"]:
            if t["status"] in ("missing", "failed", "skipped"):
                print(f"   {t['label'][:52]:52} {t['status']}: {(t.get('error') or '')[:110]}")
                continue
            sec = render.stat(t["seconds"])
            w = render.num(t["warm_seconds"]["median"]) if t.get("warm_seconds") else "-"
            pk = f"{t['peak_rss_mb']['median']:,.0f}" if t.get("peak_rss_mb") else "-"
            r = render.tool_ratio(t) if (t.get("ratio") or t["baseline"]) else "-"
            mode = "" if t["mode"] == "cold" else f" [{t['mode']}]"
            print(f"   {(t['label'] + mode)[:52]:52} {sec:>24} {w:>8} {pk:>8} {r:>26}")
        for c in b["checks"]:
            print(f"   check: {c['name']}: {c['ok']}")
    print("\n== targets " + "=" * 60)
    for name, b in res["benches"].items():
        for t in b.get("targets", []):
            cells = render.target_cells(t)
            print(f"   {name:14} {cells[0][:70]:70} {cells[1]:>26}  {cells[2]:>9}  {cells[3]}")


def estimate_minutes(benches: list[Bench], runs: int) -> float:
    return sum(GENERATE_MINUTES.get(b.name, 0) + b.minutes * runs for b in benches if not b.gpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=None, help="runs of every bench (default 3; --quick: 2)")
    ap.add_argument("--quick", action="store_true", help="small workloads (seconds each): a smoke test")
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"only these benches (repeatable): {[b.name for b in BENCHES]}",
    )
    ap.add_argument(
        "--skip-peers",
        action="store_true",
        help="leave out the third-party peers (corpus-assay and decontaminate in the Python >= 3.12 venv, "
        "datasketch, rensa, polars, the datasets loop); prefcurate and the references "
        "(pure-Python, sklearn, pandas) stay",
    )
    ap.add_argument(
        "--peer-python",
        default=os.environ.get("PEER_PYTHON"),
        help="a Python >= 3.12 with corpus-assay and decontaminate "
        "(default: benches/peers/.peer-venv or .venv-peers when present)",
    )
    ap.add_argument(
        "--setup-peers", action="store_true", help="install missing peers first (needs PyPI / Debian)"
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="default: benches/results (--quick: benches/results/quick)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="generated data and logs, kept between invocations (default: $TMPDIR/prefcurate-bench-work[-quick])",
    )
    ap.add_argument(
        "--timeout", type=float, default=None, help="seconds per bench run (default 3600; --quick 600)"
    )
    ap.add_argument("--dry-run", action="store_true", help="print the commands and the estimate, run nothing")
    ap.add_argument(
        "--gpu",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run rm_scoring_gpu.py (auto: when a GPU is seen)",
    )
    args = ap.parse_args()

    args.runs = args.runs or (2 if args.quick else 3)
    if importlib.util.find_spec("prefcurate") is None:
        print(
            f"prefcurate is not importable from {sys.executable}: run with the project's venv",
            file=sys.stderr,
        )
        return 2
    names = [b.name for b in BENCHES]
    if args.only:
        wanted = [x for o in args.only for x in o.split(",") if x]
        bad = [x for x in wanted if x not in names]
        if bad:
            print(f"unknown bench {bad}; choose from {names}", file=sys.stderr)
            return 2
        benches = [b for b in BENCHES if b.name in wanted]
    else:
        benches = list(BENCHES)
    out = args.out or (HERE / "results" / "quick" if args.quick else HERE / "results")
    import tempfile

    work = args.work or Path(tempfile.gettempdir()) / (
        "prefcurate-bench-work" + ("-quick" if args.quick else "")
    )
    timeout = args.timeout or (600 if args.quick else 3600)
    render = load_render()

    if args.setup_peers:
        setup_peers(args)
    peer_py = None if args.skip_peers else find_peer_python(args)
    missing_peers = []
    if not args.skip_peers:
        if peer_py is None:
            missing_peers.append(
                "corpus-assay, decontaminate: no Python >= 3.12 peer venv "
                + (f"(--peer-python {args.peer_python} is not an interpreter)" if args.peer_python else "")
                + "(bash benches/peers/setup_peer_venv.sh, or --setup-peers, or --peer-python)"
            )
        for mod, pip in (("rensa", "rensa==0.5.0"), ("datasketch", "datasketch"), ("polars", "polars")):
            if importlib.util.find_spec(mod) is None:
                missing_peers.append(f"{mod}: not installed in {sys.executable} (pip install {pip})")
    gpu = {"auto": has_gpu(), "yes": True, "no": False}[args.gpu]

    start = dt.datetime.now(dt.timezone.utc)
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    mach = machine()
    command = "python benches/run_all.py" + "".join(f" {a}" for a in sys.argv[1:])
    print(
        f"{len(benches)} benches x {args.runs} run(s){' (quick workloads)' if args.quick else ''}; "
        f"{mach['cores']} cores ({mach['cpu']}), load average {mach['loadavg_start'][0]:.2f}; "
        f"commit {(commit or '?')[:10]}{' + uncommitted changes' if dirty else ''}"
    )
    if not args.quick:
        print(f"expected: about {estimate_minutes(benches, args.runs):.0f} minutes on a quiet 2-core machine")
    for m in missing_peers:
        print(f"peer missing: {m}")
    print(f"logs and generated data: {work}", flush=True)

    plan: list[tuple[Bench, list[str]]] = []
    skipped: dict[str, str] = {}
    for b in benches:
        if b.gpu and not (gpu or args.quick):
            skipped[b.name] = "needs a GPU (none seen here; `--gpu yes` to try)"
            continue
        extra = list(b.quick if args.quick else b.full)  # rm_scoring_gpu quick: --tiny, its CPU check
        if args.skip_peers:
            extra += b.skip_peers
        if b.name == "decontaminate":
            # without a peer venv the script records corpus-assay and decontaminate as missing
            py = peer_py or args.peer_python
            extra += ["--no-peer-setup"] + (["--peer-python", py] if py else [])
        if b.name not in ("rm_scoring_gpu",):
            extra += ["--work", str(work / b.name)]
        plan.append((b, extra))

    if args.dry_run:
        for b, extra in plan:
            print(f"{b.name}: python benches/{b.script} {' '.join(extra)} --records ...")
        for name, why in skipped.items():
            print(f"{name}: skipped: {why}")
        return 0
    raw = work / "records"
    shutil.rmtree(raw, ignore_errors=True)
    walls: dict[str, list[float]] = {b.name: [] for b, _ in plan}
    rcs: dict[str, list[int]] = {b.name: [] for b, _ in plan}
    t_all = time.perf_counter()
    for run in range(1, args.runs + 1):
        for b, extra in plan:
            rec = raw / f"{b.name}-run{run}.jsonl"
            log = work / "logs" / f"{b.name}-run{run}.log"
            cmd = [sys.executable, str(HERE / b.script), *extra, "--records", str(rec)]
            print(f"run {run}/{args.runs}: {b.name} ...", end=" ", flush=True)
            rc, secs = run_bench(b, cmd, log, timeout)
            walls[b.name].append(secs)
            rcs[b.name].append(rc)
            n = sum(1 for r in read_records(rec) if r.get("kind") == "tool" and r["status"] == "ok")
            print(
                f"{secs:.1f} s, {n} tool run(s) recorded" + (f", exit {rc} (see {log})" if rc else ""),
                flush=True,
            )
            if rc:
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print("   " + "\n   ".join(tail), file=sys.stderr)

    result: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "date": start.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t_all,
        "command": command,
        "quick": args.quick,
        "runs": args.runs,
        "commit": commit,
        "dirty": dirty,
        "machine": {**mach, "loadavg_end": list(os.getloadavg())},
        "peers": {"peer_python": peer_py, "skip_peers": args.skip_peers, "missing": missing_peers},
        "benches": {},
    }
    for b in benches:
        if b.name in skipped:
            result["benches"][b.name] = {
                "title": b.title,
                "script": f"benches/{b.script}",
                "command": f"python benches/{b.script}",
                "status": "skipped",
                "note": skipped[b.name],
                "tools": [],
                "checks": [],
                "targets": [],
            }
            continue
        extra = next(e for x, e in plan if x is b)
        recs = [read_records(raw / f"{b.name}-run{r}.jsonl") for r in range(1, args.runs + 1)]
        shown = [a for a in extra if not a.startswith(str(work))]
        shown = [a for a in shown if a != "--work"]
        result["benches"][b.name] = aggregate(b, recs, walls[b.name], rcs[b.name], shown)
    for entry in result["benches"].values():
        entry["run"] = {k: result[k] for k in RUN_KEYS}

    out.mkdir(parents=True, exist_ok=True)
    merged = merge_previous(out / "results.json", result) if args.only else []
    if merged:
        print(f"kept from the previous {out / 'results.json'}: {merged}")
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    blocks = render.render_all(result)
    md = [
        "# Benchmark results",
        "",
        f"`{command}`, {result['date']} to {result['finished']} ({result['seconds'] / 60:.1f} minutes); "
        f"machine: {render.machine_line(result)}; load average at the end "
        f"{result['machine']['loadavg_end'][0]:.2f}; Python {mach['python']}.",
        "",
        "Generated by benches/run_all.py; the README's tables come from results.json "
        "(`python scripts/render_bench_tables.py --write README.md`).",
    ]
    if missing_peers:
        md += ["", "Peers missing from this run:", "", *[f"- {m}" for m in missing_peers]]
    md += ["", "## Targets", "", blocks.pop("targets")]
    for name, text in blocks.items():
        md += ["", f"## {result['benches'][name]['title']}", "", text]
    (out / "results.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print_summary(result, render)
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'} in {result['seconds'] / 60:.1f} minutes")
    return 0 if all(b["status"] != "failed" for b in result["benches"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
