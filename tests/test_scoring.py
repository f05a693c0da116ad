"""Reward-model scoring and the margin filter, on the CPU with a tiny Llama
classifier and a real BPE tokenizer: batching equals one-at-a-time scoring,
the BOS is not doubled, left truncation is recorded, two workers, simulated
out-of-memory, the resumable cache, filter_margin's accounting, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prefcurate import InvalidInputError, RewardScorer, cli, filter_margin, read_table  # noqa: E402
from prefcurate.schema import pair_id  # noqa: E402
from prefcurate.scoring import ScoringError, plan_batches  # noqa: E402

TEMPLATE = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
BOS = 2000  # <|endoftext|> in the tiny tokenizer


@pytest.fixture(scope="module")
def tokenizer(shared: Path):
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(shared / "tokenizers" / "torchtune_tiny_bpe_tokenizer.json"),
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
    )
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    # like Llama's tokenizers: encoding text adds a BOS, so templating to text
    # and encoding it again naively would give two
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", BOS)]
    )
    tok.chat_template = TEMPLATE
    assert tok.bos_token_id == BOS and tok.pad_token_id == 2003
    return tok


def tiny_model(tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=BOS,
    )
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer)


@pytest.fixture(scope="module")
def conversations(shared: Path):
    """40 real Skywork prompts with answers cut to seeded random lengths; some
    with a system turn, some multi-turn."""
    rng = np.random.default_rng(7)
    rows = [
        json.loads(x) for x in open(shared / "pairs" / "skywork_v0.2_prompt_sample.jsonl", encoding="utf-8")
    ]
    out = []
    for k, r in enumerate(rows[:40]):
        conv = [
            {"role": "user", "content": r["query"][: rng.integers(10, 400)]},
            {"role": "assistant", "content": r["chosen_response"][: rng.integers(1, 900)]},
        ]
        if k % 5 == 0:
            conv.insert(0, {"role": "system", "content": "You are a helpful assistant."})
        if k % 7 == 0:
            conv += [
                {"role": "user", "content": "And why?"},
                {"role": "assistant", "content": r["rejected_response"][: rng.integers(1, 300)]},
            ]
        out.append(conv)
    return out


def one_at_a_time(model, tokenizer, conversations, max_length=None):
    """The reference: transformers' own chat-template tokenisation, one
    unpadded sequence per forward pass."""
    out = []
    with torch.no_grad():
        for conv in conversations:
            ids = tokenizer.apply_chat_template(conv, tokenize=True)["input_ids"]
            if max_length is not None and len(ids) > max_length:
                ids = [ids[0], *ids[len(ids) - max_length + 1 :]]
            out.append(model(torch.tensor([ids])).logits[0, 0].item())
    return np.array(out)


def scorer(model, tokenizer, **kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("token_budget", 1500)
    kw.setdefault("max_length", 1024)
    return RewardScorer(model, tokenizer, **kw)


class Recorder:
    """Wraps RewardScorer._forward: counts the rows that went through the
    model, and can fail on chosen calls."""

    def __init__(self, sc: RewardScorer, fail=None):
        self.sc, self.inner, self.fail = sc, sc._forward, fail
        self.calls = 0
        self.rows_done = 0
        self.first_tokens: list[tuple[int, ...]] = []
        self.lock = threading.Lock()
        sc._forward = self  # type: ignore[method-assign]

    def __call__(self, worker, input_ids, attention_mask, **kw):
        with self.lock:
            self.calls += 1
            call = self.calls
        if self.fail is not None:
            self.fail(call, input_ids)
        out = self.inner(worker, input_ids, attention_mask, **kw)
        with self.lock:
            self.rows_done += len(out)  # sequences scored (several per row when packed)
        return out


# --------------------------------------------------------------------------- batching


def test_plan_batches_fill_the_budget_longest_first():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    batches = plan_batches(lengths, 2000)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(500))  # every row once
    for b in batches:
        assert len(b) * lengths[b].max() <= 2000
        assert lengths[b[0]] == lengths[b].max()
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)
    assert [len(b) for b in plan_batches([5000, 10, 10], 1000)] == [1, 2]  # over-budget row goes alone
    assert max(len(b) for b in plan_batches([4] * 100, 1000, max_batch_size=16)) == 16


@pytest.mark.parametrize("skip_mask", [True, False], ids=["no-mask", "mask"])
def test_batched_scores_equal_one_at_a_time_in_input_order(model, tokenizer, conversations, skip_mask):
    sc = scorer(model, tokenizer, skip_padding_mask=skip_mask)
    res = sc.score_detailed(conversations)
    ref = one_at_a_time(model, tokenizer, conversations)
    assert res.scores.dtype == np.float32 and res.scores.shape == (len(conversations),)
    np.testing.assert_allclose(res.scores, ref, rtol=0, atol=1e-5)
    st = res.stats
    assert st.batches > 3 and st.rows_computed == len(conversations)
    assert st.padding_efficiency < 1.0  # batches really were padded
    assert st.padded_tokens <= st.batches * 1500
    assert not res.truncated.any()
    # scores differ enough that a wrong order would show
    assert np.std(ref) > 100 * 1e-5


def test_bos_is_not_doubled(model, tokenizer, conversations):
    sc = scorer(model, tokenizer)
    enc = sc.encode(conversations[:5])
    text = tokenizer.apply_chat_template(conversations[0], tokenize=False)
    assert tokenizer(text)["input_ids"][:2] == [BOS, BOS]  # the naive path would double it
    for conv, ids in zip(conversations[:5], enc.ids):
        assert ids[0] == BOS and ids[1] != BOS
        assert ids == tokenizer.apply_chat_template(conv, tokenize=True)["input_ids"]


def test_left_truncation_is_recorded_and_keeps_the_answer(model, tokenizer, conversations):
    sc = scorer(model, tokenizer, max_length=200)
    full = sc.encode(conversations).n_original
    res = sc.score_detailed(conversations)
    long = full > 200
    assert long.any() and (~long).any()
    assert res.truncated.tolist() == long.tolist()
    assert (res.n_tokens == np.minimum(full, 200)).all() and (res.n_tokens_original == full).all()
    assert res.stats.rows_truncated == int(long.sum())
    enc = sc.encode(conversations)
    row = int(np.flatnonzero(long)[0])
    whole = tokenizer.apply_chat_template(conversations[row], tokenize=True)["input_ids"]
    assert enc.ids[row] == [BOS, *whole[-199:]]  # BOS kept, then the last tokens (the answer)
    np.testing.assert_allclose(res.scores, one_at_a_time(model, tokenizer, conversations, 200), atol=1e-5)

    strict = scorer(model, tokenizer, max_length=200, truncation="error")
    with pytest.raises(InvalidInputError, match=rf"row {row}: \d+ tokens, more than max_length=200"):
        strict.score(conversations)


def test_bad_rows_are_named(model, tokenizer, conversations):
    sc = scorer(model, tokenizer)
    good = conversations[:3]
    with pytest.raises(InvalidInputError, match="row 3: empty conversation"):
        sc.score([*good, []])
    with pytest.raises(InvalidInputError, match="row 1: message 0 has no role"):
        sc.score([good[0], [{"content": "hi"}], good[1]])
    with pytest.raises(InvalidInputError, match=r"row 0: message 1 \(assistant\) has NoneType content"):
        sc.score([[{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]])
    with pytest.raises(InvalidInputError, match="row 2: expected a list"):
        sc.score([good[0], good[1], "just a string"])
    no_template = scorer(model, tokenizer)
    no_template.tokenizer = type(tokenizer)(tokenizer_object=tokenizer._tokenizer)
    with pytest.raises(InvalidInputError, match="no chat template"):
        no_template.score(good)


def test_score_ids_matches_score(model, tokenizer, conversations):
    sc = scorer(model, tokenizer)
    ids = sc.encode(conversations).ids
    np.testing.assert_array_equal(sc.score_ids(ids).scores, sc.score(conversations))


# --------------------------------------------------------------------------- workers, OOM


def test_two_cpu_workers_share_the_batches(model, tokenizer, conversations):
    single = scorer(model, tokenizer).score(conversations)
    sc = scorer(model, tokenizer, device=["cpu", "cpu"], token_budget=800)
    barrier = threading.Barrier(2, timeout=30)
    seen: set[str] = set()

    def both_workers_start(call, input_ids):  # each worker waits for the other once
        name = threading.current_thread().name
        if name not in seen:
            seen.add(name)
            barrier.wait()

    rec = Recorder(sc, both_workers_start)
    res = sc.score_detailed(conversations)
    np.testing.assert_allclose(res.scores, single, atol=1e-5)
    assert rec.rows_done == len(conversations)  # no row twice
    by_dev = res.stats.rows_by_device
    assert sorted(by_dev) == ["cpu#0", "cpu#1"] and all(v > 0 for v in by_dev.values())
    assert sum(by_dev.values()) == len(conversations)


def test_out_of_memory_halves_the_batch_and_loses_no_row(model, tokenizer, conversations):
    ref = scorer(model, tokenizer, token_budget=4000).score(conversations)
    sc = scorer(model, tokenizer, token_budget=4000)

    def oom_over_1000_tokens(call, input_ids):
        if input_ids.numel() > 1000:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    rec = Recorder(sc, oom_over_1000_tokens)
    res = sc.score_detailed(conversations)
    np.testing.assert_allclose(res.scores, ref, atol=1e-5)
    assert rec.rows_done == len(conversations)  # every row scored exactly once
    assert res.stats.oom_retries > 0 and res.stats.rows_computed == len(conversations)
    assert sc._workers[0].budget <= 2000  # later batches start smaller

    def oom_always(call, input_ids):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    Recorder(sc, oom_always)
    with pytest.raises(ScoringError, match=r"row \d+ \(\d+ tokens\) does not fit in cpu memory even alone"):
        sc.score(conversations[:3])


# --------------------------------------------------------------------------- cache and resume


def shards(cache_dir: Path) -> pa.Table:
    files = sorted(cache_dir.glob("*/part-*.parquet"))
    return (
        pa.concat_tables([pq.read_table(f) for f in files]) if files else pa.table({"key": [], "score": []})
    )


def test_killed_run_resumes_without_recomputing(model, tokenizer, conversations, tmp_path):
    n = len(conversations)
    uninterrupted = scorer(model, tokenizer, token_budget=1000).score(conversations)

    def killed_after_3_batches(call, input_ids):
        if call > 3:
            raise RuntimeError("killed (simulated)")

    first = scorer(
        model, tokenizer, token_budget=1000, cache_dir=tmp_path, model_id="tiny", cache_flush_rows=1
    )
    rec = Recorder(first, killed_after_3_batches)
    with pytest.raises(RuntimeError, match="killed"):
        first.score(conversations)
    done_before_kill = rec.rows_done
    assert 0 < done_before_kill < n
    on_disk = shards(tmp_path)
    assert on_disk.num_rows == done_before_kill  # every finished batch was written, nothing else
    assert len(set(on_disk.column("key").to_pylist())) == done_before_kill

    second = scorer(model, tokenizer, token_budget=1000, cache_dir=tmp_path, model_id="tiny")
    rec = Recorder(second)
    res = second.score_detailed(conversations)
    assert rec.rows_done == n - done_before_kill  # nothing cached was recomputed
    assert res.stats.rows_cached == done_before_kill
    np.testing.assert_array_equal(res.scores, uninterrupted)  # identical, not just close
    assert shards(tmp_path).num_rows == n

    third = scorer(model, tokenizer, token_budget=1000, cache_dir=tmp_path, model_id="tiny")
    rec = Recorder(third)
    np.testing.assert_array_equal(third.score(conversations), uninterrupted)
    assert rec.rows_done == 0 and rec.calls == 0

    # other weights under the same name do not reuse those scores
    other = tiny_model(tokenizer, seed=1)
    fresh = scorer(other, tokenizer, token_budget=1000, cache_dir=tmp_path, model_id="tiny")
    rec = Recorder(fresh)
    fresh.score(conversations[:4])
    assert rec.rows_done == 4


def test_cache_needs_a_model_name(model, tokenizer, tmp_path):
    model.config._name_or_path = ""
    with pytest.raises(InvalidInputError, match="model_id"):
        scorer(model, tokenizer, cache_dir=tmp_path)


# --------------------------------------------------------------------------- pairs and filter_margin


def pair_table(conversations) -> pa.Table:
    rows = []
    for k in range(0, len(conversations) - 1, 2):
        a, b = conversations[k], conversations[k + 1]
        chosen = [*a[:-1], a[-1]]
        rejected = [*a[:-1], b[-1]]  # same prompt turns, another answer
        prompt = next(m["content"] for m in a if m["role"] == "user")
        rows.append(
            {
                "id": pair_id("test", chosen, rejected),
                "source": "test",
                "chosen": chosen,
                "rejected": rejected,
                "prompt": prompt,
            }
        )
    return pa.Table.from_pylist(rows)


def test_score_pairs_and_filter_margin(model, tokenizer, conversations):
    pairs = pair_table(conversations)
    n = pairs.num_rows
    sc = scorer(model, tokenizer)
    scored = sc.score_pairs(pairs)
    assert scored.column_names[: pairs.num_columns] == pairs.column_names
    c = scored.column("chosen_score").to_numpy()
    r = scored.column("rejected_score").to_numpy()
    np.testing.assert_allclose(
        c, one_at_a_time(model, tokenizer, pairs.column("chosen").to_pylist()), atol=1e-5
    )
    np.testing.assert_allclose(
        r, one_at_a_time(model, tokenizer, pairs.column("rejected").to_pylist()), atol=1e-5
    )
    assert scored.column("chosen_truncated").to_pylist() == [False] * n

    res = filter_margin(pairs, sc)
    margin = c.astype(np.float64) - r
    assert res.stage == "filter_margin" and res.n_input == n
    assert res.kept.num_rows + res.removed.num_rows == n
    assert res.kept.num_rows == int((margin > 0).sum()) and 0 < res.kept.num_rows < n
    assert (res.kept.column("margin").to_numpy() > 0).all()
    rem = res.removed
    assert set(rem.column("reason").to_pylist()) == {"non_positive_margin"}
    assert set(rem.column("stage").to_pylist()) == {"filter_margin"}
    np.testing.assert_allclose(
        rem.column("margin").to_numpy(),
        rem.column("chosen_score").to_numpy() - rem.column("rejected_score").to_numpy(),
    )
    assert sorted(res.kept.column("id").to_pylist() + rem.column("id").to_pylist()) == sorted(
        pairs.column("id").to_pylist()
    )
    assert res.summary()["by_reason"] == {"non_positive_margin": n - res.kept.num_rows}
    assert res.info["model"] == sc.model_id and res.info["scoring"]["rows"] == 2 * n

    # precomputed scores: columns in the table, arrays, a mapping: the same split
    for given in (
        filter_margin(scored),
        filter_margin(pairs, (c, r)),
        filter_margin(pairs, {"chosen_score": c, "rejected_score": r}),
    ):
        assert given.kept.column("id").to_pylist() == res.kept.column("id").to_pylist()

    # a margin threshold and a NaN score
    m = float(np.median(margin))
    c2 = c.astype(np.float64).copy()
    c2[0] = np.nan
    res2 = filter_margin(pairs, (c2, r), min_margin=m)
    reasons = res2.removed.column("reason").to_pylist()
    assert reasons.count("nan_score") == 1
    assert set(reasons) == {"nan_score", "margin_below_min"}
    assert res2.kept.num_rows == int((margin[1:] > m).sum())
    assert res2.kept.num_rows + res2.removed.num_rows == n

    with pytest.raises(InvalidInputError, match="no .*chosen_score"):
        filter_margin(pairs)
    with pytest.raises(InvalidInputError, match="3 values for"):
        filter_margin(pairs, ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]))


def test_score_pairs_names_the_pair(model, tokenizer, conversations):
    pairs = pair_table(conversations[:6]).to_pylist()
    pairs[1]["rejected"] = []
    with pytest.raises(
        InvalidInputError, match=r"pairs row 1 \(id 'test-[0-9a-f]+'\): rejected: empty conversation"
    ):
        scorer(model, tokenizer).score_pairs(pa.Table.from_pylist(pairs))


# --------------------------------------------------------------------------- the command line


def test_cli_score_and_filter_margin(model, tokenizer, conversations, tmp_path):
    model_dir = tmp_path / "rm"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    pairs = pair_table(conversations[:16])
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in pairs.to_pylist()), encoding="utf-8")

    scored_dir = tmp_path / "scored"
    args = ["score", str(src), "--model", str(model_dir), "--out", str(scored_dir), "--device", "cpu"]
    assert cli.main([*args, "--cache-dir", str(tmp_path / "cache"), "--check", "4"]) == 0
    scored = scored_dir / "scored.jsonl"  # the input's format
    t = read_table(scored)
    score_summary = json.loads((scored_dir / "summary.json").read_text())
    assert score_summary["input"] == pairs.num_rows and score_summary["parity_check"]["passed"]
    assert len(score_summary["parity_check"]["rows"]) == 4
    ref = scorer(model, tokenizer).score_pairs(pairs)
    np.testing.assert_allclose(
        t.column("chosen_score").to_numpy(), ref.column("chosen_score").to_numpy(), atol=1e-5
    )
    assert shards(tmp_path / "cache").num_rows == 2 * pairs.num_rows

    out = tmp_path / "filtered"
    assert cli.main(["filter-margin", str(scored), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    kept = [json.loads(x) for x in open(out / "kept.jsonl")]
    removed = [json.loads(x) for x in open(out / "removed.jsonl")]
    assert summary["input"] == 8 and summary["kept"] + summary["removed"] == 8
    assert len(kept) == summary["kept"] and len(removed) == summary["removed"]
    assert all(r["margin"] > 0 for r in kept) and all(r["reason"] == "non_positive_margin" for r in removed)

    out2 = tmp_path / "filtered2"
    assert (
        cli.main(
            ["filter-margin", str(src), "--out", str(out2), "--model", str(model_dir), "--device", "cpu"]
        )
        == 0
    )
    assert json.loads((out2 / "summary.json").read_text())["kept"] == summary["kept"]

    assert cli.main(["filter-margin", str(src), "--out", str(tmp_path / "x")]) == 2  # no scores, no model


def test_import_does_not_load_torch():
    code = "import sys, prefcurate; prefcurate.RewardScorer; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_checkpoint_without_a_reward_head_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=300
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path / "lm")
    with pytest.raises(ScoringError, match=r"no trained reward head \(missing \['score.weight'\]\)"):
        RewardScorer(tmp_path / "lm", device="cpu")
