"""``prefcurate select``: top-k / top-fraction per group from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..api import select_top_result
from ..errors import InvalidInputError
from ..io import read_table, write_table
from ..stages.select import PRESETS, SelectConfig


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidInputError(f"--{what}: {value!r} is not a number") from None


def _kv(items: list[str] | None, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep:
            raise InvalidInputError(f"--{what} expects NAME=VALUE, got {item!r}")
        out[name] = _number(value, what)
    return out


def _quota(items: list[str] | None, what: str, cast: type) -> Any:
    """``N`` (one value for every group) or ``GROUP=N ...``."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return cast(_number(items[0], what))
    return {g: cast(v) for g, v in _kv(items, what).items()}


def cmd_select(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    t0 = time.perf_counter()
    params: dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {}
    for name in ("score", "group_by", "offset_by", "tie_break"):
        v = getattr(args, name)
        if v is not None:
            params[name] = None if v == "" else v
    fraction, k = _quota(args.fraction, "fraction", float), _quota(args.k, "k", int)
    if fraction is not None:
        params["fraction"] = fraction
    if k is not None:
        params["k"] = k
    if args.default_fraction is not None:
        params["default_fraction"] = args.default_fraction
    if args.default_k is not None:
        params["default_k"] = args.default_k
    if args.offset:
        params["offsets"] = _kv(args.offset, "offset")
    config = SelectConfig(**params)  # settings are checked before the input is read
    table = read_table(args.input)
    res = select_top_result(table, config, num_threads=args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(res.kept, out / f"kept.{args.format}")
    write_table(res.removed, out / f"removed.{args.format}")
    summary = res.summary()
    summary["params"] = {k: v for k, v in params.items() if not callable(v)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    t = Table(title=f"select: kept {res.kept.num_rows} of {res.n_input} rows")
    for col in ("group", "quota", "ranked", "kept", "cut-off score"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for g, v in res.info["groups"].items():
        cut = "-" if v["cutoff"] is None else f"{v['cutoff']:.4f}"
        t.add_row(g, " ".join(map(str, v["quota"])), str(v["ranked"]), str(v["kept"]), cut)
    console.print(t)
    console.print(f"removed by reason: {summary['by_reason']}")
    console.print(f"outputs in [bold]{out}[/bold] ({time.perf_counter() - t0:.2f} s)")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("select", help="keep the top k / top fraction of each group by score")
    p.add_argument("input", help="a table file (jsonl, parquet, ...) with a score column")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="e.g. skywork-magpie (fractions, offsets, categories)"
    )
    p.add_argument("--score", default=None)
    p.add_argument("--group-by", dest="group_by", default=None, help="group column ('' for one group)")
    p.add_argument("--k", nargs="+", help="N, or GROUP=N ...")
    p.add_argument("--fraction", nargs="+", help="F, or GROUP=F ...")
    p.add_argument("--default-k", type=int, default=None)
    p.add_argument("--default-fraction", type=float, default=None)
    p.add_argument("--offset-by", dest="offset_by", default=None)
    p.add_argument("--offset", nargs="+", help="SOURCE=OFFSET ... added to the score before ranking")
    p.add_argument("--tie-break", dest="tie_break", default=None)
    p.add_argument("--format", choices=("jsonl", "parquet", "json", "csv"), default="parquet")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_select)
