#!/usr/bin/env python3
"""Selection benchmark: the Skywork Magpie selection (top 30 % of Math and of
Coding & Debugging, top 10 % of the other categories merged, Air -0.1 and
Pro -0.05 score offsets, ties by id) on 5,000,000 rows, prefcurate against
pandas and polars, from an Arrow table in memory to an Arrow table of the kept
rows, each tool in its own process, in one run.

    python benches/select_top.py [--rows 5000000] [--repeat 2]

(Not benches/select.py: a script of that name shadows the standard
library's `select` module for every script in this folder.)

Tools: prefcurate ``select_top``; polars written two ways, ``top_k_by`` per
group (the number to keep computed per group inside the same query) and a
full sort with a rank per group; pandas (sort, ``cumcount``), the reference.
Every tool computes the score offsets inside its timing and returns the kept
rows in input order; all must keep the same rows as pandas, in the same
order (checked); the script prints time, peak RSS and the ratio to
prefcurate.

Cold and warm: each tool runs in a fresh process that reads the pool from
Parquet first (untimed: the user's Arrow table; pyarrow is imported then,
and with it pandas, which pyarrow imports when it first builds an array),
then starts the clock before the tool's imports: "cold" is its imports and
first call on the whole table; ``--repeat`` (2) warm calls follow in the same
process.  ``--records PATH`` appends one JSON record per tool run
(benches/benchkit.py); ``--work DIR`` keeps the generated pool for the next
run with the same parameters; ``--skip-peers`` leaves polars out (pandas
stays: it is the reference).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchkit

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
    import numpy as np
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


def run_polars_topk(table):
    """polars as its users write a per-group top k: ``top_k_by`` in a
    ``group_by`` with k from the group's size, then the kept rows in input order."""
    import polars as pl

    df = pl.from_arrow(table).with_row_index("row")
    grp = pl.when(pl.col("category").is_in(list(KEEP))).then(pl.col("category")).otherwise(pl.lit("other"))
    frac = pl.col("grp").first().replace_strict(KEEP, default=DEFAULT, return_dtype=pl.Float64)
    valid = df.with_columns(
        adj=pl.col("score") + pl.col("source").replace_strict(OFFSETS, default=0.0, return_dtype=pl.Float64),
        grp=grp,
    ).filter(pl.col("adj").is_not_null() & ~pl.col("adj").is_nan() & pl.col("category").is_not_null())
    keep = (
        valid.group_by("grp")
        .agg(
            pl.col("row").top_k_by(
                ["adj", "id", "row"], k=(pl.len() * frac).floor().cast(pl.UInt32), reverse=[False, True, True]
            )
        )
        .explode("row")
        .select("row")
    )
    return df.join(keep, on="row", how="semi").sort("row").drop("row").to_arrow()


def run_polars(table):
    """polars with a full sort and a rank per group."""
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
    import numpy as np
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


TOOLS = {
    "prefcurate": run_prefcurate,
    "polars top_k": run_polars_topk,
    "polars sort": run_polars,
    "pandas": run_pandas,
}
# (record id, label, role, module it needs)
META = {
    "prefcurate": ("prefcurate", "prefcurate `select_top`", "prefcurate", None),
    "polars top_k": ("polars-topk", "polars, `top_k_by` per group", "peer", "polars"),
    "polars sort": ("polars-sort", "polars, full sort + rank per group", "peer", "polars"),
    "pandas": ("pandas", "pandas, sort + `cumcount` (the reference)", "reference", "pandas"),
}


def worker(tool: str, data: Path, repeat: int, result: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(data)  # the user's Arrow table, before the clock
    # pyarrow imports pandas (when installed) the first time it builds an array
    with benchkit.Cold(allow=("pyarrow", "numpy", "pandas")) as c:
        out = TOOLS[tool](table)
    secs, last = benchkit.warm(lambda: TOOLS[tool](table), repeat)
    peak = benchkit.peak_rss_mb()
    if last is not None:
        out = last
    import numpy as np

    ids = out.column("id").to_numpy(zero_copy_only=False).astype(str)  # in output order
    np.save(result.with_suffix(".npy"), ids)
    result.write_text(
        json.dumps(
            {
                "seconds": c.seconds,
                "warm_seconds": secs,
                "kept": out.num_rows,
                "peak_rss_mb": peak,
                "loaded_rss_mb": c.loaded_rss_mb,
            }
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="warm calls after the cold one, per tool")
    ap.add_argument("--skip-peers", action="store_true", help="no polars (pandas stays: the reference)")
    ap.add_argument(
        "--records", type=Path, default=None, help="append one JSON record per tool run (JSON Lines)"
    )
    ap.add_argument(
        "--work", type=Path, default=None, help="scratch folder, pool kept (default: a temp folder)"
    )
    ap.add_argument("--worker", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.repeat, args.result)
        return 0
    import numpy as np

    work = args.work or Path(tempfile.mkdtemp(prefix="prefcurate-select-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "pool.parquet"
    params = {"rows": args.rows, "seed": args.seed}
    if benchkit.stamp_ok(work, params) and data.exists():
        how = "reused"
    else:
        t0 = time.perf_counter()
        generate(args.rows, args.seed, data)
        benchkit.stamp(work, params)
        how = f"generated in {time.perf_counter() - t0:.1f} s"
    print(f"{args.rows:,} rows (id, source, category, score), {how}; {work}")
    rec = benchkit.Records(args.records, "select_top")
    rec.workload(
        rows=args.rows,
        rule="Skywork Magpie: top 30 % of Math and of Coding & Debugging, 10 % of the rest; "
        "Air -0.1, Pro -0.05; ties by id",
        parquet_mb=data.stat().st_size / 2**20,
    )
    tools = [t for t in TOOLS if not (args.skip_peers and META[t][2] == "peer")]
    results, failed = {}, {}
    for tool in tools:
        need = META[tool][3]
        why = benchkit.missing(need) if need else None
        if why:
            failed[tool] = ("missing", why)
            continue
        print(f"running {tool} ...", flush=True)
        out = work / f"{tool.replace(' ', '-')}.json"
        out.unlink(missing_ok=True)
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
        c = benchkit.run_child(cmd)
        if c["rc"] != 0:
            print(f"{tool} failed (exit {c['rc']}):\n{c['stderr']}", file=sys.stderr)
            failed[tool] = ("failed", c["error"])
            continue
        r = json.loads(out.read_text())
        r["ids"] = np.load(out.with_suffix(".npy"))
        results[tool] = r
    base = results["prefcurate"]["seconds"] if "prefcurate" in results else None
    wb = results.get("prefcurate", {}).get("warm_seconds")
    wbase = statistics.median(wb) if wb else None
    ref = results["pandas"]["ids"] if "pandas" in results else None
    print(
        f"\n{'tool (cold: fresh process)':28} {'cold s':>8} {'warm s':>8} {'rows/s':>12} {'peak MB':>8} "
        f"{'x prefc.':>9} {'x warm':>8} {'kept':>9} {'= pandas':>9}"
    )
    for tool in tools:
        tid, label, role, _ = META[tool]
        if tool in failed:
            status, why = failed[tool]
            print(f"{tool:28} {status}: {why}")
            rec.tool(tid, label, role, status=status, error=why, rows=args.rows)
            continue
        r = results[tool]
        sec = r["seconds"]
        wsec = statistics.median(r["warm_seconds"]) if r["warm_seconds"] else None
        same = bool(np.array_equal(r["ids"], ref)) if ref is not None else None
        ratio = f"{sec / base:8.2f}x" if base else "        -"
        wratio = f"{wsec / wbase:7.2f}x" if wsec and wbase else "       -"
        wtxt = f"{wsec:8.3f}" if wsec else "       -"
        print(
            f"{tool:28} {sec:8.3f} {wtxt} {args.rows / sec:12,.0f} {r['peak_rss_mb']:8.0f} {ratio:>9} {wratio:>8} "
            f"{r['kept']:9,} {same!s:>9}"
        )
        rec.tool(
            tid,
            label,
            role,
            baseline=tool == "prefcurate",
            seconds=sec,
            warm_seconds=r["warm_seconds"],
            rows=args.rows,
            peak_rss_mb=r["peak_rss_mb"],
            loaded_rss_mb=r["loaded_rss_mb"],
            metrics={"rows_per_s": args.rows / sec, "kept": r["kept"], "same_rows_as_pandas": same},
        )
    if ref is not None:
        for tool, r in results.items():
            if tool != "pandas":
                same = bool(np.array_equal(r["ids"], ref))
                print(f"{tool} keeps the same rows as pandas, in the same order: {same}")
                rec.check(f"{tool} keeps the same rows as pandas, in the same order", same)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
