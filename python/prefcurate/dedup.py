"""Pair-aware deduplication: exact and near-duplicate, with provenance.

``dedup(data, level="prompt", method="minhash", threshold=0.8)`` removes, in
order:

1. ``degenerate_pair``: the chosen answer equals the rejected one (pairs only);
2. ``contradictory_pair``: the same prompt with the preferences swapped in
   another row (pairs only; both rows go, each pointing at the other);
3. ``exact_duplicate``: identical keys once normalised (NFKC, case,
   whitespace: each optional);
4. ``near_duplicate`` (``method="minhash"``): MinHash signatures over word or
   character shingles, LSH buckets with bands and rows derived from the
   threshold (a pair at threshold + 0.05 is a candidate with probability
   0.995 or more; see :func:`lsh_params`), and every candidate pair verified by
   the exact Jaccard similarity of the two shingle *sets* (of strings): a pair
   under the threshold is never linked.  Linked rows form clusters
   (union-find, so a cluster can join rows through a chain of links).

Within each cluster one row is kept (``keep="first"``, ``"score"`` for the
highest score, or a list of sources in order of priority); every removed row
carries ``duplicate_of`` (index and id of the kept row), ``cluster_id`` (the
cluster's first row) and ``similarity`` (exact Jaccard with the kept row; 1.0
for exact duplicates).

Keys by ``level`` for chosen / rejected message lists: ``prompt`` (the prompt
turns with their roles), ``prompt_chosen`` (plus the chosen answer), ``pair``
(plus the rejected answer).  A text column is its own key.

Short, empty and missing texts: a text with fewer units than one shingle
(for word shingles its tokens and role markers; for character shingles the
characters of its normalised key, which holds a separator before and after
each part, so an empty text has two) has a single shingle, the whole text:
it is near-linked only to texts with the same units (Jaccard 1), never to
longer texts that contain it.  With word shingles a text without any token
(empty, or only punctuation, spaces and one-letter words: tokens are runs of
two or more word characters) has no shingle and no LSH key and is
deduplicated by its exact key only (two empty prompts are exact duplicates).
Both kinds are kept or removed as any other row, and counted in
``info["short"]`` and ``info["no_shingles"]``.  A missing text (None / null)
is an error naming the row, as is a pair without its prompt turns.

``DedupIndex(b, ...)`` holds dataset ``b`` (and its LSH keys) so that later
``dedup(a, against=index)`` removes the rows of ``a`` that duplicate ``b``
(``b`` never changes); it saves to and loads from a file.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _core
from ._inputs import Resolved, _is_message_list, resolve, split_rows
from ._unicode import ensure_tables
from .errors import InvalidInputError
from .schema import StageResult

STAGE = "dedup"
LEVELS = ("prompt", "prompt_chosen", "pair")
METHODS = ("exact", "minhash")
MESSAGES_LARGE = pa.large_list(
    pa.struct([pa.field("role", pa.large_string()), pa.field("content", pa.large_string())])
)


# ---------------------------------------------------------------- LSH params


@functools.lru_cache(maxsize=64)
def lsh_params(
    threshold: float, num_perm: int, recall: float = 0.995, margin: float = 0.05
) -> tuple[int, int]:
    """(bands, rows) for LSH, chosen for recall: among the bandings that make
    a pair at Jaccard ``threshold + margin`` a candidate with probability at
    least ``recall``, the one with the fewest candidates below the threshold
    (the area under the candidate curve on [0, threshold]).  Candidates are
    verified exactly, so a false candidate only costs a comparison, while a
    missed one is a missed duplicate.  (datasketch instead balances false
    positives and false negatives equally.)"""
    lo = np.linspace(0.0, threshold, 201)
    at = min(threshold + margin, 1.0)
    best, best_fp = None, float("inf")
    fallback, fallback_p = (1, num_perm), -1.0
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p_at = 1 - (1 - at**r) ** b
            if p_at < recall:
                if p_at > fallback_p:
                    fallback, fallback_p = (b, r), p_at
                continue
            y = 1 - (1 - lo**r) ** b
            fp = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(lo)))
            if fp < best_fp:
                best, best_fp = (b, r), fp
    return best if best is not None else fallback


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` (odd) and ``b`` of datasketch's "affine32" permutations for
    ``seed``: ``MinHash(num_perm, seed)`` draws the same."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.astype(np.uint32), b.astype(np.uint32)


# ---------------------------------------------------------------- inputs


@dataclass
class _Data:
    """Rows as the core reads them: a text column, or chosen / rejected."""

    res: Resolved | None
    table: pa.Table | None
    texts: Any = None
    chosen: Any = None
    rejected: Any = None

    @property
    def pairs(self) -> bool:
        return self.chosen is not None

    def kwargs(self) -> dict[str, Any]:
        if self.pairs:
            return {"chosen": self.chosen, "rejected": self.rejected}
        return {"texts": self.texts}

    def __len__(self) -> int:
        if self.pairs:
            return len(self.chosen)
        return len(self.texts)


def _as_data(data: Any, text: str | None) -> _Data:
    """A table with chosen / rejected message lists is deduplicated as pairs
    (unless ``text`` names a column); anything else as texts."""
    res = resolve(data, text=text, what="dedup")
    t = res.table
    if (
        text is None
        and t is not None
        and "chosen" in t.column_names
        and "rejected" in t.column_names
        and _is_message_list(t.column("chosen").type)
        and _is_message_list(t.column("rejected").type)
    ):
        return _Data(res, t, chosen=t.column("chosen"), rejected=t.column("rejected"))
    # a list of str goes to Rust as it is (read in place; a non-str item is
    # reported there with its row)
    return _Data(res, t, texts=res.texts)


def _str_list(lst: list, what: str = "text") -> pa.Array:
    """A list of str as an Arrow array; a non-str item is an error naming its
    row (as the Rust reader of a list reports it)."""
    try:
        arr = pa.array(lst, type=pa.large_string())
        if not arr.null_count:
            return arr
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        pass
    for i, x in enumerate(lst):
        if not isinstance(x, str):
            raise InvalidInputError(
                f"{what}: row {i} is {'None' if x is None else type(x).__name__}, not a str"
            )
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"{what}: row {i} is not valid UTF-8 (a lone surrogate)") from None
    raise InvalidInputError(f"{what}: cannot read the list as text")  # pragma: no cover - caught above


def _common(a: Any, b: Any, typ: pa.DataType) -> pa.ChunkedArray:
    def chunks(x):
        if isinstance(x, list):
            return [_str_list(x)]
        arr = x if isinstance(x, pa.ChunkedArray) else pa.chunked_array([x])
        return [c.cast(typ) for c in arr.chunks]

    return pa.chunked_array(chunks(a) + chunks(b), type=typ)


# ---------------------------------------------------------------- result


@dataclass
class DedupResult:
    """What :func:`dedup` found.

    ``duplicate_of``: numpy int64 per row, the index of the kept row it
    duplicates (in the reference dataset when ``against`` was given and
    ``duplicate_in`` says "reference"), -1 for kept rows and for rows removed
    without a counterpart (``degenerate_pair``).  ``cluster_id``: the first
    row of its cluster, -1 when alone.  ``similarity``: exact Jaccard with the
    kept row (1.0 for exact duplicates), NaN for kept rows.  ``reason``: per
    row, None if kept.
    """

    duplicate_of: np.ndarray
    cluster_id: np.ndarray
    similarity: np.ndarray
    reason: np.ndarray
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    _data: _Data | None = field(default=None, repr=False)
    #: per row: the id of the row it duplicates (None if unknown)
    _dup_ids: list | None = field(default=None, repr=False)
    #: per row: "self" or "reference" (dedup against an index only)
    _duplicate_in: list | None = field(default=None, repr=False)
    #: the verified near-duplicate links (i, j, jaccard), i < j
    links: pa.Table = field(default_factory=lambda: pa.Table.from_pydict({"i": [], "j": [], "jaccard": []}))
    _split: tuple[Any, Any] | None = field(default=None, repr=False)

    @property
    def removed_mask(self) -> np.ndarray:
        return np.array([r is not None for r in self.reason], dtype=bool)

    @property
    def n_removed(self) -> int:
        return int(self.removed_mask.sum())

    def attribution(self) -> pa.Table:
        """One row per removed row: stage, reason, row_index, duplicate_of
        (index and id), cluster_id, similarity (and duplicate_in)."""
        rem = np.flatnonzero(self.removed_mask)
        dup = self.duplicate_of[rem]
        sim = self.similarity[rem]
        cl = self.cluster_id[rem]
        ids = self._dup_ids
        cols: dict[str, Any] = {
            "stage": pa.array([STAGE] * len(rem), pa.string()),
            "reason": pa.array(self.reason[rem].tolist(), pa.string()),
            "row_index": pa.array(rem.astype(np.int64)),
            "duplicate_of": pa.array(dup, mask=dup < 0),
            "duplicate_of_id": pa.array([None if ids is None else ids[i] for i in rem.tolist()], pa.string()),
            "cluster_id": pa.array(cl, mask=cl < 0),
            "similarity": pa.array(sim, mask=np.isnan(sim)),
        }
        if self._duplicate_in is not None:
            cols["duplicate_in"] = pa.array([self._duplicate_in[i] for i in rem.tolist()], pa.string())
        return pa.Table.from_pydict(cols)

    def _rows(self) -> tuple[Any, Any]:
        if self._split is None:
            assert self._data is not None and self._data.res is not None
            attr = self.attribution().drop_columns(["row_index"])
            self._split = split_rows(self._data.res, self.removed_mask, attr)
        return self._split

    @property
    def kept(self) -> Any:
        """The rows that stay, in the kind the data was given."""
        return self._rows()[0]

    @property
    def removed(self) -> Any:
        """The removed rows with their provenance columns."""
        return self._rows()[1]

    def stage_result(self) -> StageResult:
        """As a :class:`StageResult` (tables only)."""
        kept, removed = self.kept, self.removed
        if not isinstance(kept, pa.Table):
            raise InvalidInputError("stage_result needs table input")
        return StageResult(STAGE, kept, removed, len(self.reason), {"params": self.params, **self.info})

    def summary(self) -> dict[str, Any]:
        by_reason: dict[str, int] = {}
        for r in self.reason.tolist():
            if r is not None:
                by_reason[r] = by_reason.get(r, 0) + 1
        n, removed = len(self.reason), sum(by_reason.values())
        return {
            "stage": STAGE,
            "input": n,
            "kept": n - removed,
            "removed": removed,
            "by_reason": by_reason,
            **self.info,
        }

    def __repr__(self) -> str:
        return f"DedupResult(rows={len(self.reason)}, removed={self.n_removed}, by_reason={self.summary()['by_reason']})"


# ---------------------------------------------------------------- keep policy


def _priority(data: _Data, keep: Any, score: str, source: str, n: int) -> np.ndarray:
    """A sort key per row: lower is kept first (ties: lower row index)."""
    table = data.table
    if keep == "first":
        return np.zeros(n)
    if keep == "score":
        if table is None or score not in table.column_names:
            raise InvalidInputError(f"dedup: keep='score' needs a {score!r} column")
        s = table.column(score).cast(pa.float64())
        s = pc.fill_null(s, float("nan")).to_numpy()
        return np.where(np.isnan(s), np.inf, -s)
    if isinstance(keep, (list, tuple)):
        if table is None or source not in table.column_names:
            raise InvalidInputError(f"dedup: a source priority list needs a {source!r} column")
        order = {s: i for i, s in enumerate(keep)}
        return np.array([order.get(s, len(order)) for s in table.column(source).to_pylist()], dtype=float)
    raise InvalidInputError(f"dedup: keep must be 'first', 'score' or a list of sources, got {keep!r}")


def _choose(
    cluster: np.ndarray, prio: np.ndarray, alive: np.ndarray, forced: np.ndarray | None = None
) -> np.ndarray:
    """Per row, the kept row of its cluster (rows not alive are ignored)."""
    n = len(cluster)
    idx = np.flatnonzero(alive)
    force = np.zeros(n, dtype=bool) if forced is None else forced
    # sort by (cluster, not forced, priority, row): the first of each cluster wins
    order = idx[np.lexsort((idx, prio[idx], ~force[idx], cluster[idx]))]
    c_sorted = cluster[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = c_sorted[1:] != c_sorted[:-1]
    # the clusters in ascending order, each with its kept row
    clusters, kept = c_sorted[first], order[first]
    rep = np.full(n, -1, dtype=np.int64)
    rep[idx] = kept[np.searchsorted(clusters, cluster[idx])]
    return rep


# ---------------------------------------------------------------- dedup


def dedup(
    data: Any,
    *,
    level: str = "prompt",
    method: str = "minhash",
    threshold: float = 0.8,
    text: str | None = None,
    keep: Any = "first",
    score: str = "score",
    source: str = "source",
    nfkc: bool = True,
    lowercase: bool = True,
    whitespace: bool = True,
    shingle: str = "word",
    ngram: int = 5,
    num_perm: int = 128,
    bands: int | None = None,
    rows: int | None = None,
    permutations_: str = "fast",
    seed: int = 1,
    pair_checks: bool = True,
    against: DedupIndex | None = None,
    num_threads: int | None = None,
    engine: str = "local",
    ray_options: Any = None,
) -> DedupResult:
    """Remove duplicates (see the module docstring).

    Parameters
    ----------
    data:
        A canonical pair table (chosen / rejected message lists: pair-aware),
        or texts as in :func:`prefcurate.decontaminate` (list of str, Arrow,
        Dataset, polars, path; ``text=`` picks a table's column).
    level:
        ``prompt``, ``prompt_chosen`` or ``pair`` (pairs only).
    method:
        ``exact`` or ``minhash`` (exact, then near duplicates).
    threshold:
        Jaccard similarity from which two rows are near duplicates.
    keep:
        ``first``, ``score`` (highest ``score`` column) or a list of sources
        by priority (``source`` column).
    nfkc, lowercase, whitespace:
        Normalisation before keys and shingles.
    shingle, ngram:
        ``word`` (n consecutive tokens of the reference tokeniser, role markers
        included) or ``char`` (n consecutive characters) shingles.
    num_perm, bands, rows, permutations_, seed:
        MinHash size, LSH banding (default: derived from the threshold), the
        shingle hash (``fast``: a word shingle is hashed from its words'
        64-bit hashes, without building its string; or ``datasketch``:
        SHA-1 of the shingle string as ``datasketch.MinHash(num_perm,
        seed)``, identical signatures, several times slower).  Either only
        proposes candidates: links are decided by the exact Jaccard.
    pair_checks:
        Remove degenerate and contradictory pairs first.
    against:
        A :class:`DedupIndex`: remove rows that duplicate its rows instead
        (and each other's, as usual); the index's settings apply.
    engine, ray_options:
        ``"local"`` (default) or ``"ray"``: run on a Ray Data cluster (keys
        and LSH band keys per batch, shuffles by key, verification in
        buckets, union-find on the driver); the same result, with ``kept``
        and ``removed`` as lazy Ray datasets.  ``ray_options``: a dict or
        :class:`prefcurate.ray_engine.RayOptions`.  Not with ``against``.
    """
    from .ray_engine import check_engine

    on_ray = check_engine(engine)
    if on_ray and against is not None:
        raise InvalidInputError(
            "dedup: engine='ray' does not take against= (a DedupIndex); use engine='local'"
        )
    if against is not None:
        return against._dedup(data, text=text, keep=keep, score=score, source=source, num_threads=num_threads)
    if level not in LEVELS:
        raise InvalidInputError(f"dedup: level must be one of {LEVELS}, got {level!r}")
    if method not in METHODS:
        raise InvalidInputError(f"dedup: method must be one of {METHODS}, got {method!r}")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"dedup: threshold must be in [0, 1], got {threshold}")
    ensure_tables()
    if on_ray:
        from . import ray_engine

        return ray_engine.dedup(
            data,
            level=level,
            method=method,
            threshold=threshold,
            text=text,
            keep=keep,
            score=score,
            source=source,
            nfkc=nfkc,
            lowercase=lowercase,
            whitespace=whitespace,
            shingle=shingle,
            ngram=ngram,
            num_perm=num_perm,
            bands=bands,
            rows=rows,
            permutations_=permutations_,
            seed=seed,
            pair_checks=pair_checks,
            options=ray_options,
        )
    d = _as_data(data, text)
    params = dedup_params(
        level,
        method,
        threshold,
        keep,
        (nfkc, lowercase, whitespace),
        shingle,
        ngram,
        num_perm,
        bands,
        rows,
        permutations_,
        seed,
    )
    return _run(
        d, params, keep=keep, score=score, source=source, pair_checks=pair_checks, num_threads=num_threads
    )


def _run(
    d: _Data,
    params: dict[str, Any],
    *,
    keep: Any,
    score: str,
    source: str,
    pair_checks: bool,
    num_threads: int | None,
    n_ref: int = 0,
    ref_keys: np.ndarray | None = None,
) -> DedupResult:
    """Deduplicate ``d``; its first ``n_ref`` rows are a reference that is
    never removed (and whose links among themselves are ignored)."""
    n = len(d)
    level = params["level"] if d.pairs else "prompt"
    norm = tuple(params["norm"])
    kw = d.kwargs()
    reason = np.array([None] * n, dtype=object)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    cluster_id = np.full(n, -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    info: dict[str, Any] = {}
    is_ref = np.zeros(n, dtype=bool)
    is_ref[:n_ref] = True

    if d.pairs and pair_checks:
        degenerate = _core.dedup_degenerate(norm_opts=norm, num_threads=num_threads, **kw) & ~is_ref
        reason[degenerate] = "degenerate_pair"
        alive &= ~degenerate
        # contradictory: row i's (prompt, chosen, rejected) equals row j's
        # (prompt, rejected, chosen)
        g = _core.dedup_exact_two(
            level="pair", other="pair_swapped", norm_opts=norm, num_threads=num_threads, **kw
        )
        g = g.astype(np.int64)
        straight, swapped = g[:n], g[n:]
        first_swapped: dict[int, int] = {}
        for j in np.flatnonzero(alive).tolist():
            first_swapped.setdefault(int(swapped[j]), j)
        for i in np.flatnonzero(alive & ~is_ref).tolist():
            other = first_swapped.get(int(straight[i]))
            if other is not None and other != i:
                reason[i] = "contradictory_pair"
                duplicate_of[i] = other
                cluster_id[i] = min(i, other)
        contra = reason == "contradictory_pair"
        alive &= ~contra
        info["degenerate"] = int(degenerate.sum())
        info["contradictory"] = int(contra.sum())

    exact = _core.dedup_exact(level=level, norm_opts=norm, num_threads=num_threads, **kw).astype(np.int64)
    links = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    ex_i, ex_j = exact_edges(exact, alive)
    edges_i, edges_j = [ex_i], [ex_j]
    if params["method"] == "minhash":
        a, b = permutations(params["num_perm"], params["seed"])
        near = _core.dedup_near(
            level=level,
            norm_opts=norm,
            shingle_kind=params["shingle"][0],
            shingle_n=params["shingle"][1],
            family_kind=params["permutations"],
            a=a,
            b=b,
            bands=params["bands"],
            rows_per_band=params["rows"],
            threshold=params["threshold"],
            prefix_keys=ref_keys,
            num_threads=num_threads,
            **kw,
        )
        edges_i.append(near["edge_i"].astype(np.int64))
        edges_j.append(near["edge_j"].astype(np.int64))
        links = (near["edge_i"].astype(np.int64), near["edge_j"].astype(np.int64), near["edge_jaccard"])
        info["no_shingles"] = int(near["no_shingles"])
        info["short"] = int(near["short"])
        info["candidates"] = int(near["candidates"])
        info["near_links"] = len(near["edge_i"])
    ei, ej = np.concatenate(edges_i), np.concatenate(edges_j)
    # links through rows already removed (degenerate, contradictory) do not count
    ok = alive[ei] & alive[ej] & ~(is_ref[ei] & is_ref[ej])
    ei, ej = ei[ok], ej[ok]
    cluster = _core.union_clusters(n, ei.astype(np.uint32).tolist(), ej.astype(np.uint32).tolist()).astype(
        np.int64
    )
    prio = _priority(d, keep, score, source, n)
    rep = _choose(cluster, prio, alive, forced=is_ref)
    sizes = np.bincount(cluster[alive], minlength=n)
    in_cluster = alive & (sizes[cluster] > 1)
    dup = alive & (rep != np.arange(n)) & ~is_ref
    # a reference cluster keeps all of its reference rows
    cluster_id[in_cluster] = cluster[in_cluster]
    members = np.flatnonzero(dup)
    duplicate_of[members] = rep[members]
    same_key = exact[members] == exact[rep[members]]
    reason[members[same_key]] = "exact_duplicate"
    reason[members[~same_key]] = "near_duplicate"
    similarity[members[same_key]] = 1.0
    near_members = members[~same_key]
    if len(near_members):
        # most members were linked to their kept row directly: reuse that
        # pair's Jaccard; the others (reached through a chain) are computed
        lo = np.minimum(near_members, rep[near_members])
        hi = np.maximum(near_members, rep[near_members])
        sims, found = lookup_pairs(lo, hi, links[0], links[1], links[2])
        miss = np.flatnonzero(~found)
        if len(miss):
            sims[miss] = _core.dedup_jaccard(
                level=level,
                norm_opts=norm,
                shingle_kind=params["shingle"][0],
                shingle_n=params["shingle"][1],
                i=lo[miss].astype(np.uint32).tolist(),
                j=hi[miss].astype(np.uint32).tolist(),
                num_threads=num_threads,
                **kw,
            )
        similarity[near_members] = sims
    info["clusters"] = int(np.sum(sizes[np.flatnonzero(sizes)] > 1))
    dup_ids = None
    if d.table is not None and "id" in d.table.column_names:
        ids = d.table.column("id").to_pylist()
        dup_ids = [None if x < 0 or ids[x] is None else str(ids[x]) for x in duplicate_of.tolist()]
    out = DedupResult(duplicate_of, cluster_id, similarity, reason, params, info, d, dup_ids)
    out.links = pa.Table.from_pydict(
        {"i": pa.array(links[0]), "j": pa.array(links[1]), "jaccard": pa.array(links[2])}
    )
    return out


#: The most MinHash permutations (and so LSH bands) a run may use.
MAX_PERM = 8192


def _check_num_perm(num_perm: Any) -> None:
    if not isinstance(num_perm, (int, np.integer)) or not 1 <= num_perm <= MAX_PERM:
        raise InvalidInputError(f"num_perm must be an integer in [1, {MAX_PERM}], got {num_perm!r}")


def dedup_params(
    level: str,
    method: str,
    threshold: float,
    keep: Any,
    norm: tuple[bool, bool, bool],
    shingle: str,
    ngram: int,
    num_perm: int,
    bands: int | None,
    rows: int | None,
    permutations_: str,
    seed: int,
) -> dict[str, Any]:
    """The parameters a dedup run records (``DedupResult.params``), with the
    LSH bands and rows chosen when not given; shared by both engines."""
    _check_num_perm(num_perm)
    params: dict[str, Any] = {
        "level": level,
        "method": method,
        "threshold": threshold,
        "norm": list(norm),
        "shingle": [shingle, ngram],
        "num_perm": num_perm,
        "permutations": permutations_,
        "seed": seed,
        "keep": keep if isinstance(keep, str) else list(keep),
    }
    if method == "minhash":
        b, r = (bands, rows) if bands and rows else lsh_params(threshold, num_perm)
        params.update(bands=b, rows=r)
    return params


def lookup_pairs(
    lo: np.ndarray, hi: np.ndarray, have_i: np.ndarray, have_j: np.ndarray, have_v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The value of each pair ``(lo[k], hi[k])`` among the pairs
    ``(have_i, have_j)`` (sorted, ``i < j``) with values ``have_v``: the values
    (NaN where absent) and whether each was found."""
    want = lo.astype(np.uint64) << np.uint64(32) | hi.astype(np.uint64)
    have = have_i.astype(np.uint64) << np.uint64(32) | have_j.astype(np.uint64)
    pos = np.searchsorted(have, want)
    found = np.zeros(len(want), dtype=bool)
    if len(have):
        found = (pos < len(have)) & (have[np.minimum(pos, len(have) - 1)] == want)
    vals = np.full(len(want), np.nan)
    vals[found] = np.asarray(have_v)[pos[found]]
    return vals, found


def exact_edges(exact: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges linking every alive row to the first *alive* row with the same
    exact key (``exact[i]`` is the first row of ``i``'s group).  Linking to the
    group's first row instead would leave later copies unlinked whenever that
    first row was already removed (degenerate or contradictory)."""
    idx = np.flatnonzero(alive)
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, first, inverse = np.unique(exact[idx], return_index=True, return_inverse=True)
    target = idx[first][inverse]
    keep = target != idx
    return idx[keep].astype(np.int64), target[keep].astype(np.int64)


# ---------------------------------------------------------------- against an index


#: The saved index's format.  2: the "fast" MinHash family hashes a word
#: shingle from its words' hashes (band keys of version 1 are recomputed on load).
INDEX_VERSION = 2


class DedupIndex:
    """A reference dataset to deduplicate against: build it once from ``b``,
    save it, and call ``dedup(a, against=index)`` later; ``b`` is never
    changed.  Holds ``b``'s key columns and its LSH band keys."""

    def __init__(
        self, data: Any, *, text: str | None = None, num_threads: int | None = None, **settings: Any
    ) -> None:
        ensure_tables()
        d = _as_data(data, text)
        probe = dedup.__kwdefaults__ or {}
        params = {
            "level": settings.get("level", probe["level"]),
            "method": settings.get("method", probe["method"]),
            "threshold": settings.get("threshold", probe["threshold"]),
            "norm": [settings.get(k, probe[k]) for k in ("nfkc", "lowercase", "whitespace")],
            "shingle": [settings.get("shingle", probe["shingle"]), settings.get("ngram", probe["ngram"])],
            "num_perm": settings.get("num_perm", probe["num_perm"]),
            "permutations": settings.get("permutations_", probe["permutations_"]),
            "seed": settings.get("seed", probe["seed"]),
        }
        unknown = set(settings) - set(probe)
        if unknown:
            raise InvalidInputError(f"DedupIndex: unknown settings {sorted(unknown)}")
        if params["level"] not in LEVELS or params["method"] not in METHODS:
            raise InvalidInputError(
                f"DedupIndex: bad level / method {params['level']!r} / {params['method']!r}"
            )
        if params["method"] == "minhash":
            _check_num_perm(params["num_perm"])
            bands, rows = settings.get("bands"), settings.get("rows")
            b, r = (bands, rows) if bands and rows else lsh_params(params["threshold"], params["num_perm"])
            params.update(bands=b, rows=r)
        self.params = params
        self.pairs = d.pairs
        cols: dict[str, Any] = {}
        if d.pairs:
            cols["chosen"] = d.chosen.cast(MESSAGES_LARGE)
            cols["rejected"] = d.rejected.cast(MESSAGES_LARGE)
        else:
            t = d.texts
            cols["text"] = _str_list(t) if isinstance(t, list) else t.cast(pa.large_string())
        if d.table is not None and "id" in d.table.column_names:
            cols["id"] = d.table.column("id").cast(pa.string())
        self.table = pa.Table.from_pydict(cols)
        self.keys = self._band_keys(num_threads)

    def _band_keys(self, num_threads: int | None = None) -> np.ndarray | None:
        """The LSH band keys of the reference rows (None for exact dedup)."""
        params = self.params
        if params["method"] != "minhash":
            return None
        a, b = permutations(params["num_perm"], params["seed"])
        return _core.dedup_band_keys(
            level=params["level"] if self.pairs else "prompt",
            norm_opts=tuple(params["norm"]),
            shingle_kind=params["shingle"][0],
            shingle_n=params["shingle"][1],
            family_kind=params["permutations"],
            a=a,
            b=b,
            bands=params["bands"],
            rows_per_band=params["rows"],
            num_threads=num_threads,
            **(
                {"chosen": self.table.column("chosen"), "rejected": self.table.column("rejected")}
                if self.pairs
                else {"texts": self.table.column("text")}
            ),
        )

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return f"DedupIndex({len(self)} rows, {self.params})"

    def save(self, path: str | os.PathLike) -> None:
        """Write the index (a Parquet file with the settings and the format
        version in its metadata; :meth:`load` reads older formats too)."""
        import pyarrow.parquet as pq

        t = self.table
        if self.keys is not None:
            t = t.append_column(
                "__band_keys", pa.FixedSizeListArray.from_arrays(pa.array(self.keys), self.params["bands"])
            )
        meta = {
            b"prefcurate.dedup_index": json.dumps(
                {"version": INDEX_VERSION, "params": self.params, "pairs": self.pairs}
            ).encode()
        }
        t = t.replace_schema_metadata(meta)
        tmp = Path(str(path) + ".tmp")
        pq.write_table(t, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DedupIndex:
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as e:
            if not Path(path).exists():
                raise FileNotFoundError(f"{path}: no such file") from None
            raise InvalidInputError(f"{path}: not a dedup index: {e}") from None
        meta = (t.schema.metadata or {}).get(b"prefcurate.dedup_index")
        if meta is None:
            raise InvalidInputError(f"{path}: not a dedup index (no prefcurate.dedup_index metadata)")
        m = json.loads(meta)
        if m.get("version", 1) > INDEX_VERSION:
            raise InvalidInputError(
                f"{path}: a dedup index of format {m['version']}, made by a newer prefcurate "
                f"(this one reads up to {INDEX_VERSION})"
            )
        obj = cls.__new__(cls)
        obj.params, obj.pairs = m["params"], m["pairs"]
        obj.keys = None
        if "__band_keys" in t.column_names:
            obj.keys = np.ascontiguousarray(
                pc.list_flatten(t.column("__band_keys")).to_numpy(), dtype=np.uint64
            )
            t = t.drop_columns(["__band_keys"])
        obj.table = t.replace_schema_metadata(None)
        if m.get("version", 1) < INDEX_VERSION:
            # keys saved by an older version hash shingles another way: made again
            obj.keys = obj._band_keys()
        return obj

    def _dedup(
        self, data: Any, *, text: str | None, keep: Any, score: str, source: str, num_threads: int | None
    ) -> DedupResult:
        ensure_tables()
        d = _as_data(data, text)
        if d.pairs != self.pairs:
            raise InvalidInputError("dedup: the data and the index must both be pairs or both be texts")
        n_ref = len(self)
        if d.pairs:
            both = _Data(
                None,
                None,
                chosen=_common(self.table.column("chosen"), d.chosen, MESSAGES_LARGE),
                rejected=_common(self.table.column("rejected"), d.rejected, MESSAGES_LARGE),
            )
        else:
            both = _Data(None, None, texts=_common(self.table.column("text"), d.texts, pa.large_string()))
        # the reference always wins its clusters: rank by a score of +inf
        prio = _priority(d, keep, score, source, len(d))
        both.table = pa.Table.from_pydict(
            {"__prio": pa.array(-np.concatenate([np.full(n_ref, -np.inf), prio]))}
        )
        res = _run(
            both,
            {**self.params, "against": True},
            keep="score",
            score="__prio",
            source=source,
            pair_checks=True,
            num_threads=num_threads,
            n_ref=n_ref,
            ref_keys=self.keys,
        )
        # the rows of `data`: duplicate_of points into the reference, or (for
        # duplicates within `data`) into `data`, whose rows follow the reference's
        sl = slice(n_ref, None)
        dup = res.duplicate_of[sl].copy()
        inside = dup >= n_ref
        dup[inside] -= n_ref
        # name each cluster by its first row of `data`
        cluster = res.cluster_id[sl].copy()
        rows = np.arange(len(cluster))
        first: dict[int, int] = {}
        for c, r in zip(cluster[cluster >= 0].tolist(), rows[cluster >= 0].tolist()):
            first.setdefault(c, r)
        cluster = np.array([first[c] if c >= 0 else -1 for c in cluster.tolist()], dtype=np.int64)
        ref_ids = self.table.column("id").to_pylist() if "id" in self.table.column_names else None
        own_ids = (
            d.table.column("id").to_pylist() if d.table is not None and "id" in d.table.column_names else None
        )

        def target_id(x: int, ins: bool) -> str | None:
            src = own_ids if ins else ref_ids
            return None if x < 0 or src is None or src[x] is None else str(src[x])

        dup_ids = [target_id(x, ins) for x, ins in zip(dup.tolist(), inside.tolist())]
        where = [
            None if x < 0 else ("self" if ins else "reference")
            for x, ins in zip(dup.tolist(), inside.tolist())
        ]
        info = {**res.info, "reference_rows": n_ref}
        return DedupResult(
            dup, cluster, res.similarity[sl], res.reason[sl], res.params, info, d, dup_ids, where
        )


__all__ = ["DedupIndex", "DedupResult", "dedup", "lsh_params", "permutations"]
