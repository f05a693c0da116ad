"""The scoring run: a producer thread templates, tokenises and plans the
next chunk while one worker thread per device scores batches from a shared
queue; out-of-memory batches are split in halves; finished scores go to the
cache as they arrive.  Works on a :class:`~.scorer.RewardScorer` (``sc``)
through its attributes; the model is only ever called through
``sc._forward``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._progress import ProgressArg, progress_callback
from .batching import Layout, packed_layout, padded_layout, plan_batches, plan_packs
from .models import Worker, _is_oom, _torch
from .results import Encoded, ScoreResult, ScoringError, ScoringStats

if TYPE_CHECKING:
    from .scorer import RewardScorer

log = logging.getLogger("prefcurate.scoring")


@dataclass
class _Batch:
    rows: np.ndarray  # global row indices
    keys: list[bytes]
    seqs: list[np.ndarray]  # token ids per row
    pool: np.ndarray  # index of the token read per row
    layout: Layout
    tensors: dict[str, Any]  # the layout's arrays as (pinned on CUDA) tensors


@dataclass
class _Scored:
    rows: np.ndarray
    keys: list[bytes]
    scores: np.ndarray
    device: str
    real_tokens: int
    padded_tokens: int
    batches: int


@dataclass
class _Cached:
    rows: np.ndarray
    scores: np.ndarray


@dataclass
class _Failure:
    exc: BaseException


class _Done:
    pass


def _tensors(layout: Layout, pin: bool) -> dict[str, Any]:
    torch = _torch()
    out = {"input_ids": torch.from_numpy(layout.input_ids)}
    if layout.position_ids is not None:
        out["position_ids"] = torch.from_numpy(layout.position_ids)
    if layout.segments is not None:
        out["segments"] = torch.from_numpy(layout.segments)
    if pin:
        out = {k: v.pin_memory() for k, v in out.items()}
    return out


def plan(sc: RewardScorer, lengths: np.ndarray, budget: int) -> list[list[np.ndarray]]:
    """Batches of row positions, each a list of bins (packed rows); one bin
    per row of a padded batch."""
    if not sc.packing:
        return [[np.array([k]) for k in b] for b in plan_batches(lengths, budget, sc.max_batch_size)]
    varlen = sc.packing_mode == "varlen"
    alone = None if varlen or sc.sliding_window is None else lengths > sc.sliding_window
    return plan_packs(
        lengths,
        budget if varlen else min(sc.pack_capacity, budget),
        budget,
        max_batch_size=sc.max_batch_size,
        max_bins=1 if varlen else None,
        alone=alone,
    )


def layout(
    sc: RewardScorer, seqs: Sequence[np.ndarray], pool: np.ndarray, bins: Sequence[np.ndarray]
) -> Layout:
    if sc.packing:
        return packed_layout(seqs, pool, bins, sc.pad_token_id)
    return padded_layout(seqs, pool, sc.pad_token_id)


def run(
    sc: RewardScorer,
    n: int,
    encode: Callable[[int, int], Encoded],
    progress: ProgressArg,
    labels: Callable[[int], str] | None = None,
) -> ScoreResult:
    """Score ``n`` rows, encoded chunk by chunk by ``encode(a, b)``."""
    torch = _torch()
    sc._labels = labels
    t0 = time.perf_counter()
    scores = np.full(n, np.nan, dtype=np.float32)
    filled = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    n_tokens = np.zeros(n, dtype=np.int64)
    n_original = np.zeros(n, dtype=np.int64)
    pooled = np.full(n, -1, dtype=np.int64)
    stats = ScoringStats(rows=n)
    cached = sc.cache.load() if sc.cache is not None else {}
    stop = threading.Event()
    work_q: queue.Queue[Any] = queue.Queue(maxsize=2 * len(sc._workers) + 1)
    result_q: queue.Queue[Any] = queue.Queue()
    pin = sc._workers[0].device.type == "cuda"

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                work_q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for a in range(0, n, sc.chunk_size):
                b = min(n, a + sc.chunk_size)
                enc = encode(a, b)
                lengths = np.array([len(x) for x in enc.ids], dtype=np.int64)
                truncated[a:b], n_tokens[a:b], n_original[a:b] = enc.truncated, lengths, enc.n_original
                keys = [sc._row_key(x) for x in enc.ids]
                for bins in plan(sc, lengths, sc.token_budget):
                    part = np.concatenate(bins)
                    hit = np.array([keys[k] in cached for k in part], dtype=bool)
                    if hit.any():
                        result_q.put(
                            _Cached(a + part[hit], np.array([cached[keys[k]] for k in part[hit]], np.float32))
                        )
                    if hit.all():
                        continue
                    todo = part[~hit]
                    where = {int(k): j for j, k in enumerate(todo)}
                    kept = [np.array([where[int(k)] for k in b if int(k) in where]) for b in bins]
                    seqs = [np.asarray(enc.ids[k], dtype=np.int64) for k in todo]
                    pool = np.array([sc._pool_index(s) for s in seqs], dtype=np.int64)
                    pooled[a + todo] = pool
                    lay = layout(sc, seqs, pool, [k for k in kept if len(k)])
                    batch = _Batch(a + todo, [keys[k] for k in todo], seqs, pool, lay, _tensors(lay, pin))
                    if not put(batch):
                        return
                if stop.is_set():
                    return
            for _ in sc._workers:
                if not put(None):
                    return
        except BaseException as e:
            result_q.put(_Failure(e))

    def work(w: Worker) -> None:
        try:
            if w.device.type == "cuda":
                torch.cuda.set_device(w.device)
            with torch.inference_mode():
                while not stop.is_set():
                    try:
                        item = work_q.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if item is None:
                        result_q.put(_Done())
                        return
                    counts = [0, 0, 0]
                    out = score_batch(
                        sc, w, item.seqs, item.pool, item.rows, counts, item.layout, item.tensors
                    )
                    result_q.put(_Scored(item.rows, item.keys, out, w.name, counts[0], counts[1], counts[2]))
        except BaseException as e:
            result_q.put(_Failure(e))

    threads = [threading.Thread(target=produce, name="prefcurate-tokenize", daemon=True)]
    threads += [
        threading.Thread(target=work, args=(w,), name=f"prefcurate-{w.name}", daemon=True)
        for w in sc._workers
    ]
    oom_before = sum(w.oom_retries for w in sc._workers)
    error: BaseException | None = None
    last_flush = time.monotonic()

    def take(msg: Any) -> None:
        nonlocal last_flush
        if isinstance(msg, (_Scored, _Cached)):
            if filled[msg.rows].any():
                raise ScoringError(f"internal error: rows {msg.rows[filled[msg.rows]].tolist()} scored twice")
            scores[msg.rows] = msg.scores
            filled[msg.rows] = True
        if isinstance(msg, _Cached):
            stats.rows_cached += len(msg.rows)
        elif isinstance(msg, _Scored):
            stats.rows_computed += len(msg.rows)
            stats.batches += msg.batches
            stats.real_tokens += msg.real_tokens
            stats.padded_tokens += msg.padded_tokens
            stats.rows_by_device[msg.device] = stats.rows_by_device.get(msg.device, 0) + len(msg.rows)
            if sc.cache is not None:
                sc.cache.add(msg.keys, msg.scores)
                if (
                    sc.cache.pending >= sc.cache_flush_rows
                    or time.monotonic() - last_flush >= sc.cache_flush_seconds
                ):
                    sc.cache.flush()
                    last_flush = time.monotonic()

    with progress_callback(progress, "scoring") as cb:
        for th in threads:
            th.start()
        try:
            done_workers = 0
            while done_workers < len(sc._workers):
                msg = result_q.get()
                if isinstance(msg, _Failure):
                    error = msg.exc
                    break
                if isinstance(msg, _Done):
                    done_workers += 1
                    continue
                take(msg)
                if cb is not None:
                    cb(int(filled.sum()), n)
        except BaseException as e:  # KeyboardInterrupt included: keep what was computed
            error = e
        finally:
            stop.set()
            for th in threads:
                th.join()
            while True:  # results that arrived after a failure are still worth caching
                try:
                    msg = result_q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(msg, (_Scored, _Cached)):
                    take(msg)
            if sc.cache is not None:
                sc.cache.flush()
    stats.oom_retries = sum(w.oom_retries for w in sc._workers) - oom_before
    stats.rows_truncated = int(truncated.sum())
    stats.seconds = time.perf_counter() - t0
    sc.last_stats = stats
    if error is not None:
        raise error
    if not filled.all():
        raise ScoringError(f"internal error: {int((~filled).sum())} rows were not scored")
    return ScoreResult(scores, truncated, n_tokens, n_original, stats, pooled)


# --------------------------------------------------------------------------- one batch on one device


def score_batch(
    sc: RewardScorer,
    w: Worker,
    seqs: list[np.ndarray],
    pool: np.ndarray,
    rows: np.ndarray,
    counts: list[int],
    lay: Layout,
    tensors: dict[str, Any] | None = None,
) -> np.ndarray:
    """Scores of one batch (in the order of ``seqs``); splits it in halves
    while it is over the worker's budget or runs out of memory."""
    torch = _torch()
    b = len(seqs)
    p, length = lay.input_ids.shape
    if b > 1 and lay.padded_tokens > w.budget:
        return _split(sc, w, seqs, pool, rows, counts)
    if tensors is None:
        tensors = _tensors(lay, False)
    oom: str | None = None
    x: Any = None
    mask: Any = None
    pos: Any = None
    where: Any = None
    try:
        dev = w.device
        x = tensors["input_ids"].to(dev, non_blocking=True)
        if "position_ids" in tensors and sc.packing_mode is not None:
            pos = tensors["position_ids"].to(dev, non_blocking=True)
        if "segments" in tensors and sc.packing_mode == "mask":
            mask = sc._block_mask(tensors["segments"].to(dev, non_blocking=True))
        elif not sc.packing and not sc.skip_padding_mask:
            lens = torch.from_numpy(lay.lengths).to(dev, non_blocking=True)
            mask = (torch.arange(length, device=dev)[None, :] < lens[:, None]).long()
        where = (torch.from_numpy(lay.pool_rows).to(dev), torch.from_numpy(lay.pool_cols).to(dev))
        out = sc._forward(w, x, mask, position_ids=pos, pool=where).cpu().numpy()
    except Exception as e:
        if not _is_oom(e):
            raise
        oom = f"{type(e).__name__}: {str(e)[:300]}"
    # retry outside the except block: the exception's traceback holds the
    # failed forward pass's activations until the block ends
    x = mask = pos = where = None
    if oom is not None:
        w.oom_retries += 1
        if w.device.type == "cuda":
            torch.cuda.empty_cache()
        if b == 1:
            raise ScoringError(
                f"{sc._label(sc._labels, int(rows[0]))} ({len(seqs[0])} tokens) does not fit in "
                f"{w.device} memory even alone; lower max_length ({oom})"
            )
        w.budget = max(max(len(s) for s in seqs), lay.padded_tokens // 2)
        log.warning("%s: out of memory on %d x %d tokens; retrying in halves", w.name, p, length)
        return _split(sc, w, seqs, pool, rows, counts)
    counts[0] += lay.real_tokens
    counts[1] += lay.padded_tokens
    counts[2] += 1
    return np.asarray(out, dtype=np.float32)


def _split(
    sc: RewardScorer, w: Worker, seqs: list[np.ndarray], pool: np.ndarray, rows: np.ndarray, counts: list[int]
) -> np.ndarray:
    """Score the two halves of a batch separately (a half that is still over
    the worker's budget is planned again within it)."""
    h = (len(seqs) + 1) // 2
    out = np.zeros(len(seqs), dtype=np.float32)
    for s in (slice(0, h), slice(h, len(seqs))):
        idx = np.arange(len(seqs))[s]
        sub = [seqs[k] for k in idx]
        lengths = np.array([len(x) for x in sub], dtype=np.int64)
        batches = plan(sc, lengths, w.budget) if sc.packing else [[np.array([k]) for k in range(len(sub))]]
        for bins in batches:
            part = np.concatenate(bins)
            where = {int(k): j for j, k in enumerate(part)}
            lay = layout(
                sc,
                [sub[k] for k in part],
                pool[idx[part]],
                [np.array([where[int(k)] for k in b]) for b in bins],
            )
            out[idx[part]] = score_batch(
                sc, w, [sub[k] for k in part], pool[idx[part]], rows[idx[part]], counts, lay
            )
    return out
