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
import time
from pathlib import Path
from typing import Any

from .. import io as _io
from ..errors import InvalidInputError
from ..io import write_table
from ..scoring.config import ScoreConfig
from ..stages.margin import MarginConfig, filter_margin
from . import common


def make_scorer(args: argparse.Namespace) -> Any:
    """A :class:`RewardScorer` from the command-line options (generated from
    :class:`~prefcurate.scoring.config.ScoreConfig`)."""
    return ScoreConfig.from_args(args).scorer()


def _progress(args: argparse.Namespace, console: Any) -> bool:
    return common.show_progress(args, console)


def cmd_score(args: argparse.Namespace) -> int:
    console = common.console(args)
    t0 = time.perf_counter()
    if not args.model:
        raise InvalidInputError("score: --model is required (a Hub name or a local folder)")
    legacy = _io.split_suffix(Path(args.out))[0] is not None and not Path(args.out).is_dir()
    if legacy:
        common.warn_old("score --out FILE", "--out DIR (scored.<fmt> and summary.json)")
    else:
        folder = common.out_dir(args)
        fmt = common.output_format(args, args.input)
    table = common.read_input(args.input, "pair table")
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
    out = scorer.score_pairs(table, progress=_progress(args, console))
    stats = scorer.last_stats.as_dict() if scorer.last_stats is not None else {}
    summary = {
        "stage": "score",
        "input": table.num_rows,
        "model": scorer.model_id,
        "settings": ScoreConfig.from_args(args).as_dict(),
        "scoring": stats,
        **({"parity_check": check} if check is not None else {}),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if legacy:
        path = write_table(out, args.out)
        Path(str(path) + ".summary.json").write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8"
        )
    else:
        path = common.write_rows(out, folder, "scored", fmt)
        common.write_summary(folder, summary)
    console.print(
        f"scored {table.num_rows} pairs ({stats.get('rows', 0)} conversations: "
        f"{stats.get('rows_cached', 0)} from the cache, {stats.get('rows_truncated', 0)} truncated; "
        f"{stats.get('tokens_per_second', 0):.0f} tokens/s) -> [bold]{path}[/bold] "
        f"in {time.perf_counter() - t0:.1f} s",
        highlight=False,
    )
    return 0


def cmd_filter_margin(args: argparse.Namespace) -> int:
    console = common.console(args)
    t0 = time.perf_counter()
    out = common.out_dir(args)
    fmt = common.output_format(args, args.input)
    table = common.read_input(args.input, "pair table")
    scorer = None
    if args.model:
        scorer = make_scorer(args)
    elif not {"chosen_score", "rejected_score"} <= set(table.column_names):
        raise InvalidInputError(
            f"{args.input}: no chosen_score / rejected_score columns; pass --model to score the pairs"
        )
    config = MarginConfig.from_args(args)
    res = filter_margin(table, scorer, config, progress=_progress(args, console))
    common.write_rows(res.kept, out, "kept", fmt, args.layout)
    common.write_rows(res.removed, out, "removed", fmt)
    summary = {
        **res.summary(),
        "params": {**config.as_dict(), "model": args.model},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    common.write_summary(out, summary)
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
    common.add_output(s, layout=False)
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
    common.add_output(f)
    MarginConfig.add_arguments(f)
    ScoreConfig.add_arguments(f)
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_filter_margin)
