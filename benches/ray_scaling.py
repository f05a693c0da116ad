#!/usr/bin/env python3
"""The Ray engine against the local engine, on the decontamination and dedup
benchmarks' data, with 1 and 2 workers.

    python benches/ray_scaling.py [--decont-rows 40000] [--dedup-rows 20000] [--workers 1 2]

Each worker count runs in its own process (prefcurate imported and the
data loaded first, untimed): the local engine with ``num_threads=k`` (its
first call in the process, then a second, warm), then ``ray.init(num_cpus=k)``
(timed on its own) and the same stage with ``engine="ray"``
(``ray_options={"batch_size": ...}``): its first call (Ray starts its worker
processes inside it), then a second, warm.  Timed: the stage call, from rows in
memory to the result on the driver (``kept`` / ``removed`` are lazy in both
engines and are not materialised; "parquet" is the Ray engine reading the
same rows from a Parquet file instead (row groups of 8192 rows, read lazily);
"write" times writing the Ray result's kept and removed rows as Parquet
shards).  ``--records PATH`` appends one JSON record per engine, stage and
worker count (benches/benchkit.py): mode "first-call" (imports and data
before the clock), the warm call beside it; each Ray row's ratio is against
the local row of the same stage and worker count.  Every Ray result is checked
against the local one (removed rows, provenance).  Data: the generators of
benches/decontaminate.py (synthetic prompts with planted benchmark spans,
against rewardbench_reconstructed.jsonl) and benches/dedup.py (prompts with
planted near and exact copies).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
sys.path.insert(0, str(HERE))

import benchkit  # noqa: E402  (this folder, put on the path just above)


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


def _timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t0


def _equal_decont(loc, rd, rp) -> bool:
    import numpy as np

    return bool(
        np.array_equal(loc.contaminated, rd.contaminated)
        and loc.matches.equals(rd.matches)
        and loc.attribution.equals(rd.attribution)
        and loc.attribution.equals(rp.attribution)
    )


def _equal_dedup(loc, ru, rp) -> bool:
    import numpy as np

    return bool(
        np.array_equal(loc.duplicate_of, ru.duplicate_of)
        and np.array_equal(loc.similarity, ru.similarity, equal_nan=True)
        and loc.reason.tolist() == ru.reason.tolist()
        and loc.info == ru.info
        and loc.attribution().equals(rp.attribution())
    )


def worker(work: Path, k: int, batch_size: int) -> dict:
    """Both stages on both engines; a stage that fails records its error
    (``<stage>_error``) and the other still runs."""
    import pyarrow.parquet as pq

    import prefcurate

    train = pq.read_table(work / "decont.parquet")
    texts = pq.read_table(work / "dedup.parquet")
    index = prefcurate.BenchmarkIndex(str(BENCH))
    out: dict = {"workers": k}
    stages = {
        "decont": (
            lambda **kw: prefcurate.decontaminate(train, index, **kw),
            lambda **kw: prefcurate.decontaminate(work / "decont.parquet", index, **kw),
            _equal_decont,
        ),
        "dedup": (
            lambda **kw: prefcurate.dedup(texts, threshold=0.8, **kw),
            lambda **kw: prefcurate.dedup(work / "dedup.parquet", threshold=0.8, **kw),
            _equal_dedup,
        ),
    }
    local = {}
    for key, (run, _, _) in stages.items():
        try:
            local[key], out[f"{key}_local"] = _timed(lambda run=run: run(num_threads=k))
            _, out[f"{key}_local_warm"] = _timed(lambda run=run: run(num_threads=k))
        except Exception as e:
            out[f"{key}_error"] = f"local engine: {type(e).__name__}: {e}"

    import ray
    import ray.data

    t0 = time.perf_counter()
    ray.init(num_cpus=k, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    out["ray_init"] = time.perf_counter() - t0
    opts = {"batch_size": batch_size}
    for key, (run, run_parquet, equal) in stages.items():
        if key not in local:
            continue
        try:
            _, out[f"{key}_ray_first"] = _timed(lambda run=run: run(engine="ray", ray_options=opts))
            r, out[f"{key}_ray"] = _timed(lambda run=run: run(engine="ray", ray_options=opts))
            with tempfile.TemporaryDirectory() as d:
                _, out[f"{key}_write"] = _timed(lambda r=r, d=d: r.write_parquet(d))
            rp, out[f"{key}_parquet"] = _timed(
                lambda run_parquet=run_parquet: run_parquet(engine="ray", ray_options=opts)
            )
            out[f"{key}_equal"] = equal(local[key], r, rp)
            out[f"{key}_removed"] = int(r.n_removed)
        except Exception as e:
            out[f"{key}_error"] = f"Ray engine: {type(e).__name__}: {e}"
    out["peak_rss_mb"] = benchkit.peak_rss_mb()
    ray.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decont-rows", type=int, default=40_000)
    ap.add_argument("--dedup-rows", type=int, default=20_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--records", type=Path, default=None, help="append one JSON record per row (JSON Lines)")
    ap.add_argument(
        "--work", type=Path, help="scratch folder, data kept for the next run with the same parameters"
    )
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = worker(args.work, args.worker, args.batch_size)
        (args.work / f"ray-{args.worker}.json").write_text(json.dumps(res))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="prefcurate-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    rec = benchkit.Records(args.records, "ray_scaling")
    why = benchkit.missing("ray")
    if why:
        print(f"ray: missing ({why})", file=sys.stderr)
        for k in args.workers:
            for stage in ("decontaminate", "dedup"):
                rec.tool(
                    f"ray-{stage}-k{k}",
                    f"{stage}, Ray engine, {k} worker(s)",
                    "prefcurate",
                    status="missing",
                    error=why,
                    threads=k,
                )
        return 0
    t0 = time.perf_counter()
    params = {"decont_rows": args.decont_rows, "dedup_rows": args.dedup_rows, "seed": args.seed}
    if not benchkit.stamp_ok(work, params):
        make_data(work, args.decont_rows, args.dedup_rows, args.seed)
        benchkit.stamp(work, params)
    print(
        f"data: {args.decont_rows:,} prompts vs {BENCH.name}; {args.dedup_rows:,} texts for dedup "
        f"(ready in {time.perf_counter() - t0:.1f} s); batch_size {args.batch_size}"
    )
    rec.workload(
        decont_rows=args.decont_rows,
        dedup_rows=args.dedup_rows,
        batch_size=args.batch_size,
        workers=args.workers,
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
        (work / f"ray-{k}.json").unlink(missing_ok=True)
        c = benchkit.run_child(cmd)
        if c["rc"] != 0:
            print(f"{k} worker(s): failed (rerun: {' '.join(cmd)})\n{c['stderr']}", file=sys.stderr)
            for stage in ("decontaminate", "dedup"):
                for eng in ("local", "ray"):
                    rec.tool(
                        f"{eng}-{stage}-k{k}",
                        f"{stage}, {'Ray' if eng == 'ray' else 'local'} engine, {k} "
                        + ("worker(s)" if eng == "ray" else "thread(s)"),
                        "prefcurate",
                        status="failed",
                        error=c["error"],
                        threads=k,
                    )
            continue
        results.append(json.loads((work / f"ray-{k}.json").read_text()))
    print(
        f"\n{'stage':14} {'rows':>7} {'workers':>7} {'local s':>8} {'ray 1st':>8} {'ray s':>7} {'overhead s':>10} "
        f"{'ray/local':>9} {'parquet s':>9} {'write s':>8} {'removed':>8} {'equal':>6}"
    )
    for stage, rows in (("decontaminate", args.decont_rows), ("dedup", args.dedup_rows)):
        key = "decont" if stage == "decontaminate" else "dedup"
        for r in results:
            k = r["workers"]
            local_id = f"local-{stage}-k{k}"
            why = r.get(f"{key}_error")
            if why:
                print(f"{stage:14} {rows:7,} {k:7} failed: {why}")
                local_failed = why.startswith("local")
                if local_failed:
                    rec.tool(
                        local_id,
                        f"{stage}, local engine, {k} thread(s)",
                        "prefcurate",
                        status="failed",
                        error=why,
                        threads=k,
                        rows=rows,
                    )
                rec.tool(
                    f"ray-{stage}-k{k}",
                    f"{stage}, Ray engine, {k} worker(s)",
                    "prefcurate",
                    status="failed",
                    error=why,
                    threads=k,
                    rows=rows,
                    compare_to=local_id,
                )
                if local_failed:
                    continue
            loc = r[f"{key}_local"]
            if why:
                rec.tool(
                    local_id,
                    f"{stage}, local engine, {k} thread(s)",
                    "prefcurate",
                    mode="first-call",
                    seconds=loc,
                    warm_seconds=[r[f"{key}_local_warm"]],
                    threads=k,
                    rows=rows,
                    peak_rss_mb=r["peak_rss_mb"],
                    metrics={"stage": stage},
                )
                continue
            first, ray_s = r[f"{key}_ray_first"], r[f"{key}_ray"]
            print(
                f"{stage:14} {rows:7,} {k:7} {loc:8.2f} {first:8.2f} {ray_s:7.2f} {ray_s - loc:10.2f} "
                f"{ray_s / loc:8.1f}x {r[f'{key}_parquet']:9.2f} {r[f'{key}_write']:8.2f} "
                f"{r[f'{key}_removed']:8,} {r[f'{key}_equal']!s:>6}"
            )
            rec.tool(
                local_id,
                f"{stage}, local engine, {k} thread(s)",
                "prefcurate",
                mode="first-call",
                seconds=loc,
                warm_seconds=[r[f"{key}_local_warm"]],
                threads=k,
                rows=rows,
                peak_rss_mb=r["peak_rss_mb"],
                metrics={"stage": stage},
            )
            rec.tool(
                f"ray-{stage}-k{k}",
                f"{stage}, Ray engine, {k} worker(s)",
                "prefcurate",
                compare_to=local_id,
                mode="first-call",
                seconds=first,
                warm_seconds=[ray_s],
                threads=k,
                rows=rows,
                peak_rss_mb=r["peak_rss_mb"],
                metrics={
                    "stage": stage,
                    "ray_init_seconds": r["ray_init"],
                    "overhead_seconds_warm": ray_s - loc,
                    "parquet_seconds": r[f"{key}_parquet"],
                    "write_seconds": r[f"{key}_write"],
                    "removed": r[f"{key}_removed"],
                    "equal_to_local": r[f"{key}_equal"],
                },
                notes="ray.init before the clock (its seconds in ray_init_seconds); the first call starts Ray's workers",
            )
            rec.check(f"{stage}, {k} worker(s): the Ray result equals the local one", r[f"{key}_equal"])
    for r in results:
        print(f"ray.init({r['workers']} CPUs): {r['ray_init']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
