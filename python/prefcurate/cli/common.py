"""What every command shares: one vocabulary for outputs, the console,
progress, the summary file, and the checks of a new user's mistakes.

- ``--out DIR`` is always a folder: ``kept.<fmt>``, ``removed.<fmt>`` (or the
  command's own table names) and ``summary.json``.  Only the index commands
  (``index``, ``dedup-index``) write one file, the index.
- ``--output-format`` (jsonl, json, parquet, csv) follows the input's format
  when not given (a folder, a saved dataset or a hub name: parquet).
- ``--layout``: how pair tables are written (see ``docs/layouts.md``).
- ``--quiet``: only errors.  Progress shows on a terminal, never in a pipe.
- Older spellings (``--format`` for the output format, ``convert --format``
  for the input format, ``--out FILE`` of ``convert`` / ``score``) are read for
  one release with a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import InvalidInputError
from ..io import LAYOUTS, read_table, split_suffix, write_pairs, write_table
from ..schema import REQUIRED

OUTPUT_FORMATS = ("jsonl", "json", "parquet", "csv")


def console(args: argparse.Namespace | None = None) -> Any:
    """The console on stderr: quiet with ``--quiet``; lines are not wrapped
    when stderr is not a terminal (a log file or a pipe)."""
    from rich.console import Console

    quiet = bool(getattr(args, "quiet", False))
    c = Console(stderr=True, quiet=quiet)
    if not c.is_terminal:
        c = Console(stderr=True, quiet=quiet, soft_wrap=True, width=10_000)
    return c


def show_progress(args: argparse.Namespace, c: Any) -> bool:
    return not getattr(args, "quiet", False) and not getattr(args, "no_progress", False) and c.is_terminal


@contextlib.contextmanager
def steps(c: Any, enabled: bool, total: int, title: str) -> Iterator[Any]:
    """A progress bar over a command's steps (read, run, write): ``step(name)``
    moves it on.  Off the terminal it prints nothing."""
    if not enabled:
        yield lambda name: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=c,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=total)

        def step(name: str) -> None:
            bar.update(task, advance=1, description=f"{title}: {name}")

        yield step


def add_output(p: argparse.ArgumentParser, *, layout: bool = True, default_layout: str = "canonical") -> None:
    """``--out DIR``, ``--output-format``, ``--layout``, ``--quiet`` (and the
    older ``--format``, read with a warning)."""
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing)")
    p.add_argument(
        "--output-format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="format of the tables written (default: the input's format; parquet for folders and hub names)",
    )
    p.add_argument("--format", dest="old_format", default=None, help=argparse.SUPPRESS)
    if layout:
        p.add_argument(
            "--layout",
            choices=LAYOUTS,
            default=default_layout,
            help=f"how pair tables are written: {', '.join(LAYOUTS)} (default: {default_layout}; "
            "trl for a file to train on)",
        )
    add_quiet(p)


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def warn_old(flag: str, new: str) -> None:
    warnings.warn(
        f"{flag} is deprecated and will be removed in the next release; use {new}",
        FutureWarning,
        stacklevel=3,
    )


def plain_warnings() -> None:
    """Warnings as one ``warning:`` line each (no source line)."""

    def show(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show


def out_dir(args: argparse.Namespace) -> Path:
    """``--out`` as a folder (made if missing); an existing file is a mistake
    worth naming."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(
            f"--out {out}: this is a file; --out names a folder for the outputs (made if missing)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def input_format(path: str) -> str:
    """The table format of an input path (parquet for folders and names)."""
    fmt, _ = split_suffix(Path(path))
    return fmt if fmt in OUTPUT_FORMATS else ("csv" if fmt == "tsv" else "parquet")


def output_format(args: argparse.Namespace, input_path: str) -> str:
    fmt = getattr(args, "output_format", None)
    old = getattr(args, "old_format", None)
    if fmt is None and old is not None:
        if old not in OUTPUT_FORMATS:
            raise InvalidInputError(
                f"--format {old!r}: use --output-format with one of {', '.join(OUTPUT_FORMATS)}"
            )
        warn_old("--format", "--output-format")
        fmt = old
    return fmt or input_format(input_path)


def read_input(path: str, what: str = "input") -> pa.Table:
    """A table file; an empty one is an error that says so."""
    table = read_table(path)
    if table.num_rows == 0:
        raise InvalidInputError(f"{path}: the {what} is empty (no rows); there is nothing to do")
    return table


def is_pair_table(table: Any) -> bool:
    return isinstance(table, pa.Table) and all(c in table.column_names for c in REQUIRED)


def write_rows(table: Any, out: Path, name: str, fmt: str, layout: str = "canonical") -> Path:
    """``out/<name>.<fmt>``: a pair table in ``layout``, any other table as it is."""
    path = out / f"{name}.{fmt}"
    if not isinstance(table, pa.Table):
        table = (
            pa.Table.from_pylist(table)
            if isinstance(table, list) and table and isinstance(table[0], dict)
            else table
        )
    if layout != "canonical" and is_pair_table(table):
        return write_pairs(table, path, layout=layout)
    return write_table(table, path)


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def add_choice(p: argparse.ArgumentParser, dest: str, value: str, note: str) -> None:
    """Let option ``dest`` also take ``value`` (a stage's other method)."""
    for action in p._actions:
        if action.dest == dest and action.choices is not None:
            action.choices = (*action.choices, value)
            action.help = f"{action.help}; {note}"
            return
    raise KeyError(dest)


def add_semantic(p: argparse.ArgumentParser, config: Any, title: str) -> None:
    """The semantic method's options (from its config), beside the n-gram
    method's: names the parser has already (--threshold, --text, ...) are
    shared."""
    have = {a.dest for a in p._actions}
    group = p.add_argument_group(title)
    config.add_arguments(group, exclude=tuple(n for n in config.names() if n in have))
