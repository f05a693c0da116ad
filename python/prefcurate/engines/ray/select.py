"""Selection on Ray: small per-row records per batch, a shuffle by group, the
core's selection per group, and the rows split lazily."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ... import _core
from ...inputs import as_strings
from ...schema import StageResult
from ...stages import select as sel
from ...stages.select import SelectConfig
from .common import (
    ROW,
    ROWS_OPS,
    RayOptions,
    _chunks,
    _collect,
    _hook,
    _map_kwargs,
    _Numbered,
    _numbered,
    _opts,
    _partitions,
    _rows_named,
    _split_ds,
    _strip,
)

# ================================================================ selection


def _select_prepare(table: pa.Table, args: SelectConfig, threads: int) -> tuple[Any, np.ndarray, Any]:
    """Per row: the merged group label (``repr`` of the group name; None when
    the group is null), the adjusted score, and the tie-break strings; as the
    local engine computes them."""
    _group_key, _group_name = sel._group_key, sel._group_name
    n = table.num_rows
    adjusted = sel.adjusted_scores(table, args, threads)
    group_by = args.group_by
    key = _group_key(table, group_by)
    group_map, group_default = args.group_map, args.group_default

    def target(g: Any) -> Any:
        if group_map is None:
            return g
        return group_map.get(g, g if group_default is None else group_default)

    if key is None:
        labels = pa.array([repr(target(None))] * n, pa.string())
    else:
        gids, raw = _core.encode_strings(key, num_threads=threads)
        named = np.array([repr(target(_group_name(s, group_by))) for s in raw] + [None], dtype=object)
        labels = pa.array(named[np.minimum(gids, len(raw))].tolist(), pa.string())
    tie = None
    tb = args.tie_break
    if tb is not None and tb in table.column_names:
        tie = as_strings(table.column(tb)).cast(pa.string())
    return labels, np.ascontiguousarray(adjusted, dtype=np.float64), tie


def _select_quota(target: Any, args: SelectConfig) -> sel.Quota:
    return args.quota_for(target)


def _label_target(label: str) -> Any:
    import ast

    return ast.literal_eval(label)


_SELECT_KEYS = pa.schema(
    [
        ("__part", pa.int64()),
        (ROW, pa.int64()),
        ("label", pa.string()),
        ("adj", pa.float64()),
        ("tie", pa.string()),
    ]
)


def _select_keys(batch: pa.Table, args: SelectConfig, spec: dict[str, Any]) -> pa.Table:
    """Small per-row records; with k quotas and no ranks, only each batch's
    top k of each group (a row below them cannot be in the global top k)."""
    import zlib

    _hook(spec["hook"], "select.keys", batch)
    table, rows = _strip(batch)
    with _rows_named(rows):
        labels, adj, tie = _select_prepare(table, args, spec["threads"])
    keep = np.ones(len(rows), dtype=bool)
    if spec["prefilter"]:
        ids, names = _core.encode_strings(labels, num_threads=spec["threads"])
        quotas = [_select_quota(_label_target(s), args) for s in names]
        sel = _core.select_top(
            adj,
            np.ascontiguousarray(ids, np.uint32),
            quotas,
            tie=tie,
            ranks=False,
            num_threads=spec["threads"],
        )
        keep = np.asarray(sel["reason"]) == 0
    elif not spec["all_rows"]:
        keep = np.asarray(labels.is_valid())
    idx = pa.array(np.flatnonzero(keep))
    labels = labels.take(idx)
    P = spec["partitions"]
    cache: dict[Any, int] = {}
    parts = np.array(
        [cache.setdefault(s, zlib.crc32(s.encode()) % P if s is not None else 0) for s in labels.to_pylist()],
        dtype=np.int64,
    )
    return pa.table(
        {
            "__part": pa.array(parts),
            ROW: pa.array(rows[keep]),
            "label": labels,
            "adj": pa.array(adj[keep]),
            "tie": tie.take(idx) if tie is not None else pa.nulls(len(parts), pa.string()),
        },
        schema=_SELECT_KEYS,
    )


_SELECT_OUT = pa.schema(
    [
        (ROW, pa.int64()),
        ("reason", pa.uint8()),
        ("rank", pa.int64()),
        ("adj", pa.float64()),
        ("label", pa.string()),
        ("g_first", pa.int64()),
        ("g_ranked", pa.int64()),
        ("g_kept", pa.int64()),
        ("g_cutoff", pa.float64()),
    ]
)


def _select_groups(part: pa.Table, args: SelectConfig, spec: dict[str, Any]) -> pa.Table:
    """Whole groups of one partition: the Rust selection, as the local engine runs it."""
    rows = part.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    part = part.take(pa.array(order))
    rows = rows[order]
    labels = part.column("label")
    gids, names = _core.encode_strings(labels, num_threads=spec["threads"])
    gids = np.ascontiguousarray(gids, np.uint32)
    quotas = [_select_quota(_label_target(s), args) for s in names]
    tie = part.column("tie") if spec["tie"] else None
    adj = np.ascontiguousarray(part.column("adj").to_numpy(), np.float64)
    sel = _core.select_top(adj, gids, quotas, tie=tie, ranks=spec["ranks"], num_threads=spec["threads"])
    reason = np.asarray(sel["reason"], np.uint8)
    rank = np.asarray(sel["rank"], np.int64) if spec["ranks"] else np.zeros(len(rows), np.int64)
    g = len(names)
    first = np.full(g, -1, np.int64)
    valid = gids != np.iinfo(np.uint32).max
    if valid.any():
        u, at = np.unique(gids[valid], return_index=True)
        first[u] = rows[valid][at]
    nulls = pa.nulls(len(rows), pa.int64())
    row_part = pa.table(
        {
            ROW: pa.array(rows),
            "reason": pa.array(reason),
            "rank": pa.array(rank),
            "adj": pa.array(adj),
            "label": labels,
            "g_first": nulls,
            "g_ranked": nulls,
            "g_kept": nulls,
            "g_cutoff": pa.nulls(len(rows), pa.float64()),
        },
        schema=_SELECT_OUT,
    )
    group_part = pa.table(
        {
            ROW: pa.nulls(g, pa.int64()),
            "reason": pa.nulls(g, pa.uint8()),
            "rank": pa.nulls(g, pa.int64()),
            "adj": pa.nulls(g, pa.float64()),
            "label": pa.array(list(names), pa.string()),
            "g_first": pa.array(first),
            "g_ranked": pa.array(np.asarray(sel["ranked"], np.int64)),
            "g_kept": pa.array(np.asarray(sel["kept"], np.int64)),
            "g_cutoff": pa.array(np.asarray(sel["cutoff"], np.float64)),
        },
        schema=_SELECT_OUT,
    )
    return pa.concat_tables([row_part, group_part])


def _select_run(
    table: Any, args: SelectConfig, ranks: bool, options: Any
) -> tuple[_Numbered, pa.Table, RayOptions]:
    o = _opts(options)
    nd = _numbered(table, o, text=None, what="select")
    # the local engine on no rows: the same errors for columns and quota kinds
    sel.rank(nd.schema.empty_table(), args, ranks=False, num_threads=1)
    only_k = args.fraction is None and args.default_fraction is None
    tb = args.tie_break
    spec = {
        "hook": o.batch_hook,
        "threads": o.threads,
        "prefilter": only_k and not ranks,
        "all_rows": ranks,
        "ranks": ranks,
        "tie": tb is not None and tb in nd.schema.names,
        "partitions": _partitions(o, nd.n),
    }
    if nd.n == 0:
        return nd, _SELECT_OUT.empty_table(), o
    group_cols = (
        []
        if args.group_by is None
        else [args.group_by]
        if isinstance(args.group_by, str)
        else list(args.group_by)
    )
    needed = [args.score, *group_cols, args.offset_by or "", args.tie_break or ""]
    keys = nd.dataset(needed).map_batches(
        _select_keys, fn_kwargs={"args": args, "spec": spec}, **_map_kwargs(o)
    )
    out = keys.groupby("__part", num_partitions=spec["partitions"]).map_groups(
        _select_groups, fn_kwargs={"args": args, "spec": spec}, batch_format="pyarrow", num_cpus=o.num_cpus
    )
    return nd, _collect(out, _SELECT_OUT), o


def select_indices(table: Any, config: SelectConfig, *, options: Any = None) -> np.ndarray:
    """:func:`prefcurate.select_top_indices` on Ray."""
    _, res, _ = _select_run(table, config, False, options)
    rows = res.column(ROW)
    reason = res.column("reason")
    is_row = np.asarray(rows.is_valid())
    kept = rows.to_numpy(zero_copy_only=False)[is_row & (reason.fill_null(255).to_numpy() == 0)]
    return np.sort(kept.astype(np.int64))


def select(table: Any, args: SelectConfig, *, options: Any = None) -> StageResult:
    """:func:`prefcurate.select_top_result` on Ray: a :class:`StageResult`
    with lazy kept / removed datasets whose rows, removed-row columns and
    ``info`` equal the local engine's."""
    REASONS, STAGE = sel.REASONS, sel.STAGE
    nd, res, o = _select_run(table, args, True, options)
    is_row = np.asarray(res.column(ROW).is_valid())
    rows_t = res.filter(pa.array(is_row))
    groups = res.filter(pa.array(~is_row))
    g_labels = groups.column("label").to_pylist()
    g_first = groups.column("g_first").to_numpy()
    order = np.argsort(g_first, kind="stable")
    names = [_label_target(g_labels[i]) for i in order]
    info_groups = {}
    cut_of: dict[str, float] = {}
    for i, g in zip(order.tolist(), names):
        q = _select_quota(g, args)
        c = float(groups.column("g_cutoff")[i].as_py())
        cut_of[g_labels[i]] = c
        name = str(g) if not isinstance(g, tuple) else "/".join(g)
        info_groups[name] = {
            "quota": [q[0], q[1]] if q[0] == "k" else [q[0], q[1] / q[2]] if q[0] == "ratio" else [q[0]],
            "ranked": int(groups.column("g_ranked")[i].as_py()),
            "kept": int(groups.column("g_kept")[i].as_py()),
            "cutoff": None if np.isnan(c) else c,
        }
    rows = rows_t.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    rows_t = rows_t.take(pa.array(order))
    reason = rows_t.column("reason").to_numpy()
    rem = reason != 0
    removed = rows_t.filter(pa.array(rem))
    labels = removed.column("label").to_pylist()
    label_name = {
        lab: (str(t) if not isinstance(t, tuple) else "/".join(t))
        for lab, t in ((lab, _label_target(lab)) for lab in set(labels) if lab is not None)
    }
    rank = removed.column("rank").to_numpy()
    adj = removed.column("adj").to_numpy()
    cut = np.array(
        [cut_of.get(lab, np.nan) if lab is not None else np.nan for lab in labels], dtype=np.float64
    )
    n_rem = removed.num_rows
    ann = pa.table(
        {
            ROW: removed.column(ROW),
            "stage": pa.array([STAGE] * n_rem, pa.string()),
            "reason": pa.array([REASONS[int(r)] for r in removed.column("reason").to_numpy()], pa.string()),
            "select_group": pa.array(
                [label_name.get(lab) if lab is not None else None for lab in labels], pa.string()
            ),
            "rank": pa.array(rank, mask=rank == 0),
            "adjusted_score": pa.array(adj, mask=np.isnan(adj)),
            "cutoff_score": pa.array(cut, mask=np.isnan(cut)),
        }
    )
    ch = _chunks(ann, o)
    kept_ds = _split_ds(nd, ch, "misses", "none", "select.kept", o)
    removed_ds = _split_ds(nd, ch, "hits", "replace", "select.removed", o)
    by_reason: dict[str, int] = {}
    for r in ann.column("reason").to_pylist():
        by_reason[r] = by_reason.get(r, 0) + 1
    return StageResult(
        STAGE,
        kept_ds,
        removed_ds,
        nd.n,
        {"groups": info_groups},
        n_kept=nd.n - n_rem,
        by_reason=by_reason,
        rows_ops=ROWS_OPS,
    )
