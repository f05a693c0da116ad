"""The semantic stages on Ray give the local engine's results: embedding
(and, for decontamination, the exact search) in actors, the decision step
on the driver; small data cut into many batches."""

from __future__ import annotations

import hashlib
import logging
import sys

import numpy as np
import pyarrow as pa
import pytest

ray = pytest.importorskip("ray")
ray_data = pytest.importorskip("ray.data")

from prefcurate.embed import SemanticIndex  # noqa: E402
from prefcurate.engines import local_semantic as local  # noqa: E402
from prefcurate.engines.ray import semantic as ray_sem  # noqa: E402
from prefcurate.engines.ray import to_table  # noqa: E402
from prefcurate.stages import semantic as sem  # noqa: E402

OPTS = {"batch_size": 40, "concurrency": 2}
DIM = 16


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    # the test embedder travels to the actors by value (this module is not importable there)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ctx = ray_data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield
    ray.shutdown()


def _word(w: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(DIM)


def bow(texts: list[str]) -> np.ndarray:
    return np.stack([sum((_word(w) for w in t.lower().split()), np.zeros(DIM)) for t in texts]).astype(
        np.float32
    )


def _texts(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(200)]
    out = [" ".join(rng.choice(vocab, int(rng.integers(8, 14)))) for _ in range(n)]
    for i in range(1, n):
        if rng.random() < 0.25:
            w = out[int(rng.integers(i))].split()
            w[int(rng.integers(len(w)))] = str(rng.choice(vocab))
            out[i] = " ".join(w)
        elif rng.random() < 0.05:
            out[i] = out[int(rng.integers(i))]
    return out


def _table(texts: list[str]) -> pa.Table:
    n = len(texts)
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "prompt": texts,
            "id": [f"r{i}" for i in range(n)],
            "source": rng.choice(["a", "b", "c"], n).tolist(),
            "score": rng.random(n),
        }
    )


def test_decontamination_on_ray_equals_local():
    bench = pa.table({"prompt": _texts(1, 150), "subset": ["x", "y", "z"] * 50})
    train = _table(_texts(2, 300)[:250] + [t + " again" for t in bench.column("prompt").to_pylist()[:50]])
    cfg = sem.SemanticDecontaminateConfig(embedder=bow, threshold=0.8, k=3, block_size=37)
    a = local.decontaminate(train, bench, cfg)
    b = ray_sem.decontaminate(train, bench, cfg, options=OPTS)
    assert a.n_removed > 20
    assert (a.contaminated == b.contaminated).all()
    assert (a.best_index == b.best_index).all() and (a.best_score == b.best_score).all()
    assert a.matches.equals(b.matches)
    assert a.attribution.equals(b.attribution)
    assert (a.index.vectors == b.index.vectors).all()
    assert to_table(b.kept).equals(a.kept)
    assert to_table(b.removed).equals(a.removed)
    # calibrated thresholds agree too, and a prebuilt index is used as is
    cfg2 = cfg.replace(threshold=None)
    index = SemanticIndex.build(bench, bow)
    a2 = local.decontaminate(train, index, cfg2)
    b2 = ray_sem.decontaminate(train, index, cfg2, options=OPTS)
    assert a2.threshold == b2.threshold and (a2.contaminated == b2.contaminated).all()


def test_dedup_on_ray_equals_local():
    data = _table(_texts(3, 400))
    cfg = sem.SemanticDedupConfig(embedder=bow, threshold=0.85, keep=["c", "a"])
    a = local.dedup(data, cfg)
    b = ray_sem.dedup(data, cfg, options=OPTS)
    assert a.n_removed > 50
    assert a.reason.tolist() == b.reason.tolist()
    assert (a.duplicate_of == b.duplicate_of).all() and (a.cluster_id == b.cluster_id).all()
    assert np.array_equal(a.similarity, b.similarity, equal_nan=True)
    assert a.links.equals(b.links)
    assert a.attribution().equals(b.attribution())
    assert to_table(b.kept).equals(a.kept)
    assert to_table(b.removed).equals(a.removed)


def test_dedup_on_ray_of_a_list():
    texts = _texts(4, 120)
    cfg = sem.SemanticDedupConfig(embedder=bow, threshold=0.85, keep="first")
    a = local.dedup(texts, cfg)
    b = ray_sem.dedup(texts, cfg, options=OPTS)
    assert a.reason.tolist() == b.reason.tolist() and (a.duplicate_of == b.duplicate_of).all()
