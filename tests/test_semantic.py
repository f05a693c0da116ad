"""Semantic decontamination and dedup: the mathematics against brute force
numpy with a deterministic embedder (same flags, same best item, scores
within 1e-4), the exact search, calibration, the semantic index file, the
embedding cache, the configs."""

from __future__ import annotations

import argparse
import hashlib
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from prefcurate import IndexFileError, InvalidInputError
from prefcurate.embed import (
    CallableEmbedder,
    EmbeddingCache,
    SemanticIndex,
    calibrate_vectors,
    embed_texts,
    exact_topk,
    normalize,
    open_cache,
    self_neighbours,
    threshold_at,
)
from prefcurate.embed import search as search_mod
from prefcurate.embed.calibrate import tail_corrected
from prefcurate.engines import local_semantic as local
from prefcurate.stages import semantic as sem

DIM = 24


def _word(w: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(DIM)


def bow(texts: list[str]) -> np.ndarray:
    """A deterministic embedder: the sum of a fixed random vector per word
    (texts sharing most words are close)."""
    return np.stack([sum((_word(w) for w in t.lower().split()), np.zeros(DIM)) for t in texts]).astype(
        np.float32
    )


class Counting:
    """A named embedder that counts the texts it embeds."""

    name = "bow-test-v1"
    dim = DIM

    def __init__(self) -> None:
        self.seen = 0

    def embed(self, texts):
        self.seen += len(texts)
        return bow(list(texts))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _corpus(seed=0, n_bench=120, n_train=600, n_leaked=40):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(400)]
    bench = [" ".join(rng.choice(vocab, int(rng.integers(8, 16)))) for _ in range(n_bench)]
    train = [" ".join(rng.choice(vocab, int(rng.integers(8, 16)))) for _ in range(n_train)]
    for j, b in enumerate(rng.choice(n_bench, n_leaked, replace=False)):
        words = bench[b].split()
        # a paraphrase: a word or two swapped, one added
        for _ in range(int(rng.integers(0, 3))):
            words[int(rng.integers(len(words)))] = str(rng.choice(vocab))
        train[int(rng.integers(n_train))] = " ".join([*words, "please"])
        del j
    return bench, train


# ---------------------------------------------------------------- exact search


@pytest.mark.parametrize("use_torch", [True, False])
def test_exact_topk_equals_brute_force(monkeypatch, use_torch):
    if not use_torch:
        monkeypatch.setattr(search_mod, "_torch", lambda needed=False: None)
    rng = np.random.default_rng(3)
    q = normalize(rng.standard_normal((300, 16)))
    keys = normalize(rng.standard_normal((1000, 16)))
    idx, sc = exact_topk(q, keys, 7, block_size=97)
    full = _unit(q) @ _unit(keys).T
    want = np.argsort(-full, axis=1, kind="stable")[:, :7]
    assert (idx == want).all()
    assert np.abs(sc - np.take_along_axis(full, want, axis=1)).max() < 1e-6
    assert sc.dtype == np.float32 and idx.dtype == np.int64


def test_exact_topk_scores_do_not_depend_on_blocks():
    rng = np.random.default_rng(4)
    q = normalize(rng.standard_normal((200, 32)))
    keys = normalize(rng.standard_normal((500, 32)))
    a = exact_topk(q, keys, 5, block_size=4096)
    b = exact_topk(q, keys, 5, block_size=33)
    c = exact_topk(q[57:58], keys, 5, block_size=1)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert (a[0][57] == c[0][0]).all() and (a[1][57] == c[1][0]).all()


def test_exact_topk_self_rows_and_short_keys():
    rng = np.random.default_rng(5)
    x = normalize(rng.standard_normal((40, 8)))
    idx, sc = exact_topk(x, x, 3, self_rows=np.arange(40), block_size=7)
    assert not (idx == np.arange(40)[:, None]).any()
    full = _unit(x) @ _unit(x).T
    np.fill_diagonal(full, -np.inf)
    assert (idx[:, 0] == full.argmax(1)).all()
    # fewer keys than k: padded with -1 / -inf
    idx, sc = exact_topk(x[:2], x[:3], 5)
    assert (idx[:, 3:] == -1).all() and np.isneginf(sc[:, 3:]).all()
    assert exact_topk(x[:0], x, 2)[0].shape == (0, 2)


def test_exact_topk_ties_prefer_the_lower_index():
    x = normalize(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]))
    idx, _ = exact_topk(x[:1], x, 3)
    assert idx.tolist() == [[0, 2, 3]]


def test_dimension_mismatch_is_an_error():
    with pytest.raises(InvalidInputError, match="dimension"):
        exact_topk(np.ones((2, 3), np.float32), np.ones((2, 4), np.float32), 1)


# ---------------------------------------------------------------- decontamination


def _brute_decontaminate(train, bench, threshold):
    s = _unit(bow(train)) @ _unit(bow(bench)).T
    best = s.argmax(1)
    return s, best, s.max(1) >= threshold


@pytest.mark.parametrize("threshold", [0.6, 0.8, 0.95])
def test_decontamination_equals_brute_force(threshold):
    bench, train = _corpus()
    cfg = sem.SemanticDecontaminateConfig(embedder=bow, threshold=threshold, k=4, block_size=64)
    r = local.decontaminate(train, bench, cfg)
    s, best, flags = _brute_decontaminate(train, bench, threshold)
    assert (r.contaminated == flags).all()
    assert flags.sum() >= 5  # some planted paraphrases are found
    assert (r.best_index == best).all()
    assert np.abs(r.best_score - s.max(1)).max() < 1e-4
    # matches: every top-4 pair at or above the threshold, by train row then item
    top4 = np.argsort(-s, axis=1, kind="stable")[:, :4]
    want = sorted((t, int(b)) for t in range(len(train)) for b in top4[t] if s[t, b] >= threshold)
    got = list(
        zip(r.matches.column("train_index").to_pylist(), r.matches.column("benchmark_index").to_pylist())
    )
    assert got == want
    assert r.matches.schema.field("score").type == pa.float32()
    ms = np.array(r.matches.column("score").to_pylist())
    assert np.abs(ms - np.array([s[t, b] for t, b in want])).max() < 1e-4
    # attribution of the removed rows
    a = r.attribution
    assert a.column_names == [
        "stage",
        "reason",
        "train_index",
        "benchmark_index",
        "benchmark_id",
        "benchmark_subset",
        "score",
        "n_benchmark_matches",
        "benchmark_text",
    ]
    rows = np.flatnonzero(flags)
    assert a.column("train_index").to_pylist() == rows.tolist()
    assert a.column("benchmark_index").to_pylist() == best[rows].tolist()
    assert a.column("benchmark_text").to_pylist() == [bench[b] for b in best[rows]]
    assert set(a.column("reason").to_pylist()) <= {"benchmark_semantic"}
    assert r.method == "semantic"


def test_decontamination_rows_and_attribution_on_a_table():
    bench, train = _corpus(seed=1)
    bt = pa.table({"prompt": bench, "id": [f"b{i}" for i in range(len(bench))], "subset": ["s1", "s2"] * 60})
    tt = pa.table({"prompt": train, "id": [f"t{i}" for i in range(len(train))], "source": ["x"] * len(train)})
    r = local.decontaminate(tt, bt, sem.SemanticDecontaminateConfig(embedder=bow, threshold=0.8))
    assert r.kept.num_rows + r.removed.num_rows == len(train)
    rem = r.removed
    assert rem.column("benchmark_id").to_pylist() == [
        f"b{i}" for i in r.attribution.column("benchmark_index").to_pylist()
    ]
    assert set(rem.column("benchmark_subset").to_pylist()) <= {"s1", "s2"}
    summary = r.summary().to_pylist()
    assert sum(x["train_rows_removed"] for x in summary) == r.n_removed
    st = r.stage_result()
    assert st.by_reason == {"benchmark_semantic": r.n_removed}
    assert st.info["threshold"] == 0.8 and st.info["method"] == "semantic"
    # a list of str gives lists back
    r2 = local.decontaminate(train, bench, sem.SemanticDecontaminateConfig(embedder=bow, threshold=0.8))
    assert len(r2.kept) == len(train) - r2.n_removed and len(r2.removed) == r2.n_removed


def test_decontamination_calibrates_when_no_threshold_is_given():
    bench, train = _corpus(seed=2, n_bench=600)
    r = local.decontaminate(train, bench, sem.SemanticDecontaminateConfig(embedder=bow))
    assert r.calibration is not None and r.calibration.method == "self"
    assert r.threshold == r.calibration.threshold
    assert (r.contaminated == (r.best_score >= np.float32(r.threshold))).all()
    info = r.stage_result().info["calibration"]
    assert info["threshold"] == r.threshold and info["n"] == 600


def test_semantic_index_reuse_save_load_and_damage(tmp_path):
    bench, train = _corpus(seed=3)
    emb = CallableEmbedder(bow, name="bow-v1")
    index = SemanticIndex.build(pa.table({"prompt": bench, "subset": ["a"] * len(bench)}), emb)
    assert len(index) == len(bench) and index.embedder == "bow-v1" and index.dim == DIM
    cfg = sem.SemanticDecontaminateConfig(embedder=emb, threshold=0.8)
    r1 = local.decontaminate(train, index, cfg)
    p = tmp_path / "bench.semidx"
    index.save(p)
    loaded = SemanticIndex.load(p)
    assert (
        (loaded.vectors == index.vectors).all()
        and loaded.texts == index.texts
        and loaded.subsets == index.subsets
    )
    r2 = local.decontaminate(train, loaded, cfg)
    assert (r1.contaminated == r2.contaminated).all() and r1.matches.equals(r2.matches)
    again = pickle.loads(pickle.dumps(index))
    assert (again.vectors == index.vectors).all() and again.ids == index.ids
    # a flipped byte or a cut file is an IndexFileError, never trusted
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x40
    p.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum"):
        SemanticIndex.load(p)
    p.write_bytes(index.to_bytes()[:-100])
    with pytest.raises(IndexFileError):
        SemanticIndex.load(p)
    p.write_bytes(b"not an index at all, not at all, not at all, really")
    with pytest.raises(IndexFileError, match="not a prefcurate"):
        SemanticIndex.load(p)
    # another embedder cannot use it
    with pytest.raises(InvalidInputError, match="embedded with"):
        local.decontaminate(
            train, index, sem.SemanticDecontaminateConfig(embedder=CallableEmbedder(bow, "other"))
        )


def test_empty_benchmark_and_null_text_are_errors():
    with pytest.raises(InvalidInputError, match="no rows"):
        local.decontaminate(["a b"], [], sem.SemanticDecontaminateConfig(embedder=bow, threshold=0.5))
    with pytest.raises(InvalidInputError, match="row 1"):
        local.decontaminate(
            pa.array(["a b", None]), ["a b"], sem.SemanticDecontaminateConfig(embedder=bow, threshold=0.5)
        )


def test_a_bad_embedder_output_is_an_error():
    with pytest.raises(InvalidInputError, match="shape"):
        local.decontaminate(
            ["a b"], ["c d"], sem.SemanticDecontaminateConfig(embedder=lambda t: np.ones(3), threshold=0.5)
        )
    with pytest.raises(InvalidInputError, match="non-finite"):
        embed_texts(CallableEmbedder(lambda t: np.full((len(t), 2), np.nan)), ["a"])


# ---------------------------------------------------------------- calibration


def test_threshold_at_allows_at_most_the_rate():
    rng = np.random.default_rng(0)
    s = rng.random(10_000).astype(np.float32)
    for rate in (1e-3, 1e-2, 0.1):
        t = threshold_at(s, rate)
        assert np.sum(s >= np.float32(t)) == int(rate * len(s))
    # fewer scores than 1 / rate: just above the highest
    assert threshold_at(np.array([0.1, 0.5], np.float32), 1e-3) > 0.5
    with pytest.raises(InvalidInputError):
        threshold_at(s, 0.0)


def test_calibration_with_a_reference_corpus():
    rng = np.random.default_rng(1)
    bench = normalize(rng.standard_normal((500, 16)))
    ref = normalize(rng.standard_normal((4000, 16)))
    cal = calibrate_vectors(bench, ref, 1e-2, sample=0)
    best = (_unit(ref) @ _unit(bench).T).max(1)
    assert cal.method == "reference" and cal.n == 4000
    assert np.abs(np.sort(cal.scores) - np.sort(best)).max() < 1e-5
    assert cal.achieved_rate <= 1e-2 and cal.resolvable
    assert abs(cal.threshold - np.quantile(best, 0.99)) < 0.02
    ex = cal.exceedance([cal.threshold, 2.0, -2.0])
    assert ex[0] <= 1e-2 and ex[1] == 0 and ex[2] == 1
    counts, edges = cal.histogram(20)
    assert counts.sum() == 4000 and len(edges) == 21
    assert cal.summary()["threshold"] == cal.threshold


def test_self_calibration_matches_the_null_of_random_vectors():
    """Without near copies, the self method's threshold is close to the one
    read from fresh unrelated queries (the tail correction restores the
    neighbours left out)."""
    rng = np.random.default_rng(2)
    bench = normalize(rng.standard_normal((3000, 32)))
    fresh = normalize(rng.standard_normal((20000, 32)))
    true = threshold_at(exact_topk(fresh, bench, 1)[1][:, 0], 1e-2)
    for leave_out in (0, 5, 10):
        cal = calibrate_vectors(bench, None, 1e-2, leave_out=leave_out)
        assert cal.method == "self" and cal.leave_out == leave_out
        assert abs(cal.threshold - true) < 0.04, (leave_out, cal.threshold, true)


def test_self_calibration_leaves_near_copies_out():
    """Five near copies of every item: without leaving them out the
    threshold sits among the copies; with them left out it does not."""
    rng = np.random.default_rng(3)
    base = normalize(rng.standard_normal((600, 32)))
    copies = normalize(np.repeat(base, 6, axis=0) + rng.standard_normal((3600, 32)) * 0.02)
    naive = calibrate_vectors(copies, None, 1e-2, leave_out=0)
    left = calibrate_vectors(copies, None, 1e-2, leave_out=5)
    assert naive.threshold > 0.98
    assert left.threshold < naive.threshold - 0.05


def test_tail_correction_is_exact_for_exponential_tails():
    rng = np.random.default_rng(4)
    draws = -np.sort(-rng.exponential(0.1, (20000, 200)), axis=1)[:, :26]
    est = tail_corrected(draws, 5)
    assert abs(est.mean() - draws[:, 0].mean()) < 0.01


def test_calibrate_threshold_api(tmp_path):
    bench, train = _corpus(seed=4, n_bench=500)
    cal = sem.calibrate_threshold(bow, bench, reference=train, false_positive_rate=0.01)
    assert cal.method == "reference" and cal.n == len(train) and 0 < cal.threshold <= 1.0001
    index = SemanticIndex.build(bench, CallableEmbedder(bow, "bow"))
    cal2 = sem.calibrate_threshold(None, index, false_positive_rate=0.01, leave_out=3)
    assert cal2.method == "self" and cal2.leave_out == 3 and cal2.embedder == "bow"
    with pytest.raises(InvalidInputError, match="embedder"):
        sem.calibrate_threshold(None, bench)


# ---------------------------------------------------------------- cache


def test_cache_reuses_vectors_and_recomputes_damaged_files(tmp_path, caplog):
    texts = [f"text number {i} about w{i % 7}" for i in range(300)]
    emb = Counting()
    cache = open_cache(emb, tmp_path)
    assert cache is not None
    first = embed_texts(emb, texts, cache=cache)
    assert emb.seen == 300
    again = embed_texts(emb, [*texts[::-1], "a new one"], cache=open_cache(emb, tmp_path))
    assert emb.seen == 301
    assert (again[:300] == first[::-1]).all()
    assert np.allclose(first, normalize(bow(texts)))
    # damage every shard: the vectors are embedded again, not read
    shards = sorted(cache.dir.glob("part-*.emb"))
    assert shards
    for f in shards:
        data = bytearray(f.read_bytes())
        data[40] ^= 0xFF
        f.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="prefcurate.embed"):
        out = embed_texts(emb, texts, cache=open_cache(emb, tmp_path))
    assert emb.seen == 601  # all 300 again
    assert (out == first).all()
    assert "damaged" in caplog.text
    # a truncated shard too
    for f in sorted(cache.dir.glob("part-*.emb")):
        f.write_bytes(f.read_bytes()[:-7])
    embed_texts(emb, texts[:10], cache=open_cache(emb, tmp_path))
    assert emb.seen == 611


def test_cache_is_per_model_and_skips_unnamed_callables(tmp_path):
    a, b = Counting(), Counting()
    b.name = "bow-test-v2"
    embed_texts(a, ["x y"], cache=open_cache(a, tmp_path))
    embed_texts(b, ["x y"], cache=open_cache(b, tmp_path))
    assert a.seen == 1 and b.seen == 1
    assert len(list(tmp_path.iterdir())) == 2
    assert open_cache(CallableEmbedder(bow), tmp_path) is None
    assert open_cache(CallableEmbedder(bow, name="named"), tmp_path) is not None


def test_cache_through_the_stage(tmp_path):
    bench, train = _corpus(seed=5)
    emb = Counting()
    cfg = sem.SemanticDecontaminateConfig(embedder=emb, threshold=0.8, cache_dir=str(tmp_path))
    r1 = local.decontaminate(train, bench, cfg)
    n = emb.seen
    r2 = local.decontaminate(train, bench, cfg)
    assert emb.seen == n  # nothing embedded again
    assert r2.info["embedding"]["cached"] == len(set(train))
    assert (r1.contaminated == r2.contaminated).all() and r1.matches.equals(r2.matches)


def test_distinct_texts_are_embedded_once():
    emb = Counting()
    out = embed_texts(emb, ["a b", "c d", "a b", "a b"])
    assert emb.seen == 2 and (out[0] == out[2]).all()


def test_cache_file_format_roundtrip(tmp_path):
    c = EmbeddingCache(tmp_path, {"name": "m"})
    keys = c.keys(["a", "b"])
    c.add(keys, np.eye(2, dtype=np.float32))
    c.flush()
    found, vecs = EmbeddingCache(tmp_path, {"name": "m"}).lookup(c.keys(["b", "zz", "a"]))
    assert found.tolist() == [True, False, True]
    assert vecs is not None and vecs.tolist() == [[0.0, 1.0], [1.0, 0.0]]


# ---------------------------------------------------------------- dedup


def _dup_corpus(seed=0, n=500):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(300)]
    out = [" ".join(rng.choice(vocab, int(rng.integers(10, 16)))) for _ in range(n)]
    for i in range(n):
        r = rng.random()
        if r < 0.1:
            out[i] = out[int(rng.integers(i))] if i else out[i]  # an identical copy
        elif r < 0.3 and i:
            w = out[int(rng.integers(i))].split()
            w[int(rng.integers(len(w)))] = str(rng.choice(vocab))  # a near copy
            out[i] = " ".join(w)
    return out


def _components(n, pairs):
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


@pytest.mark.parametrize("threshold", [0.85, 0.95])
def test_dedup_equals_brute_force(threshold):
    texts = _dup_corpus()
    r = local.dedup(texts, sem.SemanticDedupConfig(embedder=bow, threshold=threshold, k=20, ann="exact"))
    u = _unit(bow(texts))
    s = u @ u.T
    n = len(texts)
    pairs = [
        (i, j) for i in range(n) for j in range(i + 1, n) if s[i, j] >= threshold or texts[i] == texts[j]
    ]
    comp = _components(n, pairs)  # the smallest row of each cluster
    removed = comp != np.arange(n)
    assert (r.removed_mask == removed).all()
    assert removed.sum() > 50
    assert (r.duplicate_of[removed] == comp[removed]).all()
    same = np.array([texts[i] == texts[comp[i]] for i in range(n)])
    assert set(r.reason[removed & same]) == {"exact_duplicate"}
    assert set(r.reason[removed & ~same]) == {"semantic_duplicate"}
    want_sim = s[np.flatnonzero(removed), comp[removed]]
    want_sim[same[removed]] = 1.0
    assert np.abs(r.similarity[removed] - want_sim).max() < 1e-4
    sizes = np.bincount(comp, minlength=n)
    in_cluster = sizes[comp] > 1
    assert (r.cluster_id[in_cluster] == comp[in_cluster]).all() and (r.cluster_id[~in_cluster] == -1).all()
    # every link is verified: at or above the threshold, exactly
    li, lj, lv = (np.array(r.links.column(c).to_pylist()) for c in ("i", "j", "cosine"))
    assert (lv >= threshold - 1e-6).all() and np.abs(lv - s[li, lj]).max() < 1e-6
    assert r.params["method"] == "semantic" and r.info["search"] == "exact"


@pytest.mark.parametrize("ann", ["faiss", "usearch"])
def test_dedup_through_an_approximate_index_finds_the_same_clusters(ann):
    pytest.importorskip("faiss" if ann == "faiss" else "usearch")
    texts = _dup_corpus(seed=1, n=2000)
    exact = local.dedup(texts, sem.SemanticDedupConfig(embedder=bow, threshold=0.9, ann="exact"))
    approx = local.dedup(texts, sem.SemanticDedupConfig(embedder=bow, threshold=0.9, ann=ann, ann_probe=64))
    assert approx.info["search"] == ann
    assert (approx.removed_mask == exact.removed_mask).all()
    assert (approx.duplicate_of == exact.duplicate_of).all()
    assert np.allclose(approx.similarity, exact.similarity, equal_nan=True)


def test_self_neighbours_auto_switches_to_an_index():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(6)
    x = normalize(rng.standard_normal((3000, 16)))
    _, _, m = self_neighbours(x, 5, method="auto", exact_below=10_000)
    assert m == "exact"
    _, _, m = self_neighbours(x, 5, method="auto", exact_below=1000)
    assert m == "faiss"


def test_dedup_keep_policies_and_provenance():
    texts = [
        "alpha beta gamma delta",
        "alpha beta gamma delta eps",
        "zeta eta theta iota",
        "alpha beta gamma delta",
    ]
    t = pa.table(
        {
            "prompt": texts,
            "id": ["r0", "r1", "r2", "r3"],
            "score": [0.1, 0.9, 0.5, 0.2],
            "source": ["low", "high", "low", "mid"],
        }
    )
    cfg = sem.SemanticDedupConfig(embedder=bow, threshold=0.8)
    first = local.dedup(t, cfg)
    assert first.reason.tolist() == [None, "semantic_duplicate", None, "exact_duplicate"]
    assert first.duplicate_of.tolist() == [-1, 0, -1, 0]
    best = local.dedup(t, cfg.replace(keep="score"))
    assert best.reason.tolist()[0] == "semantic_duplicate" and best.duplicate_of.tolist() == [1, -1, -1, 1]
    by_source = local.dedup(t, cfg.replace(keep=["mid", "high"]))
    assert by_source.duplicate_of.tolist() == [3, 3, -1, -1]
    rem = by_source.removed
    assert rem.column("duplicate_of_id").to_pylist() == ["r3", "r3"]
    assert by_source.kept.num_rows == 2
    st = first.stage_result()
    assert st.by_reason == {"semantic_duplicate": 1, "exact_duplicate": 1}
    assert first.info["threshold"] == 0.8


def test_dedup_calibrates_when_no_threshold_is_given():
    texts = _dup_corpus(seed=2, n=1500)
    r = local.dedup(texts, sem.SemanticDedupConfig(embedder=bow))
    assert r.calibration is not None and r.threshold == r.calibration.threshold
    assert r.info["calibration"]["method"] == "self"


def test_dedup_of_a_pair_table_uses_the_prompt():
    msgs = [
        [{"role": "user", "content": p}, {"role": "assistant", "content": "ok"}]
        for p in ["a b c d e", "a b c d e f", "x y z w v"]
    ]
    t = pa.table({"chosen": msgs, "rejected": msgs, "prompt": ["a b c d e", "a b c d e f", "x y z w v"]})
    r = local.dedup(t, sem.SemanticDedupConfig(embedder=bow, threshold=0.8))
    assert r.reason.tolist() == [None, "semantic_duplicate", None]


# ---------------------------------------------------------------- configs


def test_configs_check_and_parse():
    with pytest.raises(InvalidInputError, match="threshold"):
        sem.SemanticDecontaminateConfig(threshold=1.5)
    with pytest.raises(InvalidInputError, match="false_positive_rate"):
        sem.SemanticDedupConfig(false_positive_rate=0)
    with pytest.raises(InvalidInputError, match="ann"):
        sem.SemanticDedupConfig(ann="annoy")
    with pytest.raises(InvalidInputError, match="embedder"):
        sem.SemanticDedupConfig(embedder=3)
    with pytest.raises(InvalidInputError, match="unknown"):
        sem.SemanticDedupConfig.from_mapping({"treshold": 0.9})
    c = sem.SemanticDedupConfig.from_mapping({"threshold": 0.9, "keep": ["a", "b"], "ann": "usearch"})
    assert c.keep == ("a", "b") and c.ann == "usearch"
    p = argparse.ArgumentParser()
    sem.SemanticDecontaminateConfig.add_arguments(p)
    args = p.parse_args(["--embedder", "some/model", "--threshold", "0.83", "--k", "3", "--dtype", "float16"])
    c2 = sem.SemanticDecontaminateConfig.from_args(args)
    assert (c2.embedder, c2.threshold, c2.k, c2.dtype) == ("some/model", 0.83, 3, "float16")
    auto = sem.SemanticDecontaminateConfig.from_args(p.parse_args(["--threshold", "auto"]))
    assert auto.threshold is None
    p2 = argparse.ArgumentParser()
    sem.SemanticDedupConfig.add_arguments(p2)
    c3 = sem.SemanticDedupConfig.from_args(
        p2.parse_args(["--keep", "a,b", "--ann", "faiss", "--ann-probe", "8"])
    )
    assert c3.keep == ("a", "b") and c3.ann_probe == 8
    assert sem.SemanticDedupConfig(embedder=bow).params()["embedder"] == "bow"


def test_import_prefcurate_does_not_import_the_heavy_packages():
    code = (
        "import sys, prefcurate, prefcurate.embed, prefcurate.stages.semantic, prefcurate.engines.local_semantic\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'model2vec', 'faiss', 'usearch', 'transformers') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
