"""``prefcurate select``: top-k / top-fraction per group from the command line."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..api import select_top_result
from ..errors import InvalidInputError
from ..stages.select import PRESETS, SelectConfig
from . import common


def _warn_absent_sources(table: Any, config: SelectConfig, preset: str, console: Any) -> None:
    """A preset's offsets name sources; when the input has none of some of
    them, the offsets silently do nothing: say so."""
    if not config.offsets or config.offset_by not in table.column_names:
        return
    present = set(table.column(config.offset_by).unique().to_pylist())
    absent = sorted(set(config.offsets) - present)
    if absent:
        console.print(
            f"warning: --preset {preset} offsets sources {absent} that are not in the input's "
            f"{config.offset_by!r} column (values: {sorted(map(str, present))[:8]}); their offsets do not apply. "
            "Label the sources when converting (prefcurate convert --source NAME).",
            highlight=False,
        )


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
    from rich.table import Table

    console = common.console(args)
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
    out = common.out_dir(args)
    fmt = common.output_format(args, args.input)
    with common.steps(console, common.show_progress(args, console), 3, "select") as step:
        table = common.read_input(args.input)
        step("read")
        if args.preset:
            _warn_absent_sources(table, config, args.preset, console)
        res = select_top_result(table, config, num_threads=args.threads)
        step("selected")
        common.write_rows(res.kept, out, "kept", fmt, args.layout)
        common.write_rows(res.removed, out, "removed", fmt)
        step("written")
    summary = res.summary()
    summary["params"] = config.as_dict()
    common.write_summary(out, summary)
    t = Table(title=f"select: kept {res.kept.num_rows} of {res.n_input} rows")
    for col in ("group", "quota", "ranked", "kept", "cut-off score"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for g, v in res.info["groups"].items():
        cut = "-" if v["cutoff"] is None else f"{v['cutoff']:.6g}"
        t.add_row(g, " ".join(map(str, v["quota"])), str(v["ranked"]), str(v["kept"]), cut)
    console.print(t)
    console.print(f"removed by reason: {summary['by_reason']}", highlight=False)
    console.print(f"outputs in [bold]{out}[/bold] ({time.perf_counter() - t0:.2f} s)")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("select", help="keep the top k / top fraction of each group by score")
    p.add_argument("input", help="a table file (jsonl, json, parquet, csv; .gz/.zst) with a score column")
    common.add_output(p)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="settings of a known recipe: skywork-magpie (fractions, offsets, categories)",
    )
    p.add_argument("--score", default=None, help="the score column (default: score)")
    p.add_argument(
        "--group-by", dest="group_by", default=None, help="group column; '' for one group (default: category)"
    )
    p.add_argument(
        "--k",
        nargs="+",
        metavar="N|GROUP=N",
        help="rows to keep per group: N for every group, or GROUP=N ...",
    )
    p.add_argument(
        "--fraction", nargs="+", metavar="F|GROUP=F", help="share to keep per group: F, or GROUP=F ..."
    )
    p.add_argument("--default-k", type=int, default=None, help="k for groups not named in --k")
    p.add_argument(
        "--default-fraction", type=float, default=None, help="fraction for groups not named in --fraction"
    )
    p.add_argument(
        "--offset-by",
        dest="offset_by",
        default=None,
        help="column whose value picks an offset (default: source)",
    )
    p.add_argument(
        "--offset",
        nargs="+",
        metavar="VALUE=OFFSET",
        help="added to the score of rows with this value before ranking",
    )
    p.add_argument(
        "--tie-break", dest="tie_break", default=None, help="column ordering equal scores (default: id)"
    )
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.set_defaults(func=cmd_select)
