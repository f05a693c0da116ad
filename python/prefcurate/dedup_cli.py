"""``prefcurate dedup``: exact and near-duplicate removal from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from .dedup import DedupIndex, dedup
from .io import read_table, write_table


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "level": args.level,
        "method": args.method,
        "threshold": args.threshold,
        "nfkc": not args.no_nfkc,
        "lowercase": not args.keep_case,
        "whitespace": not args.keep_whitespace,
        "shingle": args.shingle,
        "ngram": args.ngram,
        "num_perm": args.num_perm,
    }


def cmd_dedup(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    t0 = time.perf_counter()
    table = read_table(args.input)
    keep: Any = args.keep
    if args.source_priority:
        keep = args.source_priority
    if args.against:
        res = dedup(
            table, against=DedupIndex.load(args.against), text=args.text, keep=keep, num_threads=args.threads
        )
    else:
        res = dedup(table, text=args.text, keep=keep, num_threads=args.threads, **_settings(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kept, removed = res.kept, res.removed
    assert isinstance(kept, pa.Table) and isinstance(removed, pa.Table)
    write_table(kept, out / f"kept.{args.format}")
    write_table(removed, out / f"removed.{args.format}")
    summary = res.summary()
    summary["params"] = res.params
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(
        f"dedup: kept {summary['kept']} of {summary['input']} rows; removed by reason: {summary['by_reason']}"
    )
    console.print(f"outputs in [bold]{out}[/bold] ({time.perf_counter() - t0:.2f} s)")
    return 0


def cmd_dedup_index(args: argparse.Namespace) -> int:
    from rich.console import Console

    table = read_table(args.input)
    idx = DedupIndex(table, text=args.text, num_threads=args.threads, **_settings(args))
    idx.save(args.out)
    Console(stderr=True).print(f"{idx!r}\nsaved to [bold]{args.out}[/bold]")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a table file: a canonical pair table (pair-aware) or texts")
    p.add_argument("--text", default=None, help="deduplicate this text column instead of the pairs")
    p.add_argument("--level", choices=("prompt", "prompt_chosen", "pair"), default="prompt")
    p.add_argument("--method", choices=("exact", "minhash"), default="minhash")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--shingle", choices=("word", "char"), default="word")
    p.add_argument("--ngram", type=int, default=5)
    p.add_argument("--num-perm", type=int, default=128)
    p.add_argument("--no-nfkc", action="store_true")
    p.add_argument("--keep-case", action="store_true")
    p.add_argument("--keep-whitespace", action="store_true")
    p.add_argument("--threads", type=int, default=None)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dedup", help="remove exact and near-duplicate rows (pair-aware)")
    _common(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--keep", choices=("first", "score"), default="first")
    p.add_argument("--source-priority", nargs="+", help="keep rows of these sources first, in order")
    p.add_argument("--against", help="a reference index (prefcurate dedup-index): remove rows duplicating it")
    p.add_argument("--format", choices=("jsonl", "parquet", "json", "csv"), default="parquet")
    p.set_defaults(func=cmd_dedup)
    q = sub.add_parser("dedup-index", help="build a reference index to deduplicate other data against")
    _common(q)
    q.add_argument("--out", required=True, help="index file to write")
    q.set_defaults(func=cmd_dedup_index)
