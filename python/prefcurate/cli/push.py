"""``prefcurate push OUT_DIR org/name``: publish a recipe run's output folder
as a Hugging Face Hub dataset.

The folder goes up as the run wrote it, in one commit, through
``huggingface_hub`` (``HfApi.create_repo`` then ``HfApi.upload_folder``):
the dataset card ``README.md`` (whose ``configs`` tell the Hub how to load
the pairs and each stage's removed rows), the curated pairs in the recipe's
layout, ``removed/<stage>.parquet`` (one config each), ``summary.json`` and
the report.  Not ``datasets.Dataset.push_to_hub``: that rewrites the pairs
as Parquet shards and the card's metadata, so the files on the Hub would not
be the ones the card describes and TRL reads as written.  See
``docs/card.md``.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path
from typing import Any

from ..errors import PrefcurateError
from ..pipeline.card import removed_file

#: files a run writes beside the pairs that go up when present
EXTRAS = ("summary.json", "report.md", "report.html", "dataset_info.json")
#: folders whose remote files are replaced by this run's (a stage that
#: removed nothing this time leaves no stale file behind)
REPLACED = ("removed/*", "plots/*")


class PushError(PrefcurateError):
    """An output folder that cannot be pushed, or a push the Hub refused."""


def _first_steps(out: Path) -> str:
    return (
        f"run `prefcurate run RECIPE --out {out}` (or `prefcurate demo --out {out}`) first: "
        "a run writes the pairs, removed/ and the dataset card README.md (last)"
    )


def _card_configs(card: Path) -> list[dict[str, Any]]:
    """The ``configs`` of a card's YAML front matter."""
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise PushError(
            f"{card}: no YAML front matter: not a card written by prefcurate; {_first_steps(card.parent)}"
        )
    yaml = _require("yaml", "pyyaml")
    try:
        meta = yaml.safe_load(text[4 : text.index("\n---\n", 3)])
    except yaml.YAMLError as e:
        raise PushError(f"{card}: its YAML front matter does not parse: {' '.join(str(e).split())}") from None
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        raise PushError(f"{card}: no configs in its front matter: not a card written by prefcurate")
    return configs


def _paths(config: dict[str, Any]) -> list[str]:
    files = config.get("data_files", [])
    entries = files if isinstance(files, list) else [files]
    out: list[Any] = []
    for e in entries:
        p = e.get("path") if isinstance(e, dict) else e
        out += p if isinstance(p, list) else [p]
    return [str(p) for p in out if p]


def push_files(out: str | Path) -> list[str]:
    """The files of a run's output folder that ``push`` uploads, relative to
    it: ``README.md``, every data file of the card's configs, the removed
    rows of every stage that ``summary.json`` counts (all of which must
    exist), ``summary.json``, the report and its plots.  A folder that is
    not a finished run is a :class:`PushError` saying what to run first."""
    root = Path(out)
    if not root.is_dir():
        raise PushError(f"{root}: no such folder; {_first_steps(root)}")
    card = root / "README.md"
    if not card.is_file():
        raise PushError(f"{root}: no dataset card (README.md); {_first_steps(root)}")
    files = {"README.md"}
    for config in _card_configs(card):
        name = config.get("config_name", "?")
        for pattern in _paths(config):
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
                raise PushError(f"{card}: config {name!r} names {pattern!r}, outside the folder")
            found = [Path(p) for p in glob.glob(f"{glob.escape(str(root))}/{pattern}")]
            hits = sorted(
                f.relative_to(root).as_posix() for p in found for f in ([p] if p.is_file() else p.rglob("*"))
            )
            if not hits:
                raise PushError(
                    f"{root / pattern}: missing (config {name!r} of README.md names it); the run's output is "
                    f"incomplete: {_first_steps(root)}"
                )
            files.update(hits)
    # the removed rows of every stage that removed any (listed by summary.json:
    # an older run's file of a stage that removes nothing now stays behind)
    summary = _summary(root)
    if not summary:
        raise PushError(f"{root / 'summary.json'}: missing or unreadable; {_first_steps(root)}")
    for stage in summary.get("stages", []):
        if stage.get("removed"):
            path = removed_file(str(stage.get("name")))
            if not (root / path).is_file():
                raise PushError(
                    f"{root / path}: missing (summary.json counts its rows); {_first_steps(root)}"
                )
            files.add(path)
    files.update(x for x in EXTRAS if (root / x).is_file())
    files.update(p.relative_to(root).as_posix() for p in sorted((root / "plots").glob("*.png")))
    return sorted(files)


def _summary(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _require(module: str, package: str) -> Any:
    """``module``, or a PushError naming what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PushError(f"push needs {package} (pip install 'prefcurate[hf]')") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


#: the packages whose errors a Hub call passes on (HTTP clients, the Hub's own)
_HUB_MODULES = {"huggingface_hub", "httpx", "httpx2", "httpcore", "requests", "urllib3"}


def _is_hub_error(e: BaseException) -> bool:
    """Whether an error of a Hub call is the user's to fix (a token, a name,
    the network, the Hub's answer) rather than a bug of prefcurate's."""
    if isinstance(e, (OSError, ValueError)):
        return True  # connection errors, timeouts, invalid names and arguments
    return any(c.__module__.split(".")[0] in _HUB_MODULES for c in type(e).__mro__)


def push(
    out: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    message: str | None = None,
) -> str:
    """Upload a run's output folder to the dataset repository ``repo_id``
    (created if needed; ``private`` applies when it is created); returns the
    repository's URL."""
    huggingface_hub = _require("huggingface_hub", "huggingface_hub")
    root = Path(out)
    files = push_files(root)
    _check_repo_id(repo_id)
    token = token or huggingface_hub.get_token()
    if not token:
        raise PushError(
            "no Hugging Face token: pass --token, set HF_TOKEN, or log in once with `hf auth login`"
        )
    summary = _summary(root)
    msg = message or (
        f"prefcurate {summary.get('prefcurate', '')}: {summary.get('recipe', root.name)}, "
        f"{summary.get('output_rows', '?')} pairs"
    )
    api = huggingface_hub.HfApi(token=token)
    step = "creating the dataset repository"
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        step = "uploading"
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(root),
            allow_patterns=[glob.escape(f) for f in files],
            delete_patterns=list(REPLACED),
            commit_message=msg,
        )
    except Exception as e:
        if not _is_hub_error(e):
            raise
        raise PushError(f"push to {repo_id}: {step} failed: {_one_line(e)}") from None
    return str(url)


def _check_repo_id(repo_id: str) -> None:
    _require("huggingface_hub", "huggingface_hub")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"{repo_id!r}: give the dataset repository as org/name (or user/name)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PushError(f"{repo_id!r}: not a repository name: {_one_line(e)}") from None


def cmd_push(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    root = Path(args.out)
    if args.dry_run:
        files = push_files(root)
        _check_repo_id(args.repo_id)
        console.print(
            f"would push {len(files)} files from {root} to dataset {args.repo_id}:", highlight=False
        )
        for f in files:
            console.print(f"  {f}", highlight=False)
        return 0
    url = push(root, args.repo_id, private=args.private, token=args.token, message=args.message)
    console.print(f"pushed {root} to [bold]{url}[/bold]", highlight=False)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "push",
        help="publish a run's output folder (pairs, dataset card, removed rows, report) as a Hugging Face dataset",
        description="Upload OUT_DIR, as `prefcurate run` / `demo` wrote it, to the Hub dataset repository "
        "ORG/NAME in one commit (created if needed): README.md (the dataset card), the curated pairs, "
        "removed/<stage>.parquet, summary.json and the report.",
    )
    p.add_argument("out", metavar="OUT_DIR", help="the output folder of a run")
    p.add_argument("repo_id", metavar="ORG/NAME", help="the dataset repository")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument(
        "--token",
        default=None,
        help="a Hugging Face token (default: HF_TOKEN, else the one `hf auth login` saved)",
    )
    p.add_argument("--message", default=None, help="the commit message")
    p.add_argument("--dry-run", action="store_true", help="list the files that would go up; upload nothing")
    p.set_defaults(func=cmd_push)
