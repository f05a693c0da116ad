"""prefcurate in forked children (``datasets.map(num_proc=...)``, process pools).

After ``fork()`` a child has only the forking thread: the worker threads of
the thread pool the parent started are gone, and work sent to that pool
waits for ever.  Each test here first uses the pool in the parent, then runs
work in children of a fork-context ``ProcessPoolExecutor``, each with a
deadline, so that a hang fails the test instead of hanging the run.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import prefcurate

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="no fork() on Windows"),
    # Python 3.12+ warns about fork() in a process with threads: that is the point here
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

#: seconds a child may take before the test fails
DEADLINE = float(__import__("os").environ.get("PREFCURATE_FORK_DEADLINE", "60"))

BENCH = [
    "What is the capital of France? Answer with the name of the city only please.",
    "Write a short poem about the sea and the sky at night, in four lines.",
    "Explain how a hash table works to a ten year old child in simple words.",
]
TRAIN = [
    "Hello! What is the capital of France? Answer with the name of the city only please.",
    "Tell me a joke about cats and dogs.",
    "Write a short poem about the sea and the sky at night, in four lines. Thanks!",
    "Nothing to see here at all.",
]
TEXTS = [
    "the quick brown fox jumps over the lazy dog near the river bank today",
    "an entirely different sentence about something else altogether here",
    "The quick brown fox jumps over the lazy dog near the river bank today",
    "the quick brown fox jumps over the lazy dog near the river bank today!",
]


def scan(index: Any) -> list[int]:
    """The training rows ``index`` flags (a scan on the thread pool)."""
    res = prefcurate.decontaminate(TRAIN, index)
    return [i for i, c in enumerate(res.contaminated.tolist()) if c]


def dedup() -> list[int]:
    """The rows ``prefcurate.dedup`` removes from ``TEXTS`` (exact and MinHash)."""
    res = prefcurate.dedup(TEXTS, method="minhash", threshold=0.5)
    return [i for i, d in enumerate(res.duplicate_of.tolist()) if d >= 0]


def load_and_scan(path: str) -> list[int]:
    return scan(prefcurate.BenchmarkIndex.load(path))


def unpickle_and_scan(data: bytes) -> list[int]:
    return scan(pickle.loads(data))


def build_and_scan() -> list[int]:
    return scan(prefcurate.BenchmarkIndex(BENCH))


def scan_inherited() -> list[int]:
    return scan(_INHERITED["index"])


_INHERITED: dict[str, Any] = {}


def interrupted_band_keys() -> tuple[float, float]:
    """LSH band keys of enough rows to take about 10 s (one long text, read
    in place from a list: little memory), interrupted by SIGINT after 0.3 s:
    (seconds the whole call would take, seconds from the signal to
    ``KeyboardInterrupt``)."""
    import numpy as np

    from prefcurate import _core

    text = " ".join(f"word{i}" for i in range(2000))
    params: dict[str, Any] = {
        "level": "prompt",
        "norm_opts": (True, True, True),
        "shingle_kind": "word",
        "shingle_n": 5,
        "family_kind": "datasketch",
        "a": np.arange(1, 257, 2, dtype=np.uint32),
        "b": np.arange(128, dtype=np.uint32),
        "bands": 16,
        "rows_per_band": 8,
    }
    start = time.perf_counter()
    _core.dedup_band_keys(texts=[text] * 100, **params)
    whole = 10.0
    n = max(int(100 * whole / max(time.perf_counter() - start, 1e-4)), 10_000)
    sent: list[float] = []

    def interrupt() -> None:
        time.sleep(0.3)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        _core.dedup_band_keys(texts=[text] * n, **params)
    except KeyboardInterrupt:
        return whole, time.perf_counter() - sent[0]
    return whole, float("inf")


def in_fork_children(fn: Callable[..., Any], *args: Any, tasks: int = 2) -> list[Any]:
    """``fn(*args)`` in ``tasks`` tasks of a fork-context process pool, each
    within ``DEADLINE`` seconds; the pool's processes are killed if one is late."""
    pool = cf.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("fork"))
    ok = False
    try:
        futures = [pool.submit(fn, *args) for _ in range(tasks)]
        _, late = cf.wait(futures, timeout=DEADLINE)
        if late:
            pytest.fail(f"{fn.__name__} did not finish within {DEADLINE:.0f} s in a forked child (a hang)")
        out = [f.result() for f in futures]
        ok = True
        return out
    finally:
        if not ok:
            for p in list(getattr(pool, "_processes", {}).values()):
                p.kill()
        pool.shutdown(wait=ok, cancel_futures=True)


@pytest.fixture(scope="module")
def parent_index() -> Any:
    """An index built in the parent, which also scans and deduplicates with
    it first: the parent's thread pool is running when the children fork."""
    index = prefcurate.BenchmarkIndex(BENCH)
    assert scan(index) == [0, 2]
    assert dedup() == [2, 3]
    return index


def test_load_in_forked_children(parent_index: Any, tmp_path: Any) -> None:
    path = tmp_path / "bench.idx"
    parent_index.save(path)
    assert in_fork_children(load_and_scan, str(path)) == [[0, 2], [0, 2]]


def test_unpickle_in_forked_children(parent_index: Any) -> None:
    data = pickle.dumps(parent_index)
    assert in_fork_children(unpickle_and_scan, data) == [[0, 2], [0, 2]]


def test_build_in_forked_children(parent_index: Any) -> None:
    assert in_fork_children(build_and_scan) == [[0, 2], [0, 2]]


def test_scan_with_inherited_index(parent_index: Any) -> None:
    _INHERITED["index"] = parent_index
    try:
        assert in_fork_children(scan_inherited) == [[0, 2], [0, 2]]
    finally:
        _INHERITED.clear()


def test_dedup_in_forked_children(parent_index: Any) -> None:
    assert in_fork_children(dedup) == [[2, 3], [2, 3]]


def test_ctrl_c_stops_a_long_call_in_a_forked_child(parent_index: Any) -> None:
    # the core checks between chunks of work; the binding turns SIGINT into
    # KeyboardInterrupt while the call runs, not after it
    [(whole, latency)] = in_fork_children(interrupted_band_keys, tasks=1)
    assert latency < 2.0, (
        f"KeyboardInterrupt came {latency:.1f} s after SIGINT (the call takes {whole:.0f} s)"
    )
