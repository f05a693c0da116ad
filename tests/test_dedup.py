"""Deduplication: exact keys and pair checks, MinHash against datasketch,
recall on planted near-duplicates of real text, provenance, reference index."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

import prefcurate
from prefcurate import InvalidInputError, _core
from prefcurate.stages.dedup import lsh_params, permutations

NORM = (True, True, True)


def msgs(prompt, answer, system=None):
    out = [{"role": "system", "content": system}] if system else []
    return [*out, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def pairs_table(rows):
    return pa.table(
        {
            "id": [r[0] for r in rows],
            "source": [r[1] for r in rows],
            "chosen": [msgs(r[2], r[3]) for r in rows],
            "rejected": [msgs(r[2], r[4]) for r in rows],
            "score": [r[5] for r in rows],
        }
    )


def test_exact_levels_and_normalisation():
    t = pairs_table(
        [
            ("a", "s1", "What is 2+2?", "4", "5", 0.1),
            ("b", "s2", "what  is 2+2?", "4", "22", 0.9),  # same prompt (case, spaces)
            ("c", "s1", "What is 2+2?", "4", "5", 0.5),  # same pair as a
            ("d", "s2", "Ｗhat is 2+2?", "Four", "5", 0.2),  # NFKC: same prompt
        ]
    )
    r = prefcurate.dedup(t, level="prompt", method="exact")
    assert r.duplicate_of.tolist() == [-1, 0, 0, 0] and set(r.reason[1:]) == {"exact_duplicate"}
    assert r.similarity[1:].tolist() == [1.0, 1.0, 1.0]
    r = prefcurate.dedup(t, level="prompt_chosen", method="exact")
    assert r.duplicate_of.tolist() == [-1, 0, 0, -1]
    r = prefcurate.dedup(t, level="pair", method="exact")
    assert r.duplicate_of.tolist() == [-1, -1, 0, -1]
    r = prefcurate.dedup(t, level="prompt", method="exact", nfkc=False, lowercase=False, whitespace=False)
    assert r.duplicate_of.tolist() == [-1, -1, 0, -1]
    # keep policies
    r = prefcurate.dedup(t, level="prompt", method="exact", keep="score")
    assert r.duplicate_of.tolist() == [1, -1, 1, 1]
    r = prefcurate.dedup(t, level="prompt", method="exact", keep=["s2", "s1"])
    assert r.duplicate_of.tolist() == [1, -1, 1, 1]  # s2 first: b (row 1) before d (row 3)
    removed = r.removed
    assert removed.column("duplicate_of_id").to_pylist() == ["b", "b", "b"]
    assert removed.column("cluster_id").to_pylist() == [0, 0, 0]
    assert r.kept.column("id").to_pylist() == ["b"]


def test_roles_and_multi_turn_prompts():
    t = pa.table(
        {
            "chosen": [
                msgs("hi", "x", system="be brief"),
                msgs("hi", "x"),
                msgs("hi", "x", system="be brief"),
            ],
            "rejected": [
                msgs("hi", "y", system="be brief"),
                msgs("hi", "y"),
                msgs("hi", "z", system="be brief"),
            ],
        }
    )
    r = prefcurate.dedup(t, level="prompt", method="exact")
    assert r.duplicate_of.tolist() == [-1, -1, 0]  # the system turn is part of the prompt


def test_degenerate_and_contradictory_pairs():
    t = pairs_table(
        [
            ("a", "s", "Q1", "good", "bad", 0),
            ("b", "s", "Q1", "bad", "good", 0),  # swapped preference
            ("c", "s", "Q2", "same", " Same ", 0),  # degenerate after normalisation
            ("d", "s", "Q3", "x", "y", 0),
        ]
    )
    r = prefcurate.dedup(t, level="pair", method="minhash", ngram=2)
    assert r.reason.tolist() == ["contradictory_pair", "contradictory_pair", "degenerate_pair", None]
    assert r.duplicate_of.tolist() == [1, 0, -1, -1]
    s = r.stage_result().summary()
    assert (
        s["input"] == 4
        and s["kept"] == 1
        and s["by_reason"] == {"contradictory_pair": 2, "degenerate_pair": 1}
    )
    r = prefcurate.dedup(t, level="pair", method="exact", pair_checks=False)
    assert r.n_removed == 0


def test_copies_of_a_removed_first_row_still_link_to_each_other():
    # at prompt level all three rows share the prompt; the first is removed as
    # degenerate, so the other two must still be exact duplicates of each other
    t = pairs_table(
        [
            ("a", "s", "Q1", "same", "same", 0),
            ("b", "s", "Q1", "x", "y", 0),
            ("c", "s", "Q1", "z", "w", 0),
            ("d", "s", "Q1", "u", "v", 0),
        ]
    )
    for method in ("exact", "minhash"):
        r = prefcurate.dedup(t, level="prompt", method=method, ngram=2)
        assert r.reason.tolist() == ["degenerate_pair", None, "exact_duplicate", "exact_duplicate"]
        assert r.duplicate_of.tolist() == [-1, -1, 1, 1]
        assert r.stage_result().summary()["kept"] == 1


def test_datasketch_signatures_are_identical_in_datasketch_mode():
    datasketch = pytest.importorskip("datasketch")
    texts = [
        "The quick brown fox jumps over the lazy dog",
        "İstanbul ve Ankara, ΣΟΦΙΑΣ σοφίας: naïve café résumé",
        "a",
        "",
        "Write a Python function that merges overlapping intervals and returns them sorted by start",
    ]
    a, b = permutations(128, 7)
    for kind, n in (("word", 3), ("char", 5)):
        for t in texts:
            sh = _core.shingles(t, norm_opts=NORM, shingle_kind=kind, shingle_n=n)
            ours = _core.minhash(sh, family_kind="datasketch", a=a.tolist(), b=b.tolist())
            m = datasketch.MinHash(num_perm=128, seed=7)
            m.update_batch(sh)
            assert np.array_equal(ours, m.hashvalues.astype(np.uint32)), (kind, t)


def _jaccard(x, y):
    x, y = set(x), set(y)
    return len(x & y) / len(x | y) if x | y else 1.0


def _signatures(texts, family, a, b, n=3):
    return _core.dedup_signatures(
        level="prompt",
        norm_opts=NORM,
        shingle_kind="word",
        shingle_n=n,
        family_kind=family,
        a=a.tolist(),
        b=b.tolist(),
        texts=texts,
    )


def test_signatures_of_the_lsh_stage_in_datasketch_mode_are_datasketchs():
    datasketch = pytest.importorskip("datasketch")
    texts = ["The quick brown fox jumps over the lazy dog", "naïve café: ΣΟΦΙΑΣ σοφίας", "a", ""]
    a, b = permutations(64, 3)
    sigs = _signatures(texts, "datasketch", a, b)
    assert sigs.shape == (4, 64)
    for t, sig in zip(texts, sigs):
        m = datasketch.MinHash(num_perm=64, seed=3)
        m.update_batch(_core.shingles(t, norm_opts=NORM, shingle_kind="word", shingle_n=3))
        assert np.array_equal(sig, m.hashvalues.astype(np.uint32)), t
    with pytest.raises(InvalidInputError, match="datasketch family"):
        _core.minhash([b"x"], family_kind="fast", a=a.tolist(), b=b.tolist())


def test_fast_minhash_estimates_agree_with_datasketch_statistically(shared):
    """Same shingles, same (affine32) permutations, another shingle hash (the
    fast family hashes a word shingle from its words' hashes, as the LSH stage
    does): the Jaccard estimates of both are unbiased and agree within
    sampling noise."""
    datasketch = pytest.importorskip("datasketch")
    rows = [json.loads(x) for x in open(shared / "pairs/skywork_v0.2_prompt_sample.jsonl")]
    texts = [r["chosen_response"] for r in rows if len(r["chosen_response"].split()) > 60][:120]
    rng = random.Random(0)
    a, b = permutations(256, 1)
    diffs, ours_err, ds_err = [], [], []
    for t in texts:
        words = t.split()
        k = rng.randint(1, max(1, len(words) // 4))
        v = words[:]
        for _ in range(k):
            v[rng.randrange(len(v))] = rng.choice(["lorem", "ipsum", "dolor", "sit", "amet"])
        sa = _core.shingles(t, norm_opts=NORM, shingle_kind="word", shingle_n=3)
        sb = _core.shingles(" ".join(v), norm_opts=NORM, shingle_kind="word", shingle_n=3)
        j = _jaccard(sa, sb)
        fa, fb = _signatures([t, " ".join(v)], "fast", a, b)
        ma, mb = datasketch.MinHash(num_perm=256, seed=1), datasketch.MinHash(num_perm=256, seed=1)
        ma.update_batch(sa)
        mb.update_batch(sb)
        est, ds = float(np.mean(fa == fb)), ma.jaccard(mb)
        sd = np.sqrt(j * (1 - j) / 256) + 1e-9
        diffs.append((est - ds) / sd)
        ours_err.append(est - j)
        ds_err.append(ds - j)
    assert len(diffs) >= 100
    # unbiased: mean error small; agreement: differences within a few standard deviations
    assert abs(np.mean(ours_err)) < 0.01 and abs(np.mean(ds_err)) < 0.01
    assert np.mean(np.abs(diffs) < 4) > 0.98
    # and the spread of our errors matches datasketch's
    assert 0.7 < np.std(ours_err) / np.std(ds_err) < 1.4


def _variant(words, rng, target, shingle_n=5):
    """Replace random words until the Jaccard of the shingle sets is about target."""
    base = _core.shingles(" ".join(words), norm_opts=NORM, shingle_kind="word", shingle_n=shingle_n)
    v = words[:]
    while True:
        i = rng.randrange(len(v))
        v[i] = f"zz{rng.randrange(10**6)}"
        sv = _core.shingles(" ".join(v), norm_opts=NORM, shingle_kind="word", shingle_n=shingle_n)
        j = _jaccard(base, sv)
        if j <= target:
            return " ".join(v), j


def test_recall_and_no_link_below_threshold_on_planted_real_text(shared):
    rows = [json.loads(x) for x in open(shared / "pairs/skywork_v0.2_prompt_sample.jsonl")]
    seen, texts = set(), []
    for r in rows:
        t = r["chosen_response"]
        if len(t.split()) >= 150 and t not in seen:
            seen.add(t)
            texts.append(t)
    rng = random.Random(1)
    corpus, planted = list(texts), []
    for k, t in enumerate(texts):
        target = rng.uniform(0.6, 1.0)
        v, j = _variant(t.split(), rng, target)
        planted.append((k, len(corpus), j))
        corpus.append(v)
    threshold = 0.8
    # the variants are planted at a Jaccard of word shingles (the decontamination tokeniser's words)
    res = prefcurate.dedup(corpus, threshold=threshold, keep="first", shingle="word")
    cluster = res.cluster_id
    high = [(a, b) for a, b, j in planted if j >= threshold + 0.05]
    found = sum(cluster[a] >= 0 and cluster[a] == cluster[b] for a, b in high)
    assert len(high) >= 100
    assert found / len(high) >= 0.99, (found, len(high))
    # every link is verified: recompute each link's Jaccard from the shingle sets
    links = res.links
    assert links.num_rows >= found
    sh = {}
    for i, j, s in zip(links["i"].to_pylist(), links["j"].to_pylist(), links["jaccard"].to_pylist()):
        for x in (i, j):
            sh.setdefault(x, _core.shingles(corpus[x], norm_opts=NORM, shingle_kind="word", shingle_n=5))
        assert s >= threshold
        assert abs(_jaccard(sh[i], sh[j]) - s) < 1e-12
    # and planted pairs clearly below the threshold are not linked directly
    low = {(a, b) for a, b, j in planted if j < threshold}
    assert not low & set(zip(links["i"].to_pylist(), links["j"].to_pylist()))


def test_against_a_saved_reference(tmp_path):
    b = pa.table(
        {
            "id": ["r1", "r2"],
            "prompt": [
                "Tell me about the history of Rome in detail please",
                "How do magnets work in simple words",
            ],
        }
    )
    a = pa.table(
        {
            "id": ["x", "y", "z", "w"],
            "prompt": [
                "tell me about the history of Rome in detail please",  # = r1
                "Why is the sky blue on a clear day",
                "How do magnets work, in simple words?",  # near r2
                "why is the sky blue on a clear day",  # = y (within a)
            ],
        }
    )
    idx = prefcurate.DedupIndex(b, threshold=0.5, ngram=2)
    idx.save(tmp_path / "ref.pcdedup")
    loaded = prefcurate.DedupIndex.load(tmp_path / "ref.pcdedup")
    assert len(loaded) == 2 and loaded.params == idx.params
    assert np.array_equal(loaded.keys, idx.keys)
    res = prefcurate.dedup(a, against=loaded)
    assert res.reason.tolist() == ["exact_duplicate", None, "near_duplicate", "exact_duplicate"]
    att = res.attribution()
    assert att.column("duplicate_in").to_pylist() == ["reference", "reference", "self"]
    assert att.column("duplicate_of_id").to_pylist() == ["r1", "r2", "y"]
    assert att.column("duplicate_of").to_pylist() == [0, 1, 1]
    assert res.kept.column("id").to_pylist() == ["y"]
    assert res.removed.num_rows == 3
    # a list of str against the index: a bad item is named by its own row
    with pytest.raises(InvalidInputError, match="text: row 1 is None, not a str"):
        prefcurate.dedup(["ok", None], against=loaded)
    with pytest.raises(InvalidInputError, match="text: row 1 is int, not a str"):
        prefcurate.dedup(["ok", 5], against=loaded)


def test_an_index_saved_by_format_1_gets_its_band_keys_made_again(tmp_path):
    import json as _json

    import pyarrow.parquet as pq

    b = ["How do magnets work in simple words for a child of ten"]
    a = ["How do magnets work, in simple words for a child of ten?"]
    prefcurate.DedupIndex(b, threshold=0.5, ngram=2).save(tmp_path / "new.pcdedup")
    # an index as format 1 wrote it: its keys hashed shingles another way
    # (here: keys that match nothing)
    t = pq.read_table(tmp_path / "new.pcdedup")
    meta = _json.loads(t.schema.metadata[b"prefcurate.dedup_index"])
    bands = meta["params"]["bands"]
    old_keys = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(bands, dtype=np.uint64) + 12345), bands)
    t = t.set_column(t.column_names.index("__band_keys"), "__band_keys", old_keys)
    for version, found in ((1, True), (2, False)):
        meta["version"] = version
        pq.write_table(
            t.replace_schema_metadata({b"prefcurate.dedup_index": _json.dumps(meta).encode()}),
            tmp_path / "old.pcdedup",
        )
        res = prefcurate.dedup(a, against=prefcurate.DedupIndex.load(tmp_path / "old.pcdedup"))
        # format 1: keys made again on load, the near duplicate is found;
        # the same stale keys claimed as format 2 are trusted and miss it
        assert (res.reason.tolist() == ["near_duplicate"]) == found
    meta["version"] = 99
    pq.write_table(
        t.replace_schema_metadata({b"prefcurate.dedup_index": _json.dumps(meta).encode()}), tmp_path / "new99"
    )
    with pytest.raises(prefcurate.IndexFileError, match="newer prefcurate"):
        prefcurate.DedupIndex.load(tmp_path / "new99")


def test_thread_count_does_not_change_results(shared):
    texts = [json.loads(x)["prompt"] for x in open(shared / "benchmark/rewardbench_reconstructed.jsonl")]
    r1 = prefcurate.dedup(texts, threshold=0.7, num_threads=1)
    r2 = prefcurate.dedup(texts, threshold=0.7, num_threads=2)
    assert np.array_equal(r1.duplicate_of, r2.duplicate_of) and np.array_equal(r1.cluster_id, r2.cluster_id)
    # the reconstructed benchmark holds supersets with repeated prompts: some are found
    assert r1.summary()["by_reason"].get("exact_duplicate", 0) > 0


def test_lsh_params_favour_recall():
    for t in (0.6, 0.7, 0.8, 0.9):
        b, r = lsh_params(t, 128)
        assert b * r <= 128
        # a pair at threshold + 0.05 becomes a candidate with probability >= 0.995
        assert 1 - (1 - (t + 0.05) ** r) ** b >= 0.995
    assert lsh_params(0.8, 128) == (14, 7)


def test_bad_input():
    with pytest.raises(InvalidInputError, match="level"):
        prefcurate.dedup(["a"], level="answer")
    with pytest.raises(InvalidInputError, match="threshold"):
        prefcurate.dedup(["a"], threshold=2)
    with pytest.raises(InvalidInputError, match="row 1 is None, not a str"):
        prefcurate.dedup(["a", None])
    t = pa.table({"chosen": [[{"role": "user", "content": "q"}]], "rejected": [msgs("q", "a")]})
    with pytest.raises(InvalidInputError, match="row 0: chosen and rejected need the prompt turns"):
        prefcurate.dedup(t)
    with pytest.raises(InvalidInputError, match="keep"):
        prefcurate.dedup(["a", "a"], keep="best")


def test_short_and_empty_texts_follow_the_documented_rule():
    texts = [
        "",  # 0: no token
        "",  # 1: exact duplicate of 0
        "?! a",  # 2: no token (one-letter words are no tokens)
        "alpha beta gamma",  # 3: short (3 tokens < 5): one shingle, the whole text
        "Alpha  beta gamma",  # 4: exact duplicate of 3 once normalised
        "alpha beta gamma delta epsilon",  # 5: contains 3's words, not linked to it
        "one two three four five six seven",  # 6
        "one two three four five six seven eight",  # 7: near duplicate of 6 (J 3/4)
    ]
    r = prefcurate.dedup(texts, threshold=0.7, shingle="word")
    assert r.info["no_shingles"] == 3 and r.info["short"] == 2
    # token shingles (the default): "?! a" has three tokens, so it is short, not without shingles
    t = prefcurate.dedup(texts, threshold=0.7)
    assert t.info["no_shingles"] == 2 and t.info["short"] == 3
    assert t.reason.tolist() == r.reason.tolist()
    ex, near = "exact_duplicate", "near_duplicate"
    assert r.reason.tolist() == [None, ex, None, None, ex, None, None, near]
    assert r.duplicate_of.tolist() == [-1, 0, -1, -1, 3, -1, -1, 6]
    assert r.similarity[7] == 0.75
    # every row is accounted for: kept + removed = input
    assert len(r.kept) + len(r.removed) == len(texts)
    # character shingles: the key's part separators are characters, so an
    # empty text is short (one shingle) rather than without shingles
    c = prefcurate.dedup(texts, threshold=0.7, shingle="char", ngram=4)
    assert c.info["no_shingles"] == 0 and c.info["short"] == 2
    assert c.reason.tolist()[:2] == [None, "exact_duplicate"]
    # pairs whose prompts have no token: the role marker alone is no shingle,
    # so they are not near copies of each other (only exact keys apply)
    p = pa.table(
        {
            "chosen": [msgs(q, "yes") for q in ("?", "!!", "a b c")],
            "rejected": [msgs(q, "no") for q in ("?", "!!", "a b c")],
        }
    )
    r = prefcurate.dedup(p, level="prompt", threshold=0.5, shingle="word")
    assert r.reason.tolist() == [None, None, None] and r.info["no_shingles"] == 3
    r = prefcurate.dedup(p, level="prompt", threshold=0.5)
    assert r.reason.tolist() == [None, None, None] and r.info["no_shingles"] == 0
    with pytest.raises(InvalidInputError, match="num_perm must be"):
        prefcurate.dedup(texts, num_perm=100_000)


def test_cli_dedup_and_index(tmp_path):
    from prefcurate import cli, read_table, write_table

    t = pairs_table(
        [
            ("a", "s", "Explain recursion with a small example in Python please", "ok", "no", 1.0),
            ("b", "s", "explain recursion with a small example in python please!", "ok2", "no", 2.0),
            ("c", "s", "What is the capital of France and why", "Paris", "Rome", 0.0),
        ]
    )
    write_table(t, tmp_path / "pairs.parquet")
    assert (
        cli.main(["dedup", str(tmp_path / "pairs.parquet"), "--out", str(tmp_path / "o"), "--keep", "score"])
        == 0
    )
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["input"] == 3 and summary["removed"] == 1
    removed = read_table(tmp_path / "o" / "removed.parquet")
    assert removed.column("id").to_pylist() == ["a"] and removed.column("duplicate_of_id").to_pylist() == [
        "b"
    ]
    assert (
        cli.main(["dedup-index", str(tmp_path / "pairs.parquet"), "--out", str(tmp_path / "ref.pcdedup")])
        == 0
    )
    assert (
        cli.main(
            [
                "dedup",
                str(tmp_path / "pairs.parquet"),
                "--against",
                str(tmp_path / "ref.pcdedup"),
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert again["removed"] == 3  # every row is in the reference


def test_a_damaged_dedup_index_never_loads_silently(tmp_path):
    """Single-bit flips anywhere in a saved index: the load fails with
    IndexFileError, or the index deduplicates exactly as the intact one."""
    import random

    ref = [f"Explain topic number {i} in a few short sentences please" for i in range(40)]
    new = [*ref[:10], *(f"A new question about item {i} and its neighbours" for i in range(10))]
    idx = prefcurate.DedupIndex(ref, threshold=0.7)
    idx.save(tmp_path / "ref.pcdedup")
    data = (tmp_path / "ref.pcdedup").read_bytes()
    want = prefcurate.dedup(new, against=idx).reason.tolist()
    rng = random.Random(7)
    outcomes = {"error": 0, "same": 0}
    for k in range(150):
        pos = rng.randrange(len(data))
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        path = tmp_path / f"bad{k}.pcdedup"
        path.write_bytes(bytes(bad))
        try:
            loaded = prefcurate.DedupIndex.load(path)
        except prefcurate.IndexFileError:
            outcomes["error"] += 1
            continue
        assert prefcurate.dedup(new, against=loaded).reason.tolist() == want, f"bit flip at byte {pos}"
        outcomes["same"] += 1
    assert outcomes["error"] > 0


def test_math_prompts_that_differ_in_their_numbers_are_not_duplicates():
    prompts = ["What is 2 + 3?", "What is 4 + 5?", "What is 7 * 8?"]
    assert prefcurate.dedup(prompts).reason.tolist() == [None, None, None]
    # one-letter words and non-Latin text are tokens too
    assert prefcurate.dedup(["Let x be 5. Find y.", "Let a be 5. Find b."]).n_removed == 0
    assert (
        prefcurate.dedup(["東京の人口は何人ですか", "大阪の人口は何人ですか"], threshold=0.9).n_removed == 0
    )
    # the same problem written twice still is one
    res = prefcurate.dedup(["What is 2 + 3?", "what is 2 + 3 ?", "What is 4 + 5?"])
    assert res.reason.tolist() == [None, "near_duplicate", None] or res.reason.tolist() == [
        None,
        "exact_duplicate",
        None,
    ]
    # the decontamination tokeniser's words, on request, drop the numbers
    assert prefcurate.dedup(prompts, shingle="word").n_removed == 2
