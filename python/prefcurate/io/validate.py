"""Vectorised checks of canonical message lists and pairs.

:func:`check_messages` is :func:`prefcurate.schema.check_messages` over a
whole Arrow column (plus: no empty user / assistant text), :func:`check_pairs`
adds that chosen and rejected share their prompt turns, and
:func:`prompt_column_mismatch` checks a ``prompt`` string column against the
conversations.  Each returns the first problem of each bad row as
``(field, code, detail)``; the codes are those of the quarantine's ``reason``.
:func:`identical_answers` counts pairs whose two answers are the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import ROLES
from .arrow import as_string, list_parts, null_rows, string_bytes

ROLE_CODES = {r: i for i, r in enumerate(ROLES)}  # system 0, user 1, assistant 2

#: Problem codes of records that are malformed (not a record of the format
#: at all): with the default ``on_invalid="warn"`` they raise; every other
#: code is a content problem of a well-formed record and is quarantined.
MALFORMED = frozenset({"invalid_json", "invalid_utf8", "not_an_object", "wrong_type"})


@dataclass
class MessageCheck:
    """The result of :func:`check_messages`: the first problem of each bad row."""

    problems: dict[int, tuple[str, str, str]]  # row -> (field, code, detail)
    first_user: np.ndarray  # element index (into the rebased values) of each row's first user turn


def check_messages(arr: pa.Array, field: str) -> MessageCheck:
    """Vectorised :func:`prefcurate.schema.check_messages` over a canonical
    message-list array, plus: no empty user / assistant content."""
    n = len(arr)
    offs, values = list_parts(arr)
    lens = np.diff(offs)
    problems: dict[int, tuple[str, str, str]] = {}

    def add(rows: np.ndarray, fld: Callable[[int], str], code: str, detail: Callable[[int], str]) -> None:
        for i in rows.tolist():
            if i not in problems:
                problems[i] = (fld(i), code, detail(i))

    add(np.flatnonzero(null_rows(arr)), lambda i: field, "missing_field", lambda i: "is missing or null")
    add(
        np.flatnonzero(lens == 0),
        lambda i: field,
        "empty_messages",
        lambda i: "is an empty message list",
    )
    m = len(values)
    parents = np.repeat(np.arange(n), lens)
    pos = np.arange(m) - offs[:-1][parents]
    roles = pc.struct_field(values, "role")
    contents = pc.struct_field(values, "content")
    code = pc.index_in(roles, pa.array(list(ROLES))).to_numpy(zero_copy_only=False)
    bad_role = np.isnan(code) if code.dtype.kind == "f" else np.zeros(m, dtype=bool)
    rcode = np.where(bad_role, -1, np.nan_to_num(code, nan=-1)).astype(np.int64)
    role_list: list | None = None

    def role_at(e: int) -> Any:
        nonlocal role_list
        if role_list is None:
            role_list = roles.to_pylist()
        return role_list[e]

    def first_elem(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, first flagged element of each row)."""
        el = np.flatnonzero(mask)
        rows, first = np.unique(parents[el], return_index=True)
        return rows, el[first]

    def elem_problem(
        mask: np.ndarray, code_: str, fld: Callable[[int], str], det: Callable[[int], str]
    ) -> None:
        rows, els = first_elem(mask)
        e_of = dict(zip(rows.tolist(), els.tolist()))
        add(rows, lambda i: fld(e_of[i]), code_, lambda i: det(e_of[i]))

    null_msg = null_rows(values) if m else np.zeros(0, dtype=bool)
    elem_problem(null_msg, "null_message", lambda e: f"{field}[{pos[e]}]", lambda e: "is null, not a message")
    elem_problem(
        bad_role & ~null_msg,
        "bad_role",
        lambda e: f"{field}[{pos[e]}].role",
        lambda e: (
            "is missing or null"
            if role_at(e) is None
            else f"is {role_at(e)!r}; expected one of {', '.join(ROLES)}"
        ),
    )
    null_content = null_rows(contents) & ~null_msg
    elem_problem(null_content, "null_content", lambda e: f"{field}[{pos[e]}].content", lambda e: "is null")
    # turn order: at most one leading system message, then user / assistant
    # alternating, ending with the assistant's answer
    first_sys = np.zeros(n, dtype=bool)
    has = lens > 0
    first_sys[has] = rcode[offs[:-1][has]] == 0
    body_pos = pos - first_sys[parents]
    want = np.where(body_pos < 0, 0, np.where(body_pos % 2 == 0, 1, 2))
    names = {0: "system", 1: "user", 2: "assistant"}
    elem_problem(
        (rcode >= 0) & (rcode != want),
        "bad_turn_order",
        lambda e: f"{field}[{pos[e]}].role",
        lambda e: (
            f"is {names[int(rcode[e])]!r} where {names[int(want[e])]!r} was expected "
            "(after at most one system message, turns alternate user / assistant)"
        ),
    )
    only_sys = np.flatnonzero(has & (lens == first_sys.astype(np.int64)))
    add(only_sys, lambda i: field, "bad_turn_order", lambda i: "holds only a system message")
    last = np.zeros(n, dtype=np.int64)
    last[has] = rcode[offs[1:][has] - 1]
    add(
        np.flatnonzero(has & (last != 2)),
        lambda i: f"{field}[{lens[i] - 1}].role",
        "bad_turn_order",
        lambda i: "the last message must be the assistant's answer",
    )
    # empty user / assistant text (an empty system message is allowed)
    if m:
        empty = pc.or_(pc.equal(pc.binary_length(contents), 0), pc.utf8_is_space(contents))
        empty_np = empty.fill_null(False).to_numpy(zero_copy_only=False)
        elem_problem(
            empty_np & (rcode > 0),
            "empty_content",
            lambda e: f"{field}[{pos[e]}].content",
            lambda e: "is empty",
        )
    first_user = offs[:-1] + first_sys.astype(np.int64)
    return MessageCheck(problems, first_user)


def check_pairs(chosen: pa.Array, rejected: pa.Array) -> tuple[dict[int, tuple[str, str, str]], np.ndarray]:
    """Problems of canonical chosen / rejected arrays (first per row), and the
    element index of each row's first user turn in ``chosen``'s values."""
    c = check_messages(chosen, "chosen")
    r = check_messages(rejected, "rejected")
    problems = dict(r.problems)
    problems.update(c.problems)  # chosen's problem first
    oc, vc = list_parts(chosen)
    orr, vr = list_parts(rejected)
    lc, lr = np.diff(oc), np.diff(orr)
    n = len(lc)
    ok = np.ones(n, dtype=bool)
    if problems:
        ok[np.fromiter(problems, dtype=np.int64)] = False
    differ = ok & (lc != lr)
    for i in np.flatnonzero(differ).tolist():
        problems[i] = (
            "chosen/rejected",
            "prompt_mismatch",
            f"have different prompt turns ({lc[i]} and {lr[i]} messages; they must share all but the answer)",
        )
    same = ok & (lc == lr)
    rows = np.flatnonzero(same)
    if len(rows):
        if len(rows) == n:
            ec, er, lens, base = vc, vr, lc, oc
        else:
            sub_c, sub_r = chosen.take(pa.array(rows)), rejected.take(pa.array(rows))
            base, ec = list_parts(sub_c)
            _, er = list_parts(sub_r)
            lens = np.diff(base)
        parents = np.repeat(np.arange(len(lens)), lens)
        is_last = (np.arange(len(ec)) - base[:-1][parents]) == (lens[parents] - 1)
        eq = pc.and_(
            pc.equal(pc.struct_field(ec, "role"), pc.struct_field(er, "role")),
            pc.equal(pc.struct_field(ec, "content"), pc.struct_field(er, "content")),
        )
        diff = ~eq.fill_null(False).to_numpy(zero_copy_only=False) & ~is_last
        if diff.any():
            el = np.flatnonzero(diff)
            bad, first = np.unique(parents[el], return_index=True)
            for j, e in zip(bad.tolist(), el[first].tolist()):
                k = int(e - base[j])
                problems[int(rows[j])] = (
                    f"chosen[{k}]/rejected[{k}]",
                    "prompt_mismatch",
                    "differ: chosen and rejected must share their prompt turns",
                )
    return problems, c.first_user


def prompt_column_mismatch(prompt: pa.Array, chosen: pa.Array) -> np.ndarray:
    """The rows whose ``prompt`` string is not the first user turn of their
    ``chosen`` conversation (rows without a user turn or prompt are not
    flagged here: the message checks catch them)."""
    prompt = as_string(prompt, "prompt")
    offs, values = list_parts(chosen)
    lens = np.diff(offs)
    roles = pc.struct_field(values, "role")
    is_user = pc.equal(roles, "user").fill_null(False).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(len(lens)), lens)
    rows, first = np.unique(parents[is_user], return_index=True)
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    firsts = pc.struct_field(values, "content").take(pa.array(np.flatnonzero(is_user)[first]))
    same = pc.equal(prompt.take(pa.array(rows)), firsts).fill_null(True).to_numpy(zero_copy_only=False)
    return rows[~same]


def identical_answers(chosen: pa.Array, rejected: pa.Array) -> int:
    """How many pairs have the same chosen and rejected answer text."""
    ends = []
    for lst in (chosen, rejected):
        offs, values = list_parts(lst)
        content = pc.struct_field(values, "content")
        _, coffs = string_bytes(content)
        last = offs[1:] - 1
        ends.append((content, last, coffs[last + 1] - coffs[last]))
    (cc, cl, clen), (rc, rl, rlen) = ends
    cand = np.flatnonzero(clen == rlen)
    if not len(cand):
        return 0
    same = pc.equal(cc.take(pa.array(cl[cand])), rc.take(pa.array(rl[cand])))
    return int(pc.sum(same.cast(pa.int64())).as_py() or 0)
