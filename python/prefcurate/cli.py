"""The ``prefcurate`` command line.

prefcurate decontaminate TRAIN --benchmark BENCH --out DIR
prefcurate index BENCH --out bench.pcidx
prefcurate demo --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import __version__
from .decontaminate import DecontaminationResult, decontaminate
from .errors import PrefcurateError
from .index import BenchmarkIndex
from .io import write_table
from .scoring_cli import add_parsers as add_scoring_parsers

INDEX_SUFFIX = ".pcidx"


def _console():
    from rich.console import Console

    return Console(stderr=True)


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
    table = res._train.table if res._train is not None else None
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


def write_outputs(res: DecontaminationResult, out: Path, fmt: str, params: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    write_table(_as_table(res.kept, "text"), out / f"kept.{fmt}")
    write_table(_as_table(res.removed, "text"), out / f"removed.{fmt}")
    write_table(res.matches, out / "matches.parquet")
    summary = summarize(res, params)
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
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
    console.print(f"kept: {summary['kept']}  removed: {summary['removed']}  matches: {summary['matches']}")
    console.print(
        f"outputs in [bold]{out}[/bold]: kept, removed (with attribution), matches.parquet, summary.json"
    )


def _params(args: argparse.Namespace) -> dict:
    p = {"method": args.method, "ngram_range": list(args.ngram_range)}
    if args.method == "precise":
        p.update(
            n=args.n,
            min_tokens=args.min_tokens,
            min_coverage=args.min_coverage,
            max_train_df=args.max_train_df,
            max_benchmark_df=args.max_benchmark_df,
        )
    return p


def cmd_decontaminate(args: argparse.Namespace) -> int:
    console = _console()
    t0 = time.perf_counter()
    progress = (not args.no_progress) and sys.stderr.isatty()
    res = decontaminate(
        args.train,
        _benchmark_arg(args),
        ngram_range=tuple(args.ngram_range),
        method=args.method,
        text=args.text,
        benchmark_text=args.benchmark_text,
        benchmark_id=args.benchmark_id,
        benchmark_subset=args.benchmark_subset,
        n=args.n,
        min_tokens=args.min_tokens,
        max_train_df=args.max_train_df,
        max_benchmark_df=args.max_benchmark_df,
        min_coverage=args.min_coverage,
        num_threads=args.threads,
        progress=progress,
    )
    out = Path(args.out)
    summary = write_outputs(res, out, args.format, _params(args))
    print_summary(summary, out, console)
    console.print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    console = _console()
    t0 = time.perf_counter()
    idx = BenchmarkIndex(
        args.benchmark,
        text=args.text,
        id=args.id,
        subset=args.subset,
        method=args.method,
        ngram_range=tuple(args.ngram_range),
        n=args.n,
        min_tokens=args.min_tokens,
        num_threads=args.threads,
    )
    out = Path(args.out)
    if out.suffix != INDEX_SUFFIX:
        out = out.with_name(out.name + INDEX_SUFFIX)
    idx.save(out)
    console.print(f"{idx!r}\nsaved to [bold]{out}[/bold] in {time.perf_counter() - t0:.2f} s")
    return 0


def demo_dir() -> Path:
    """The bundled demo sample: ``sources/*.jsonl`` and ``benchmark.jsonl``."""
    return Path(str(resources.files("prefcurate") / "data" / "demo"))


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: the demo recipe on the bundled sample."""
    from .pipeline import Pipeline, recipes_dir

    console = _console()
    out = Path(args.out)
    console.print(f"demo: the Skywork v0.2 recipe on the bundled sample ({demo_dir()}) -> {out}")
    pipe = Pipeline(
        recipes_dir() / "demo.toml",
        out,
        data_dir=demo_dir(),
        cache=not args.no_cache,
        progress=console.is_terminal,
    )
    res = pipe.run()
    for s in res.summary()["stages"]:
        reasons = ", ".join(f"{k} {v}" for k, v in s["by_reason"].items())
        console.print(
            f"{s['name']:>22}: {s['input']:>3} in, {s['kept']:>3} kept, {s['removed']:>3} removed  {reasons}",
            highlight=False,
        )
    console.print(f"[bold]{res.final.num_rows}[/bold] pairs in {out / (res.recipe.name + '.jsonl')}")
    console.print(f"[bold]report:[/bold] {out / 'report.html'} (and report.md, summary.json, removed/)")
    return 0


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=("reference", "precise"), default="reference")
    p.add_argument("--ngram-range", nargs=2, type=int, default=(7, 13), metavar=("MIN", "MAX"))
    p.add_argument("--n", type=int, default=13, help="precise: n-gram size (default 13)")
    p.add_argument("--min-tokens", type=int, default=5, help="precise: shortest benchmark prompt indexed")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefcurate", description="Curate preference data for reward models and DPO."
    )
    parser.add_argument("--version", action="version", version=f"prefcurate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("decontaminate", help="remove training rows whose prompts overlap a benchmark")
    d.add_argument(
        "train", help="training data: jsonl, json, parquet, csv (.gz/.zst), a saved dataset folder"
    )
    d.add_argument(
        "--benchmark", required=True, help="benchmark prompts (same formats) or an index file (.pcidx)"
    )
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--text", default=None, help="training text column (default: prompt, else a chat column)")
    d.add_argument("--benchmark-text", default=None)
    d.add_argument("--benchmark-id", default="id")
    d.add_argument("--benchmark-subset", default="subset")
    d.add_argument("--min-coverage", type=float, default=0.5, help="precise: share of the prompt's n-grams")
    d.add_argument(
        "--max-train-df", type=float, default=0.001, help="precise: stop-gram training df (<1: fraction)"
    )
    d.add_argument("--max-benchmark-df", type=int, default=10, help="precise: stop-gram benchmark df")
    d.add_argument("--format", choices=("jsonl", "parquet", "json", "csv"), default="jsonl")
    d.add_argument("--no-progress", action="store_true")
    _add_method_args(d)
    d.set_defaults(func=cmd_decontaminate)

    i = sub.add_parser("index", help="build a benchmark index and save it (.pcidx)")
    i.add_argument("benchmark")
    i.add_argument("--out", required=True)
    i.add_argument("--text", default=None)
    i.add_argument("--id", default="id")
    i.add_argument("--subset", default="subset")
    _add_method_args(i)
    i.set_defaults(func=cmd_index)

    from . import convert_cli, dedup_cli, pipeline_cli, select_cli

    select_cli.add_parser(sub)
    dedup_cli.add_parser(sub)
    convert_cli.add_parser(sub)
    pipeline_cli.add_parser(sub)

    m = sub.add_parser("demo", help="run the Skywork recipe on the bundled sample (offline, CPU, seconds)")
    m.add_argument("--out", default="prefcurate-demo")
    m.add_argument("--no-cache", action="store_true")
    m.set_defaults(func=cmd_demo)

    add_scoring_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (PrefcurateError, FileNotFoundError, OSError) as e:
        _console().print(f"[bold red]error:[/bold red] {e}", highlight=False)
        return 2
    except KeyboardInterrupt:
        _console().print("[bold red]interrupted[/bold red]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
