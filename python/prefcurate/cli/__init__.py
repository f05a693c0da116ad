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
import sys

from .. import __version__
from ..errors import PrefcurateError
from . import common, convert, decontaminate, dedup, push, run, score, select
from .run import demo_dir

__all__ = ["build_parser", "demo_dir", "main"]


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
    push.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; a user error ends in one ``error:`` line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    common.plain_warnings()
    try:
        return int(args.func(args) or 0)
    except (PrefcurateError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        print(
            f"error: this command needs {missing!r}, which is not installed "
            "(pip install 'prefcurate[scoring]' for torch/transformers, '[hf]' for datasets, '[ray]' for Ray)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
