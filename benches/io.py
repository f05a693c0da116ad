#!/usr/bin/env python3
"""Pair I/O benchmark: Skywork-format pairs from Parquet to the prompt scan.

    python benches/io.py                 # 1,000,000 pairs (a few GB of text; about 3 minutes)
    python benches/io.py --rows 100000   # smaller

Corpus: seeded synthetic Skywork-Reward-Preference-80K rows (``chosen`` /
``rejected`` message lists, ``source``; no id column), with Skywork's length
profile: prompts of about 96 tokens and answers of about 527 (lognormal,
~4.2 characters a token), 10 % with a second user turn (2.2 messages a
conversation on average).  The text is cut from the real prompts and answers
of ../shared/data (so it has real newlines, quotes, code, math and non-ASCII
text), written as Parquet (zstd) in row groups of 50,000.

Each tool runs in its own process, timed from the Parquet file to the scan
result; peak RSS of the whole process comes from wait4:

  prefcurate      read_pairs(path): validated canonical table (ids = content
                  hash, prompt = first user turn), then the prompt column
                  handed to the Rust scan zero-copy (BenchmarkIndex._inner.scan)
  python loop     datasets.load_dataset("parquet", ...), then a plain loop over
                  the rows: a dict per pair with the same validation
                  (schema.check_messages), id (schema.pair_id), source and
                  first user turn; the list of prompts to the same scan
  python loop, prompt only
                  the same loop keeping only the first user turn (no
                  validation, no ids): the least a user's loop does

Cold: each worker loads nothing before its clock; the clock covers its
imports (prefcurate; datasets for the loops), the benchmark index, the read
and the scan (the index and the scan are prefcurate's on both sides).  Peak
RSS is the worker's own (VmHWM).  ``--records PATH`` appends one JSON record
per tool run (benches/benchkit.py); ``--skip-peers`` runs prefcurate only.
"""

from __future__ import annotations

import os
import sys

# this script is named like a standard module (io): keep its folder off the
# import path so that nothing here can shadow the standard library
if sys.path and sys.path[0] and os.path.samefile(sys.path[0], os.path.dirname(os.path.abspath(__file__))):
    sys.path.pop(0)

import argparse
import importlib.util
import json
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load_benchkit():
    """benches/benchkit.py, by path (this folder is off the import path)."""
    spec = importlib.util.spec_from_file_location("benchkit", HERE / "benchkit.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["benchkit"] = mod
    spec.loader.exec_module(mod)
    return mod


benchkit = _load_benchkit()
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
SOURCES = ["magpie_ultra", "magpie_pro_llama3.1", "helpsteer2", "offsetbias", "wildguard", "magpie_pro"]


# ---------------------------------------------------------------- corpus


def text_pool() -> str:
    """Real prompts and answers, concatenated (a few MB).  The benchmark's own
    prompts are left out: the prompts flagged are the planted-by-chance ones."""
    parts = []
    for line in open(SHARED / "benchmark" / "rewardbench_reconstructed.jsonl", encoding="utf-8"):
        r = json.loads(line)
        parts += [x for x in (r["chosen"], r["rejected"]) if x]
    for line in open(SHARED / "pairs" / "skywork_v0.2_prompt_sample.jsonl", encoding="utf-8"):
        r = json.loads(line)
        parts += [r["query"], r["chosen_response"], r["rejected_response"]]
    return "\n\n".join(parts)


def generate(path: Path, rows: int, seed: int, group: int = 50_000) -> float:
    """Write ``rows`` Skywork-format pairs to ``path``; return the text size in MB."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefcurate.schema import MESSAGES

    pool = text_pool()
    rng = np.random.default_rng(seed)
    sigma = 0.8
    total = 0
    roles = pa.array(["user", "assistant"])
    schema = pa.schema([("chosen", MESSAGES), ("rejected", MESSAGES), ("source", pa.string())])

    def lengths(mean_chars: float, k: int) -> np.ndarray:
        return np.maximum(16, rng.lognormal(np.log(mean_chars) - sigma**2 / 2, sigma, k)).astype(int)

    def cut(lens: np.ndarray) -> list[str]:
        starts = rng.integers(0, len(pool) - lens - 1)
        pieces = [pool[a : a + b] for a, b in zip(starts.tolist(), lens.tolist())]
        # a cut can land on blank text: real pairs have no empty messages
        return [p if p.strip() else "(no text)" for p in pieces]

    with pq.ParquetWriter(str(path), schema, compression="zstd") as w:
        for s in range(0, rows, group):
            n = min(group, rows - s)
            multi = rng.random(n) < 0.10
            m = int(multi.sum())
            # the texts: first user turns, (assistant, user) turns of the multi-turn
            # prompts, chosen answers, rejected answers
            texts = pa.array(
                cut(lengths(400, n))
                + cut(lengths(2200, m))
                + cut(lengths(400, m))
                + cut(lengths(2200, 2 * n)),
                pa.string(),
            )
            u1, a1, u2, ac, ar = 0, n, n + m, n + 2 * m, 2 * n + 2 * m
            n_msgs = np.where(multi, 4, 2)
            offs = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(n_msgs, out=offs[1:])
            idx = np.empty(int(offs[-1]), dtype=np.int64)
            k = np.cumsum(multi) - 1  # rank among the multi-turn pairs
            idx[offs[:-1]] = u1 + np.arange(n)
            mi = np.flatnonzero(multi)
            idx[offs[:-1][mi] + 1] = a1 + k[mi]
            idx[offs[:-1][mi] + 2] = u2 + k[mi]
            role_idx = (np.arange(int(offs[-1])) - np.repeat(offs[:-1], n_msgs)) % 2

            sides = {}
            role_arr = roles.take(pa.array(role_idx))
            for side, answers in (("chosen", ac), ("rejected", ar)):
                side_idx = idx.copy()
                side_idx[offs[1:] - 1] = answers + np.arange(n)
                values = pa.StructArray.from_arrays(
                    [role_arr, texts.take(pa.array(side_idx))], names=["role", "content"]
                )
                sides[side] = pa.ListArray.from_arrays(pa.array(offs), values).cast(MESSAGES)
            src = pa.array(np.array(SOURCES, dtype=object)[rng.integers(0, len(SOURCES), n)], pa.string())
            table = pa.table({"chosen": sides["chosen"], "rejected": sides["rejected"], "source": src})
            w.write_table(table)
            for side in ("chosen", "rejected"):
                content = pa.compute.list_flatten(table.column(side)).combine_chunks().field("content")
                total += int(pa.compute.sum(pa.compute.binary_length(content)).as_py())
    return total / 1e6


# ---------------------------------------------------------------- workers


def _index():
    import prefcurate

    return prefcurate.BenchmarkIndex(SHARED / "benchmark" / "rewardbench_reconstructed.jsonl")


def worker_prefcurate(path: Path) -> dict:
    with benchkit.Cold() as c:
        import prefcurate

        index = _index()
        t0 = time.perf_counter()
        table = prefcurate.read_pairs(path)
        t1 = time.perf_counter()
        out = index._inner.scan(table.column("prompt"))  # the Arrow column, zero-copy
        t2 = time.perf_counter()
    peak = benchkit.peak_rss_mb()
    import numpy as np

    return {
        "setup_s": t0 - c._t0,
        "read_s": t1 - t0,
        "scan_s": t2 - t1,
        "seconds": c.seconds,
        "pairs": table.num_rows,
        "flagged": np.asarray(out["flagged_train"]).tolist(),
        "peak_rss_mb": peak,
        "loaded_rss_mb": c.loaded_rss_mb,
    }


def worker_python(path: Path, full: bool, cache: Path) -> dict:
    with benchkit.Cold() as c:
        import datasets

        from prefcurate.schema import check_messages, pair_id

        datasets.disable_progress_bars()
        index = _index()
        t0 = time.perf_counter()
        ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(cache))
        t1 = time.perf_counter()
        prompts: list[str] = []
        records: list[dict] = []
        for i, row in enumerate(ds):
            chosen, rejected = row["chosen"], row["rejected"]
            prompt = next(m["content"] for m in chosen if m["role"] == "user")
            prompts.append(prompt)
            if full:
                check_messages(chosen, f"row {i}: chosen")
                check_messages(rejected, f"row {i}: rejected")
                if chosen[:-1] != rejected[:-1]:
                    raise ValueError(f"row {i}: different prompt turns")
                source = row["source"]
                records.append(
                    {
                        "id": pair_id(source, chosen, rejected),
                        "source": source,
                        "chosen": chosen,
                        "rejected": rejected,
                        "prompt": prompt,
                    }
                )
        t2 = time.perf_counter()
        out = index._inner.scan(prompts)
        t3 = time.perf_counter()
    peak = benchkit.peak_rss_mb()
    import numpy as np

    return {
        "setup_s": t0 - c._t0,
        "load_s": t1 - t0,
        "read_s": t2 - t0,
        "scan_s": t3 - t2,
        "seconds": c.seconds,
        "pairs": len(prompts),
        "flagged": np.asarray(out["flagged_train"]).tolist(),
        "peak_rss_mb": peak,
        "loaded_rss_mb": c.loaded_rss_mb,
    }


# ---------------------------------------------------------------- driver


def run_child(args: list[str]) -> tuple[dict | None, str, str | None]:
    """(result, its stderr tail, the error line when it failed)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        c = benchkit.run_child([sys.executable, __file__, *args, "--result", out.name])
        result = json.loads(Path(out.name).read_text()) if c["rc"] == 0 else None
        os.unlink(out.name)
        return result, c["stderr"], c["error"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "prefcurate-io-bench",
        help="folder for the corpus (kept and reused by later runs with the same --rows and --seed)",
    )
    ap.add_argument(
        "--full-loop", action="store_true", help="also run the python loop with validation and ids (slow)"
    )
    ap.add_argument("--skip-peers", action="store_true", help="prefcurate only (no datasets loop)")
    ap.add_argument(
        "--records", type=Path, default=None, help="append one JSON record per tool run (JSON Lines)"
    )
    ap.add_argument(
        "--worker", choices=("generate", "prefcurate", "python", "python-full"), help=argparse.SUPPRESS
    )
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        if args.worker == "generate":
            r = {"mb": generate(args.path, args.rows, args.seed)}
        elif args.worker == "prefcurate":
            r = worker_prefcurate(args.path)
        else:
            r = worker_python(args.path, args.worker == "python-full", args.path.parent / "hf-cache")
        args.result.write_text(json.dumps(r))
        return 0

    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"skywork-v2-{args.rows}-{args.seed}.parquet"
    meta = path.with_suffix(".json")
    t0 = time.perf_counter()
    if path.exists() and meta.exists():
        mb = json.loads(meta.read_text())["mb"]
        how = "reused"
    else:
        # in a child: the driver stays small
        r, err, _ = run_child(
            ["--worker", "generate", "--path", str(path), "--rows", str(args.rows), "--seed", str(args.seed)]
        )
        if r is None:
            print(f"generating the corpus failed:\n{err}", file=sys.stderr)
            return 1
        mb = r["mb"]
        meta.write_text(json.dumps({"mb": mb}))
        how = f"generated in {time.perf_counter() - t0:.1f} s"
    print(
        f"corpus: {args.rows:,} Skywork-format pairs, {mb:,.0f} MB of text, parquet "
        f"{path.stat().st_size / 1e6:,.0f} MB ({how}; {path})",
        flush=True,
    )
    rec = benchkit.Records(args.records, "io")
    rec.workload(
        pairs=args.rows,
        text_mb=mb,
        parquet_mb=path.stat().st_size / 1e6,
        format="Skywork-Reward-Preference-80K (chosen / rejected message lists, source), zstd",
    )
    # (label, worker, record id, role)
    plan = [("prefcurate read_pairs + scan", "prefcurate", "prefcurate", "prefcurate")]
    if not args.skip_peers:
        plan.append(("python loop, prompt only", "python", "python-loop", "peer"))
        if args.full_loop:
            plan.append(("python loop, same conversion", "python-full", "python-loop-full", "peer"))
    results = {}
    for label, worker, tid, role in plan:
        why = benchkit.missing("datasets") if worker != "prefcurate" else None
        if why:
            print(f"  {label}: missing ({why})", file=sys.stderr)
            rec.tool(tid, label, role, status="missing", error=why, rows=args.rows)
            continue
        print(f"running {label} ...", flush=True)
        r, err, why = run_child(["--worker", worker, "--path", str(path)])
        subprocess.run(["rm", "-rf", str(args.work / "hf-cache")], check=False)
        if r is None:
            print(f"  {label} failed:\n{err}", file=sys.stderr)
            rec.tool(tid, label, role, status="failed", error=why, rows=args.rows)
            continue
        results[label] = r
        r["tid"], r["role"] = tid, role
    print()
    print(
        f"{'tool (cold: fresh process)':32} {'seconds':>8} {'setup':>6} {'read':>8} {'scan':>6} {'pairs/s':>9} "
        f"{'peak MB':>8} {'x prefc.':>9}"
    )
    base = results.get("prefcurate read_pairs + scan")
    for label, r in results.items():
        ratio = f"{r['seconds'] / base['seconds']:8.1f}x" if base else "        -"
        print(
            f"{label:32} {r['seconds']:8.2f} {r['setup_s']:6.2f} {r['read_s']:8.2f} {r['scan_s']:6.2f} "
            f"{r['pairs'] / r['seconds']:9,.0f} {r['peak_rss_mb']:8,.0f} {ratio}"
        )
        same = r["flagged"] == base["flagged"] and r["pairs"] == base["pairs"] if base else None
        rec.tool(
            r["tid"],
            label,
            r["role"],
            baseline=r["tid"] == "prefcurate",
            seconds=r["seconds"],
            rows=r["pairs"],
            peak_rss_mb=r["peak_rss_mb"],
            loaded_rss_mb=r["loaded_rss_mb"],
            metrics={
                "setup_seconds": r["setup_s"],
                "read_seconds": r["read_s"],
                "scan_seconds": r["scan_s"],
                "pairs_per_s": r["pairs"] / r["seconds"],
                "flagged": len(r["flagged"]),
                "same_as_prefcurate": same,
            },
        )
    print()
    if base:
        for label, r in results.items():
            if r is not base:
                same = r["flagged"] == base["flagged"] and r["pairs"] == base["pairs"]
                print(f"{label}: same pairs and flagged prompts as prefcurate: {same}")
                rec.check(f"{label}: same pairs and flagged prompts as prefcurate", same)
        print(f"prompts flagged against the benchmark: {len(base['flagged']):,}")
        print(
            "setup = imports and the benchmark index; read = from the Parquet file to the converted rows "
            "(prefcurate: validated canonical table with content-hash ids; loop: load_dataset + the loop); "
            "scan = the prompts through the Rust scan"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
