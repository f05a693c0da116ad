"""The Ray Data engine gives exactly the local engine's results: every stage
on a local Ray (2 CPUs), small data cut into many batches, compared field by
field (kept and removed rows, in order, with their provenance columns); a
worker killed mid-run changes nothing."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")
ray_data = pytest.importorskip("ray.data")

import prefcurate  # noqa: E402
from prefcurate import InvalidInputError  # noqa: E402
from prefcurate.engines.ray import FailOnce, to_table  # noqa: E402

ray_dedup = importlib.import_module("prefcurate.engines.ray.dedup")

OPTS = {"batch_size": 48, "num_partitions": 3}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ctx = ray_data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield
    ray.shutdown()


# ---------------------------------------------------------------- data


def _words(rng, k, vocab=300):
    return " ".join(f"w{int(x)}" for x in rng.integers(0, vocab, k))


def _texts(seed=0, n=420):
    """Random prompts with exact copies (case, spacing), near copies (a few
    words replaced), a chain of six near copies whose ends are not LSH
    candidates of each other, and 70 copies of one text (an LSH bucket over
    64 rows)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15 and out:
            out.append("  " + out[int(rng.integers(len(out)))].upper())
        elif r < 0.35 and out:
            w = out[int(rng.integers(len(out)))].split()
            for _ in range(int(rng.integers(1, 4))):
                w[int(rng.integers(len(w)))] = f"zz{int(rng.integers(1000))}"
            out.append(" ".join(w))
        else:
            out.append(_words(rng, 40))
    chain = [[f"c{i}" for i in range(60)]]
    for k in range(5):  # each step replaces 3 words: Jaccard 0.78 with the previous one
        w = chain[-1][:]
        w[5 + 10 * k : 8 + 10 * k] = [f"x{k}{i}" for i in range(3)]
        chain.append(w)
    out[50:50] = [" ".join(w) for w in chain]
    out += ["the same words in one very large bucket of rows"] * 70
    # texts without a shingle and texts shorter than one (counted in info)
    out += ["", "?! a", "", "alpha beta gamma", "Alpha beta  gamma"]
    return out


def _conv(prompt, answer):
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _pairs(seed=1, n=300):
    """Pairs with degenerate rows, swapped (contradictory) copies, shared
    prompts; ids, sources and integer scores (ties)."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for i in range(n):
        r = rng.random()
        p, c, j = _words(rng, 30, 200), _words(rng, 10, 200), _words(rng, 10, 200)
        if r < 0.05:
            j = c.upper()
        elif r < 0.12 and rows:
            o = rows[int(rng.integers(len(rows)))]
            p, c, j = o["prompt"], o["rejected"][-1]["content"], o["chosen"][-1]["content"]
        elif r < 0.3 and rows:
            p = rows[int(rng.integers(len(rows)))]["prompt"] + ("" if rng.random() < 0.5 else " more")
        rows.append(
            {
                "id": f"p{i}",
                "source": ["a", "b", "c"][i % 3],
                "prompt": p,
                "chosen": _conv(p, c),
                "rejected": _conv(p, j),
                "score": float(rng.integers(0, 5)),
            }
        )
    return pa.Table.from_pylist(rows)


def _same_dedup(loc, rr):
    for f in ("duplicate_of", "cluster_id"):
        np.testing.assert_array_equal(getattr(loc, f), getattr(rr, f), err_msg=f)
    np.testing.assert_array_equal(loc.similarity, rr.similarity)
    assert loc.reason.tolist() == rr.reason.tolist()
    assert loc.info == rr.info and loc.params == rr.params
    assert loc.links.equals(rr.links)
    assert loc._dup_ids == rr._dup_ids
    assert loc.attribution().equals(rr.attribution())
    assert to_table(rr.kept).equals(loc.kept)
    assert to_table(rr.removed).equals(loc.removed)


# ---------------------------------------------------------------- decontamination


@pytest.fixture(scope="module")
def decont_data():
    rng = np.random.default_rng(2)
    bench = pa.table(
        {
            "prompt": [_words(rng, 20) for _ in range(30)],
            "id": [f"b{i}" for i in range(30)],
            "subset": ["s1", "s2", "s3"] * 10,
        }
    )
    train = []
    for _ in range(500):
        w = _words(rng, 25).split()
        if rng.random() < 0.1:
            b = bench["prompt"][int(rng.integers(30))].as_py().split()
            s = int(rng.integers(0, 10))
            w[5:5] = b[s : s + 7 + int(rng.integers(0, 5))]
        train.append(" ".join(w))
    return bench, pa.table({"id": [f"t{i}" for i in range(500)], "prompt": train})


def test_decontaminate_equals_local_for_tables_lists_parquet_and_datasets(decont_data, tmp_path):
    bench, train = decont_data
    index = prefcurate.BenchmarkIndex(bench)
    loc = prefcurate.decontaminate(train, index)
    assert 20 < loc.n_removed < 100
    # Parquet shards (read lazily by row group, in name order) and a ray.data.Dataset
    shards = tmp_path / "train"
    shards.mkdir()
    for k, a in enumerate(range(0, 500, 130)):
        pq.write_table(train.slice(a, 130), shards / f"part-{k:02d}.parquet", row_group_size=50)
    for given in (train, shards, ray_data.from_arrow(train)):
        rr = prefcurate.decontaminate(given, index, engine="ray", ray_options=OPTS)
        np.testing.assert_array_equal(loc.contaminated, rr.contaminated)
        assert loc.matches.equals(rr.matches)
        assert loc.attribution.equals(rr.attribution)
        assert loc.summary().equals(rr.summary())
        assert to_table(rr.kept).equals(loc.kept)
        assert to_table(rr.removed).equals(loc.removed)
    # a list of str: kept and removed as tables with a "text" column
    texts = train.column("prompt").to_pylist()
    rr = prefcurate.decontaminate(texts, bench, engine="ray", ray_options=OPTS)
    assert loc.matches.equals(rr.matches)
    assert to_table(rr.kept).column("text").to_pylist() == prefcurate.decontaminate(texts, bench).kept
    removed = to_table(rr.removed)
    assert removed.column("train_index").to_pylist() == loc.attribution.column("train_index").to_pylist()
    # written as Parquet shards and read back
    paths = rr.write_parquet(tmp_path / "out")
    assert pq.read_table(paths["removed"]).num_rows == loc.n_removed
    assert sorted(pq.read_table(paths["kept"]).column("text").to_pylist()) == sorted(
        prefcurate.decontaminate(texts, bench).kept
    )


def test_decontaminate_errors_name_the_global_row(decont_data):
    bench, train = decont_data
    bad = train.set_column(
        1, "prompt", pa.array([None if i == 130 else v for i, v in enumerate(train["prompt"].to_pylist())])
    )
    with pytest.raises(InvalidInputError, match=r"\brow 130\b"):
        prefcurate.decontaminate(bad, bench, engine="ray", ray_options=OPTS)
    with pytest.raises(InvalidInputError, match="reference"):
        prefcurate.decontaminate(train, bench, method="precise", engine="ray")
    with pytest.raises(InvalidInputError, match="no column 'nope'"):
        prefcurate.decontaminate(train, bench, text="nope", engine="ray")
    with pytest.raises(InvalidInputError, match="engine must be"):
        prefcurate.decontaminate(train, bench, engine="spark")
    with pytest.raises(InvalidInputError, match="unknown option"):
        prefcurate.decontaminate(train, bench, engine="ray", ray_options={"batchsize": 3})


# ---------------------------------------------------------------- dedup


def test_dedup_texts_equals_local(monkeypatch):
    texts = _texts()
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "prompt": texts})
    passes = []
    verify = ray_dedup._verify
    monkeypatch.setattr(ray_dedup, "_verify", lambda *a, **k: passes.append(1) or verify(*a, **k))
    loc = prefcurate.dedup(table, threshold=0.7)
    rr = prefcurate.dedup(table, threshold=0.7, engine="ray", ray_options=OPTS)
    _same_dedup(loc, rr)
    assert loc.info == rr.info and loc.info["no_shingles"] == 2 and loc.info["short"] == 3
    by = loc.summary()["by_reason"]
    assert by["exact_duplicate"] > 70 and by["near_duplicate"] > 20
    # the chain's far end is no LSH candidate of the kept row: its similarity
    # was computed in a second verification pass
    assert loc.duplicate_of[55] == 50 and loc.similarity[55] < 0.3 and len(passes) == 2
    # exact keys only, from a list of str
    loc = prefcurate.dedup(texts, method="exact")
    rr = prefcurate.dedup(texts, method="exact", engine="ray", ray_options=OPTS)
    np.testing.assert_array_equal(loc.duplicate_of, rr.duplicate_of)
    assert loc.reason.tolist() == rr.reason.tolist() and loc.info == rr.info
    assert to_table(rr.kept).column("text").to_pylist() == loc.kept


@pytest.mark.parametrize(
    "settings",
    [
        {"threshold": 0.7, "keep": ["c", "b"]},
        {"method": "exact", "keep": "score", "level": "pair"},
        {"threshold": 0.5, "level": "prompt_chosen", "shingle": "char", "ngram": 8},
    ],
    ids=["minhash-sources", "exact-score", "prompt_chosen-char"],
)
def test_dedup_pairs_equals_local(settings):
    pairs = _pairs()
    loc = prefcurate.dedup(pairs, **settings)
    rr = prefcurate.dedup(pairs, **settings, engine="ray", ray_options=OPTS)
    _same_dedup(loc, rr)
    by = loc.summary()["by_reason"]
    assert by["degenerate_pair"] > 5 and by["contradictory_pair"] > 10
    res = rr.stage_result()
    assert res.n_removed == loc.n_removed and res.summary() == loc.stage_result().summary()


def test_dedup_copies_of_a_removed_first_row_link_on_ray():
    # the first row of the prompt group is degenerate: the other copies still
    # link to the first *kept* one, on both engines
    p = "one shared prompt"
    rows = [("same", "same"), ("x", "y"), ("z", "w"), ("u", "v")]
    pairs = pa.table(
        {
            "id": [f"r{i}" for i in range(4)],
            "chosen": [_conv(p, c) for c, _ in rows],
            "rejected": [_conv(p, j) for _, j in rows],
        }
    )
    for method in ("exact", "minhash"):
        loc = prefcurate.dedup(pairs, level="prompt", method=method)
        rr = prefcurate.dedup(pairs, level="prompt", method=method, engine="ray", ray_options=OPTS)
        _same_dedup(loc, rr)
        assert loc.reason.tolist() == ["degenerate_pair", None, "exact_duplicate", "exact_duplicate"]


def test_dedup_ray_refuses_an_index():
    pairs = _pairs(n=20)
    with pytest.raises(InvalidInputError, match="against"):
        prefcurate.dedup(pairs, against=prefcurate.DedupIndex(pairs), engine="ray")


# ---------------------------------------------------------------- selection


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(3)
    n = 600
    return pa.table(
        {
            "id": [f"s{i:04d}" for i in rng.permutation(n)],
            "category": rng.choice(["Math", "Coding & Debugging", "x", "y", None], n).tolist(),
            "source": rng.choice(["magpie_air", "magpie_pro", "magpie_ultra"], n).tolist(),
            "score": [None if rng.random() < 0.03 else float(rng.integers(0, 20)) / 4 for _ in range(n)],
        }
    )


@pytest.mark.parametrize(
    "settings",
    [
        prefcurate.SKYWORK_MAGPIE,
        {"k": {"Math": 3}, "default_k": 7, "group_map": {"x": "xy", "y": "xy"}},
        {"group_by": ["category", "source"], "k": 2, "tie_break": None},
    ],
    ids=["skywork-fractions", "k-merged-groups", "composite-groups"],
)
def test_select_equals_local(pool, settings):
    idx = prefcurate.select_top_indices(pool, **settings)
    np.testing.assert_array_equal(
        idx, prefcurate.select_top_indices(pool, **settings, engine="ray", ray_options=OPTS)
    )
    kept = prefcurate.select_top(pool, **settings, engine="ray", ray_options=OPTS)
    assert to_table(kept).equals(pool.take(pa.array(idx)))
    loc = prefcurate.select_top_result(pool, **settings)
    rr = prefcurate.select_top_result(pool, **settings, engine="ray", ray_options=OPTS)
    assert rr.info == loc.info
    assert rr.summary() == loc.summary()  # by reason, by source, per-group info
    assert to_table(rr.kept).equals(loc.kept)
    assert to_table(rr.removed).equals(loc.removed)


# ---------------------------------------------------------------- faults


def test_a_worker_killed_mid_run_changes_nothing(tmp_path, decont_data):
    texts = _texts(seed=5, n=200)
    loc = prefcurate.dedup(texts, threshold=0.7)
    opts = {**OPTS, "batch_hook": FailOnce(tmp_path, "dedup.keys", row=100)}
    rr = prefcurate.dedup(texts, threshold=0.7, engine="ray", ray_options=opts)
    assert (tmp_path / "killed-dedup.keys-100").exists()  # the worker did die
    np.testing.assert_array_equal(loc.duplicate_of, rr.duplicate_of)
    assert loc.reason.tolist() == rr.reason.tolist() and loc.info == rr.info
    assert to_table(rr.removed).to_pylist() == loc.removed

    bench, train = decont_data
    opts = {**OPTS, "batch_hook": FailOnce(tmp_path, "decontaminate.scan", row=250)}
    rr = prefcurate.decontaminate(train, bench, engine="ray", ray_options=opts)
    assert (tmp_path / "killed-decontaminate.scan-250").exists()
    loc = prefcurate.decontaminate(train, bench)
    assert loc.attribution.equals(rr.attribution) and loc.matches.equals(rr.matches)


# ---------------------------------------------------------------- scoring


def test_score_pairs_on_an_actor_pool_matches_local(shared: Path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(shared / "tokenizers" / "torchtune_tiny_bpe_tokenizer.json"),
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
    )
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    tok.chat_template = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tok),
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    config.num_labels = 1
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    scorer = prefcurate.RewardScorer(model, tok, device="cpu", token_budget=2000)
    pairs = _pairs(n=60).drop_columns(["score"])
    loc = scorer.score_pairs(pairs)
    rr = to_table(scorer.score_pairs(pairs, engine="ray", ray_options={"batch_size": 20}))
    # the same rows in the same order; scores as equal as batching allows
    assert rr.drop_columns(["chosen_score", "rejected_score"]).equals(
        loc.drop_columns(["chosen_score", "rejected_score"])
    )
    for col in ("chosen_score", "rejected_score"):
        np.testing.assert_allclose(rr[col].to_numpy(), loc[col].to_numpy(), rtol=0, atol=1e-5)
    assert np.std(loc["chosen_score"].to_numpy()) > 1e-3
