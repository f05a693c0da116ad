"""``prefcurate run RECIPE``: the whole curation from a TOML recipe."""

from __future__ import annotations

import argparse
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from ..pipeline.run import Pipeline, recipes_dir
from . import common


def print_stages(console: Any, stages: list[dict[str, Any]]) -> None:
    """One line per stage: rows in, kept, removed and why (a read stage: the
    records its file holds, the pairs made, the records dropped)."""
    for s in stages:
        reasons = ", ".join(f"{k} {v}" for k, v in s["by_reason"].items())
        flag = " (cached)" if s.get("cached") else ""
        if "records_in" in s:
            counts = f"{s['records_in']:>6} records in, {s['pairs_out']:>6} pairs, {s['records_dropped']:>5} dropped"
        else:
            counts = f"{s['input']:>6} in, {s['kept']:>6} kept, {s['removed']:>6} removed"
        console.print(f"{s['name']:>24}: {counts}{flag}  {reasons}", highlight=False, soft_wrap=True)


def resolve_recipe(name: str) -> Path:
    """A recipe path, or the name of a shipped recipe (``skywork-80k-v0.2``)."""
    p = Path(name)
    if p.exists():
        return p
    shipped = recipes_dir() / (name if name.endswith(".toml") else f"{name}.toml")
    if shipped.exists():
        return shipped
    known = sorted(x.stem for x in recipes_dir().glob("*.toml"))
    raise FileNotFoundError(f"{name}: no such recipe file, and not a shipped recipe ({', '.join(known)})")


def cmd_run(args: argparse.Namespace) -> int:
    from rich.logging import RichHandler

    console = common.console(args)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("prefcurate").setLevel(logging.INFO)
    if not args.dry_run:
        common.out_dir(args)
    pipe = Pipeline(
        resolve_recipe(args.recipe),
        args.out,
        data_dir=args.data_dir,
        cache=not args.no_cache,
        progress=console.is_terminal and not args.dry_run,
        num_threads=args.threads,
        engine=args.engine,
        layout=args.layout,
    )
    if args.dry_run:
        console.print(f"[bold]{pipe.recipe.name}[/bold]: {pipe.recipe.description}")
        for i, line in enumerate(pipe.plan(), 1):
            console.print(f"{i:2}. {line}", highlight=False)
        return 0
    res = pipe.run()
    print_stages(console, res.summary()["stages"])
    console.print(
        f"[bold]{res.final.num_rows}[/bold] pairs; report: [bold]{Path(args.out) / 'report.html'}[/bold]"
    )
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run a curation recipe (TOML) end to end, with an audit report")
    p.add_argument("recipe", help="a recipe file, or a shipped recipe: skywork-80k-v0.1, skywork-80k-v0.2")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing)")
    p.add_argument("--data-dir", default=None, help="where the recipe's local copies (path = ...) are")
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage with its timing")
    _engine_arg(p)
    common.add_quiet(p)
    p.set_defaults(func=cmd_run)


def _engine_arg(p: argparse.ArgumentParser) -> None:
    from ..io import LAYOUTS

    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        help="how the curated pairs are written (default: the recipe's [output] layout, else trl)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default=None,
        help="run every stage on this engine (default: the recipe's engine, else local)",
    )


def add_demo_parser(sub: Any) -> None:
    m = sub.add_parser("demo", help="run the Skywork recipe on the bundled sample (offline, CPU, seconds)")
    m.add_argument("--out", default="prefcurate-demo", help="output folder (default: prefcurate-demo)")
    m.add_argument("--no-cache", action="store_true", help="recompute every stage")
    _engine_arg(m)
    common.add_quiet(m)
    m.set_defaults(func=cmd_demo)


def demo_dir() -> Path:
    """The bundled demo sample: ``sources/*.jsonl`` and ``benchmark.jsonl``."""
    return Path(str(resources.files("prefcurate") / "data" / "demo"))


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: the demo recipe on the bundled sample."""
    console = common.console(args)
    out = Path(args.out)
    console.print(f"demo: the Skywork v0.2 recipe on the bundled sample ({demo_dir()}) -> {out}")
    common.out_dir(args)
    pipe = Pipeline(
        recipes_dir() / "demo.toml",
        out,
        data_dir=demo_dir(),
        cache=not args.no_cache,
        progress=console.is_terminal,
        engine=args.engine,
        layout=args.layout,
    )
    res = pipe.run()
    print_stages(console, res.summary()["stages"])
    console.print(f"[bold]{res.final.num_rows}[/bold] pairs in {out / (res.recipe.name + '.jsonl')}")
    console.print(f"[bold]report:[/bold] {out / 'report.html'} (and report.md, summary.json, removed/)")
    return 0
