"""Adapters of conversation formats: Skywork / the canonical table (and the
``trl``, ``openrlhf`` and ``skywork`` layouts of :func:`write_pairs`), TRL
and UltraFeedback-binarized (and the ``trl-explicit`` layout), ShareGPT /
LLaMA-Factory (and the ``llamafactory`` layout), and HH-RLHF transcripts."""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow import (
    ColumnError,
    as_float,
    as_messages,
    as_string,
    column,
    concat_lists,
    fill,
    first_roles,
    is_message_list,
    is_string_type,
    list_parts,
    messages,
    messages_from_py,
    null_rows,
    one_message,
    struct_names,
    take,
    type_name,
)
from ..validate import prompt_column_mismatch
from .base import Adapter, AdapterOutput, BatchContext, require, string_field

PROMPT_MISMATCH = (
    "is not the first user turn of chosen (prompt is derived from the messages; drop the column)"
)


class Skywork(Adapter):
    name = "skywork"
    default_source = "skywork"
    summary = "Skywork-Reward-Preference-80K (and the canonical table): chosen / rejected message lists"
    signature = ("chosen", "rejected")
    consumes = ("chosen", "rejected", "prompt")

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        if not all(c in schema.names for c in ("chosen", "rejected")):
            return False
        if not (
            is_message_list(schema.field("chosen").type) and is_message_list(schema.field("rejected").type)
        ):
            return False
        if "prompt" not in schema.names:
            return True
        # the canonical table itself: id, source, and prompt = the first user turn
        return {"id", "source"} <= set(schema.names) and is_string_type(schema.field("prompt").type)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        chosen = as_messages(column(table, "chosen"), "chosen")
        rejected = as_messages(column(table, "rejected"), "rejected")
        if "prompt" in table.column_names:
            bad = prompt_column_mismatch(column(table, "prompt"), chosen)
            ctx.invalid_rows(bad, "prompt", "prompt_mismatch", PROMPT_MISMATCH)
        rows = ctx.ok()
        return self.output(
            table, rows, take(chosen, rows), take(rejected, rows), id_col="id", source_col="source"
        )


class TRL(Adapter):
    """TRL preference data and UltraFeedback-binarized."""

    name = "trl"
    default_source = "trl"
    summary = "TRL / UltraFeedback-binarized: prompt, chosen, rejected (strings or message lists)"
    signature: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")
    consumes = ("prompt", "chosen", "rejected", "score_chosen", "score_rejected")

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        n = table.num_rows
        ch_raw, rj_raw = column(table, "chosen"), column(table, "rejected")
        pr_raw = column(table, "prompt")
        sides = {}
        for name, raw in (("chosen", ch_raw), ("rejected", rj_raw)):
            if is_message_list(raw.type):
                msgs = as_messages(raw, name)
                require(ctx, msgs, name)
                first = first_roles(msgs)
                full = np.array([r in ("user", "system") for r in first], dtype=bool)
                sides[name] = (msgs, full)
            else:
                text = as_string(raw, name)
                require(ctx, text, name)
                sides[name] = (one_message("assistant", fill(text)), np.zeros(n, dtype=bool))
        full_c = sides["chosen"][1]
        full_r = sides["rejected"][1]
        ctx.invalid_rows(
            full_c != full_r,
            "chosen/rejected",
            "prompt_mismatch",
            "disagree: one holds the prompt turns and the other does not",
        )
        need_prompt = ~full_c
        if is_message_list(pr_raw.type):
            prompt_msgs = as_messages(pr_raw, "prompt")
        else:
            text = as_string(pr_raw, "prompt")
            prompt_msgs = one_message("user", fill(text))
        ctx.invalid_rows(null_rows(pr_raw) & need_prompt, "prompt", "missing_field", "is missing or null")
        if (~need_prompt).any() and not is_message_list(pr_raw.type):
            sub = np.flatnonzero(~need_prompt & ~ctx.flagged)
            if len(sub):
                bad = prompt_column_mismatch(
                    as_string(pr_raw, "prompt").take(pa.array(sub)), sides["chosen"][0].take(pa.array(sub))
                )
                ctx.invalid_rows(sub[bad], "prompt", "prompt_mismatch", PROMPT_MISMATCH)
        rows = ctx.ok()
        out = {}
        for name in ("chosen", "rejected"):
            msgs, full = sides[name]
            sel_msgs = take(msgs, rows)
            if full[rows].all():
                out[name] = sel_msgs
                continue
            joined = concat_lists(take(prompt_msgs, rows), sel_msgs)
            if not full[rows].any():
                out[name] = joined
            else:
                out[name] = pc.if_else(pa.array(full[rows]), sel_msgs, joined)
        extra = {}
        if "score_chosen" in table.column_names and "score_rejected" in table.column_names:
            extra["chosen_score"] = take(as_float(column(table, "score_chosen"), "score_chosen"), rows)
            extra["rejected_score"] = take(as_float(column(table, "score_rejected"), "score_rejected"), rows)
        return self.output(table, rows, out["chosen"], out["rejected"], extra, id_col="id")


class UltraFeedback(TRL):
    name = "ultrafeedback"
    default_source = "ultrafeedback"
    summary = "UltraFeedback-binarized: prompt, chosen / rejected message lists, score_chosen, score_rejected"
    signature = ("prompt", "chosen", "rejected", "score_chosen", "score_rejected")


# ---------------------------------------------------------------- ShareGPT


SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


class ShareGPT(Adapter):
    name = "sharegpt"
    default_source = "sharegpt"
    summary = (
        "ShareGPT / LLaMA-Factory: conversations[{from, value}], chosen{from, value}, rejected{from, value}"
    )
    signature = ("conversations", "chosen", "rejected")
    consumes = ("conversations", "chosen", "rejected", "system")

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        return (
            super().detect(schema, sample)
            and is_message_list(schema.field("conversations").type, ("from", "value"))
            and {"from", "value"} <= struct_names(schema.field("chosen").type)
        )

    def _map_roles(
        self, roles: pa.Array, field: str, ctx: BatchContext, parents: np.ndarray, pos: np.ndarray
    ) -> pa.Array:
        keys = list(SHAREGPT_ROLES)
        idx = pc.index_in(roles, pa.array(keys))
        bad = null_rows(idx)
        if bad.any():
            rl = roles.to_pylist()
            el = np.flatnonzero(bad)
            rows, first = np.unique(parents[el], return_index=True)
            e_of = dict(zip(rows.tolist(), el[first].tolist()))
            for i, e in e_of.items():
                ctx.invalid_rows(
                    [i],
                    f"{field}[{pos[e]}].from",
                    "bad_role",
                    f"is {rl[e]!r}; expected one of {', '.join(keys)}",
                )
        return pa.array([SHAREGPT_ROLES[k] for k in keys]).take(idx.fill_null(0))

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        n = table.num_rows
        conv = as_messages(column(table, "conversations"), "conversations", ("from", "value"))
        require(ctx, conv, "conversations")
        offs, vals = list_parts(conv)
        lens = np.diff(offs)
        parents = np.repeat(np.arange(n), lens)
        pos = np.arange(len(vals)) - offs[:-1][parents]
        roles = self._map_roles(pc.struct_field(vals, "role"), "conversations", ctx, parents, pos)
        prompt_msgs = messages(roles, pc.struct_field(vals, "content"), offs)
        if "system" in table.column_names:
            system = as_string(column(table, "system"), "system")
            has_sys = ~null_rows(system) & (
                pc.binary_length(system.fill_null("")).to_numpy(zero_copy_only=False) > 0
            )
            if has_sys.any():
                sys_msgs = one_message("system", fill(system))
                with_sys = concat_lists(sys_msgs, prompt_msgs)
                prompt_msgs = pc.if_else(pa.array(has_sys), with_sys, prompt_msgs)
        answers = {}
        for name in ("chosen", "rejected"):
            raw = column(table, name)
            if pa.types.is_null(raw.type):
                raw = pa.nulls(n, pa.struct([("from", pa.string()), ("value", pa.string())]))
            if not {"from", "value"} <= struct_names(raw.type):
                raise ColumnError(name, "wrong_type", f"is {type_name(raw.type)}, expected {{from, value}}")
            require(ctx, raw, name)
            who = as_string(pc.struct_field(raw, "from"), f"{name}.from")
            ok_role = (
                pc.is_in(who, pa.array(["gpt", "assistant"])).fill_null(False).to_numpy(zero_copy_only=False)
            )
            wl: list | None = None

            def det(i: int, who: pa.Array = who) -> str:
                nonlocal wl
                wl = wl or who.to_pylist()
                return f"is {wl[i]!r}; the answer must come from 'gpt' or 'assistant'"

            ctx.invalid_rows(~ok_role & ~null_rows(raw), f"{name}.from", "bad_role", det)
            answers[name] = as_string(pc.struct_field(raw, "value"), f"{name}.value")
        rows = ctx.ok()
        base = take(prompt_msgs, rows)
        chosen = concat_lists(base, one_message("assistant", fill(take(answers["chosen"], rows))))
        rejected = concat_lists(base, one_message("assistant", fill(take(answers["rejected"], rows))))
        return self.output(table, rows, chosen, rejected, id_col="id")


# ---------------------------------------------------------------- HH-RLHF


HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh(text: str) -> list[dict[str, str]]:
    """An HH-RLHF transcript (``\\n\\nHuman: ...\\n\\nAssistant: ...``) as messages."""
    if text.startswith("Human:") or text.startswith("Assistant:"):
        text = "\n\n" + text
    parts = HH_TURN.split(text)
    if parts[0].strip():
        raise ValueError(f"has text before the first 'Human:' turn: {parts[0][:60]!r}")
    if len(parts) < 3:
        raise ValueError("has no '\\n\\nHuman: ' / '\\n\\nAssistant: ' turns")
    return [
        {"role": "user" if who == "Human" else "assistant", "content": content}
        for who, content in zip(parts[1::2], parts[2::2])
    ]


class HHRLHF(Adapter):
    name = "hh_rlhf"
    default_source = "hh_rlhf"
    summary = (
        "Anthropic HH-RLHF: chosen / rejected transcripts with '\\n\\nHuman: ' / '\\n\\nAssistant: ' turns"
    )
    signature = ("chosen", "rejected")
    consumes = ("chosen", "rejected")

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        if not super().detect(schema, sample) or "prompt" in schema.names:
            return False
        col = sample.column("chosen")
        if not is_string_type(col.type):
            return False
        texts = [t for t in col.to_pylist()[:50] if t]
        return bool(texts) and all(t.lstrip(" ").startswith(("\n\nHuman:", "Human:")) for t in texts)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        ch = string_field(table, ctx, "chosen")
        rj = string_field(table, ctx, "rejected")
        c_list, r_list = ch.to_pylist(), rj.to_pylist()
        out_c, out_r, rows = [], [], []
        for i in ctx.ok().tolist():
            try:
                c = parse_hh(c_list[i])
            except ValueError as e:
                ctx.invalid_rows([i], "chosen", "bad_transcript", str(e))
                continue
            try:
                r = parse_hh(r_list[i])
            except ValueError as e:
                ctx.invalid_rows([i], "rejected", "bad_transcript", str(e))
                continue
            out_c.append(c)
            out_r.append(r)
            rows.append(i)
        idx = np.array(rows, dtype=np.int64)
        return self.output(table, idx, messages_from_py(out_c), messages_from_py(out_r))
