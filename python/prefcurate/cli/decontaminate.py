"""``prefcurate decontaminate`` and ``prefcurate index``: n-gram
decontamination against a benchmark (options generated from
:class:`~prefcurate.stages.decontaminate.DecontaminateConfig`)."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..api import decontaminate
from ..errors import InvalidInputError
from ..io import write_table
from ..stages.decontaminate import DecontaminateConfig, DecontaminationResult, benchmark_index
from ..stages.index import BenchmarkIndex
from ..stages.semantic import SemanticDecontaminateConfig
from . import common

INDEX_SUFFIX = ".pcidx"


def _benchmark_arg(args: argparse.Namespace) -> Any:
    bench = args.benchmark
    if str(bench).endswith(INDEX_SUFFIX):
        return BenchmarkIndex.load(bench)
    return bench


def summarize(res: DecontaminationResult, params: dict) -> dict:
    """The machine-readable account of one decontamination run."""
    n = len(res.contaminated)
    removed = int(res.contaminated.sum())
    by_source: dict[str, int] = {}
    table = res._table
    if table is not None and "source" in table.column_names:
        sources = table.column("source").to_pylist()
        by_source = dict(Counter(str(sources[i]) for i in res.attribution.column("train_index").to_pylist()))
    return {
        "stage": "decontaminate",
        "method": res.method,
        "params": params,
        "input": n,
        "kept": n - removed,
        "removed": removed,
        "by_reason": dict(Counter(res.attribution.column("reason").to_pylist())),
        "by_source": by_source,
        "by_benchmark_subset": res.summary().to_pylist(),
        "matches": res.matches.num_rows,
        "benchmark": {"items": len(res.index), "source": res.index.source},
        "timings_s": {k: round(v, 4) for k, v in res.timings.items()},
    }


def _as_table(rows: Any, name: str) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, list):
        if rows and isinstance(rows[0], dict):
            return pa.Table.from_pylist(rows)
        return pa.Table.from_pydict({name: pa.array(rows, type=pa.string())})
    if hasattr(rows, "to_arrow"):
        return rows.to_arrow()
    if hasattr(rows, "data") and hasattr(rows.data, "table"):
        return rows.with_format("arrow")[:]
    return pa.Table.from_pydict({name: rows})


def write_outputs(
    res: DecontaminationResult, out: Path, fmt: str, params: dict, layout: str = "canonical"
) -> dict:
    common.write_rows(_as_table(res.kept, "text"), out, "kept", fmt, layout)
    common.write_rows(_as_table(res.removed, "text"), out, "removed", fmt)
    write_table(res.matches, out / "matches.parquet")
    summary = summarize(res, params)
    common.write_summary(out, summary)
    return summary


def print_summary(summary: dict, out: Path, console) -> None:
    from rich.table import Table

    t = Table(
        title=f"decontaminate ({summary['method']}): {summary['removed']} of {summary['input']} rows removed"
    )
    for col in ("benchmark subset", "items", "items matched", "train rows removed"):
        t.add_column(col, justify="right" if col != "benchmark subset" else "left")
    for r in summary["by_benchmark_subset"]:
        t.add_row(
            r["benchmark_subset"] or "(none)",
            str(r["benchmark_items"]),
            str(r["items_matched"]),
            str(r["train_rows_removed"]),
        )
    console.print(t)
    console.print(
        f"kept: {summary['kept']}  removed: {summary['removed']}  matches: {summary['matches']}",
        highlight=False,
    )
    console.print(
        f"outputs in [bold]{out}[/bold]: kept, removed (with attribution), matches.parquet, summary.json"
    )


def _params(config: Any) -> dict:
    if isinstance(config, SemanticDecontaminateConfig):
        return config.params()
    p: dict[str, Any] = {"method": config.method, "ngram_range": list(config.ngram_range)}
    if config.method == "precise":
        p.update(
            n=config.n,
            min_tokens=config.min_tokens,
            min_coverage=config.min_coverage,
            max_train_df=config.max_train_df,
            max_benchmark_df=config.max_benchmark_df,
        )
    return p


def cmd_decontaminate(args: argparse.Namespace) -> int:
    console = common.console(args)
    t0 = time.perf_counter()
    progress = common.show_progress(args, console)
    config: Any
    if args.method == "semantic":
        config = SemanticDecontaminateConfig.from_args(args)
    else:
        config = DecontaminateConfig.from_args(args)
    out = common.out_dir(args)
    fmt = common.output_format(args, args.train)
    res = decontaminate(args.train, _benchmark_arg(args), config, num_threads=args.threads, progress=progress)
    if len(res.contaminated) == 0:
        raise InvalidInputError(f"{args.train}: the training data is empty (no rows); there is nothing to do")
    summary = write_outputs(res, out, fmt, _params(config), args.layout)
    print_summary(summary, out, console)
    console.print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    console = common.console(args)
    t0 = time.perf_counter()
    config = DecontaminateConfig.from_args(args).replace(
        benchmark_text=args.text, benchmark_id=args.id, benchmark_subset=args.subset
    )
    idx = benchmark_index(args.benchmark, config, num_threads=args.threads)
    out = Path(args.out)
    if out.suffix != INDEX_SUFFIX:
        out = out.with_name(out.name + INDEX_SUFFIX)
    idx.save(out)
    console.print(
        f"{idx!r}\nsaved to [bold]{out}[/bold] in {time.perf_counter() - t0:.2f} s", highlight=False
    )
    return 0


def add_parsers(sub: Any) -> None:
    d = sub.add_parser("decontaminate", help="remove training rows whose prompts overlap a benchmark")
    d.add_argument(
        "train", help="training data: jsonl, json, parquet, csv (.gz/.zst), a saved dataset folder"
    )
    d.add_argument(
        "--benchmark", required=True, help="benchmark prompts (same formats) or an index file (.pcidx)"
    )
    common.add_output(d)
    DecontaminateConfig.add_arguments(d)
    common.add_choice(
        d, "method", "semantic", "semantic: embedding cosine against the benchmark (--embedder, --threshold)"
    )
    common.add_semantic(d, SemanticDecontaminateConfig, "semantic method (--method semantic)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    d.set_defaults(func=cmd_decontaminate)

    i = sub.add_parser("index", help="build a benchmark index and save it (.pcidx)")
    i.add_argument("benchmark", help="benchmark prompts: jsonl, json, parquet, csv, a saved dataset folder")
    i.add_argument("--out", required=True, metavar="FILE", help="index file to write (.pcidx)")
    common.add_quiet(i)
    i.add_argument("--id", default="id", help="column naming each item (default: id)")
    i.add_argument("--subset", default="subset", help="column naming each item's subset (default: subset)")
    DecontaminateConfig.add_arguments(
        i,
        exclude=(
            "benchmark_text",
            "benchmark_id",
            "benchmark_subset",
            "max_train_df",
            "max_benchmark_df",
            "min_coverage",
            "spans",
        ),
    )
    i.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    i.set_defaults(func=cmd_index)
