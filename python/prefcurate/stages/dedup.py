"""Pair-aware deduplication: exact and near-duplicate, with provenance.

``dedup(data, level="prompt", method="minhash", threshold=0.8)`` removes, in
order:

1. ``degenerate_pair``: the chosen answer equals the rejected one (pairs only);
2. ``contradictory_pair``: the same prompt with the preferences swapped in
   another row (pairs only; both rows go, each pointing at the other);
3. ``exact_duplicate``: identical keys once normalised (NFKC, case,
   whitespace: each optional);
4. ``near_duplicate`` (``method="minhash"``): MinHash signatures over token,
   word or character shingles, LSH buckets with bands and rows derived from the
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

Shingle units (``shingle=``): ``token`` (the default) is every token that
carries meaning: runs of letters and digits of any length (numbers and
one-letter words included), each other non-space character (operators,
symbols, punctuation) on its own, each Han / kana character on its own; so
``"What is 2 + 3?"`` and ``"What is 4 + 5?"`` are different problems.
``word`` is the decontamination tokeniser's words (runs of two or more word
characters: numbers of one digit, one-letter words and symbols are dropped),
``char`` the characters of the normalised key.

Short, empty and missing texts: a text with fewer units than one shingle
(for token and word shingles its tokens and role markers; for character
shingles the characters of its normalised key, which holds a separator before
and after each part, so an empty text has two) has a single shingle, the
whole text: it is near-linked only to texts with the same units (Jaccard 1),
never to longer texts that contain it.  With token or word shingles a text
without any token (empty or only spaces; with word shingles also only
punctuation and one-letter words) has no shingle and no LSH key and is
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from ..arrays import constant_strings, from_numpy, strings, to_numpy
from ..config import StageConfig, in_range, is_bool, param
from ..errors import InvalidInputError
from ..inputs import Resolved, is_message_list, resolve
from ..schema import EngineRows, Splitter, StageResult

STAGE = "dedup"
Level = Literal["prompt", "prompt_chosen", "pair"]
ShingleKind = Literal["token", "word", "char"]
FamilyKind = Literal["fast", "datasketch"]
LEVELS = ("prompt", "prompt_chosen", "pair")
METHODS = ("exact", "minhash")
SHINGLES = ("token", "word", "char")
FAMILIES = ("fast", "datasketch")
#: The most MinHash permutations (and so LSH bands) a run may use.
MAX_PERM = 8192
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
    fallback, fallback_p = (1, num_perm), -1.0
    bs, rs = [], []  # the bandings that keep the recall, by bands then rows
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p_at = 1 - (1 - at**r) ** b
            if p_at < recall:
                if p_at > fallback_p:
                    fallback, fallback_p = (b, r), p_at
                continue
            bs.append(b)
            rs.append(r)
    if not bs:
        return fallback
    # every candidate curve at once, one row per banding, each value computed
    # as for that banding alone (numpy squares a power of 2 itself, so those
    # rows are raised on their own), each row's sum as np.sum of the row
    powers = [lo**r for r in range(max(rs) + 1)]
    step = np.diff(lo)
    fp = np.empty(len(bs))
    for at_row in range(0, len(bs), 2048):  # blocks of rows: bounded memory
        b_col = np.array(bs[at_row : at_row + 2048])
        base = 1 - np.stack([powers[r] for r in rs[at_row : at_row + 2048]])
        raised = np.empty_like(base)
        two = b_col == 2
        raised[two] = base[two] ** 2
        raised[~two] = base[~two] ** b_col[~two, None].astype(np.float64)
        y = 1 - raised
        fp[at_row : at_row + len(b_col)] = np.sum((y[:, 1:] + y[:, :-1]) / 2 * step, axis=1)
    k = int(np.argmin(fp))  # the first of equals, as the bands and rows ascend
    return bs[k], rs[k]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` (odd) and ``b`` of datasketch's "affine32" permutations for
    ``seed``: ``MinHash(num_perm, seed)`` draws the same."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.astype(np.uint32), b.astype(np.uint32)


def _keep_policy(v: Any) -> str | None:
    if v in ("first", "score") or (isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v)):
        return None
    return "'first', 'score' or a list of sources by priority"


def _keep_convert(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _parse_keep(s: str) -> Any:
    return s if s in ("first", "score") else tuple(x.strip() for x in s.split(",") if x.strip())


@dataclass(frozen=True)
class DedupConfig(StageConfig):
    """The dedup stage's settings (see the module docstring)."""

    stage: ClassVar[str] = STAGE

    level: Level = param(
        "prompt",
        "what a key covers: the prompt turns, plus the chosen answer, or the whole pair",
        choices=LEVELS,
    )
    method: str = param("minhash", "exact keys only, or exact then MinHash near duplicates", choices=METHODS)
    threshold: float = param(
        0.8, "Jaccard similarity from which two rows are near duplicates", check=in_range(0.0, 1.0)
    )
    text: str | None = param(
        None, "text column of a table (default: the chosen / rejected pairs, else 'prompt')", cli=False
    )
    keep: Any = param(
        "first",
        "which row of a cluster stays: first, score (highest), or sources by priority (a,b,c)",
        check=_keep_policy,
        convert=_keep_convert,
        parse=_parse_keep,
        metavar="POLICY",
    )
    score: str = param("score", "score column for keep=score")
    source: str = param("source", "source column for a source priority list")
    nfkc: bool = param(True, "NFKC-normalise before keys and shingles", check=is_bool)
    lowercase: bool = param(True, "lowercase before keys and shingles", check=is_bool)
    whitespace: bool = param(True, "collapse whitespace before keys and shingles", check=is_bool)
    shingle: ShingleKind = param(
        "token",
        "shingle units: token (every token that carries meaning: words of any length, numbers, single "
        "letters, operators and symbols, Han and kana characters one each), word (the decontamination "
        "tokeniser's words of 2+ word characters, which drops numbers and one-letter words), or char",
        choices=SHINGLES,
    )
    ngram: int = param(5, "units per shingle", check=in_range(1, 1 << 20, integer=True))
    num_perm: int = param(128, "MinHash permutations", check=in_range(1, MAX_PERM, integer=True))
    bands: int | None = param(
        None,
        "LSH bands (default: derived from the threshold for recall)",
        check=in_range(1, MAX_PERM, integer=True, allow_none=True),
    )
    rows: int | None = param(
        None, "LSH rows per band (with --bands)", check=in_range(1, MAX_PERM, integer=True, allow_none=True)
    )
    permutations_: FamilyKind = param(
        "fast",
        "shingle hash: fast, or datasketch (SHA-1, datasketch's signatures bit for bit)",
        choices=FAMILIES,
    )
    seed: int = param(1, "MinHash seed", check=in_range(0, 2**32 - 1, integer=True))
    pair_checks: bool = param(True, "remove degenerate and contradictory pairs first", check=is_bool)

    def validate(self) -> None:
        if (self.bands is None) != (self.rows is None):
            raise InvalidInputError(f"{STAGE}: give bands and rows together, or neither")

    @property
    def norm(self) -> tuple[bool, bool, bool]:
        return (self.nfkc, self.lowercase, self.whitespace)

    @property
    def banding(self) -> tuple[int, int]:
        """(bands, rows) of the LSH: as given, else chosen for recall by :func:`lsh_params`."""
        if self.bands and self.rows:
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm)

    def params(self) -> dict[str, Any]:
        """The parameters a run records (``DedupResult.params``)."""
        params: dict[str, Any] = {
            "level": self.level,
            "method": self.method,
            "threshold": self.threshold,
            "norm": list(self.norm),
            "shingle": [self.shingle, self.ngram],
            "num_perm": self.num_perm,
            "permutations": self.permutations_,
            "seed": self.seed,
            "keep": self.keep if isinstance(self.keep, str) else list(self.keep),
        }
        if self.method == "minhash":
            params["bands"], params["rows"] = self.banding
        return params

    def level_for(self, pairs: bool) -> Level:
        """The key level for data of pairs, or ``prompt`` for a text column."""
        return self.level if pairs else "prompt"

    def near_kwargs(self, pairs: bool) -> dict[str, Any]:
        """The MinHash / LSH keywords of the core's near-duplicate kernels."""
        a, b = permutations(self.num_perm, self.seed)
        bands, rows = self.banding
        return {
            "level": self.level_for(pairs),
            "norm_opts": self.norm,
            "shingle_kind": self.shingle,
            "shingle_n": self.ngram,
            "family_kind": self.permutations_,
            "a": a,
            "b": b,
            "bands": bands,
            "rows_per_band": rows,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DedupConfig:
        """The config a saved ``params`` record was made from."""
        nfkc, lowercase, whitespace = params["norm"]
        kw: dict[str, Any] = {
            "level": params["level"],
            "method": params["method"],
            "threshold": params["threshold"],
            "nfkc": nfkc,
            "lowercase": lowercase,
            "whitespace": whitespace,
            "shingle": params["shingle"][0],
            "ngram": params["shingle"][1],
            "num_perm": params["num_perm"],
            "permutations_": params["permutations"],
            "seed": params["seed"],
        }
        if "keep" in params:
            kw["keep"] = params["keep"]
        if params.get("bands") and params.get("rows"):
            kw["bands"], kw["rows"] = params["bands"], params["rows"]
        return cls(**kw)


# ---------------------------------------------------------------- inputs


@dataclass
class DedupData:
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


def as_data(data: Any, text: str | None) -> DedupData:
    """A table with chosen / rejected message lists is deduplicated as pairs
    (unless ``text`` names a column); anything else as texts."""
    res = resolve(data, text=text, what="dedup")
    t = res.table
    if (
        text is None
        and t is not None
        and "chosen" in t.column_names
        and "rejected" in t.column_names
        and is_message_list(t.column("chosen").type)
        and is_message_list(t.column("rejected").type)
    ):
        return DedupData(res, t, chosen=t.column("chosen"), rejected=t.column("rejected"))
    # a list of str goes to Rust as it is (read in place; a non-str item is
    # reported there with its row)
    return DedupData(res, t, texts=res.texts)


# ---------------------------------------------------------------- result


@dataclass
class DedupResult(EngineRows):
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
    #: per row: the id of the row it duplicates (None if unknown)
    _dup_ids: list | None = field(default=None, repr=False)
    #: per row: "self" or "reference" (dedup against an index only)
    _duplicate_in: list | None = field(default=None, repr=False)
    #: the verified near-duplicate links (i, j, jaccard), i < j
    links: pa.Table = field(
        default_factory=lambda: pa.Table.from_pydict(
            {"i": pa.nulls(0), "j": pa.nulls(0), "jaccard": pa.nulls(0)}
        )
    )
    #: gives (kept, removed) rows from the removed mask and the attribution:
    #: the engine's (tables in the kind the data came in, or lazy Ray datasets)
    _splitter: Splitter | None = field(default=None, repr=False)
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
            "stage": constant_strings(STAGE, len(rem)),
            "reason": strings(self.reason[rem].tolist()),
            "row_index": from_numpy(rem.astype(np.int64)),
            "duplicate_of": from_numpy(dup, mask=dup < 0),
            "duplicate_of_id": (
                pa.nulls(len(rem), pa.string()) if ids is None else strings([ids[i] for i in rem.tolist()])
            ),
            "cluster_id": from_numpy(cl, mask=cl < 0),
            "similarity": from_numpy(sim, mask=np.isnan(sim)),
        }
        if self._duplicate_in is not None:
            cols["duplicate_in"] = strings([self._duplicate_in[i] for i in rem.tolist()])
        return pa.Table.from_pydict(cols)

    def _split_args(self) -> tuple[np.ndarray, pa.Table, str]:
        return self.removed_mask, self.attribution(), "row_index"

    def stage_result(self) -> StageResult:
        """As a :class:`StageResult` (tables, or lazy Ray datasets on Ray)."""
        kept, removed = self.kept, self.removed
        if isinstance(kept, list) or isinstance(removed, list):
            raise InvalidInputError("stage_result needs table input")
        s = self.summary()
        return StageResult(
            STAGE,
            kept,
            removed,
            s["input"],
            {"params": self.params, **self.info},
            n_kept=s["kept"],
            by_reason=s["by_reason"],
            rows_ops=self._rows_ops(),
        )

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


# ---------------------------------------------------------------- decision


def priority(data: DedupData, keep: Any, score: str, source: str, n: int) -> np.ndarray:
    """A sort key per row: lower is kept first (ties: lower row index)."""
    table = data.table
    if keep == "first":
        return np.zeros(n)
    if keep == "score":
        if table is None or score not in table.column_names:
            raise InvalidInputError(f"dedup: keep='score' needs a {score!r} column")
        s = to_numpy(table.column(score).cast(pa.float64()), fill=np.nan)
        return np.where(np.isnan(s), np.inf, -s)
    if isinstance(keep, (list, tuple)):
        if table is None or source not in table.column_names:
            raise InvalidInputError(f"dedup: a source priority list needs a {source!r} column")
        order = {s: i for i, s in enumerate(keep)}
        return np.array([order.get(s, len(order)) for s in table.column(source).to_pylist()], dtype=float)
    raise InvalidInputError(f"dedup: keep must be 'first', 'score' or a list of sources, got {keep!r}")


def choose(
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


def contradictions(
    straight: np.ndarray, swapped: np.ndarray, candidates: np.ndarray, deciding: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Contradictory pairs: row ``i`` (among ``deciding``) whose straight pair
    key equals the swapped key of another row ``j`` (the first such row
    among ``candidates``).  ``straight`` / ``swapped``: per row, the first
    row of its key group.  Returns (rows, the row each contradicts)."""
    first_swapped: dict[int, int] = {}
    for j in candidates.tolist():
        first_swapped.setdefault(int(swapped[j]), j)
    rows, others = [], []
    for i in deciding.tolist():
        other = first_swapped.get(int(straight[i]))
        if other is not None and other != i:
            rows.append(i)
            others.append(other)
    return np.array(rows, np.int64), np.array(others, np.int64)


@dataclass
class Links:
    """What the kernels found, for :func:`decide`: the engines differ in how
    they find it (one core call, or keys shuffled across a cluster), not in
    what it is.

    ``exact``: per row, the first row with the same normalised key.
    ``degenerate``: rows whose chosen answer equals the rejected one.
    ``contra``: (rows, the row each contradicts).  ``near``: verified
    near-duplicate links (i < j, sorted, Jaccard >= threshold).
    ``jaccard``: computes the exact Jaccard of pairs not among the links."""

    exact: np.ndarray
    jaccard: Callable[[np.ndarray, np.ndarray], np.ndarray]
    degenerate: np.ndarray | None = None
    contra: tuple[np.ndarray, np.ndarray] | None = None
    near: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _empty_links() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)


def decide(
    links: Links,
    prio: np.ndarray,
    config: DedupConfig,
    *,
    n_ref: int = 0,
    ids: list | None = None,
) -> DedupResult:
    """The decision step, the same on every engine: clusters (union-find over
    the exact and near links among rows still alive), the kept row of each
    (the keep priority, then the row order), and every removed row's reason
    and provenance.  The first ``n_ref`` rows are a reference that is never
    removed (links among them are ignored)."""
    from .. import _core

    n = len(links.exact)
    reason = np.array([None] * n, dtype=object)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    cluster_id = np.full(n, -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    is_ref = np.zeros(n, dtype=bool)
    is_ref[:n_ref] = True
    info: dict[str, Any] = {}
    if links.degenerate is not None:
        degenerate = links.degenerate & ~is_ref
        reason[degenerate] = "degenerate_pair"
        alive &= ~degenerate
        rows, others = links.contra if links.contra is not None else (np.zeros(0, np.int64),) * 2
        reason[rows] = "contradictory_pair"
        duplicate_of[rows] = others
        cluster_id[rows] = np.minimum(rows, others)
        alive[rows] = False
        info["degenerate"] = int(degenerate.sum())
        info["contradictory"] = len(rows)
    exact = links.exact.astype(np.int64)
    near_i, near_j, near_v = links.near if links.near is not None else _empty_links()
    ex_i, ex_j = exact_edges(exact, alive)
    ei, ej = np.concatenate([ex_i, near_i]), np.concatenate([ex_j, near_j])
    if links.near is not None:
        info.update(links.info)
        info["near_links"] = len(near_i)
    # links through rows already removed (degenerate, contradictory) do not count
    ok = alive[ei] & alive[ej] & ~(is_ref[ei] & is_ref[ej])
    ei, ej = ei[ok], ej[ok]
    cluster = _core.union_clusters(n, ei.astype(np.uint32).tolist(), ej.astype(np.uint32).tolist()).astype(
        np.int64
    )
    rep = choose(cluster, prio, alive, forced=is_ref)
    sizes = np.bincount(cluster[alive], minlength=n) if n else np.zeros(0, np.int64)
    in_cluster = alive & (sizes[cluster] > 1) if n else np.zeros(0, bool)
    dup = alive & (rep != np.arange(n)) & ~is_ref
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
        sims, found = lookup_pairs(lo, hi, near_i, near_j, near_v)
        miss = np.flatnonzero(~found)
        if len(miss):
            sims[miss] = links.jaccard(lo[miss], hi[miss])
        similarity[near_members] = sims
    info["clusters"] = int(np.sum(sizes[np.flatnonzero(sizes)] > 1)) if n else 0
    dup_ids = None
    if ids is not None:
        dup_ids = [None if x < 0 or ids[x] is None else str(ids[x]) for x in duplicate_of.tolist()]
    out = DedupResult(duplicate_of, cluster_id, similarity, reason, config.params(), info, dup_ids)
    out.links = pa.Table.from_pydict(
        {
            "i": from_numpy(near_i.astype(np.int64)),
            "j": from_numpy(near_j.astype(np.int64)),
            "jaccard": from_numpy(np.asarray(near_v, np.float64)),
        }
    )
    return out
