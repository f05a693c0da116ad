"""Batch plans and batch layouts (numpy only).

Padded batches: rows sorted longest first, each batch filled while
``rows x longest <= token_budget``, padded on the right.  Packed batches:
rows first-fit (longest first) into bins of at most ``capacity`` tokens,
each bin one row of concatenated sequences whose positions restart at 0;
bins grouped while ``bins x longest bin <= token_budget``.  A layout holds
the arrays of one batch and, for every sequence, the (row, column) of the
token its score is read at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def plan_batches(
    lengths: np.ndarray, token_budget: int, max_batch_size: int | None = None
) -> list[np.ndarray]:
    """Split row positions into batches: longest first (ties in input order),
    each filled while ``rows x longest <= token_budget`` (a row longer than the
    budget goes alone)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    order = np.lexsort((np.arange(n), -lengths))
    cap = max_batch_size or n or 1
    out = []
    i = 0
    while i < n:
        longest = max(int(lengths[order[i]]), 1)
        size = max(1, min(cap, token_budget // longest, n - i))
        out.append(order[i : i + size])
        i += size
    return out


def plan_packs(
    lengths: np.ndarray,
    capacity: int,
    token_budget: int,
    *,
    max_batch_size: int | None = None,
    max_bins: int | None = None,
    alone: np.ndarray | None = None,
) -> list[list[np.ndarray]]:
    """Packed batches of row positions: a list of batches, each a list of
    bins (one packed row each), each an array of row positions.

    Rows go longest first (ties in input order) into the first bin with room
    (first-fit decreasing; a row longer than ``capacity`` gets a bin of its
    own); bins, longest first, are grouped while ``bins x longest bin <=
    token_budget``, at most ``max_bins`` per batch and ``max_batch_size``
    rows per batch.  Rows flagged in ``alone`` get a batch of their own (the
    caller scores them unpacked).  Deterministic: the same lengths give the
    same plan."""
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    n = len(lengths)
    order = np.lexsort((np.arange(n), -lengths))
    cap_rows = max_batch_size or n or 1
    room = np.zeros(n, dtype=np.int64)  # free tokens per bin (-1: closed)
    used = np.zeros(n, dtype=np.int64)
    bins: list[list[int]] = []
    solo: list[list[np.ndarray]] = []
    for i in order:
        length = int(lengths[i])
        if alone is not None and alone[i]:
            solo.append([np.array([i])])
            continue
        nb = len(bins)
        fits = room[:nb] >= length
        k = int(fits.argmax()) if nb else 0
        if nb == 0 or not fits[k]:
            k = nb
            bins.append([])
            room[k] = max(capacity, length)
        bins[k].append(int(i))
        room[k] -= length
        used[k] += length
        if len(bins[k]) >= cap_rows:
            room[k] = -1
    totals = used[: len(bins)]
    by_size = np.lexsort((np.arange(len(bins)), -totals))
    out: list[list[np.ndarray]] = []
    cur: list[np.ndarray] = []
    cur_rows = 0
    longest = 0
    for k in by_size:
        b = np.array(bins[k], dtype=np.int64)
        t = int(totals[k])
        if cur and (
            (len(cur) + 1) * max(longest, t) > token_budget
            or (max_bins is not None and len(cur) >= max_bins)
            or cur_rows + len(b) > cap_rows
        ):
            out.append(cur)
            cur, cur_rows, longest = [], 0, 0
        cur.append(b)
        cur_rows += len(b)
        longest = max(longest, t)
    if cur:
        out.append(cur)
    return out + solo


@dataclass
class Layout:
    """The arrays of one batch.  ``pool_rows`` / ``pool_cols``: where each
    sequence's score is read (in the order the sequences were given)."""

    input_ids: np.ndarray  # int64 [P, T]
    lengths: np.ndarray  # int64 [P]: real (non-filler) tokens per row
    pool_rows: np.ndarray  # int64 [n]
    pool_cols: np.ndarray  # int64 [n]
    position_ids: np.ndarray | None = None  # int64 [P, T], packed rows only
    segments: np.ndarray | None = None  # int32 [P, T], packed rows with >1 segment only

    @property
    def padded_tokens(self) -> int:
        return int(self.input_ids.size)

    @property
    def real_tokens(self) -> int:
        return int(self.lengths.sum())


def padded_layout(seqs: Sequence[Sequence[int] | np.ndarray], pool: np.ndarray, pad_id: int) -> Layout:
    """One sequence per row, padded on the right to the longest."""
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    arr = np.full((len(seqs), int(lens.max())), pad_id, dtype=np.int64)
    for r, s in enumerate(seqs):
        arr[r, : lens[r]] = s
    return Layout(arr, lens, np.arange(len(seqs), dtype=np.int64), np.asarray(pool, dtype=np.int64))


def packed_layout(
    seqs: Sequence[Sequence[int] | np.ndarray], pool: np.ndarray, bins: Sequence[np.ndarray], pad_id: int
) -> Layout:
    """Each bin one row: its sequences concatenated, positions restarting at
    0 for each, the row padded on the right to the longest bin (the filler
    is a segment of its own).  ``segments`` is left out when there is
    nothing to separate (one row holding one sequence)."""
    totals = np.array([sum(len(seqs[k]) for k in b) for b in bins], dtype=np.int64)
    p, t = len(bins), int(totals.max())
    ids = np.full((p, t), pad_id, dtype=np.int64)
    pos = np.zeros((p, t), dtype=np.int64)
    seg = np.zeros((p, t), dtype=np.int32)
    rows = np.zeros(len(seqs), dtype=np.int64)
    cols = np.zeros(len(seqs), dtype=np.int64)
    for r, b in enumerate(bins):
        off = 0
        for j, k in enumerate(b):
            n = len(seqs[k])
            ids[r, off : off + n] = seqs[k]
            pos[r, off : off + n] = np.arange(n)
            seg[r, off : off + n] = j
            rows[k], cols[k] = r, off + int(pool[k])
            off += n
        if off < t:
            pos[r, off:] = np.arange(t - off)
            seg[r, off:] = len(b)
    single = p == 1 and len(bins[0]) == 1
    return Layout(ids, totals, rows, cols, position_ids=pos, segments=None if single else seg)
