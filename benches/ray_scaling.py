#!/usr/bin/env python3
"""The Ray engine against the local engine, on the decontamination and dedup
benchmarks' data, with 1 and 2 workers.

    python benches/ray_scaling.py [--decont-rows 40000] [--dedup-rows 20000] [--workers 1 2]

Each worker count runs in its own process: the local engine with
``num_threads=k`` first, then ``ray.init(num_cpus=k)``, a small warm-up run
(Ray starts its worker processes), and the same stage with ``engine="ray"``
(``ray_options={"batch_size": ...}``).  Timed: the stage call, from rows in
memory to the result on the driver (``kept`` / ``removed`` are lazy in both
engines and are not materialised; "parquet" is the Ray engine reading the
same rows from a Parquet file instead (row groups of 8192 rows, read lazily);
"write" times writing the Ray result's kept and removed rows as Parquet
shards).  Every Ray result is checked
against the local one (removed rows, provenance).  Data: the generators of
benches/decontaminate.py (synthetic prompts with planted benchmark spans,
against rewardbench_reconstructed.jsonl) and benches/dedup.py (prompts with
planted near and exact copies).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
sys.path.insert(0, str(HERE))


def make_data(work: Path, decont_rows: int, dedup_rows: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from decontaminate import generate as decont_generate
    from dedup import generate as dedup_generate

    bench = [json.loads(x)["prompt"] for x in open(BENCH, encoding="utf-8")]
    train, _ = decont_generate(bench, decont_rows, seed)
    pq.write_table(pa.table({"prompt": train}), work / "decont.parquet", row_group_size=8192)
    texts, _ = dedup_generate(dedup_rows, seed)
    pq.write_table(pa.table({"prompt": texts}), work / "dedup.parquet", row_group_size=8192)


def worker(work: Path, k: int, batch_size: int) -> dict:
    import pyarrow.parquet as pq

    import prefcurate

    train = pq.read_table(work / "decont.parquet")
    texts = pq.read_table(work / "dedup.parquet")
    index = prefcurate.BenchmarkIndex(str(BENCH))
    out: dict = {"workers": k}

    t0 = time.perf_counter()
    loc_d = prefcurate.decontaminate(train, index, num_threads=k)
    out["decont_local"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    loc_u = prefcurate.dedup(texts, threshold=0.8, num_threads=k)
    out["dedup_local"] = time.perf_counter() - t0

    import ray
    import ray.data

    t0 = time.perf_counter()
    ray.init(num_cpus=k, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    out["ray_init"] = time.perf_counter() - t0
    opts = {"batch_size": batch_size}
    t0 = time.perf_counter()
    prefcurate.decontaminate(train.slice(0, 2000), index, engine="ray", ray_options=opts)
    prefcurate.dedup(texts.slice(0, 2000), engine="ray", ray_options=opts)
    out["warmup"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rd = prefcurate.decontaminate(train, index, engine="ray", ray_options=opts)
    out["decont_ray"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        rd.write_parquet(d)
        out["decont_write"] = time.perf_counter() - t0
    out["decont_equal"] = bool(
        np.array_equal(loc_d.contaminated, rd.contaminated)
        and loc_d.matches.equals(rd.matches)
        and loc_d.attribution.equals(rd.attribution)
    )
    out["decont_removed"] = int(rd.n_removed)
    t0 = time.perf_counter()
    rp = prefcurate.decontaminate(work / "decont.parquet", index, engine="ray", ray_options=opts)
    out["decont_parquet"] = time.perf_counter() - t0
    out["decont_equal"] &= bool(loc_d.attribution.equals(rp.attribution))

    t0 = time.perf_counter()
    ru = prefcurate.dedup(texts, threshold=0.8, engine="ray", ray_options=opts)
    out["dedup_ray"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ru.write_parquet(d)
        out["dedup_write"] = time.perf_counter() - t0
    out["dedup_equal"] = bool(
        np.array_equal(loc_u.duplicate_of, ru.duplicate_of)
        and np.array_equal(loc_u.similarity, ru.similarity, equal_nan=True)
        and loc_u.reason.tolist() == ru.reason.tolist()
        and loc_u.info == ru.info
    )
    out["dedup_removed"] = int(ru.n_removed)
    t0 = time.perf_counter()
    rp = prefcurate.dedup(work / "dedup.parquet", threshold=0.8, engine="ray", ray_options=opts)
    out["dedup_parquet"] = time.perf_counter() - t0
    out["dedup_equal"] &= bool(loc_u.attribution().equals(rp.attribution()))
    ray.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decont-rows", type=int, default=40_000)
    ap.add_argument("--dedup-rows", type=int, default=20_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = worker(args.work, args.worker, args.batch_size)
        (args.work / f"ray-{args.worker}.json").write_text(json.dumps(res))
        return 0
    work = Path(tempfile.mkdtemp(prefix="prefcurate-ray-"))
    t0 = time.perf_counter()
    make_data(work, args.decont_rows, args.dedup_rows, args.seed)
    print(
        f"data: {args.decont_rows:,} prompts vs {BENCH.name}; {args.dedup_rows:,} texts for dedup "
        f"(generated in {time.perf_counter() - t0:.1f} s); batch_size {args.batch_size}"
    )
    results = []
    for k in args.workers:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            str(k),
            "--work",
            str(work),
            "--batch-size",
            str(args.batch_size),
        ]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            print(f"{k} worker(s): failed (rerun: {' '.join(cmd)})", file=sys.stderr)
            continue
        results.append(json.loads((work / f"ray-{k}.json").read_text()))
    print(
        f"\n{'stage':14} {'rows':>7} {'workers':>7} {'local s':>8} {'ray s':>7} {'overhead s':>10} "
        f"{'ray/local':>9} {'parquet s':>9} {'write s':>8} {'removed':>8} {'equal':>6}"
    )
    for stage, rows in (("decontaminate", args.decont_rows), ("dedup", args.dedup_rows)):
        key = "decont" if stage == "decontaminate" else "dedup"
        for r in results:
            loc, ray_s = r[f"{key}_local"], r[f"{key}_ray"]
            print(
                f"{stage:14} {rows:7,} {r['workers']:7} {loc:8.2f} {ray_s:7.2f} {ray_s - loc:10.2f} "
                f"{ray_s / loc:8.1f}x {r[f'{key}_parquet']:9.2f} {r[f'{key}_write']:8.2f} "
                f"{r[f'{key}_removed']:8,} {r[f'{key}_equal']!s:>6}"
            )
    for r in results:
        print(f"ray.init({r['workers']} CPUs): {r['ray_init']:.1f} s; warm-up runs: {r['warmup']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
