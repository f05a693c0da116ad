"""``prefcurate dedup``: exact and near-duplicate removal from the command line."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..api import dedup
from ..errors import InvalidInputError
from ..stages.dedup import DedupConfig
from ..stages.dedup_index import DedupIndex
from ..stages.semantic import SemanticDedupConfig
from . import common


def _config(args: argparse.Namespace) -> Any:
    """The stage config from the options (generated from DedupConfig), with
    the older spellings (--keep-case, --keep-whitespace, --source-priority)
    still read."""
    fixed: dict[str, Any] = {}
    if args.keep_case:
        fixed["lowercase"] = False
    if args.keep_whitespace:
        fixed["whitespace"] = False
    if args.source_priority:
        fixed["keep"] = tuple(args.source_priority)
    if args.text is not None:
        fixed["text"] = args.text
    if getattr(args, "method", None) == "semantic":
        args.method = None  # the semantic config has no method field
        if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
            raise InvalidInputError(f"--threshold {args.threshold}: a cosine in [0, 1]")
        return SemanticDedupConfig.from_args(args, **fixed)
    return DedupConfig.from_args(args, **fixed)


def cmd_dedup(args: argparse.Namespace) -> int:
    console = common.console(args)
    t0 = time.perf_counter()
    config = _config(args)
    out = common.out_dir(args)
    fmt = common.output_format(args, args.input)
    with common.steps(console, common.show_progress(args, console), 3, "dedup") as step:
        table = common.read_input(args.input)
        step("read")
        if args.against:
            if not isinstance(config, DedupConfig):
                raise InvalidInputError(
                    "--against takes an n-gram index; it does not go with --method semantic"
                )
            res = dedup(table, config, against=DedupIndex.load(args.against), num_threads=args.threads)
        else:
            res = dedup(table, config, num_threads=args.threads)
        kept, removed = res.kept, res.removed
        step("deduplicated")
        common.write_rows(kept, out, "kept", fmt, args.layout)
        common.write_rows(removed, out, "removed", fmt)
        step("written")
    summary = res.summary()
    summary["params"] = res.params
    common.write_summary(out, summary)
    console.print(
        f"dedup: kept {summary['kept']} of {summary['input']} rows; removed by reason: {summary['by_reason']}",
        highlight=False,
    )
    console.print(f"outputs in [bold]{out}[/bold] ({time.perf_counter() - t0:.2f} s)")
    return 0


def cmd_dedup_index(args: argparse.Namespace) -> int:
    table = common.read_input(args.input)
    idx = DedupIndex(table, _config(args), num_threads=args.threads)
    idx.save(args.out)
    common.console(args).print(f"{idx!r}\nsaved to [bold]{args.out}[/bold]", highlight=False)
    return 0


def _common(p: argparse.ArgumentParser, semantic: bool = False) -> None:
    p.add_argument("input", help="a table file: a canonical pair table (pair-aware) or texts")
    p.add_argument("--text", default=None, help="deduplicate this text column instead of the pairs")
    DedupConfig.add_arguments(p)
    if semantic:
        common.add_choice(
            p,
            "method",
            "semantic",
            "semantic: embedding cosine at the prompt level (--embedder; --threshold is then a cosine, calibrated when not given)",
        )
        common.add_semantic(p, SemanticDedupConfig, "semantic method (--method semantic)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    # older spellings, read for one release
    p.add_argument("--keep-case", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--keep-whitespace", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--source-priority", nargs="+", help=argparse.SUPPRESS)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dedup", help="remove exact and near-duplicate rows (pair-aware)")
    _common(p, semantic=True)
    common.add_output(p)
    p.add_argument("--against", help="a reference index (prefcurate dedup-index): remove rows duplicating it")
    p.set_defaults(func=cmd_dedup)
    q = sub.add_parser("dedup-index", help="build a reference index to deduplicate other data against")
    _common(q)
    q.add_argument("--out", required=True, metavar="FILE", help="index file to write (.pcdedup)")
    common.add_quiet(q)
    q.set_defaults(func=cmd_dedup_index)
