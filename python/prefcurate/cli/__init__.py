"""The ``prefcurate`` command line: one module per command under
``prefcurate.cli``; options of stage settings are generated from the stage
configs (so the CLI, the API and the TOML recipes share names, defaults and
checks).

prefcurate decontaminate TRAIN --benchmark BENCH --out DIR
prefcurate index BENCH --out bench.pcidx
prefcurate select | dedup | dedup-index | convert | score | filter-margin | run | demo
"""

from __future__ import annotations

import argparse

from .. import __version__
from ..errors import PrefcurateError
from . import convert, decontaminate, dedup, run, score, select
from .run import demo_dir

__all__ = ["build_parser", "demo_dir", "main"]


def _console():
    from rich.console import Console

    return Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefcurate", description="Curate preference data for reward models and DPO."
    )
    parser.add_argument("--version", action="version", version=f"prefcurate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    decontaminate.add_parsers(sub)
    select.add_parser(sub)
    dedup.add_parser(sub)
    convert.add_parser(sub)
    run.add_parser(sub)
    run.add_demo_parser(sub)
    score.add_parsers(sub)
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
