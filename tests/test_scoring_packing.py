"""Packed (padding-free) batches: the packing plan, out-of-memory halving
and the resumable cache with packed rows, and the models that cannot be
packed (scored through their own forward instead)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prefcurate import InvalidInputError, RewardScorer  # noqa: E402
from prefcurate.scoring import plan_packs  # noqa: E402
from prefcurate.scoring.batching import packed_layout  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PREFCURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOKENIZER = SHARED / "tokenizers" / "torchtune_tiny_bpe_tokenizer.json"
TEMPLATE = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{% endfor %}"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models; OpenMP spinning on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- the plan


def test_plan_packs_places_every_row_once_within_capacity_and_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=400)
    batches = plan_packs(lengths, 512, 2048)
    rows = np.concatenate([np.concatenate(b) for b in batches])
    assert sorted(rows.tolist()) == list(range(400))
    for b in batches:
        totals = [int(lengths[x].sum()) for x in b]
        assert all(t <= 512 for t in totals)
        assert len(b) * max(totals) <= 2048
    used = sum(int(lengths[np.concatenate(b)].sum()) for b in batches)
    slots = sum(len(b) * max(int(lengths[x].sum()) for x in b) for b in batches)
    assert used / slots > 0.95  # first-fit decreasing leaves little room
    assert [[x.tolist() for x in b] for b in plan_packs(lengths, 512, 2048)] == [
        [x.tolist() for x in b] for b in batches
    ]  # deterministic


def test_plan_packs_long_rows_caps_and_rows_that_go_alone():
    # a row longer than the capacity gets a bin of its own, and a batch of its own
    assert [[x.tolist() for x in b] for b in plan_packs([900, 10, 20], 100, 1000)] == [[[0]], [[2, 1]]]
    # one bin per batch (flash-attention's varlen: a single packed row)
    assert all(len(b) == 1 for b in plan_packs([30] * 10, 100, 1000, max_bins=1))
    # at most max_batch_size rows per bin and per batch
    for b in plan_packs([5] * 50, 100, 1000, max_batch_size=4):
        assert sum(len(x) for x in b) <= 4
    # rows flagged alone (longer than a sliding window) are never packed
    alone = np.array([False, True, False, True])
    out = [[x.tolist() for x in b] for b in plan_packs([10, 80, 10, 70], 200, 1000, alone=alone)]
    assert out == [[[0, 2]], [[1]], [[3]]]


def test_packed_layout_restarts_positions_and_reads_each_sequence_at_its_own_token():
    seqs = [np.array([5, 6, 7]), np.array([8, 9]), np.array([1, 2, 3, 4])]
    lay = packed_layout(seqs, np.array([2, 1, 3]), [np.array([0, 1]), np.array([2])], pad_id=0)
    assert lay.input_ids.tolist() == [[5, 6, 7, 8, 9], [1, 2, 3, 4, 0]]
    assert lay.position_ids.tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    assert lay.segments.tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 1]]  # the filler is its own segment
    assert list(zip(lay.pool_rows.tolist(), lay.pool_cols.tolist())) == [(0, 2), (0, 4), (1, 3)]
    assert lay.real_tokens == 9 and lay.padded_tokens == 10


# --------------------------------------------------------------------------- scoring packed


@pytest.fixture(scope="module")
def tokenizer():
    if not TOKENIZER.exists():
        pytest.skip(f"tokenizer not found at {TOKENIZER} (set PREFCURATE_SHARED_DATA to ../shared/data)")
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER), bos_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    tok.chat_template = TEMPLATE
    return tok


def tiny_llama(tokenizer, cls=None, seed=0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        num_labels=1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = (cls or LlamaForSequenceClassification)(config).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.score.weight, std=1.0)
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer)


@pytest.fixture(scope="module")
def conversations():
    rng = np.random.default_rng(3)
    words = [
        "reward",
        "model",
        "score",
        "token",
        "answer",
        "question",
        "the",
        "a",
        "why",
        "because,",
        "first",
        "last.",
    ]
    return [
        [
            {"role": "user", "content": " ".join(rng.choice(words, size=rng.integers(2, 20)))},
            {"role": "assistant", "content": " ".join(rng.choice(words, size=rng.integers(1, 120)))},
        ]
        for _ in range(24)
    ]


def unpadded(model, tokenizer, conversations):
    with torch.no_grad():
        return np.array(
            [
                model(torch.tensor([tokenizer.apply_chat_template(c, tokenize=True)["input_ids"]]))
                .logits[0, 0]
                .item()
                for c in conversations
            ]
        )


class Counter:
    """Wraps RewardScorer._forward: counts the sequences scored, and can fail."""

    def __init__(self, sc, fail=None):
        self.inner, self.fail, self.calls, self.done = sc._forward, fail, 0, 0
        self.lock = threading.Lock()
        sc._forward = self

    def __call__(self, worker, input_ids, attention_mask, **kw):
        with self.lock:
            self.calls += 1
        if self.fail is not None:
            self.fail(self.calls, input_ids)
        out = self.inner(worker, input_ids, attention_mask, **kw)
        with self.lock:
            self.done += len(out)
        return out


def test_packed_out_of_memory_halves_and_loses_no_row(model, tokenizer, conversations):
    ref = unpadded(model, tokenizer, conversations)
    sc = RewardScorer(model, tokenizer, device="cpu", packing=True, token_budget=1024, max_length=512)

    def oom_over_300_tokens(call, input_ids):
        if input_ids.numel() > 300:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    rec = Counter(sc, oom_over_300_tokens)
    res = sc.score_detailed(conversations)
    np.testing.assert_allclose(res.scores, ref, rtol=0, atol=1e-5)
    assert rec.done == len(conversations)  # every row scored exactly once
    assert res.stats.oom_retries > 0 and sc._workers[0].budget <= 512


def test_packed_run_resumes_from_the_cache_with_identical_scores(model, tokenizer, conversations, tmp_path):
    kw = dict(device="cpu", packing=True, token_budget=400, max_length=512, model_id="tiny")
    full = RewardScorer(model, tokenizer, **kw).score(conversations)

    def killed_after_2_batches(call, input_ids):
        if call > 2:
            raise RuntimeError("killed (simulated)")

    first = RewardScorer(model, tokenizer, cache_dir=tmp_path, cache_flush_rows=1, **kw)
    rec = Counter(first, killed_after_2_batches)
    with pytest.raises(RuntimeError, match="killed"):
        first.score(conversations)
    assert 0 < rec.done < len(conversations)
    second = RewardScorer(model, tokenizer, cache_dir=tmp_path, **kw)
    rec2 = Counter(second)
    res = second.score_detailed(conversations)
    assert rec2.done == len(conversations) - rec.done and res.stats.rows_cached == rec.done
    np.testing.assert_array_equal(res.scores, full)


def test_two_workers_score_packed_batches(model, tokenizer, conversations):
    ref = unpadded(model, tokenizer, conversations)
    sc = RewardScorer(model, tokenizer, device=["cpu", "cpu"], packing=True, token_budget=300, max_length=512)
    res = sc.score_detailed(conversations)
    np.testing.assert_allclose(res.scores, ref, rtol=0, atol=1e-5)
    assert sum(res.stats.rows_by_device.values()) == len(conversations)


class OwnLlama(transformers.LlamaForSequenceClassification):
    """A reward model class from outside transformers (like remote code):
    the scorer cannot know how its head pools, so it calls its forward."""


def test_models_the_scorer_cannot_split_are_scored_through_their_own_forward(tokenizer, conversations):
    model = tiny_llama(tokenizer, OwnLlama)
    assert model.config.pad_token_id is None
    ref = unpadded(model, tokenizer, conversations)
    sc = RewardScorer(model, tokenizer, device="cpu", token_budget=600, max_length=512)
    assert sc._workers[0].head is None
    res = sc.score_detailed(conversations)  # no pad id: one row at a time inside each batch
    np.testing.assert_allclose(res.scores, ref, rtol=0, atol=1e-5)
    assert model.config.pad_token_id is None
    with pytest.raises(InvalidInputError, match="packing=True: OwnLlama is not a transformers decoder"):
        RewardScorer(model, tokenizer, device="cpu", packing=True)


def test_the_varlen_layout_flash_attention_gets(model, tokenizer, conversations):
    """With flash_attention_2 a batch is one packed row with restarting
    position_ids and no mask (flash-attention's varlen kernel).  No GPU here:
    transformers' own packed-sequence detection (which builds the
    block-diagonal mask from the position_ids for SDPA) stands in for it."""
    masking = pytest.importorskip("transformers.masking_utils")
    if not hasattr(masking, "find_packed_sequence_indices"):
        pytest.skip(f"transformers {transformers.__version__} does not detect packed position_ids")
    ref = unpadded(model, tokenizer, conversations)
    sc = RewardScorer(model, tokenizer, device="cpu", packing=True, token_budget=700, max_length=512)
    sc.packing_mode = "varlen"
    seen = []
    inner = sc._forward

    def spy(worker, input_ids, attention_mask, **kw):
        seen.append((input_ids.shape[0], attention_mask, kw["position_ids"]))
        return inner(worker, input_ids, attention_mask, **kw)

    sc._forward = spy
    res = sc.score_detailed(conversations)
    np.testing.assert_allclose(res.scores, ref, rtol=0, atol=1e-5)
    assert all(rows == 1 and mask is None and pos is not None for rows, mask, pos in seen)
    assert len(seen) < len(conversations) and res.stats.padding_efficiency == 1.0
