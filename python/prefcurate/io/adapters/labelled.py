"""Adapters of formats whose preference is a label, a rating or a column
order: HelpSteer2 (ratings of two responses on consecutive rows), OffsetBias
/ EvalBiasBench (label 1 or 2), RewardBench, WildGuardMix (a refusal and a
compliance to the same prompt), StackExchange paired and the Skywork prompt
sample (prompt, preferred answer, other answer)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow import (
    ColumnError,
    as_string,
    column,
    concat_lists,
    is_message_list,
    is_string_type,
    messages_from_py,
    null_rows,
    one_message,
    single_turn,
    take,
    type_name,
)
from .base import Adapter, AdapterOutput, BatchContext, float_field, require, string_field

HS2_MARK = "<extra_id_1>"


def parse_helpsteer2_prompt(prompt: str) -> list[dict[str, str]]:
    """A HelpSteer2 prompt as messages.  Multi-turn prompts are one string:
    the first user turn, then turns each opened by ``<extra_id_1>User`` or
    ``<extra_id_1>Assistant`` on a line of their own."""
    if HS2_MARK not in prompt:
        return [{"role": "user", "content": prompt}]
    head, *turns = prompt.split(HS2_MARK)
    out = []
    if head.strip():
        out.append({"role": "user", "content": head.rstrip("\n")})
    for k, t in enumerate(turns, start=1):
        who, _, content = t.partition("\n")
        role = {"User": "user", "Assistant": "assistant"}.get(who.strip())
        if role is None:
            raise ValueError(f"has turn marker {k} {HS2_MARK + who.strip()!r}; expected User or Assistant")
        out.append({"role": role, "content": content.rstrip("\n")})
    return out


class HelpSteer2(Adapter):
    name = "helpsteer2"
    default_source = "helpsteer2"
    summary = "HelpSteer2: prompt, response, helpfulness, ...; two responses per prompt on consecutive rows"
    signature = ("prompt", "response", "helpfulness")
    grouping = "consecutive"
    group_key = "prompt"
    consumes = ("prompt", "response", "helpfulness")

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        prompt = string_field(table, ctx, "prompt")
        resp = string_field(table, ctx, "response")
        helpful = float_field(table, ctx, "helpfulness")
        h = helpful.fill_null(0).to_numpy(zero_copy_only=False)
        plist = prompt.to_pylist()
        parsed: dict[int, list[dict[str, str]]] = {}
        for i in ctx.ok().tolist():
            try:
                parsed[i] = parse_helpsteer2_prompt(plist[i])
            except ValueError as e:
                ctx.invalid_rows([i], "prompt", "bad_turn_markers", str(e))
        ok = ctx.ok()
        # runs of equal prompts among the valid rows: pair them two by two
        first_rows, second_rows = [], []
        k = 0
        while k < len(ok):
            j = k
            while j + 1 < len(ok) and plist[ok[j + 1]] == plist[ok[k]]:
                j += 1
            run = ok[k : j + 1].tolist()
            for a, b in zip(run[0::2], run[1::2]):
                first_rows.append(a)
                second_rows.append(b)
            if len(run) % 2:
                ctx.remove_rows(
                    [run[-1]],
                    "unpaired",
                    "no second response to this prompt on the next row (HelpSteer2 pairs consecutive rows)",
                )
            k = j + 1
        r1 = np.array(first_rows, dtype=np.int64)
        r2 = np.array(second_rows, dtype=np.int64)
        tie = h[r1] == h[r2]
        for a, b in zip(r1[tie].tolist(), r2[tie].tolist()):
            d = f"helpfulness is equal ({h[a]:g} and {h[b]:g}): no preference"
            ctx.remove_rows([a, b], "tie", d)
        r1, r2 = r1[~tie], r2[~tie]
        first_wins = h[r1] > h[r2]
        win = np.where(first_wins, r1, r2)
        lose = np.where(first_wins, r2, r1)
        prompt_msgs = messages_from_py([parsed[i] for i in win.tolist()])
        chosen = concat_lists(prompt_msgs, one_message("assistant", take(resp, win)))
        rejected = concat_lists(prompt_msgs, one_message("assistant", take(resp, lose)))
        cols: dict[str, Any] = {
            "chosen": chosen,
            "rejected": rejected,
            "chosen_score": pa.array(h[win], pa.float64()),
            "rejected_score": pa.array(h[lose], pa.float64()),
        }
        for c in self.carried(table):
            arr = column(table, c)
            cols[f"chosen_{c}"] = take(arr, win)
            cols[f"rejected_{c}"] = take(arr, lose)
        return AdapterOutput(pa.table(cols), win, lose)


class OffsetBias(Adapter):
    name = "offsetbias"
    default_source = "offsetbias"
    summary = "OffsetBias: instruction, output_1, output_2, label (1|2); also EvalBiasBench (response1/2)"
    signature = ("instruction", "label")
    consumes = ("instruction", "output_1", "output_2", "response1", "response2", "label", "bias", "group")

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        names = set(schema.names)
        return {"instruction", "label"} <= names and (
            {"output_1", "output_2"} <= names or {"response1", "response2"} <= names
        )

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        names = set(table.column_names)
        a, b = (
            ("output_1", "output_2")
            if "output_1" in names or "response1" not in names
            else ("response1", "response2")
        )
        instr = string_field(table, ctx, "instruction")
        o1, o2 = string_field(table, ctx, a), string_field(table, ctx, b)
        raw = column(table, "label")
        if is_string_type(raw.type):
            text = pc.utf8_trim_whitespace(as_string(raw, "label"))
            one, two = pc.equal(text, "1"), pc.equal(text, "2")
        elif pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_null(raw.type):
            one, two = pc.equal(raw, 1), pc.equal(raw, 2)
        else:
            raise ColumnError("label", "wrong_type", f"is {type_name(raw.type)}, expected 1 or 2")
        require(ctx, raw, "label")
        is_one = one.fill_null(False).to_numpy(zero_copy_only=False)
        is_two = two.fill_null(False).to_numpy(zero_copy_only=False)
        raw_list: list | None = None

        def detail(i: int) -> str:
            nonlocal raw_list
            raw_list = raw_list or raw.to_pylist()
            return f"is {raw_list[i]!r}, expected 1 or 2"

        ctx.invalid_rows(~is_one & ~is_two, "label", "bad_label", detail)
        rows = ctx.ok()
        first = pa.array(is_one[rows])
        p, x, y = take(instr, rows), take(o1, rows), take(o2, rows)
        chosen = single_turn(p, pc.if_else(first, x, y))
        rejected = single_turn(p, pc.if_else(first, y, x))
        cat_col = "bias" if "bias" in names else ("group" if "group" in names else None)
        category = (
            as_string(column(table, cat_col), cat_col) if cat_col else pa.nulls(table.num_rows, pa.string())
        )
        return self.output(table, rows, chosen, rejected, {"category": take(category, rows)})


class RewardBench(Adapter):
    name = "rewardbench"
    default_source = "rewardbench"
    summary = "RewardBench: prompt, chosen, rejected (strings), subset, id"
    signature = ("prompt", "chosen", "rejected", "subset")
    consumes = ("prompt", "chosen", "rejected", "subset")

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        return super().detect(schema, sample) and not is_message_list(schema.field("chosen").type)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        prompt = string_field(table, ctx, "prompt")
        ch = string_field(table, ctx, "chosen", required=False)
        rj = string_field(table, ctx, "rejected", required=False)
        cn, rn = null_rows(ch), null_rows(rj)
        ctx.remove_rows(
            cn | rn,
            "no_pair",
            lambda i: (
                "chosen and rejected are null: a prompt-only row"
                if cn[i] and rn[i]
                else ("chosen is null" if cn[i] else "rejected is null") + ": the row is not a pair"
            ),
        )
        rows = ctx.ok()
        p = take(prompt, rows)
        chosen = single_turn(p, take(ch, rows))
        rejected = single_turn(p, take(rj, rows))
        category = as_string(column(table, "subset"), "subset")
        return self.output(table, rows, chosen, rejected, {"category": take(category, rows)}, id_col="id")


class WildGuardMix(Adapter):
    name = "wildguardmix"
    default_source = "wildguard"
    summary = "WildGuardMix: prompt, adversarial, response, prompt_harm_label, response_refusal_label, ..."
    signature = ("prompt", "response", "response_refusal_label")
    grouping = "all"
    consumes = ("prompt", "response", "response_refusal_label")
    prompt_level = ("adversarial", "prompt_harm_label", "subcategory")

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        prompt = string_field(table, ctx, "prompt")
        resp = string_field(table, ctx, "response", required=False)
        ctx.remove_rows(
            null_rows(resp) & ~ctx.flagged, "prompt_only", "no response (a prompt-only row of WildGuardMix)"
        )
        refusal = string_field(table, ctx, "response_refusal_label")
        harm = string_field(table, ctx, "prompt_harm_label")
        rl, hl = refusal.to_pylist(), harm.to_pylist()
        for i in ctx.ok().tolist():
            if rl[i] not in ("refusal", "compliance"):
                ctx.invalid_rows(
                    [i],
                    "response_refusal_label",
                    "bad_label",
                    f"is {rl[i]!r}, expected 'refusal' or 'compliance'",
                )
            elif hl[i] not in ("harmful", "unharmful"):
                ctx.invalid_rows(
                    [i], "prompt_harm_label", "bad_label", f"is {hl[i]!r}, expected 'harmful' or 'unharmful'"
                )
        plist = prompt.to_pylist()
        groups: dict[str, tuple[list[int], list[int]]] = {}
        for i in ctx.ok().tolist():
            g = groups.setdefault(plist[i], ([], []))
            g[0 if rl[i] == "refusal" else 1].append(i)
        pairs: list[tuple[int, int, bool]] = []  # (refusal row, compliance row, refusal chosen)
        for refusals, compliances in groups.values():
            for a, b in zip(refusals, compliances):
                if hl[a] != hl[b]:
                    ctx.remove_rows(
                        [a, b],
                        "conflicting_labels",
                        f"the refusal and the compliance disagree on prompt_harm_label ({hl[a]!r} vs {hl[b]!r})",
                    )
                    continue
                pairs.append((a, b, hl[a] == "harmful"))
            for rest, other in (
                (refusals[len(compliances) :], "compliance"),
                (compliances[len(refusals) :], "refusal"),
            ):
                ctx.remove_rows(rest, "unpaired", f"no {other} to the same prompt to pair this response with")
        pairs.sort(key=lambda t: min(t[0], t[1]))
        win = np.array([a if ref else b for a, b, ref in pairs], dtype=np.int64)
        lose = np.array([b if ref else a for a, b, ref in pairs], dtype=np.int64)
        p = take(prompt, win)
        chosen = single_turn(p, take(resp, win))
        rejected = single_turn(p, take(resp, lose))
        cols: dict[str, Any] = {"chosen": chosen, "rejected": rejected}
        cols["chosen_is_refusal"] = pa.array([ref for _, _, ref in pairs], pa.bool_())
        for c in self.carried(table):
            arr = column(table, c)
            if c in self.prompt_level:
                cols[c] = take(arr, win)
            else:
                cols[f"chosen_{c}"] = take(arr, win)
                cols[f"rejected_{c}"] = take(arr, lose)
        return AdapterOutput(pa.table(cols), win, lose)


class _ThreeStrings(Adapter):
    """Formats of three text columns: prompt, preferred answer, other answer."""

    cols: ClassVar[tuple[str, str, str]]

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        p, c, r = (string_field(table, ctx, name) for name in self.cols)
        rows = ctx.ok()
        pp = take(p, rows)
        return self.output(
            table, rows, single_turn(pp, take(c, rows)), single_turn(pp, take(r, rows)), id_col="id"
        )


class StackExchangePaired(_ThreeStrings):
    name = "stack_exchange_paired"
    default_source = "stack_exchange_paired"
    summary = "StackExchange paired: question, response_j (preferred), response_k"
    signature = cols = ("question", "response_j", "response_k")
    consumes = cols


class SkyworkPromptSample(_ThreeStrings):
    name = "skywork_prompt_sample"
    default_source = "skywork_prompt_sample"
    summary = "query, chosen_response, rejected_response (the Skywork v0.2 prompt sample)"
    signature = cols = ("query", "chosen_response", "rejected_response")
    consumes = cols
