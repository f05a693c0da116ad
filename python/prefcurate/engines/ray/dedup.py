"""Deduplication on Ray: the stage's key kernels per batch, shuffles by key,
verification in buckets, and the stage's decision step on the driver."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ... import _core
from ..._unicode import ensure_tables
from ...errors import InvalidInputError
from ...inputs import take
from ...stages.dedup import (
    DedupConfig,
    DedupData,
    DedupResult,
    Links,
    as_data,
    contradictions,
    decide,
    priority,
)
from .common import (
    ROW,
    RayOptions,
    _Chunks,
    _chunks,
    _collect,
    _hook,
    _map_kwargs,
    _Numbered,
    _numbered,
    _opts,
    _partitions,
    _positions,
    _ray,
    _rows_named,
    _strip,
    splitter,
)

_NO_KEY = np.uint64(np.iinfo(np.uint64).max)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# ================================================================ deduplication
#
# 1. keys (map): per row the hash of its normalised key, of its straight and
#    swapped pair keys, its degenerate flag and its LSH band keys;
#    records (namespace, hash, row, side) go to partitions by hash.
# 2. groups (shuffle, then per partition): runs of equal (namespace, hash)
#    give exact-key groups, possible contradictions and LSH candidate pairs
#    (the local bucket rule, rows in order).
# 3. verify (map + shuffle): the rows named by step 2 are routed, with their
#    text, to verification buckets, where dedup_exact / dedup_exact_two /
#    dedup_jaccard decide, exactly as the local engine does.
# 4. driver: union-find over the verified links, the keep policy, provenance.

_NS_EXACT = 0
_NS_CONTRA = 1
_NS_BAND = 2  # + band number (bands <= dedup.MAX_PERM, far below the namespaces below)
_NS_DEGENERATE = 65535
_NS_NO_SHINGLES = 65534  # rows without a shingle (counted)
_NS_SHORT = 65533  # rows shorter than one shingle (counted)

_KEY_SCHEMA = pa.schema(
    [("__part", pa.int64()), ("ns", pa.int32()), ("h", pa.uint64()), (ROW, pa.int64()), ("side", pa.int8())]
)
_GROUP_SCHEMA = pa.schema([("kind", pa.int8()), ("a", pa.int64()), ("b", pa.int64()), ("h", pa.uint64())])
_VERIFY_SCHEMA = pa.schema(
    [("kind", pa.int8()), ("a", pa.int64()), ("b", pa.int64()), ("v", pa.float64()), ("s", pa.string())]
)
_K_EXACT, _K_CONTRA, _K_NEAR, _K_DEG, _K_ROW, _K_NO_SHINGLES, _K_SHORT = 0, 1, 2, 3, 4, 5, 6


def _mix(h: np.ndarray, salt: int) -> np.ndarray:
    x = (h.astype(np.uint64) ^ np.uint64(salt)) * _GOLDEN
    return (x >> np.uint64(29)).astype(np.uint64)


def _key_hash(level: Any, norm: tuple[bool, bool, bool], kw: dict[str, Any], threads: int) -> np.ndarray:
    """Per row, a 64-bit hash of its normalised key at ``level`` (equal keys
    give equal hashes; groups are verified, so collisions only cost work):
    the one character shingle spanning the whole key, hashed by the MinHash
    code."""
    return _core.dedup_band_keys(
        level=level,
        norm_opts=norm,
        shingle_kind="char",
        shingle_n=1 << 62,
        family_kind="fast",
        a=np.array([1], np.uint32),
        b=np.array([0], np.uint32),
        bands=1,
        rows_per_band=1,
        num_threads=threads,
        **kw,
    )


def _dedup_keys(batch: pa.Table, spec: dict[str, Any]) -> pa.Table:
    ensure_tables()
    _hook(spec["hook"], "dedup.keys", batch)
    table, rows = _strip(batch)
    threads = spec["threads"]
    with _rows_named(rows):
        d = as_data(table, spec["text"])
        kw = d.kwargs()
        level = spec["level"] if d.pairs else "prompt"
        norm = spec["norm"]
        ns: list[np.ndarray] = []
        hs: list[np.ndarray] = []
        rs: list[np.ndarray] = []
        sides: list[np.ndarray] = []

        def add(n_: int, h: np.ndarray, r: np.ndarray, side: int = 0) -> None:
            ns.append(np.full(len(r), n_, np.int32))
            hs.append(h.astype(np.uint64))
            rs.append(r)
            sides.append(np.full(len(r), side, np.int8))

        add(_NS_EXACT, _key_hash(level, norm, kw, threads), rows)
        if d.pairs and spec["pair_checks"]:
            deg = np.asarray(_core.dedup_degenerate(norm_opts=norm, num_threads=threads, **kw), bool)
            live = ~deg
            straight = _key_hash("pair", norm, kw, threads)
            swapped = _key_hash("pair_swapped", norm, kw, threads)
            add(_NS_CONTRA, straight[live], rows[live], 0)
            add(_NS_CONTRA, swapped[live], rows[live], 1)
            add(_NS_DEGENERATE, np.zeros(int(deg.sum()), np.uint64), rows[deg])
        if spec["method"] == "minhash":
            config: DedupConfig = spec["config"]
            bands = config.banding[0]
            flat, short = _core.dedup_band_keys(
                **config.near_kwargs(d.pairs), num_threads=threads, with_short=True, **kw
            )
            keys = flat.reshape(len(rows), bands)
            none = keys[:, 0] == _NO_KEY if bands else np.zeros(len(rows), bool)
            add(_NS_NO_SHINGLES, np.zeros(int(none.sum()), np.uint64), rows[none])
            add(_NS_SHORT, np.zeros(int(short.sum()), np.uint64), rows[short])
            for band in range(bands):
                k = keys[:, band]
                ok = k != _NO_KEY
                add(_NS_BAND + band, k[ok], rows[ok])
    n_ = np.concatenate(ns)
    h_ = np.concatenate(hs)
    part = (_mix(h_, 0) ^ (n_.astype(np.uint64) * _GOLDEN)) % np.uint64(spec["partitions"])
    return pa.table(
        {
            "__part": pa.array(part.astype(np.int64)),
            "ns": pa.array(n_),
            "h": pa.array(h_),
            ROW: pa.array(np.concatenate(rs).astype(np.int64)),
            "side": pa.array(np.concatenate(sides)),
        }
    )


def _bucket_pairs(runs: list[np.ndarray], max_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of LSH buckets (rows ascending), the local rule: every
    pair in a bucket of at most ``max_bucket`` rows, else each row with the
    bucket's first row and with the row before it."""
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    by_size: dict[int, list[np.ndarray]] = {}
    for r in runs:
        if len(r) <= max_bucket:
            by_size.setdefault(len(r), []).append(r)
        else:
            y = np.arange(1, len(r))
            out_i += [r[np.zeros(len(y), np.int64)], r[y - 1]]
            out_j += [r[y], r[y]]
    for m, group in by_size.items():
        stack = np.stack(group)
        x, y = np.triu_indices(m, 1)
        out_i.append(stack[:, x].ravel())
        out_j.append(stack[:, y].ravel())
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def _dedup_groups(part: pa.Table, max_bucket: int) -> pa.Table:
    ns = part.column("ns").to_numpy()
    h = part.column("h").to_numpy()
    rows = part.column(ROW).to_numpy()
    side = part.column("side").to_numpy()
    order = np.lexsort((side, rows, h, ns))
    ns, h, rows, side = ns[order], h[order], rows[order], side[order]
    kinds: list[np.ndarray] = []
    aa: list[np.ndarray] = []
    bb: list[np.ndarray] = []
    hh: list[np.ndarray] = []

    def emit(kind: int, a: np.ndarray, b: np.ndarray, hv: np.ndarray) -> None:
        kinds.append(np.full(len(a), kind, np.int8))
        aa.append(a.astype(np.int64))
        bb.append(b.astype(np.int64))
        hh.append(hv.astype(np.uint64))

    for ns_, kind_ in ((_NS_DEGENERATE, _K_DEG), (_NS_NO_SHINGLES, _K_NO_SHINGLES), (_NS_SHORT, _K_SHORT)):
        sel = ns == ns_
        m = int(sel.sum())
        emit(kind_, rows[sel], np.zeros(m, np.int64), np.zeros(m, np.uint64))
    n = len(ns)
    if n:
        new = np.ones(n, dtype=bool)
        new[1:] = (ns[1:] != ns[:-1]) | (h[1:] != h[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)
        sizes = ends - starts
        multi = sizes > 1
        run_ns = ns[starts]
        # exact keys: every member of a run of two or more rows
        sel = multi & (run_ns == _NS_EXACT)
        if sel.any():
            idx = np.concatenate([np.arange(s, e) for s, e in zip(starts[sel], ends[sel])])
            emit(_K_EXACT, rows[idx], np.zeros(len(idx), np.int64), h[idx])
        # possible contradictions: a straight key and a swapped key of two rows
        sel = multi & (run_ns == _NS_CONTRA)
        for s, e in zip(starts[sel], ends[sel]):
            r, sd = rows[s:e], side[s:e]
            if (sd == 0).any() and (sd == 1).any() and len(np.unique(r)) > 1:
                emit(_K_CONTRA, r, sd.astype(np.int64), h[s:e])
        # LSH buckets
        sel = multi & (run_ns >= _NS_BAND) & (run_ns < _NS_SHORT)
        if sel.any():
            runs = [rows[s:e] for s, e in zip(starts[sel], ends[sel])]
            i, j = _bucket_pairs(runs, max_bucket)
            emit(_K_NEAR, i, j, np.zeros(len(i), np.uint64))
    return pa.table(
        {
            "kind": pa.array(np.concatenate(kinds)),
            "a": pa.array(np.concatenate(aa)),
            "b": pa.array(np.concatenate(bb)),
            "h": pa.array(np.concatenate(hh)),
        },
        schema=_GROUP_SCHEMA,
    )


def _record_parts(batch: pa.Table, partitions: int) -> pa.Table:
    """Partitions by record, so that a candidate pair proposed by several
    bands meets its copies."""
    a = batch.column("a").to_numpy().astype(np.uint64)
    b = batch.column("b").to_numpy().astype(np.uint64)
    part = _mix(a ^ _mix(b, 4), 5) % np.uint64(partitions)
    return batch.append_column("__part", pa.array(part.astype(np.int64)))


def _distinct(part: pa.Table) -> pa.Table:
    cols = [part.column(c).to_numpy() for c in ("kind", "a", "b", "h")]
    order = np.lexsort(cols[::-1])
    srt = [c[order] for c in cols]
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = np.any([c[1:] != c[:-1] for c in srt], axis=0)
    return part.drop_columns(["__part"]).take(pa.array(order[new]))


def _route(batch: pa.Table, chunks: _Chunks, spec: dict[str, Any]) -> pa.Table:
    """The batch's rows that verification needs, once per bucket, with their
    text, id and keep priority."""
    ensure_tables()
    _hook(spec["hook"], "dedup.route", batch)
    table, rows = _strip(batch)
    ann = chunks.lookup(int(rows.min()), int(rows.max())) if len(rows) else chunks.schema.empty_table()
    with _rows_named(rows):
        d = as_data(table, spec["text"])
        prio = priority(d, spec["keep"], spec["score"], spec["source"], len(rows))
    ann = ann.filter(pa.array(np.isin(ann.column(ROW).to_numpy(), rows)))
    pos = _positions(rows, ann.column(ROW).to_numpy())
    ids = (
        table.column("id").cast(pa.string()).take(pa.array(pos))
        if "id" in table.column_names
        else pa.nulls(len(pos), pa.string())
    )
    cols: dict[str, Any] = {
        "__bucket": ann.column("__bucket"),
        ROW: ann.column(ROW),
        "__prio": pa.array(prio[pos], pa.float64()),
        "__id": ids,
    }
    if d.pairs:
        cols["chosen"] = take(d.chosen, pos)
        cols["rejected"] = take(d.rejected, pos)
    else:
        cols["__text"] = take(d.texts, pos)
    return pa.table(cols)


def _dedup_verify(group: pa.Table, work: list[Any], spec: dict[str, Any]) -> pa.Table:
    import ray

    ensure_tables()
    _hook(spec["hook"], "dedup.verify", group)
    rows = group.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    group = group.take(pa.array(order))
    rows = rows[order]
    bucket = int(group.column("__bucket")[0].as_py())
    w = ray.get(work[bucket])
    pairs = "chosen" in group.column_names
    norm = spec["norm"]
    level: Any = spec["level"] if pairs else "prompt"
    threads = spec["threads"]

    def data(pos: np.ndarray) -> dict[str, Any]:
        p = pa.array(pos.astype(np.int64))
        if pairs:
            return DedupData(
                None, None, chosen=group.column("chosen").take(p), rejected=group.column("rejected").take(p)
            ).kwargs()
        return DedupData(None, None, texts=group.column("__text").take(p)).kwargs()

    out: list[pa.Table] = []

    def emit(kind: int, a: np.ndarray, b: np.ndarray, v: np.ndarray | None = None, s: Any = None) -> None:
        m = len(a)
        out.append(
            pa.table(
                {
                    "kind": pa.array(np.full(m, kind, np.int8)),
                    "a": pa.array(a.astype(np.int64)),
                    "b": pa.array(b.astype(np.int64)),
                    "v": pa.array(np.zeros(m) if v is None else v, pa.float64()),
                    "s": s if s is not None else pa.nulls(m, pa.string()),
                },
                schema=_VERIFY_SCHEMA,
            )
        )

    with _rows_named(rows):
        e_rows = w["E"]
        if len(e_rows):
            g = _core.dedup_exact(
                level=level, norm_opts=norm, num_threads=threads, **data(np.searchsorted(rows, e_rows))
            )
            first = e_rows[np.asarray(g, np.int64)]
            moved = first != e_rows
            emit(_K_EXACT, e_rows[moved], first[moved])
        c_rows = w["C"]
        if len(c_rows):
            g = np.asarray(
                _core.dedup_exact_two(
                    level="pair",
                    other="pair_swapped",
                    norm_opts=norm,
                    num_threads=threads,
                    **data(np.searchsorted(rows, c_rows)),
                ),
                np.int64,
            )
            m = len(c_rows)
            deciding = np.flatnonzero(np.isin(c_rows, w["C0"]))
            ci_pos, co_pos = contradictions(g[:m], g[m:], np.arange(m), deciding)
            ci, co = c_rows[ci_pos], c_rows[co_pos]
            emit(_K_CONTRA, ci.astype(np.int64), co.astype(np.int64))
        ni, nj = w["Ni"], w["Nj"]
        if len(ni):
            both = np.unique(np.concatenate([ni, nj]))
            sub = data(np.searchsorted(rows, both))
            sims = _core.dedup_jaccard(
                level=level,
                norm_opts=norm,
                shingle_kind=spec["shingle"][0],
                shingle_n=spec["shingle"][1],
                i=np.searchsorted(both, ni).astype(np.uint32).tolist(),
                j=np.searchsorted(both, nj).astype(np.uint32).tolist(),
                num_threads=threads,
                **sub,
            )
            emit(_K_NEAR, ni, nj, np.asarray(sims, np.float64))
    emit(_K_ROW, rows, np.zeros(len(rows), np.int64), group.column("__prio").to_numpy(), group.column("__id"))
    return pa.concat_tables(out)


def _verify(
    nd: _Numbered,
    spec: dict[str, Any],
    o: RayOptions,
    e_groups: tuple[np.ndarray, np.ndarray],
    c_groups: tuple[np.ndarray, np.ndarray, np.ndarray],
    near: tuple[np.ndarray, np.ndarray],
) -> pa.Table:
    """Route the rows named by the work to buckets and verify there; returns
    the verification records."""
    ray = _ray()
    e_rows, e_h = e_groups
    c_rows, c_side, c_h = c_groups
    ni, nj = near
    total = len(e_rows) + len(c_rows) + 2 * len(ni)
    if total == 0:
        return _VERIFY_SCHEMA.empty_table()
    P = _partitions(o, total)
    e_b = (_mix(e_h, 1) % np.uint64(P)).astype(np.int64)
    c_b = (_mix(c_h, 2) % np.uint64(P)).astype(np.int64)
    n_b = (_mix(ni.astype(np.uint64), 3) % np.uint64(P)).astype(np.int64)

    def split(bucket_of: np.ndarray, *arrays: np.ndarray) -> dict[int, list[np.ndarray]]:
        order = np.argsort(bucket_of, kind="stable")
        b = bucket_of[order]
        keys, starts = np.unique(b, return_index=True)
        ends = np.append(starts[1:], len(b))
        srt = [a[order] for a in arrays]
        return {int(k): [a[s:e] for a in srt] for k, s, e in zip(keys, starts, ends)}

    by_e = split(e_b, e_rows)
    by_c = split(c_b, c_rows, c_side)
    by_n = split(n_b, ni, nj)
    empty = np.zeros(0, np.int64)
    work: list[Any] = [None] * P
    for bucket in set(by_e) | set(by_c) | set(by_n):
        (e,) = by_e.get(bucket, [empty])
        c, cs = by_c.get(bucket, [empty, empty])
        bi, bj = by_n.get(bucket, [empty, empty])
        work[bucket] = ray.put(
            {"E": np.unique(e), "C": np.unique(c), "C0": np.unique(c[cs == 0]), "Ni": bi, "Nj": bj}
        )
    route_rows = np.concatenate([e_rows, c_rows, ni, nj])
    route_buckets = np.concatenate([e_b, c_b, n_b, n_b])
    packed = np.unique(route_rows.astype(np.int64) * P + route_buckets)
    routing = pa.table({ROW: pa.array(packed // P), "__bucket": pa.array(packed % P)})
    ch = _chunks(routing, o)
    routed = nd.dataset(spec["columns"] + spec["keep_columns"]).map_batches(
        _route, fn_kwargs={"chunks": ch, "spec": spec}, **_map_kwargs(o)
    )
    verified = routed.groupby("__bucket", num_partitions=P).map_groups(
        _dedup_verify, fn_kwargs={"work": work, "spec": spec}, batch_format="pyarrow", num_cpus=o.num_cpus
    )
    return _collect(verified, _VERIFY_SCHEMA)


def dedup(data: Any, config: DedupConfig, *, options: Any = None) -> DedupResult:
    """:func:`prefcurate.dedup` on Ray (see the steps above).  The result
    equals the local engine's: the same removed rows, reasons,
    ``duplicate_of``, ``cluster_id``, similarities, links and counts, since
    the decision step is the stage's own."""
    o = _opts(options)
    ensure_tables()
    nd = _numbered(data, o, text=config.text, what="dedup")
    probe = as_data(nd.schema.empty_table(), nd.text)  # the kind of rows, and missing columns
    priority(probe, config.keep, config.score, config.source, 0)
    n = nd.n
    if n >= np.iinfo(np.uint32).max:
        raise InvalidInputError("dedup: more than 2^32 - 1 rows")
    pairs = probe.pairs
    bands = config.banding[0] if config.method == "minhash" else 0
    spec = {
        "config": config,
        "text": nd.text,
        "level": config.level,
        "norm": config.norm,
        "method": config.method,
        "shingle": (config.shingle, config.ngram),
        "pair_checks": config.pair_checks,
        "keep": config.keep,
        "score": config.score,
        "source": config.source,
        "threads": o.threads,
        "hook": o.batch_hook,
        "partitions": 1,
        "columns": (["chosen", "rejected"] if pairs else [])
        + ([probe.res.column] if probe.res is not None and probe.res.column else []),
        "keep_columns": ["id", config.score, config.source],
    }
    n_records = n * (1 + (2 if pairs and config.pair_checks else 0) + bands)
    spec["partitions"] = _partitions(o, n_records)

    # 1 + 2: keys, grouped
    keys = nd.dataset(spec["columns"]).map_batches(_dedup_keys, fn_kwargs={"spec": spec}, **_map_kwargs(o))
    grouped = keys.groupby("__part", num_partitions=spec["partitions"]).map_groups(
        _dedup_groups, fn_kwargs={"max_bucket": 64}, batch_format="pyarrow", num_cpus=o.num_cpus
    )
    distinct = (
        grouped.map_batches(_record_parts, fn_kwargs={"partitions": spec["partitions"]}, **_map_kwargs(o))
        .groupby("__part", num_partitions=spec["partitions"])
        .map_groups(_distinct, batch_format="pyarrow", num_cpus=o.num_cpus)
    )
    g = _collect(distinct, _GROUP_SCHEMA) if n else _GROUP_SCHEMA.empty_table()
    kind = g.column("kind").to_numpy()
    ga, gb, gh = g.column("a").to_numpy(), g.column("b").to_numpy(), g.column("h").to_numpy()
    e = kind == _K_EXACT
    c = kind == _K_CONTRA
    nn = kind == _K_NEAR
    cand = np.unique(ga[nn].astype(np.uint64) << np.uint64(32) | gb[nn].astype(np.uint64))
    ci = (cand >> np.uint64(32)).astype(np.int64)
    cj = (cand & np.uint64(0xFFFFFFFF)).astype(np.int64)

    # 3: verify
    v = _verify(nd, spec, o, (ga[e], gh[e]), (ga[c], gb[c], gh[c]), (ci, cj))
    vk = v.column("kind").to_numpy()
    va, vb, vv = v.column("a").to_numpy(), v.column("b").to_numpy(), v.column("v").to_numpy()

    def jaccard(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Pairs reached through a chain of links: verified in buckets too."""
        empty = np.zeros(0, np.int64)
        extra = _verify(
            nd,
            spec,
            o,
            (empty, empty.astype(np.uint64)),
            (empty, empty, empty.astype(np.uint64)),
            (lo.astype(np.int64), hi.astype(np.int64)),
        )
        xk = extra.column("kind").to_numpy() == _K_NEAR
        xa, xb = extra.column("a").to_numpy()[xk], extra.column("b").to_numpy()[xk]
        got = dict(zip(zip(xa.tolist(), xb.tolist()), extra.column("v").to_numpy()[xk].tolist()))
        return np.array([got[(int(a), int(b))] for a, b in zip(lo, hi)], dtype=np.float64)

    # 4: the stage's decision step on the driver
    exact = np.arange(n, dtype=np.int64)
    m = vk == _K_EXACT
    exact[va[m]] = vb[m]
    links = Links(exact=exact, jaccard=jaccard)
    if pairs and config.pair_checks:
        degenerate = np.zeros(n, dtype=bool)
        degenerate[ga[kind == _K_DEG]] = True
        m = vk == _K_CONTRA
        links.degenerate = degenerate
        links.contra = (va[m].astype(np.int64), vb[m].astype(np.int64))
    if config.method == "minhash":
        m = vk == _K_NEAR
        near_i, near_j, near_v = va[m], vb[m], vv[m]
        order = np.lexsort((near_j, near_i))
        near_i, near_j, near_v = near_i[order], near_j[order], near_v[order]
        linked = near_v >= config.threshold
        links.near = (near_i[linked], near_j[linked], near_v[linked])
        links.info = {
            "no_shingles": int(np.sum(kind == _K_NO_SHINGLES)),
            "short": int(np.sum(kind == _K_SHORT)),
            "candidates": len(cand),
        }
    m = vk == _K_ROW
    prio = np.zeros(n)
    prio[va[m]] = vv[m]
    ids = None
    if "id" in nd.schema.names:
        ids = [None] * n
        for r, x in zip(va[m].tolist(), v.column("s").filter(pa.array(m)).to_pylist()):
            ids[r] = x
    out = decide(links, prio, config, ids=ids)
    out._splitter = splitter(nd, o, "dedup")
    return out
