"""``prefcurate convert``: any pair format in, the canonical pair table out.

    prefcurate convert IN --out OUT [--format auto] [--source S] [--split SPLIT]
                          [--on-invalid raise|quarantine]

Writes OUT (``.jsonl`` / ``.json`` / ``.parquet``, optionally ``.gz`` /
``.zst``, or a folder: a ``save_to_disk`` dataset), and next to it
``<OUT>.quarantine.jsonl`` (invalid rows, with ``--on-invalid quarantine``)
and ``<OUT>.removed.jsonl`` (rows the format's rules removed) when there are
any; prints rows read, converted, removed and quarantined by reason.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .. import io as _io
from ..adapters import FORMATS
from ..pairs import ConvertResult, convert_pairs, write_pairs


def sidecar(out: Path, what: str) -> Path:
    """``pairs.parquet`` -> ``pairs.<what>.jsonl`` (next to it; also for a folder)."""
    name = out.name
    if out.suffix:
        fmt, compression = _io._split_suffix(out)
        n_suffixes = 1 + (compression is not None) if fmt else 1
        name = ".".join(name.split(".")[:-n_suffixes]) or name
    return out.with_name(f"{name}.{what}.jsonl")


def print_summary(res: ConvertResult, out: Path, extra: list[tuple[str, Path]], console: Any) -> None:
    from rich.table import Table

    s = res.stats
    t = Table(title=f"convert ({s['format']}): {s['rows_read']} rows read -> {s['pairs']} pairs")
    t.add_column("rows")
    t.add_column("count", justify="right")
    t.add_row("read", str(s["rows_read"]))
    t.add_row("converted (into pairs)", str(s["rows_converted"]))
    t.add_row("removed", str(s["rows_removed"]))
    for reason, n in sorted(s["removed_by_reason"].items()):
        t.add_row(f"  removed: {reason}", str(n))
    t.add_row("quarantined", str(s["rows_quarantined"]))
    for reason, n in sorted(s["quarantined_by_reason"].items()):
        t.add_row(f"  quarantined: {reason}", str(n))
    t.add_row("pairs written", str(s["pairs"]), end_section=True)
    for src, n in sorted(s["pairs_by_source"].items()):
        t.add_row(f"  source: {src}", str(n))
    console.print(t)
    if s["identical_pairs"]:
        console.print(f"note: {s['identical_pairs']} pairs have the same chosen and rejected answer (kept)")
    console.print(f"pairs: [bold]{out}[/bold]")
    for what, path in extra:
        console.print(f"{what}: [bold]{path}[/bold]")


def cmd_convert(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    t0 = time.perf_counter()
    res = convert_pairs(
        args.input, args.format, source=args.source, split=args.split, on_invalid=args.on_invalid
    )
    out = Path(args.out)
    write_pairs(res.pairs, out)
    extra = []
    for what, table in (("quarantine", res.quarantine), ("removed", res.removed)):
        path = sidecar(out, what)
        if table.num_rows:
            _io.write_table(table, path)
            extra.append((what, path))
        elif path.exists():
            path.unlink()  # a stale file from an earlier run would mislead
    print_summary(res, out, extra, console)
    console.print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert", help="read preference pairs in any supported format; write the canonical pair table"
    )
    p.add_argument(
        "input",
        help="a file (jsonl, json, parquet, csv; .gz/.zst), a folder of shards, a saved dataset folder, "
        "or a Hugging Face dataset name",
    )
    p.add_argument(
        "--out", required=True, help="output: .jsonl / .json / .parquet, or a folder (save_to_disk)"
    )
    p.add_argument("--format", default="auto", help=f"'auto' (default) or one of: {', '.join(FORMATS)}")
    p.add_argument("--source", default=None, help="the source column (default: from the data or the format)")
    p.add_argument("--split", default=None, help="the split of a dataset with several")
    p.add_argument(
        "--on-invalid",
        dest="on_invalid",
        choices=("raise", "quarantine"),
        default="raise",
        help="raise: stop at the first invalid row; quarantine: write invalid rows to <OUT>.quarantine.jsonl",
    )
    p.set_defaults(func=cmd_convert)
    return p
