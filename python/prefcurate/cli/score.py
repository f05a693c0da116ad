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


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _add_scorer_args(p: argparse.ArgumentParser, *, model_required: bool) -> None:
    p.add_argument(
        "--model",
        required=model_required,
        default=None,
        help="reward model: Hub name or local folder (AutoModelForSequenceClassification, num_labels=1)",
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer name or folder (default: the model's)")
    p.add_argument(
        "--chat-template",
        default=None,
        help="a file holding a Jinja chat template (default: the tokenizer's)",
    )
    p.add_argument(
        "--device", default="auto", help="auto (every GPU, else cpu), cuda, cuda:1, cpu, or a comma list"
    )
    p.add_argument(
        "--dtype", default=None, help="bfloat16 / float16 / float32 (default: bf16 on GPU, fp32 on CPU)"
    )
    p.add_argument(
        "--attn-implementation", default=None, help="eager, sdpa, flash_attention_2 (default: auto)"
    )
    p.add_argument("--max-length", type=int, default=4096, help="longer inputs are cut from the left")
    p.add_argument("--truncation", choices=("left", "error"), default="left")
    p.add_argument("--token-budget", type=int, default=65536, help="rows x padded length per batch")
    p.add_argument("--cache-dir", default=None, help="reuse and store scores here (resumable)")
    p.add_argument("--no-progress", action="store_true")


def _device(arg: str) -> Any:
    if arg == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return arg.split(",") if "," in arg else arg


def make_scorer(args: argparse.Namespace) -> Any:
    """A :class:`RewardScorer` from the command-line options."""
    from ..scoring import RewardScorer

    template = None
    if args.chat_template:
        template = Path(args.chat_template).read_text(encoding="utf-8")
    return RewardScorer(
        args.model,
        args.tokenizer,
        device=_device(args.device),
        dtype=args.dtype,
        attn_implementation=args.attn_implementation,
        max_length=args.max_length,
        token_budget=args.token_budget,
        truncation=args.truncation,
        chat_template=template,
        cache_dir=args.cache_dir,
    )


def _progress(args: argparse.Namespace) -> bool:
    return (not args.no_progress) and sys.stderr.isatty()


def cmd_score(args: argparse.Namespace) -> int:
    console = _console()
    t0 = time.perf_counter()
    table = read_table(args.input)
    scorer = make_scorer(args)
    console.print(f"{scorer!r}", highlight=False)
    out = scorer.score_pairs(table, progress=_progress(args))
    path = write_table(out, args.out)
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
    from ..scoring import filter_margin

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
    res = filter_margin(table, scorer, min_margin=args.min_margin, progress=_progress(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(res.kept, out / f"kept.{args.format}")
    write_table(res.removed, out / f"removed.{args.format}")
    summary = {
        **res.summary(),
        "params": {"min_margin": args.min_margin, "model": args.model},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    console.print(
        f"filter_margin: {res.n_input} pairs in, {res.kept.num_rows} kept, {res.removed.num_rows} removed "
        f"(margin <= {args.min_margin}); outputs in [bold]{out}[/bold]",
        highlight=False,
    )
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``score`` and ``filter-margin`` on the CLI's subparsers."""
    s = sub.add_parser("score", help="score chosen and rejected of every pair with a reward model")
    s.add_argument("input", help="pair table: jsonl, json, parquet, csv (.gz/.zst), a saved dataset folder")
    s.add_argument("--out", required=True, help="output table (format from the name: .parquet, .jsonl, ...)")
    _add_scorer_args(s, model_required=True)
    s.set_defaults(func=cmd_score)

    f = sub.add_parser(
        "filter-margin", help="keep pairs whose reward margin chosen - rejected exceeds --min-margin"
    )
    f.add_argument("input", help="pair table (with chosen_score / rejected_score unless --model is given)")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--min-margin", type=float, default=0.0)
    f.add_argument("--format", choices=("jsonl", "parquet", "json"), default="jsonl")
    _add_scorer_args(f, model_required=False)
    f.set_defaults(func=cmd_filter_margin)
