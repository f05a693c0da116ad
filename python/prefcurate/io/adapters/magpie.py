"""Magpie adapters: the Magpie-*-DPO sets (five ArmoRM-scored responses per
instruction) and magpie-ultra-v0.1 (a response and a base-model response).

The Skywork recipe treats the Magpie sets differently (``select``'s
``skywork-magpie`` preset subtracts 0.1 from ``magpie_air`` scores and 0.05
from ``magpie_pro``), so a pair's ``source`` names its set: taken from the
record where the data says it (the instruction generator, or a Llama 3.1
response generator), else from the file or dataset name
(``Magpie-Air-DPO-100K``, ``Magpie-Llama-3.1-Pro-DPO-100K``...), else
``magpie_dpo``; an explicit ``source=`` wins over both.
"""

from __future__ import annotations

import re
from pathlib import PurePath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow import (
    ColumnError,
    as_float,
    as_messages,
    as_string,
    column,
    fill,
    is_list_type,
    is_string_type,
    list_parts,
    null_rows,
    single_turn,
    struct_names,
    take,
    type_name,
)
from .base import Adapter, AdapterOutput, BatchContext, float_field, require, string_field

#: The Magpie sets of the Skywork recipe (the names ``select``'s
#: ``skywork-magpie`` preset and docs/RECIPE.md use).
MAGPIE_AIR = "magpie_air"  # Magpie-Air-DPO-100K: instructions by Llama 3 8B Instruct
MAGPIE_PRO = "magpie_pro"  # Magpie-Pro-DPO-100K: instructions by Llama 3 70B Instruct
MAGPIE_PRO_31 = "magpie_pro_llama3.1"  # Magpie-Llama-3.1-Pro-DPO-100K: Llama 3.1 70B Instruct
MAGPIE_ULTRA = "magpie_ultra"  # magpie-ultra-v0.1: Llama 3.1 405B Instruct
MAGPIE_VARIANTS = (MAGPIE_AIR, MAGPIE_PRO, MAGPIE_PRO_31, MAGPIE_ULTRA)

_LLAMA31 = re.compile(r"llama[-_ ]?3[._]1(?!\d)", re.I)
_LLAMA3 = re.compile(r"llama[-_ ]?3(?!\.\d|\d)", re.I)
_SIZE = re.compile(r"(?<![\d.])(\d+)b(?![a-z])", re.I)


def _word(name: str, word: str) -> bool:
    return re.search(rf"(?<![a-z]){word}(?![a-z])", name, re.I) is not None


def variant_from_name(name: str) -> str | None:
    """The Magpie set a dataset or file name names (``None`` if it does not):
    ``Magpie-Air-DPO-100K-v0.1`` -> ``magpie_air``, ``Magpie-Pro-DPO-100K``
    -> ``magpie_pro``, ``Magpie-Llama-3.1-Pro-DPO-100K`` ->
    ``magpie_pro_llama3.1``, ``magpie-ultra-v0.1`` -> ``magpie_ultra``."""
    if _word(name, "ultra"):
        return MAGPIE_ULTRA
    if _word(name, "air"):
        return None if _LLAMA31.search(name) else MAGPIE_AIR
    if _word(name, "pro"):
        return MAGPIE_PRO_31 if _LLAMA31.search(name) else MAGPIE_PRO
    return None


def variant_from_path(name: str | None) -> str | None:
    """:func:`variant_from_name` of a file's name, else of the nearest folder
    above it that mentions Magpie (``Magpie-Llama-3.1-Pro-DPO-100K-v0.1/data/
    train-00000-of-00004.parquet``), else of a hub dataset name."""
    if not name:
        return None
    parts = PurePath(name).parts
    if not parts:
        return None
    found = variant_from_name(parts[-1])
    if found is not None:
        return found
    for part in reversed(parts[:-1]):
        if "magpie" in part.lower():
            return variant_from_name(part)
    return None


def variant_from_model(model: str | None, *, generated: str) -> str | None:
    """The Magpie set a generator model implies.  ``generated="instruction"``:
    the model that wrote the instructions decides (Llama 3 8B: Air, Llama 3
    70B: Pro, Llama 3.1 70B: Pro Llama 3.1, Llama 3.1 405B: Ultra).
    ``generated="response"``: the DPO sets' responses come from Llama 3 8B
    (Air and Pro alike: not decisive) or Llama 3.1 (Pro Llama 3.1)."""
    if not model:
        return None
    size = _SIZE.search(model)
    b = int(size.group(1)) if size else None
    if generated == "response":
        return MAGPIE_PRO_31 if _LLAMA31.search(model) and b != 405 else None
    if _LLAMA31.search(model):
        return {70: MAGPIE_PRO_31, 405: MAGPIE_ULTRA}.get(b) if b else None
    if _LLAMA3.search(model):
        return {8: MAGPIE_AIR, 70: MAGPIE_PRO}.get(b) if b else None
    return None


def _struct_text(table: pa.Table, col: str, key: str) -> list[str | None] | None:
    """``table[col][key]`` as a list of str (None where absent), or None when
    the column is not a struct with a text field ``key``."""
    if col not in table.column_names:
        return None
    arr = column(table, col)
    if key not in struct_names(arr.type):
        return None
    values = pc.struct_field(arr, key)
    if not is_string_type(values.type):
        return None
    return as_string(values, f"{col}.{key}").to_pylist()


def variants_from_records(table: pa.Table) -> pa.Array:
    """Per row, the Magpie set the record's generator fields say (null where
    they do not): ``gen_input_configs.input_generator`` first, then
    ``gen_response_configs.output_generator``."""
    n = table.num_rows
    out: list[str | None] = [None] * n
    for col, key, what in (
        ("gen_input_configs", "input_generator", "instruction"),
        ("gen_response_configs", "output_generator", "response"),
    ):
        models = _struct_text(table, col, key)
        if models is None:
            continue
        cache: dict[str | None, str | None] = {}
        for i, m in enumerate(models):
            if out[i] is None and m:
                if m not in cache:
                    cache[m] = variant_from_model(m, generated=what)
                out[i] = cache[m]
    return pa.array(out, pa.string())


class MagpieDPO(Adapter):
    name = "magpie_dpo"
    default_source = "magpie_dpo"
    summary = "Magpie-*-DPO: instruction, responses[5], rewards_armorm[5]{score}, chosen, rejected"
    signature = ("instruction", "responses", "rewards_armorm")
    consumes = ("uuid", "instruction", "task_category", "chosen", "rejected")

    def source_from_name(self, name: str | None) -> str | None:
        return variant_from_path(name)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        n = table.num_rows
        instr = string_field(table, ctx, "instruction")
        rewards = column(table, "rewards_armorm")
        if pa.types.is_null(rewards.type):
            rewards = pa.nulls(n, pa.list_(pa.struct([("score", pa.float64())])))
        if not (is_list_type(rewards.type) and "score" in struct_names(rewards.type.value_type)):
            raise ColumnError(
                "rewards_armorm", "wrong_type", f"is {type_name(rewards.type)}, expected [{{score}}]"
            )
        require(ctx, rewards, "rewards_armorm")
        offs, vals = list_parts(rewards)
        lens = np.diff(offs)
        ctx.invalid_rows(lens == 0, "rewards_armorm", "missing_field", "is an empty list")
        scores = as_float(pc.struct_field(vals, "score"), "rewards_armorm[].score")
        sc = scores.to_numpy(zero_copy_only=False).astype(np.float64)
        parents = np.repeat(np.arange(n), lens)
        bad = np.isnan(sc)
        if bad.any():
            ctx.invalid_rows(
                np.unique(parents[bad]), "rewards_armorm", "missing_field", "has a null or NaN score"
            )
        sums = np.bincount(parents, weights=np.nan_to_num(sc), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / lens
        # chosen / rejected: the dataset's own lists where present, else the
        # best- and worst-scored responses
        given_c = column(table, "chosen")
        given_r = column(table, "rejected")
        have = ~null_rows(given_c) & ~null_rows(given_r)
        derive = np.flatnonzero(~have & ~ctx.flagged)
        derived_c: dict[int, str] = {}
        derived_r: dict[int, str] = {}
        if len(derive):
            resp = column(table, "responses")
            if not (
                pa.types.is_null(resp.type)
                or (is_list_type(resp.type) and is_string_type(resp.type.value_type))
            ):
                raise ColumnError(
                    "responses", "wrong_type", f"is {type_name(resp.type)}, expected a list of strings"
                )
            resp_list = take(resp, derive).to_pylist()
            for j, i in enumerate(derive.tolist()):
                rs = resp_list[j]
                row_sc = sc[offs[i] : offs[i + 1]]
                if rs is None:
                    ctx.invalid_rows(
                        [i],
                        "responses",
                        "missing_field",
                        "is missing or null (and there is no chosen / rejected)",
                    )
                    continue
                if len(rs) != len(row_sc):
                    ctx.invalid_rows(
                        [i],
                        "responses",
                        "length_mismatch",
                        f"has {len(rs)} responses but rewards_armorm has {len(row_sc)} scores",
                    )
                    continue
                best, worst = int(np.argmax(row_sc)), int(np.argmin(row_sc))
                if row_sc[best] == row_sc[worst]:
                    ctx.remove_rows([i], "tie", f"all {len(rs)} responses have the same ArmoRM score")
                    continue
                if rs[best] is None or rs[worst] is None:
                    ctx.invalid_rows([i], "responses", "null_content", "the best or worst response is null")
                    continue
                derived_c[i], derived_r[i] = rs[best], rs[worst]
        rows = ctx.ok()
        if have[rows].all():
            chosen = take(as_messages(given_c, "chosen"), rows)
            rejected = take(as_messages(given_r, "rejected"), rows)
        else:
            prompts = take(instr, rows)
            c_ans = pa.array([derived_c.get(i) for i in rows.tolist()], pa.string())
            r_ans = pa.array([derived_r.get(i) for i in rows.tolist()], pa.string())
            chosen = single_turn(prompts, fill(c_ans))
            rejected = single_turn(prompts, fill(r_ans))
            if have[rows].any():
                h = pa.array(have[rows])
                chosen = pc.if_else(h, take(as_messages(given_c, "chosen"), rows), chosen)
                rejected = pc.if_else(h, take(as_messages(given_r, "rejected"), rows), rejected)
        category = (
            as_string(column(table, "task_category"), "task_category")
            if "task_category" in table.column_names
            else pa.nulls(n, pa.string())
        )
        extra = {"score": pa.array(mean[rows], pa.float64()), "category": take(category, rows)}
        out = self.output(table, rows, chosen, rejected, extra, id_col="uuid")
        # the Magpie set, where the record says it (null: the engine asks the file name)
        if "source" not in out.table.column_names:
            out.table = out.table.add_column(2, "source", take(variants_from_records(table), rows))
        return out


class MagpieUltra(Adapter):
    name = "magpie_ultra"
    default_source = "magpie_ultra"
    summary = "magpie-ultra-v0.1: instruction, response, response_base, score, score_base"
    signature = ("instruction", "response", "response_base", "score", "score_base")
    consumes = (
        "instruction",
        "response",
        "response_base",
        "score",
        "score_base",
        "primary_tag",
        "messages",
    )

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        instr = string_field(table, ctx, "instruction")
        resp = string_field(table, ctx, "response")
        base = string_field(table, ctx, "response_base")
        s = float_field(table, ctx, "score")
        sb = float_field(table, ctx, "score_base")
        s_np = s.fill_null(0).to_numpy(zero_copy_only=False)
        sb_np = sb.fill_null(0).to_numpy(zero_copy_only=False)
        ok = ~ctx.flagged
        ctx.remove_rows(
            ok & (s_np == sb_np),
            "tie",
            lambda i: f"score == score_base ({s_np[i]:.6g}): no preference",
        )
        rows = ctx.ok()
        first = s_np[rows] > sb_np[rows]
        p, r1, r2 = take(instr, rows), take(resp, rows), take(base, rows)
        mask = pa.array(first)
        chosen = single_turn(p, pc.if_else(mask, r1, r2))
        rejected = single_turn(p, pc.if_else(mask, r2, r1))
        hi = np.maximum(s_np[rows], sb_np[rows])
        lo = np.minimum(s_np[rows], sb_np[rows])
        category = (
            as_string(column(table, "primary_tag"), "primary_tag")
            if "primary_tag" in table.column_names
            else pa.nulls(table.num_rows, pa.string())
        )
        extra = {
            "score": pa.array((s_np[rows] + sb_np[rows]) / 2),
            "category": take(category, rows),
            "chosen_score": pa.array(hi),
            "rejected_score": pa.array(lo),
            "chosen_is_base": pa.array(~first),
        }
        return self.output(table, rows, chosen, rejected, extra)
