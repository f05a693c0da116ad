"""The ``score`` and ``filter-margin`` commands.

prefcurate score IN --model M --out OUT [--device cpu] [--cache-dir D]
prefcurate filter-margin IN --out DIR [--model M] [--min-margin 0]

``score`` adds ``chosen_score``, ``rejected_score``, ``chosen_truncated`` and
``rejected_truncated`` to a pair table.  ``filter-margin`` keeps the pairs with
``chosen_score - rejected_score > --min-margin``, scoring them with ``--model``
or reading the scores already in IN, and writes ``kept``, ``removed`` and
``summary.json``.  torch is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..io import read_table, write_table
from ..scoring.config import ScoreConfig
from ..stages.margin import MarginConfig, filter_margin


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def make_scorer(args: argparse.Namespace) -> Any:
    """A :class:`RewardScorer` from the command-line options (generated from
    :class:`~prefcurate.scoring.config.ScoreConfig`)."""
    return ScoreConfig.from_args(args).scorer()


def _progress(args: argparse.Namespace) -> bool:
    return (not args.no_progress) and sys.stderr.isatty()


def cmd_score(args: argparse.Namespace) -> int:
    console = _console()
    t0 = time.perf_counter()
    if not args.model:
        raise InvalidInputError("score: --model is required (a Hub name or a local folder)")
    table = read_table(args.input)
    scorer = make_scorer(args)
    console.print(f"{scorer!r}", highlight=False)
    check = None
    if args.check:
        from ..scoring import parity

        convs = table.column("chosen").to_pylist()
        result = parity.check(scorer, convs, n=args.check, raise_on_failure=False)
        check = result.as_dict()
        console.print(f"parity check: {result.message}", highlight=False)
        if not result.passed:
            raise InvalidInputError(f"parity check failed: {result.message}")
    out = scorer.score_pairs(table, progress=_progress(args))
    path = write_table(out, args.out)
    if check is not None:
        summary_path = Path(path).with_name(Path(path).name + ".check.json")
        summary_path.write_text(json.dumps(check, indent=2, default=str) + "\n", encoding="utf-8")
    stats = scorer.last_stats.as_dict() if scorer.last_stats is not None else {}
    console.print(
        f"scored {table.num_rows} pairs ({stats.get('rows', 0)} conversations: "
        f"{stats.get('rows_cached', 0)} from the cache, {stats.get('rows_truncated', 0)} truncated; "
        f"{stats.get('tokens_per_second', 0):.0f} tokens/s) -> [bold]{path}[/bold] "
        f"in {time.perf_counter() - t0:.1f} s",
        highlight=False,
    )
    return 0


def cmd_filter_margin(args: argparse.Namespace) -> int:
    console = _console()
    t0 = time.perf_counter()
    table = read_table(args.input)
    scorer = None
    if args.model:
        scorer = make_scorer(args)
    elif not {"chosen_score", "rejected_score"} <= set(table.column_names):
        raise InvalidInputError(
            f"{args.input}: no chosen_score / rejected_score columns; pass --model to score the pairs"
        )
    config = MarginConfig.from_args(args)
    res = filter_margin(table, scorer, config, progress=_progress(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(res.kept, out / f"kept.{args.format}")
    write_table(res.removed, out / f"removed.{args.format}")
    summary = {
        **res.summary(),
        "params": {**config.as_dict(), "model": args.model},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    console.print(
        f"filter_margin: {res.n_input} pairs in, {res.kept.num_rows} kept, {res.removed.num_rows} removed "
        f"(margin <= {config.min_margin}); outputs in [bold]{out}[/bold]",
        highlight=False,
    )
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``score`` and ``filter-margin`` on the CLI's subparsers."""
    s = sub.add_parser("score", help="score chosen and rejected of every pair with a reward model")
    s.add_argument("input", help="pair table: jsonl, json, parquet, csv (.gz/.zst), a saved dataset folder")
    s.add_argument("--out", required=True, help="output table (format from the name: .parquet, .jsonl, ...)")
    ScoreConfig.add_arguments(s)
    s.add_argument(
        "--check",
        type=int,
        default=0,
        metavar="N",
        help="first score N rows through the scorer and through the model's plain forward one at a time, "
        "print the largest difference and stop above the tolerance (default: 0, no check)",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_score)

    f = sub.add_parser(
        "filter-margin", help="keep pairs whose reward margin chosen - rejected exceeds --min-margin"
    )
    f.add_argument("input", help="pair table (with chosen_score / rejected_score unless --model is given)")
    f.add_argument("--out", required=True, help="output folder")
    MarginConfig.add_arguments(f)
    f.add_argument(
        "--format",
        choices=("jsonl", "parquet", "json"),
        default="jsonl",
        help="output format (default: jsonl)",
    )
    ScoreConfig.add_arguments(f)
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_filter_margin)
