"""Writing pair tables in the layouts trainers read as written.

:func:`write_pairs` writes JSON Lines / JSON (optionally compressed),
Parquet, or a Hugging Face ``save_to_disk`` folder, in one of the
:data:`LAYOUTS` (see ``docs/layouts.md``):

``trl`` (default)
    ``chosen`` / ``rejected``: whole conversations (prompt turns + answer),
    TRL's conversational preference format with an implicit prompt
    (RewardTrainer, DPOTrainer).
``trl-explicit``
    ``prompt``: the prompt turns as a message list; ``chosen`` /
    ``rejected``: the answer alone as a one-message list.
``openrlhf``
    OpenRLHF's default keys (``chosen``, ``rejected``: whole conversations;
    train with ``--apply_chat_template``, no ``--prompt_key``).
``llamafactory``
    LLaMA-Factory's sharegpt ranking format (``conversations`` of
    ``{from, value}``, ``chosen`` / ``rejected`` messages) and its entry in
    ``dataset_info.json`` next to the file.
``skywork``
    The Skywork-Reward-Preference-80K schema: ``chosen``, ``rejected``,
    ``source``.
``canonical``
    prefcurate's own pair table as it is (``id``, ``source``, ``chosen``,
    ``rejected``, ``prompt``, then ``score``, ``category``...): the input of
    prefcurate's stages, not of a trainer (``prompt`` and ``score`` are
    names trainers read).

In the trainer layouts every other column (``id``, ``source`` where the layout has no place for it,
``score``, ``category``...) is written with the prefix ``pc_``, a name no
trainer reads, so trainers see only their own columns (none of ``prompt``,
``margin``, ``score``, ``label``, ``completion``, ``messages`` unless the
layout defines it).  A ``margin`` column (TRL's and OpenRLHF's margin loss)
is written only when asked, and never with nulls.  :func:`prefcurate.io.read_pairs`
reads every layout back: the same pairs, sources and ids.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidInputError
from ..schema import MESSAGES, validate_pairs, with_columns
from .arrow import as_messages, is_message_list, list_parts, one
from .convert import PC_PREFIX
from .tables import split_suffix, write_table
from .validate import check_pairs

LAYOUTS = ("trl", "trl-explicit", "openrlhf", "llamafactory", "skywork", "canonical")
#: layouts that can carry a margin column (the trainers that read one)
MARGIN_LAYOUTS = ("trl", "trl-explicit", "openrlhf", "skywork", "canonical")
#: the columns each layout defines (what trainers read), before the ``pc_`` ones
_DERIVED = ("chosen", "rejected", "prompt")
SHAREGPT_TAGS = {"system": "system", "user": "human", "assistant": "gpt"}


def _split_last(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(each list without its last message, each list's last message)."""
    offs, values = list_parts(arr)
    n = len(offs) - 1
    last = offs[1:] - 1
    keep = np.ones(len(values), dtype=bool)
    keep[last] = False
    head = pa.ListArray.from_arrays(
        pa.array(offs - np.arange(n + 1), pa.int32()), values.filter(pa.array(keep))
    )
    return head, values.take(pa.array(last))


def _as_list(messages: pa.Array) -> pa.Array:
    """One message per row as a one-message list."""
    return pa.ListArray.from_arrays(pa.array(np.arange(len(messages) + 1), pa.int32()), messages)


def _sharegpt(messages: pa.Array) -> pa.Array:
    """``{role, content}`` structs as LLaMA-Factory's ``{from, value}`` (human / gpt / system)."""
    roles = pc.struct_field(messages, "role")
    tags = pa.array([SHAREGPT_TAGS[r] for r in SHAREGPT_TAGS])
    idx = pc.index_in(roles, pa.array(list(SHAREGPT_TAGS)))
    return pa.StructArray.from_arrays(
        [tags.take(idx), pc.struct_field(messages, "content")], names=["from", "value"]
    )


def _margin(table: pa.Table, margin: bool | str) -> pa.Array | None:
    if margin is False or margin is None:
        return None
    name = "margin" if margin is True else str(margin)
    if name not in table.column_names:
        raise InvalidInputError(
            f"write_pairs: margin={margin!r} but the pairs have no {name!r} column; score them "
            "(prefcurate.filter_margin adds 'margin') or pass margin='<column>'"
        )
    col = one(table.column(name))
    try:
        col = col.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise InvalidInputError(f"write_pairs: margin column {name!r} is {col.type}, not numbers") from None
    bad = col.is_null().to_numpy(zero_copy_only=False) | np.isnan(
        col.fill_null(0.0).to_numpy(zero_copy_only=False)
    )
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"write_pairs: margin column {name!r} is null or NaN in {int(bad.sum())} of {len(col)} rows "
            f"(first: row {first}); a margin loss needs a margin for every pair: score every pair, "
            "drop the unscored ones, or write without margin"
        )
    return col


def layout_table(table: pa.Table, layout: str = "trl", *, margin: bool | str = False) -> pa.Table:
    """The columns :func:`write_pairs` writes for ``layout`` (see the module docstring)."""
    if layout not in LAYOUTS:
        raise InvalidInputError(f"unknown layout {layout!r}; layouts are {', '.join(LAYOUTS)}")
    for side in ("chosen", "rejected"):
        if side not in table.column_names or not is_message_list(table.schema.field(side).type):
            raise InvalidInputError(
                f"write_pairs: {side!r} must be a column of message lists (the canonical pair table: "
                "read it with prefcurate.read_pairs)"
            )
    chosen = as_messages(one(table.column("chosen")), "chosen").cast(MESSAGES)
    rejected = as_messages(one(table.column("rejected")), "rejected").cast(MESSAGES)
    problems, _ = check_pairs(chosen, rejected)
    if problems:
        i = min(problems)
        fld, _code, detail = problems[i]
        raise InvalidInputError(
            f"write_pairs: row {i}: field {fld!r} {detail} ({len(problems)} invalid pairs; "
            "read_pairs / validate_pairs give canonical pairs)"
        )
    margin_col = _margin(table, margin)
    if margin_col is not None and layout not in MARGIN_LAYOUTS:
        raise InvalidInputError(
            f"write_pairs: layout {layout!r} has no margin column (LLaMA-Factory reads none); "
            f"use one of {', '.join(MARGIN_LAYOUTS)} or write without margin"
        )
    if layout == "canonical":
        out = validate_pairs(table, where="write_pairs", deep=False)
        if margin_col is not None:
            out = with_columns(out, {"margin": margin_col})
        return out
    cols: dict[str, Any] = {}
    if layout in ("trl", "openrlhf", "skywork"):
        cols["chosen"], cols["rejected"] = chosen, rejected
    elif layout == "trl-explicit":
        prompt, c_last = _split_last(chosen)
        _, r_last = _split_last(rejected)
        cols["prompt"], cols["chosen"], cols["rejected"] = prompt, _as_list(c_last), _as_list(r_last)
    else:  # llamafactory
        prompt, c_last = _split_last(chosen)
        _, r_last = _split_last(rejected)
        p_offs, p_values = list_parts(prompt)
        cols["conversations"] = pa.ListArray.from_arrays(pa.array(p_offs, pa.int32()), _sharegpt(p_values))
        cols["chosen"], cols["rejected"] = _sharegpt(c_last), _sharegpt(r_last)
    if layout == "skywork":
        if "source" not in table.column_names:
            raise InvalidInputError("write_pairs: layout 'skywork' needs a 'source' column")
        cols["source"] = one(table.column("source")).cast(pa.string())
    if margin_col is not None:
        cols["margin"] = margin_col
    for name in table.column_names:
        if name in _DERIVED or (layout == "skywork" and name == "source"):
            continue
        if margin_col is not None and margin is True and name == "margin":
            continue  # written as the margin itself
        cols[PC_PREFIX + name] = table.column(name)
    return pa.table(cols)


def _entry_name(p: Path) -> str:
    name = p.name
    fmt, compression = split_suffix(p)
    n = (1 if fmt else 0) + (1 if compression else 0)
    return ".".join(name.split(".")[: len(name.split(".")) - n]) or name


def register_llamafactory(path: Path, name: str | None = None) -> Path:
    """Add (or replace) the ``dataset_info.json`` entry, next to ``path``,
    that registers a file of the ``llamafactory`` layout with LLaMA-Factory;
    returns the ``dataset_info.json`` path.  Train with ``dataset_dir`` = the
    folder and ``dataset`` = ``name`` (default: the file name without its
    suffixes)."""
    info_path = path.parent / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"{info_path}: cannot merge into it: not readable JSON ({e})") from None
        if not isinstance(info, dict):
            raise InvalidInputError(f"{info_path}: cannot merge into it: not a JSON object")
    info[name or _entry_name(path)] = {
        "file_name": path.name,
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": SHAREGPT_TAGS["user"],
            "assistant_tag": SHAREGPT_TAGS["assistant"],
            "system_tag": SHAREGPT_TAGS["system"],
        },
    }
    tmp = info_path.with_name(f".{info_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, info_path)
    return info_path


def write_pairs(
    table: pa.Table,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    layout: str = "trl",
    margin: bool | str = False,
    dataset_name: str | None = None,
) -> Path:
    """Write a pair table for a trainer.

    Parameters
    ----------
    table:
        Canonical pairs (:func:`prefcurate.io.read_pairs`, or a stage's kept rows).
    path:
        ``.jsonl`` / ``.json`` (optionally ``.gz`` / ``.zst`` / ``.bz2`` /
        ``.xz``), ``.parquet``, or a path without a suffix (or
        ``format="dataset"``): a Hugging Face ``save_to_disk`` folder.
    layout:
        ``trl`` (default), ``trl-explicit``, ``openrlhf``, ``llamafactory``,
        ``skywork``, or ``canonical`` (the pair table as it is, for
        prefcurate's own stages): see ``docs/layouts.md``.
    margin:
        ``True``: write the ``margin`` column as ``margin`` (TRL's and
        OpenRLHF's margin loss); a column name: write that column as
        ``margin``.  Every row needs one (no nulls, no NaN).
    dataset_name:
        ``llamafactory``: the name of the ``dataset_info.json`` entry
        (default: the file name without its suffixes).

    :func:`prefcurate.io.read_pairs` reads each layout back (same pairs,
    sources and ids).
    """
    p = Path(path)
    fmt = format or (split_suffix(p)[0] if p.suffix else "dataset")
    if fmt not in ("jsonl", "json", "parquet", "dataset"):
        raise InvalidInputError(
            f"{p}: cannot write pairs as {fmt!r}; use .jsonl, .json, .parquet or a folder"
        )
    if layout == "llamafactory" and (fmt == "dataset" or split_suffix(p)[1] is not None):
        raise InvalidInputError(
            f"{p}: LLaMA-Factory reads uncompressed .json / .jsonl / .parquet files; give the path one of "
            "those suffixes"
        )
    out = layout_table(pa.table(table), layout, margin=margin)
    if fmt == "dataset":
        try:
            import datasets
        except ImportError:
            raise InvalidInputError(
                f"{p}: writing a save_to_disk folder needs the `datasets` package (pip install prefcurate[hf])"
            ) from None
        if p.exists() and any(p.iterdir()):
            raise InvalidInputError(f"{p}: folder exists and is not empty")
        datasets.Dataset(out).save_to_disk(str(p))
        return p
    written = write_table(out, p, format=fmt)
    if layout == "llamafactory":
        register_llamafactory(written, dataset_name)
    return written
