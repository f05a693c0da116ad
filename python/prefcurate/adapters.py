"""Source adapters: every preference-pair format in, the canonical pair table out.

An adapter turns a batch of source rows (a :class:`pyarrow.Table` in the
source's own schema) into canonical pairs: ``chosen`` and ``rejected``
message lists (prompt turns, then the answer), an optional source ``id``,
and the adapter's extra columns (``score``, ``category``, ``chosen_score``,
...).  Every input row ends up in exactly one of three places: in a pair, in
the *invalid* rows (quarantined or raised by :mod:`prefcurate.pairs`), or in
the rows the adapter *removed* by one of its documented rules (a HelpSteer2
tie, a WildGuardMix prompt without both kinds of response, a RewardBench
prompt-only row), each with a reason.

The work is vectorised over Arrow columns; only the formats that need text
parsing (HH-RLHF transcripts, HelpSteer2 multi-turn prompts) or grouping
(WildGuardMix) touch rows one by one.  :mod:`prefcurate.pairs` does the rest
(validation of every message list, ``prompt``, ids, ``source``).

See ``docs/adapters.md`` for the formats, their detection rules and examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidInputError
from .schema import MESSAGE, MESSAGES, REQUIRED, ROLES

# ---------------------------------------------------------------- batch context


class ColumnError(Exception):
    """A column that is unusable for every row of the batch (wrong type)."""

    def __init__(self, field: str, code: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field, self.code, self.detail = field, code, detail


@dataclass
class Problem:
    """Why one input row is invalid or was removed."""

    field: str | None
    code: str
    detail: str


class BatchContext:
    """Collects, per input row of one batch, why it is invalid or removed.

    A row is flagged once: the first reason wins.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.flagged = np.zeros(n, dtype=bool)
        self.invalid: dict[int, Problem] = {}
        self.removed: dict[int, Problem] = {}

    def _flag(
        self,
        target: dict[int, Problem],
        rows: Any,
        field: str | None,
        code: str,
        detail: str | Callable[[int], str],
    ) -> None:
        idx = np.asarray(rows)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        if not len(idx):
            return
        idx = idx[~self.flagged[idx]]
        for i in idx.tolist():
            if self.flagged[i]:  # repeated index
                continue
            self.flagged[i] = True
            target[i] = Problem(field, code, detail(i) if callable(detail) else detail)

    def invalid_rows(
        self, rows: Any, field: str | None, code: str, detail: str | Callable[[int], str]
    ) -> None:
        """Mark rows invalid (quarantined, or raised with ``on_invalid="raise"``)."""
        self._flag(self.invalid, rows, field, code, detail)

    def remove_rows(self, rows: Any, code: str, detail: str | Callable[[int], str]) -> None:
        """Mark rows removed by a documented rule of the format."""
        self._flag(self.removed, rows, None, code, detail)

    def ok(self) -> np.ndarray:
        """Indices of the rows not flagged so far."""
        return np.flatnonzero(~self.flagged)


@dataclass
class AdapterOutput:
    """Pairs made from a batch.

    ``table`` holds ``chosen`` and ``rejected`` (canonical message lists), an
    optional ``id`` (the source's own, null where it has none) and ``source``,
    then the adapter's extra columns.  ``rows[k]`` is the input row of pair
    ``k`` (``rows2[k]`` the second row for formats that pair two rows).
    """

    table: pa.Table
    rows: np.ndarray
    rows2: np.ndarray | None = None


# ---------------------------------------------------------------- column helpers


def _is_string_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)


def struct_names(t: pa.DataType) -> set[str]:
    return {t.field(i).name for i in range(t.num_fields)} if pa.types.is_struct(t) else set()


def is_message_list(t: pa.DataType, keys: tuple[str, str] = ("role", "content")) -> bool:
    """A list of structs with (at least) the fields ``keys``."""
    return _is_list_type(t) and set(keys) <= struct_names(t.value_type)


def _arr(col: Any) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def column(table: pa.Table, name: str) -> pa.Array:
    """A column as one array; a column the batch lacks is all null (a JSON
    field missing from every row of a block)."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows)
    return _arr(table.column(name))


def as_string(arr: pa.Array, field: str) -> pa.Array:
    """``arr`` as ``string``; ColumnError unless it holds text (or only nulls)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.cast(t.value_type), t.value_type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return arr.cast(pa.string())
    raise ColumnError(field, "wrong_type", f"is {_type_name(t)}, expected a string")


def as_float(arr: pa.Array, field: str) -> pa.Array:
    """``arr`` as ``float64``; ColumnError unless numeric (or only nulls)."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
        return arr.cast(pa.float64())
    raise ColumnError(field, "wrong_type", f"is {_type_name(t)}, expected a number")


def _type_name(t: pa.DataType) -> str:
    if _is_string_type(t):
        return "a string"
    if pa.types.is_integer(t):
        return "an integer"
    if pa.types.is_floating(t):
        return "a number"
    if pa.types.is_boolean(t):
        return "a boolean"
    if _is_list_type(t):
        return f"a list ({t})"
    if pa.types.is_struct(t):
        return f"an object ({t})"
    return str(t)


def null_rows(arr: pa.Array) -> np.ndarray:
    if not arr.null_count:
        return np.zeros(len(arr), dtype=bool)
    return arr.is_null().to_numpy(zero_copy_only=False)


def require(ctx: BatchContext, arr: pa.Array, field: str) -> None:
    """Rows where ``field`` is null or missing are invalid."""
    ctx.invalid_rows(null_rows(arr), field, "missing_field", "is missing or null")


def take(arr: Any, idx: np.ndarray) -> Any:
    """``arr.take(idx)``, zero-copy when ``idx`` is every row in order."""
    n = len(arr) if not isinstance(arr, pa.Table) else arr.num_rows
    if len(idx) == n and (n == 0 or (idx[0] == 0 and idx[-1] == n - 1 and np.all(np.diff(idx) == 1))):
        return arr
    from ._inputs import take as _take

    if isinstance(arr, pa.Table):
        return pa.Table.from_arrays(
            [_take(arr.column(c), idx) for c in arr.column_names], names=arr.column_names
        )
    return _take(arr, idx)


# ---------------------------------------------------------------- message lists


def _offsets(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.offsets, dtype=np.int64)


def as_messages(arr: pa.Array, field: str, keys: tuple[str, str] = ("role", "content")) -> pa.Array:
    """A message-list column as canonical ``list<struct<role, content>>``.

    Accepts list / large_list / list_view of structs with the fields ``keys``
    (other struct fields are dropped) and text of any string type; raises
    ColumnError otherwise.  Null lists and null messages stay null.
    """
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, MESSAGES)
    if t == MESSAGES:
        return arr
    if pa.types.is_list_view(t):
        arr = arr.cast(pa.large_list(t.value_type))
        t = arr.type
    if not is_message_list(t, keys):
        raise ColumnError(
            field, "wrong_type", f"is {_type_name(t)}, expected a list of {{{keys[0]}, {keys[1]}}} messages"
        )
    offs = _offsets(arr)
    start, end = int(offs[0]), int(offs[-1])
    values = arr.values.slice(start, end - start)
    role = as_string(pc.struct_field(values, keys[0]), f"{field}[].{keys[0]}")
    content = as_string(pc.struct_field(values, keys[1]), f"{field}[].{keys[1]}")
    structs = pa.StructArray.from_arrays([role, content], fields=list(MESSAGE))
    mask = arr.is_null() if arr.null_count else None
    return pa.ListArray.from_arrays(pa.array(offs - start, pa.int32()), structs, mask=mask)


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(offsets rebased to 0, values sliced to the array's range)."""
    offs = _offsets(arr)
    start = int(offs[0])
    return offs - start, arr.values.slice(start, int(offs[-1]) - start)


def messages(roles: pa.Array, contents: pa.Array, offsets: np.ndarray) -> pa.Array:
    """Message lists from flat role / content arrays and list offsets."""
    structs = pa.StructArray.from_arrays(
        [as_string(roles, "role"), as_string(contents, "content")], fields=list(MESSAGE)
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs)


def single_turn(prompt: pa.Array, answer: pa.Array) -> pa.Array:
    """``[{user: prompt}, {assistant: answer}]`` per row."""
    n = len(prompt)
    idx = np.empty(2 * n, dtype=np.int64)
    idx[0::2] = np.arange(n)
    idx[1::2] = n + np.arange(n)
    contents = pa.concat_arrays([as_string(prompt, "prompt"), as_string(answer, "answer")]).take(
        pa.array(idx)
    )
    roles = pa.array(["user", "assistant"]).take(pa.array(np.tile(np.array([0, 1]), n)))
    return messages(roles, contents, np.arange(0, 2 * n + 1, 2))


def one_message(role: str, content: pa.Array) -> pa.Array:
    n = len(content)
    roles = pa.array([role]).take(pa.array(np.zeros(n, dtype=np.int64)))
    return messages(roles, content, np.arange(n + 1))


def concat_lists(a: pa.Array, b: pa.Array) -> pa.Array:
    """Per row, the messages of ``a`` followed by those of ``b``."""
    oa, va = _list_parts(a)
    ob, vb = _list_parts(b)
    la, lb = np.diff(oa), np.diff(ob)
    out = np.zeros(len(la) + 1, dtype=np.int64)
    np.cumsum(la + lb, out=out[1:])
    idx = np.empty(int(out[-1]), dtype=np.int64)
    pa_rows = np.repeat(np.arange(len(la)), la)
    pb_rows = np.repeat(np.arange(len(lb)), lb)
    idx[out[pa_rows] + (np.arange(len(va)) - oa[pa_rows])] = np.arange(len(va))
    idx[out[pb_rows] + la[pb_rows] + (np.arange(len(vb)) - ob[pb_rows])] = len(va) + np.arange(len(vb))
    values = pa.concat_arrays([va, vb]).take(pa.array(idx))
    return pa.ListArray.from_arrays(pa.array(out, pa.int32()), values)


def first_roles(arr: pa.Array) -> np.ndarray:
    """The role of each list's first message (None for empty / null lists)."""
    offs, values = _list_parts(arr)
    lens = np.diff(offs)
    out = np.full(len(lens), None, dtype=object)
    has = np.flatnonzero(lens > 0)
    if len(has):
        out[has] = np.asarray(pc.struct_field(values, "role").take(pa.array(offs[:-1][has])).to_pylist())
    return out


ROLE_CODES = {r: i for i, r in enumerate(ROLES)}  # system 0, user 1, assistant 2


@dataclass
class MessageCheck:
    """The result of :func:`check_messages`: the first problem of each bad row."""

    problems: dict[int, tuple[str, str, str]]  # row -> (field, code, detail)
    first_user: np.ndarray  # element index (into the rebased values) of each row's first user turn


def check_messages(arr: pa.Array, field: str) -> MessageCheck:
    """Vectorised :func:`prefcurate.schema.check_messages` over a canonical
    message-list array, plus: no empty user / assistant content."""
    n = len(arr)
    offs, values = _list_parts(arr)
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

    def elem_problem(mask: np.ndarray, code_: str, fld: Callable[[int], str], det: Callable[[int], str]):
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
        empty_np = (
            empty.to_numpy(zero_copy_only=False)
            if empty.null_count == 0
            else (empty.fill_null(False).to_numpy(zero_copy_only=False))
        )
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
    oc, vc = _list_parts(chosen)
    orr, vr = _list_parts(rejected)
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
            base, ec = _list_parts(sub_c)
            _, er = _list_parts(sub_r)
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


# ---------------------------------------------------------------- text formats


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


def messages_from_py(rows: Sequence[list[dict[str, str]]]) -> pa.Array:
    return pa.array(list(rows), type=MESSAGES)


# ---------------------------------------------------------------- adapters


CANONICAL_EXTRA = {
    "score": pa.float64(),
    "category": pa.string(),
    "chosen_score": pa.float64(),
    "rejected_score": pa.float64(),
}


class Adapter:
    """One source format.  Subclasses set the class attributes and ``convert``."""

    name: ClassVar[str]
    default_source: ClassVar[str]
    summary: ClassVar[str]
    #: columns (all required) that identify the format
    signature: ClassVar[tuple[str, ...]] = ()
    #: ``row``: rows convert independently; ``consecutive``: pairs form from
    #: runs of equal ``group_key`` (runs never split across batches);
    #: ``all``: the whole input is converted at once
    grouping: ClassVar[str] = "row"
    group_key: ClassVar[str | None] = None
    #: input columns represented by the canonical columns (not carried)
    consumes: ClassVar[tuple[str, ...]] = ()

    def detect(self, schema: pa.Schema, sample: pa.Table) -> bool:
        return all(c in schema.names for c in self.signature)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        raise NotImplementedError

    # -- helpers shared by the adapters

    def carried(self, table: pa.Table, extra_consumed: Sequence[str] = ()) -> list[str]:
        skip = set(self.consumes) | set(extra_consumed)
        return [c for c in table.column_names if c not in skip]

    def output(
        self,
        table: pa.Table,
        rows: np.ndarray,
        chosen: pa.Array,
        rejected: pa.Array,
        extra: dict[str, Any] | None = None,
        *,
        id_col: str | None = None,
        source_col: str | None = None,
        extra_consumed: Sequence[str] = (),
    ) -> AdapterOutput:
        """Pairs from single rows: canonical columns, the extras, then every
        input column not consumed (renamed ``original_<name>`` if it clashes)."""
        cols: dict[str, Any] = {"chosen": chosen, "rejected": rejected}
        consumed = list(extra_consumed)
        if id_col and id_col in table.column_names:
            cols["id"] = ids_as_string(take(column(table, id_col), rows), id_col)
            consumed.append(id_col)
        if source_col and source_col in table.column_names:
            cols["source"] = as_string(take(column(table, source_col), rows), source_col)
            consumed.append(source_col)
        for k, v in (extra or {}).items():
            cols[k] = v.cast(CANONICAL_EXTRA[k]) if k in CANONICAL_EXTRA else v
        for c in self.carried(table, consumed):
            name = c if c not in cols and c not in REQUIRED else f"original_{c}"
            cols[name] = take(column(table, c), rows)
        return AdapterOutput(pa.table(cols), rows)


def ids_as_string(arr: pa.Array, field: str) -> pa.Array:
    t = arr.type
    if pa.types.is_integer(t):
        return arr.cast(pa.string())
    return as_string(arr, field)


def _str(table: pa.Table, ctx: BatchContext, name: str, required: bool = True) -> pa.Array:
    arr = as_string(column(table, name), name)
    if required:
        require(ctx, arr, name)
    return arr


def _float(table: pa.Table, ctx: BatchContext, name: str) -> pa.Array:
    arr = as_float(column(table, name), name)
    require(ctx, arr, name)
    nan = pc.is_nan(arr).fill_null(False).to_numpy(zero_copy_only=False)
    ctx.invalid_rows(nan, name, "wrong_type", "is NaN")
    return arr


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
        return {"id", "source"} <= set(schema.names) and _is_string_type(schema.field("prompt").type)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        chosen = as_messages(column(table, "chosen"), "chosen")
        rejected = as_messages(column(table, "rejected"), "rejected")
        if "prompt" in table.column_names:
            _check_prompt_column(table, chosen, ctx)
        rows = ctx.ok()
        return self.output(
            table, rows, take(chosen, rows), take(rejected, rows), id_col="id", source_col="source"
        )


def _check_prompt_column(table: pa.Table, chosen: pa.Array, ctx: BatchContext) -> None:
    """A ``prompt`` string column next to full conversations must be their first user turn."""
    prompt = as_string(column(table, "prompt"), "prompt")
    offs, values = _list_parts(chosen)
    lens = np.diff(offs)
    roles = pc.struct_field(values, "role")
    is_user = pc.equal(roles, "user").fill_null(False).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(len(lens)), lens)
    rows, first = np.unique(parents[is_user], return_index=True)
    if not len(rows):
        return
    firsts = pc.struct_field(values, "content").take(pa.array(np.flatnonzero(is_user)[first]))
    same = pc.equal(prompt.take(pa.array(rows)), firsts).fill_null(True).to_numpy(zero_copy_only=False)
    ctx.invalid_rows(
        rows[~same],
        "prompt",
        "prompt_mismatch",
        "is not the first user turn of chosen (prompt is derived from the messages; drop the column)",
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
                sides[name] = (one_message("assistant", _fill(text)), np.zeros(n, dtype=bool))
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
            prompt_msgs = one_message("user", _fill(text))
        ctx.invalid_rows(null_rows(pr_raw) & need_prompt, "prompt", "missing_field", "is missing or null")
        if (~need_prompt).any() and not is_message_list(pr_raw.type):
            sub = np.flatnonzero(~need_prompt & ~ctx.flagged)
            if len(sub):
                sub_ctx = BatchContext(len(sub))
                _check_prompt_column(
                    pa.table({"prompt": as_string(pr_raw, "prompt").take(pa.array(sub))}),
                    sides["chosen"][0].take(pa.array(sub)),
                    sub_ctx,
                )
                for j, p in sub_ctx.invalid.items():
                    ctx.invalid_rows([int(sub[j])], p.field, p.code, p.detail)
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


def _fill(arr: pa.Array) -> pa.Array:
    """Nulls as empty strings (for rows already marked invalid)."""
    return arr.fill_null("") if arr.null_count else arr


class MagpieDPO(Adapter):
    name = "magpie_dpo"
    default_source = "magpie_dpo"
    summary = "Magpie-*-DPO: instruction, responses[5], rewards_armorm[5]{score}, chosen, rejected"
    signature = ("instruction", "responses", "rewards_armorm")
    consumes = ("uuid", "instruction", "task_category", "chosen", "rejected")

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        n = table.num_rows
        instr = _str(table, ctx, "instruction")
        rewards = column(table, "rewards_armorm")
        if pa.types.is_null(rewards.type):
            rewards = pa.nulls(n, pa.list_(pa.struct([("score", pa.float64())])))
        if not (_is_list_type(rewards.type) and "score" in struct_names(rewards.type.value_type)):
            raise ColumnError(
                "rewards_armorm", "wrong_type", f"is {_type_name(rewards.type)}, expected [{{score}}]"
            )
        require(ctx, rewards, "rewards_armorm")
        offs, vals = _list_parts(rewards)
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
                or (_is_list_type(resp.type) and _is_string_type(resp.type.value_type))
            ):
                raise ColumnError(
                    "responses", "wrong_type", f"is {_type_name(resp.type)}, expected a list of strings"
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
            chosen = single_turn(prompts, _fill(c_ans))
            rejected = single_turn(prompts, _fill(r_ans))
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
        return self.output(table, rows, chosen, rejected, extra, id_col="uuid")


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
        instr = _str(table, ctx, "instruction")
        resp = _str(table, ctx, "response")
        base = _str(table, ctx, "response_base")
        s = _float(table, ctx, "score")
        sb = _float(table, ctx, "score_base")
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
        instr = _str(table, ctx, "instruction")
        o1, o2 = _str(table, ctx, a), _str(table, ctx, b)
        raw = column(table, "label")
        if _is_string_type(raw.type):
            text = pc.utf8_trim_whitespace(as_string(raw, "label"))
            one, two = pc.equal(text, "1"), pc.equal(text, "2")
        elif pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_null(raw.type):
            one, two = pc.equal(raw, 1), pc.equal(raw, 2)
        else:
            raise ColumnError("label", "wrong_type", f"is {_type_name(raw.type)}, expected 1 or 2")
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
        one = pa.array(is_one[rows])
        p, x, y = take(instr, rows), take(o1, rows), take(o2, rows)
        chosen = single_turn(p, pc.if_else(one, x, y))
        rejected = single_turn(p, pc.if_else(one, y, x))
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
        prompt = _str(table, ctx, "prompt")
        ch = _str(table, ctx, "chosen", required=False)
        rj = _str(table, ctx, "rejected", required=False)
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
        if not _is_string_type(col.type):
            return False
        texts = [t for t in col.to_pylist()[:50] if t]
        return bool(texts) and all(t.lstrip(" ").startswith(("\n\nHuman:", "Human:")) for t in texts)

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        ch = _str(table, ctx, "chosen")
        rj = _str(table, ctx, "rejected")
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
        mapped = pa.array([SHAREGPT_ROLES[k] for k in keys]).take(idx.fill_null(0))
        return mapped

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        n = table.num_rows
        conv = as_messages(column(table, "conversations"), "conversations", ("from", "value"))
        require(ctx, conv, "conversations")
        offs, vals = _list_parts(conv)
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
                sys_msgs = one_message("system", _fill(system))
                with_sys = concat_lists(sys_msgs, prompt_msgs)
                prompt_msgs = pc.if_else(pa.array(has_sys), with_sys, prompt_msgs)
        answers = {}
        for name in ("chosen", "rejected"):
            raw = column(table, name)
            if pa.types.is_null(raw.type):
                raw = pa.nulls(n, pa.struct([("from", pa.string()), ("value", pa.string())]))
            if not {"from", "value"} <= struct_names(raw.type):
                raise ColumnError(name, "wrong_type", f"is {_type_name(raw.type)}, expected {{from, value}}")
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
        chosen = concat_lists(base, one_message("assistant", _fill(take(answers["chosen"], rows))))
        rejected = concat_lists(base, one_message("assistant", _fill(take(answers["rejected"], rows))))
        return self.output(table, rows, chosen, rejected, id_col="id")


class HelpSteer2(Adapter):
    name = "helpsteer2"
    default_source = "helpsteer2"
    summary = "HelpSteer2: prompt, response, helpfulness, ...; two responses per prompt on consecutive rows"
    signature = ("prompt", "response", "helpfulness")
    grouping = "consecutive"
    group_key = "prompt"
    consumes = ("prompt", "response", "helpfulness")

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        prompt = _str(table, ctx, "prompt")
        resp = _str(table, ctx, "response")
        helpful = _float(table, ctx, "helpfulness")
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


class WildGuardMix(Adapter):
    name = "wildguardmix"
    default_source = "wildguard"
    summary = "WildGuardMix: prompt, adversarial, response, prompt_harm_label, response_refusal_label, ..."
    signature = ("prompt", "response", "response_refusal_label")
    grouping = "all"
    consumes = ("prompt", "response", "response_refusal_label")
    prompt_level = ("adversarial", "prompt_harm_label", "subcategory")

    def convert(self, table: pa.Table, ctx: BatchContext) -> AdapterOutput:
        prompt = _str(table, ctx, "prompt")
        resp = _str(table, ctx, "response", required=False)
        ctx.remove_rows(
            null_rows(resp) & ~ctx.flagged, "prompt_only", "no response (a prompt-only row of WildGuardMix)"
        )
        refusal = _str(table, ctx, "response_refusal_label")
        harm = _str(table, ctx, "prompt_harm_label")
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
        p, c, r = (_str(table, ctx, name) for name in self.cols)
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


#: Detection order, most specific first: the first adapter whose ``detect``
#: accepts the columns wins (Magpie DPO rows also hold chosen / rejected
#: message lists; RewardBench rows also hold prompt / chosen / rejected).
ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        MagpieDPO(),
        MagpieUltra(),
        HelpSteer2(),
        WildGuardMix(),
        OffsetBias(),
        ShareGPT(),
        RewardBench(),
        UltraFeedback(),
        Skywork(),
        TRL(),
        HHRLHF(),
        StackExchangePaired(),
        SkyworkPromptSample(),
    )
}

ALIASES = {
    "canonical": "skywork",
    "wildguard": "wildguardmix",
    "evalbiasbench": "offsetbias",
    "llama_factory": "sharegpt",
    "magpie": "magpie_dpo",
    "hh": "hh_rlhf",
    "anthropic_hh": "hh_rlhf",
}

FORMATS = tuple(ADAPTERS)


def get_adapter(name: str) -> Adapter:
    key = ALIASES.get(name, name)
    if key not in ADAPTERS:
        raise InvalidInputError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)} (or 'auto')")
    return ADAPTERS[key]


def detect_format(table: pa.Table | pa.Schema, *, where: str = "input") -> str:
    """The name of the adapter for a table (or schema) of source rows."""
    if isinstance(table, pa.Schema):
        schema, sample = table, table.empty_table()
    else:
        schema, sample = table.schema, table.slice(0, 50)
    for a in ADAPTERS.values():
        if a.detect(schema, sample):
            return a.name
    raise InvalidInputError(
        f"{where}: cannot tell the pair format from the columns {schema.names}; pass format= one of "
        f"{', '.join(FORMATS)} (see docs/adapters.md)"
    )
