"""The model embedders offline: a sentence-transformers model and a
model2vec static model built from a config (random weights, a real
tokenizer from the shared data), saved to a folder and loaded by path
through the semantic stages."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from prefcurate import InvalidInputError
from prefcurate.embed import (
    Model2VecEmbedder,
    SentenceTransformerEmbedder,
    as_embedder,
    embed_texts,
    open_cache,
)
from prefcurate.embed.models import pick_backend
from prefcurate.engines import local_semantic as local
from prefcurate.stages import semantic as sem

TOKENIZER = "tokenizers/torchtune_tiny_bpe_tokenizer.json"

BENCH = [
    "Write a function that reverses a linked list in place.",
    "What is the capital city of Australia?",
    "Explain why the sky is blue to a five year old.",
    "How many prime numbers are there below one hundred?",
]
TRAIN = [
    "Write a function that reverses a linked list in place.",
    "Give me a recipe for banana bread without eggs.",
    "what is the capital city of australia?",
    "Summarise the plot of Hamlet in three sentences.",
]


@pytest.fixture(scope="module")
def tokenizer_file(shared: Path) -> Path:
    p = shared / TOKENIZER
    if not p.exists():
        pytest.skip(f"{p} not found")
    return p


@pytest.fixture(scope="module")
def st_model(tmp_path_factory, tokenizer_file) -> Path:
    """A tiny BERT with random weights and the shared BPE tokenizer, saved
    as a sentence-transformers folder (transformer + mean pooling)."""
    pytest.importorskip("sentence_transformers")
    torch = pytest.importorskip("torch")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    hf = tmp_path_factory.mktemp("hf-bert")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), pad_token="<|endoftext|>")
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(hf)
    tok.save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=64)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    out = tmp_path_factory.mktemp("st-model")
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(out))
    (out / ".plain-transformers-folder").write_text(str(hf))
    return out


@pytest.fixture(scope="module")
def m2v_model(tmp_path_factory, tokenizer_file) -> Path:
    pytest.importorskip("model2vec")
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    vectors = np.random.default_rng(0).standard_normal((tok.get_vocab_size(), 16)).astype(np.float32)
    out = tmp_path_factory.mktemp("m2v-model")
    StaticModel(vectors, tok, normalize=False).save_pretrained(str(out))
    return out


def test_sentence_transformers_folder(st_model, tmp_path):
    emb = as_embedder(str(st_model), device="cpu")
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert emb.dim == 32
    out = emb.embed(BENCH)
    assert out.shape == (4, 32) and out.dtype == np.float32
    # batch size does not change the vectors beyond float noise
    small = SentenceTransformerEmbedder(str(st_model), device="cpu", batch_size=1).embed(BENCH)
    assert np.abs(small - out).max() < 1e-4
    # it pickles without its model (Ray actors load their own)
    again = pickle.loads(pickle.dumps(emb))
    assert again._model is None and np.allclose(again.embed(BENCH[:1]), out[:1], atol=1e-5)
    ident = emb.identity()
    assert ident["fingerprint"] and ident["dtype"] == "float32"


def test_sentence_transformers_through_the_stages(st_model, tmp_path):
    cfg = sem.SemanticDecontaminateConfig(
        embedder=str(st_model), device="cpu", threshold=0.999, cache_dir=str(tmp_path)
    )
    r = local.decontaminate(TRAIN, BENCH, cfg)
    assert r.contaminated[0]  # the verbatim copy
    assert r.best_index[0] == 0 and r.best_score[0] > 0.999
    assert r.embedder == str(st_model.resolve())
    r2 = local.decontaminate(TRAIN, BENCH, cfg)
    assert r2.info["embedding"]["embedded"] == 0  # all from the cache
    assert (r2.best_score == r.best_score).all()
    d = local.dedup(
        TRAIN + TRAIN[:1], sem.SemanticDedupConfig(embedder=str(st_model), device="cpu", threshold=0.999)
    )
    assert d.reason.tolist()[-1] == "exact_duplicate"


def test_a_plain_transformers_folder_gets_mean_pooling(st_model):
    hf = (st_model / ".plain-transformers-folder").read_text()
    emb = as_embedder(hf, device="cpu")
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert emb.embed(BENCH).shape == (4, 32)


def test_model2vec_folder(m2v_model, tmp_path):
    assert pick_backend(str(m2v_model)) == ("model2vec", str(m2v_model))
    emb = as_embedder(str(m2v_model))
    assert isinstance(emb, Model2VecEmbedder) and emb.dim == 16
    out = emb.embed(BENCH)
    assert out.shape == (4, 16)
    vecs = embed_texts(emb, BENCH, cache=open_cache(emb, tmp_path))
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    r = local.decontaminate(
        TRAIN, BENCH, sem.SemanticDecontaminateConfig(embedder=str(m2v_model), threshold=0.999)
    )
    assert r.contaminated[0] and r.best_index[0] == 0
    d = local.dedup(
        TRAIN + BENCH, sem.SemanticDedupConfig(embedder=f"model2vec:{m2v_model}", threshold=0.999)
    )
    assert d.reason.tolist()[4] == "exact_duplicate" and d.duplicate_of[4] == 0


def test_backend_choice():
    assert pick_backend("minishlab/potion-base-8M") == ("model2vec", "minishlab/potion-base-8M")
    assert pick_backend("sentence-transformers/all-MiniLM-L6-v2")[0] == "sentence-transformers"
    assert pick_backend("model2vec:org/m") == ("model2vec", "org/m")
    assert pick_backend("st:org/m") == ("sentence-transformers", "org/m")
    assert pick_backend("org/m", "model2vec") == ("model2vec", "org/m")
    with pytest.raises(InvalidInputError):
        pick_backend("org/m", "onnx")
    with pytest.raises(InvalidInputError, match="dtype"):
        SentenceTransformerEmbedder("org/m", dtype="int4")


def test_an_unreachable_hub_name_fails_fast(monkeypatch):
    pytest.importorskip("sentence_transformers")
    from prefcurate import hub

    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: "no network here")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    emb = as_embedder("nobody/no-such-model-xyz", device="cpu")
    with pytest.raises(hub.HubUnreachableError):
        emb.embed(["a"])


def test_the_cli_runs_the_semantic_method(m2v_model, tmp_path):
    """`--method semantic --embedder PATH --threshold T` on decontaminate and dedup."""
    import json
    import subprocess
    import sys

    train = tmp_path / "train.jsonl"
    rows = [
        {"prompt": "How do I sort a list in Python?"},
        {"prompt": "How do I sort a list in Python?"},
        {"prompt": "Name three rivers in France."},
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        json.dumps({"id": "b1", "subset": "s", "prompt": "How do I sort a list in Python?"}) + "\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "prefcurate.cli", *args], capture_output=True, text=True)

    common = ["--method", "semantic", "--embedder", str(m2v_model), "--threshold", "0.99", "--device", "cpu"]
    r = run("decontaminate", str(train), "--benchmark", str(bench), "--out", str(tmp_path / "d"), *common)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s["method"] == "semantic" and s["removed"] >= 1 and s["params"]["threshold"] == 0.99
    r = run("dedup", str(train), "--out", str(tmp_path / "u"), *common)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "u" / "summary.json").read_text())
    assert s["removed"] == 1 and s["input"] == 3


def test_a_recipe_runs_the_ngram_then_the_semantic_tier(m2v_model, tmp_path):
    from prefcurate import cli
    from prefcurate.pipeline import Pipeline, Recipe, _toml_loads

    text = f"""
name = "tiered"
[[sources]]
name = "magpie_ultra"
path = "sources/magpie_ultra.jsonl"
format = "magpie_ultra"
[decontaminate]
benchmark = "benchmark.jsonl"
method = "reference"
[decontaminate.semantic]
embedder = "{m2v_model}"
threshold = 0.9
device = "cpu"
[output]
format = "jsonl"
"""
    recipe = Recipe.from_dict(_toml_loads(text))
    out = tmp_path / "out"
    res = Pipeline(recipe, out, data_dir=cli.demo_dir()).run()
    names = [s.stage for s in res.stages]
    assert names[-2:] == ["decontaminate", "decontaminate:semantic"]
    first, sem = res.stage("decontaminate"), res.stage("decontaminate:semantic")
    assert sem.n_input == first.n_kept  # the semantic tier runs on what the n-gram tier kept
    tiers = sem.info["tiers"]
    assert tiers["ngram_removed"] == first.n_removed == 2
    assert tiers["flagged_by_both"] + tiers["ngram_only"] == tiers["ngram_removed"]
    assert tiers["semantic_only"] == sem.n_removed
    report = (out / "report.md").read_text()
    assert "semantic tier" in report and "ngram_removed" in report
    assert "semantic tier" in (out / "README.md").read_text()
    # the summary and the removed rows of both tiers are written
    assert (out / "removed" / "decontaminate.parquet").exists()
    s = {x["name"]: x for x in __import__("json").loads((out / "summary.json").read_text())["stages"]}
    assert s["decontaminate:semantic"]["input"] == first.n_kept
