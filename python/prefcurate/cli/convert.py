"""``prefcurate convert``: any pair format in, the canonical pair table out.

    prefcurate convert IN --out DIR [--input-format auto] [--source S] [--split SPLIT]
                          [--on-invalid warn|quarantine|raise] [--output-format F] [--layout L]

Writes ``DIR/pairs.<fmt>``, ``DIR/removed.<fmt>`` (records the format's rules
removed), ``DIR/quarantine.<fmt>`` (records with content problems) and
``DIR/summary.json``; prints records read, converted, removed and
quarantined by reason.  (``--out FILE.jsonl`` writes that file with sidecars
``FILE.removed.jsonl`` / ``FILE.quarantine.jsonl``, as before: deprecated.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .. import io as _io
from ..errors import InvalidInputError
from ..io import FORMATS, ConvertResult, convert_pairs, write_pairs
from ..io.convert import ON_INVALID
from . import common


def sidecar(out: Path, what: str) -> Path:
    """``pairs.parquet`` -> ``pairs.<what>.jsonl`` (next to it; also for a folder)."""
    name = out.name
    if out.suffix:
        fmt, compression = _io.split_suffix(out)
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


def _input_format(args: argparse.Namespace) -> str:
    if args.old_format is not None:
        # convert's --format was the input format (elsewhere the output's)
        common.warn_old("convert --format", "--input-format")
        fmt, args.old_format = args.old_format, None
        return str(fmt)
    return str(args.input_format)


def cmd_convert(args: argparse.Namespace) -> int:
    console = common.console(args)
    t0 = time.perf_counter()
    fmt_in = _input_format(args)
    legacy = (
        Path(args.out).suffix
        and _io.split_suffix(Path(args.out))[0] is not None
        and not Path(args.out).is_dir()
    )
    with common.steps(console, common.show_progress(args, console), 2, "convert") as step:
        res = convert_pairs(
            args.input, fmt_in, source=args.source, split=args.split, on_invalid=args.on_invalid
        )
        step("read")
        if res.stats["rows_read"] == 0:
            raise InvalidInputError(
                f"{args.input}: the input is empty (no records); there is nothing to convert"
            )
        extra = []
        if legacy:
            # the older form: --out names the pairs file, sidecars beside it
            common.warn_old(
                "convert --out FILE", "--out DIR (pairs.<fmt>, removed.<fmt>, quarantine.<fmt>, summary.json)"
            )
            out = Path(args.out)
            write_pairs(res.pairs, out, layout=args.layout)
            for what, table in (("quarantine", res.quarantine), ("removed", res.removed)):
                path = sidecar(out, what)
                if table.num_rows:
                    _io.write_table(table, path)
                    extra.append((what, path))
                elif path.exists():
                    path.unlink()  # a stale file from an earlier run would mislead
        else:
            folder = common.out_dir(args)
            fmt = common.output_format(args, args.input)
            out = common.write_rows(res.pairs, folder, "pairs", fmt, args.layout)
            for what, table in (("quarantine", res.quarantine), ("removed", res.removed)):
                path = folder / f"{what}.{fmt}"
                if table.num_rows:
                    extra.append((what, common.write_rows(table, folder, what, fmt)))
                elif path.exists():
                    path.unlink()  # a stale file from an earlier run would mislead
            common.write_summary(folder, {"stage": "convert", "input": args.input, **res.stats})
        step("written")
    print_summary(res, out, extra, console)
    console.print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert", help="read preference pairs in any supported format; write the canonical pair table"
    )
    p.add_argument(
        "input",
        help="a file (jsonl, json, parquet, csv; .gz/.zst/.bz2/.xz), a folder of shards, a saved dataset folder, "
        "or a Hugging Face dataset name",
    )
    common.add_output(p)
    p.add_argument(
        "--input-format",
        default="auto",
        metavar="FORMAT",
        help=f"the source format: auto (detect, the default) or one of: {', '.join(FORMATS)}",
    )
    p.add_argument(
        "--source",
        default=None,
        help="the source column (default: from the data, the file name or the format)",
    )
    p.add_argument("--split", default=None, help="the split of a dataset with several")
    p.add_argument(
        "--on-invalid",
        dest="on_invalid",
        choices=ON_INVALID,
        default="warn",
        help="records with content problems: warn (quarantine them and say how many; the default), "
        "quarantine (silently), or raise (stop at the first)",
    )
    p.set_defaults(func=cmd_convert)
    return p
