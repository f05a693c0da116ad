#!/usr/bin/env python3
"""Selection benchmark: the Skywork Magpie selection (top 30 % of Math and of
Coding & Debugging, top 10 % of the other categories merged, Air -0.1 and
Pro -0.05 score offsets, ties by id) on 5,000,000 rows, prefcurate against
pandas and polars, from an Arrow table in memory to an Arrow table of the kept
rows, each tool in its own process, in one run.

    python benches/select_top.py [--rows 5000000] [--repeat 3]

(Not benches/select.py: a script of that name shadows the standard
library's `select` module for every script in this folder.)

All three must keep the same rows (checked); the script prints time, peak RSS
and the ratio to prefcurate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORIES = {
    "Math": 98_857,
    "Coding & Debugging": 27_310,
    "Information seeking": 78_370,
    "Advice seeking": 45_460,
    "Reasoning": 38_540,
    "Planning": 21_850,
    "Brainstorming": 10_810,
    "Creative writing": 7_940,
    "Data analysis": 7_250,
    "Editing": 3_370,
    "Role playing": 3_300,
}
SOURCES = {"magpie_pro_llama3.1": 0.17, "magpie_pro": 0.155, "magpie_air": 0.145, "magpie_ultra": 0.165}
OFFSETS = {"magpie_air": -0.1, "magpie_pro": -0.05}
KEEP = {"Math": 0.3, "Coding & Debugging": 0.3}
DEFAULT = 0.1


def generate(n: int, seed: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    cats = np.array(list(CATEGORIES), dtype=object)
    p = np.array(list(CATEGORIES.values()), dtype=float)
    src_names = np.array(list(SOURCES), dtype=object)
    src = rng.integers(0, len(src_names), n)
    means = np.array(list(SOURCES.values()))[src]
    table = pa.table(
        {
            "id": pa.array(np.char.add("pair-", rng.permutation(n).astype(str)).astype(object), pa.string()),
            "source": pa.array(src_names[src], pa.string()),
            "category": pa.array(rng.choice(cats, n, p=p / p.sum()), pa.string()),
            "score": np.round(rng.normal(means, 0.025), 4),  # rounded: ties, broken by id
        }
    )
    pq.write_table(table, path)


def run_prefcurate(table):
    import prefcurate

    return prefcurate.select_top(
        table,
        score="score",
        group_by="category",
        fraction=KEEP,
        default_fraction=DEFAULT,
        group_map={k: k for k in KEEP},
        group_default="other",
        offset_by="source",
        offsets=OFFSETS,
        tie_break="id",
    )


def run_polars(table):
    import polars as pl

    df = pl.from_arrow(table).with_row_index("row")
    grp = pl.when(pl.col("category").is_in(list(KEEP))).then(pl.col("category")).otherwise(pl.lit("other"))
    frac = pl.col("grp").replace_strict(KEEP, default=DEFAULT, return_dtype=pl.Float64)
    out = (
        df.with_columns(
            adj=pl.col("score")
            + pl.col("source").replace_strict(OFFSETS, default=0.0, return_dtype=pl.Float64),
            grp=grp,
        )
        .filter(pl.col("adj").is_not_null() & ~pl.col("adj").is_nan() & pl.col("category").is_not_null())
        .sort(["grp", "adj", "id", "row"], descending=[False, True, False, False], nulls_last=True)
        .with_columns(rank=pl.int_range(pl.len()).over("grp"), size=pl.len().over("grp"))
        .filter(pl.col("rank") < (frac * pl.col("size")).floor())
        .sort("row")
        .drop(["row", "adj", "grp", "rank", "size"])
    )
    return out.to_arrow()


def run_pandas(table):
    import pyarrow as pa

    df = table.to_pandas()
    df["row"] = np.arange(len(df))
    df["adj"] = df["score"] + df["source"].map(OFFSETS).fillna(0.0)
    df["grp"] = df["category"].where(df["category"].isin(list(KEEP)), "other")
    df = df[df["adj"].notna() & df["category"].notna()]
    df = df.sort_values(["grp", "adj", "id", "row"], ascending=[True, False, True, True], kind="mergesort")
    rank = df.groupby("grp", sort=False).cumcount()
    size = df.groupby("grp")["grp"].transform("size")
    frac = df["grp"].map(KEEP).fillna(DEFAULT)
    kept = df[rank < np.floor(frac * size)].sort_values("row")
    return pa.Table.from_pandas(kept.drop(columns=["row", "adj", "grp"]), preserve_index=False)


TOOLS = {"prefcurate": run_prefcurate, "polars": run_polars, "pandas": run_pandas}


def worker(tool: str, data: Path, repeat: int, result: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(data)
    TOOLS[tool](table.slice(0, 1000))  # warm-up (imports, pools), untimed
    secs, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = TOOLS[tool](table)
        secs.append(time.perf_counter() - t0)
    assert out is not None
    ids = np.sort(out.column("id").to_numpy(zero_copy_only=False).astype(str))
    np.save(result.with_suffix(".npy"), ids)
    result.write_text(json.dumps({"seconds": secs, "kept": out.num_rows}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.repeat, args.result)
        return 0
    work = Path(tempfile.mkdtemp(prefix="prefcurate-select-"))
    data = work / "pool.parquet"
    t0 = time.perf_counter()
    generate(args.rows, args.seed, data)
    print(f"{args.rows:,} rows (id, source, category, score) in {time.perf_counter() - t0:.1f} s; {work}")
    results = {}
    for tool in TOOLS:
        out = work / f"{tool}.json"
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            tool,
            "--data",
            str(data),
            "--result",
            str(out),
            "--repeat",
            str(args.repeat),
        ]
        p = subprocess.Popen(cmd)
        _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"{tool} failed", file=sys.stderr)
            continue
        r = json.loads(out.read_text())
        r["peak_mb"] = ru.ru_maxrss / 1024
        r["ids"] = np.load(out.with_suffix(".npy"))
        results[tool] = r
    base = statistics.median(results["prefcurate"]["seconds"])
    print(f"\n{'tool':12} {'seconds':>8} {'rows/s':>12} {'peak MB':>8} {'x prefcurate':>13} {'kept':>9}")
    for tool, r in results.items():
        sec = statistics.median(r["seconds"])
        print(
            f"{tool:12} {sec:8.3f} {args.rows / sec:12,.0f} {r['peak_mb']:8.0f} {sec / base:12.2f}x {r['kept']:9,}"
        )
    ref = results["prefcurate"]["ids"]
    for tool, r in results.items():
        if tool != "prefcurate":
            print(f"{tool} keeps the same rows as prefcurate: {np.array_equal(r['ids'], ref)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
