"""Reward scores equal the model's own forward, for every published
reward-model shape: tiny Llama-3, Gemma-2 (eager, soft-capping, sliding
window), Qwen2, Qwen3 and Mistral (sliding window) classifiers built from
configs, a real BPE tokenizer, chat templates ending with the EOS token,
each with no pad token, pad == EOS and a distinct pad; padded and packed
batches; left truncation; float32 and bfloat16.  The reference is the plain
transformers forward of each unpadded sequence, one at a time.  Also
:meth:`RewardScorer.check`, the parity check run before a long job."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prefcurate import RewardScorer  # noqa: E402
from prefcurate.scoring import ParityError, ParityResult, ScoringError, parity  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PREFCURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOKENIZER = SHARED / "tokenizers" / "torchtune_tiny_bpe_tokenizer.json"

FAMILIES = ["llama", "gemma2", "qwen2", "qwen3", "mistral"]
PADS = ["no_pad", "pad_eq_eos", "distinct_pad"]
MAX_LENGTH = 96  # shorter than the three longest conversations: left truncation
BUDGET = 200  # several batches, and padding in them
WINDOW = 64  # Gemma-2 and Mistral sliding window: shorter than some rows

#: bfloat16 tolerance of these tests, relative to max(1, max |score|): 2**-6,
#: a few bf16 units in the last place of the largest score (measured: at most
#: one unit, 0.0625 at scores up to 13.6, on these models and inputs).
BF16_RELATIVE = 2.0**-6

# Chat templates in the shape of each family's, written with the tiny
# tokenizer's special tokens (<|endoftext|> = BOS, <|im_end|> = EOS); all end
# with the EOS token, as Llama-3's and Qwen's reward templates do.
TEMPLATES = {
    "llama": "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n\n{{ m['content'] }}<|im_end|>{% endfor %}",
    "gemma2": "{{ bos_token }}{% for m in messages %}<|im_start|>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<|im_end|>{% endfor %}",
    "qwen2": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{% if not loop.last %}\n{% endif %}{% endfor %}",
    "mistral": "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% else %}[INST] {{ m['content'] }} [/INST]{% endif %}{% endfor %}",
}
TEMPLATES["qwen3"] = TEMPLATES["qwen2"]

WORDS = [
    "the",
    "a",
    "reward",
    "model",
    "reads",
    "score",
    "token",
    "answer",
    "question",
    "why",
    "because",
    "helpful",
    "assistant",
    "user",
    "system",
    "padding",
    "batch",
    "length,",
    "first",
    "last.",
    "!",
    "?",
    "42",
    "truncated",
    "left",
    "right",
]


@pytest.fixture(scope="module", autouse=True)
def _tokenizer_file_and_one_thread():
    if not TOKENIZER.exists():
        pytest.skip(f"tokenizer not found at {TOKENIZER} (set PREFCURATE_SHARED_DATA to ../shared/data)")
    # tiny models gain nothing from intra-op threads, and on a shared 2-core
    # machine OpenMP's spinning makes them several times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tokenizer(family: str, pad: str):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER), bos_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    if pad == "pad_eq_eos":
        tok.pad_token = tok.eos_token
    elif pad == "distinct_pad":
        tok.add_special_tokens({"pad_token": "<|pad|>"})
    tok.chat_template = TEMPLATES[family]
    return tok


def model_pad(tok, pad: str) -> int | None:
    return {"no_pad": None, "pad_eq_eos": tok.eos_token_id, "distinct_pad": tok.pad_token_id}[pad]


@functools.cache
def build(family: str, pad: str, dtype: str = "float32", seed: int = 0):
    """(model, tokenizer): 2 layers, hidden 64, random weights from ``seed``,
    one label; the score head drawn with std 1 so scores spread over a few
    units, as a trained head's do."""
    T = transformers
    tok = make_tokenizer(family, pad)
    common = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tok),
        max_position_embeddings=512,
        num_labels=1,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=model_pad(tok, pad),
    )
    if family == "llama":
        config, cls = T.LlamaConfig(**common), T.LlamaForSequenceClassification
    elif family == "gemma2":
        config = T.Gemma2Config(
            **common, head_dim=16, sliding_window=WINDOW, attn_logit_softcapping=5.0, query_pre_attn_scalar=16
        )
        cls = T.Gemma2ForSequenceClassification
    elif family == "qwen2":
        config, cls = T.Qwen2Config(**common), T.Qwen2ForSequenceClassification
    elif family == "qwen3":
        if not hasattr(T, "Qwen3ForSequenceClassification"):
            pytest.skip(f"transformers {T.__version__} has no Qwen3")
        config, cls = T.Qwen3Config(**common, head_dim=16), T.Qwen3ForSequenceClassification
    else:
        config, cls = T.MistralConfig(**common, sliding_window=WINDOW), T.MistralForSequenceClassification
    config.pad_token_id = model_pad(tok, pad)  # some configs default to 0
    if family == "gemma2":
        config._attn_implementation = "eager"  # what RewardScorer picks for Gemma-2 loaded by name
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.score.weight, std=1.0)
    return model.to(getattr(torch, dtype)), tok


def conversations(seed: int = 0) -> list[list[dict[str, str]]]:
    """Eight conversations of 22 to ~300 tokens; some with a system turn."""
    rng = np.random.default_rng(seed)

    def words(m: int) -> str:
        return " ".join(rng.choice(WORDS, size=m))

    out = []
    for k, n in enumerate([2, 5, 10, 20, 30, 45, 70, 110]):
        conv = [
            {"role": "user", "content": words(max(2, n // 3))},
            {"role": "assistant", "content": words(n)},
        ]
        if k % 2:
            conv.insert(0, {"role": "system", "content": words(4)})
        out.append(conv)
    return out


def reference_ids(tok, conv, max_length: int = MAX_LENGTH) -> list[int]:
    """transformers' own chat-template tokenisation, cut from the left
    keeping a leading BOS."""
    ids = tok.apply_chat_template(conv, tokenize=True)["input_ids"]
    if len(ids) > max_length:
        head = [ids[0]] if ids[0] == tok.bos_token_id else []
        ids = head + ids[len(ids) - max_length + len(head) :]
    return ids


def reference(model, tok, convs) -> np.ndarray:
    """The plain transformers forward of each unpadded sequence, one at a time."""
    with torch.no_grad():
        return np.array(
            [model(torch.tensor([reference_ids(tok, c)])).logits[0, 0].float().item() for c in convs]
        )


def scorer(model, tok, **kw) -> RewardScorer:
    kw.setdefault("device", "cpu")
    kw.setdefault("max_length", MAX_LENGTH)
    kw.setdefault("token_budget", BUDGET)
    return RewardScorer(model, tok, **kw)


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_scores_equal_the_models_own_forward(family, pad, dtype, packing):
    model, tok = build(family, pad, dtype)
    convs = conversations()
    pad_before, tok_pad_before = model.config.pad_token_id, tok.pad_token
    ref = reference(model, tok, convs)

    sc = scorer(model, tok, packing=packing)
    res = sc.score_detailed(convs)

    # the caller's model, config and tokenizer are not touched
    assert model.config.pad_token_id == pad_before == model_pad(tok, pad)
    assert tok.pad_token == tok_pad_before
    assert tok.chat_template == TEMPLATES[family]

    # the conversations really are of mixed lengths, some cut from the left
    lengths = [len(tok.apply_chat_template(c, tokenize=True)["input_ids"]) for c in convs]
    assert res.truncated.tolist() == [n > MAX_LENGTH for n in lengths]
    assert 0 < res.truncated.sum() < len(convs)
    assert res.n_tokens.tolist() == [len(reference_ids(tok, c)) for c in convs]
    st = res.stats
    assert st.batches > 1 and st.rows_computed == len(convs)
    if not packing:
        assert st.padding_efficiency < 1.0  # the batches were padded
    assert np.std(ref) > 0.5  # a wrong read position or row order would show

    tol = 1e-5 if dtype == "float32" else BF16_RELATIVE * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(res.scores, ref, rtol=0, atol=tol)

    # where the score was read: the last token, or, when a row ends with the
    # model's pad id (pad == EOS), the token before it, as the model's head does
    ends_with_eos = [reference_ids(tok, c)[-1] == tok.eos_token_id for c in convs]
    assert all(ends_with_eos)
    expected = res.n_tokens - (2 if pad == "pad_eq_eos" else 1)
    assert res.pooled_index.tolist() == expected.tolist()


def test_packed_rows_really_pack_and_pad_less():
    model, tok = build("llama", "distinct_pad")
    convs = conversations()
    padded = scorer(model, tok).score_detailed(convs)
    packed = scorer(model, tok, packing=True).score_detailed(convs)
    assert packed.stats.batches < len(convs)
    assert packed.stats.padding_efficiency > padded.stats.padding_efficiency
    np.testing.assert_allclose(packed.scores, padded.scores, rtol=0, atol=1e-5)


def test_sliding_window_rows_longer_than_it_are_scored_alone_when_packed():
    model, tok = build("mistral", "no_pad")
    sc = scorer(model, tok, packing=True)
    assert sc.sliding_window == WINDOW and sc.packing_mode == "mask"
    res = sc.score_detailed(conversations())
    np.testing.assert_allclose(res.scores, reference(model, tok, conversations()), rtol=0, atol=1e-5)
    long = int((res.n_tokens > WINDOW).sum())
    assert long and res.stats.batches >= long + 1


def test_a_chat_template_argument_leaves_the_tokenizer_alone():
    model, tok = build("llama", "no_pad")
    other = TEMPLATES["qwen2"]
    sc = scorer(model, tok, chat_template=other)
    ids = sc.encode(conversations()[:2]).ids
    assert tok.chat_template == TEMPLATES["llama"]
    assert (
        ids[0] == tok.apply_chat_template(conversations()[0], chat_template=other, tokenize=True)["input_ids"]
    )


# --------------------------------------------------------------------------- the parity check


def test_check_passes_and_reports_where_scores_were_read():
    model, tok = build("qwen2", "distinct_pad")
    convs = conversations()
    for packing in (False, True):
        sc = scorer(model, tok, packing=packing)
        res = sc.check(convs, n=5)
        assert isinstance(res, ParityResult) and res.passed
        assert res.rows == [0, 2, 4, 5, 7]  # spread over the input
        assert res.max_abs_diff <= 1e-5 < res.tolerance
        assert res.scorer_token_index == res.reference_token_index == [n - 1 for n in res.n_tokens]
        assert res.scorer_token_id == res.reference_token_id == [tok.eos_token_id] * 5
        assert res.packing is packing and res.packing_mode == ("mask" if packing else None)
        assert res.pad_token_id == tok.pad_token_id and res.dtype == "float32"
        json.dumps(res.as_dict())  # ready for summary.json
    assert parity.check(sc, convs, 3).passed  # the function the CLI calls


def test_check_catches_a_scorer_that_reads_one_token_early():
    model, tok = build("llama", "no_pad")

    class Early(RewardScorer):
        def _pool_index(self, ids):
            return super()._pool_index(ids) - 1

    for packing in (False, True):
        sc = Early(model, tok, device="cpu", max_length=MAX_LENGTH, token_budget=BUDGET, packing=packing)
        with pytest.raises(ParityError, match="differ from the model's own forward") as e:
            sc.check(conversations(), n=8)
        assert isinstance(e.value, ScoringError)
        r = e.value.result
        assert not r.passed and r.max_abs_diff > r.tolerance
        assert r.scorer_token_index == [i - 1 for i in r.reference_token_index]
        assert r.reference_token_id == [tok.eos_token_id] * 8


def test_check_refuses_rows_that_end_with_the_pad_id():
    model, tok = build("gemma2", "pad_eq_eos")
    sc = scorer(model, tok)
    with pytest.raises(ParityError, match=r"end with token id \d+, which is the model's pad_token_id"):
        sc.check(conversations(), n=4)
    res = sc.check(conversations(), n=4, allow_pad_end=True)
    assert res.passed and res.ends_with_pad == res.rows
    # the model's own head read the token before the final EOS; so did the scorer
    assert res.reference_token_index == res.scorer_token_index == [n - 2 for n in res.n_tokens]
    failed = parity.check(sc, conversations(), 4, raise_on_failure=False)
    assert not failed.passed and "pad_token_id" in failed.message


def test_check_uses_an_explicit_tolerance_and_leaves_the_cache_alone(tmp_path):
    model, tok = build("mistral", "distinct_pad", "bfloat16")
    sc = scorer(model, tok, cache_dir=tmp_path, model_id="tiny")
    res = sc.check(conversations(), n=8)
    assert res.passed and res.dtype == "bfloat16"
    assert res.tolerance == pytest.approx(
        parity.RELATIVE_TOLERANCE["bfloat16"] * max(1, max(map(abs, res.reference)))
    )
    assert not list(tmp_path.glob("*/part-*.parquet")) and sc.last_stats is None
    assert sc.check(conversations(), n=2, tol=0.5).tolerance == 0.5
