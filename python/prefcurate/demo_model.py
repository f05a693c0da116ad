"""The demo's reward model: a tiny Llama-architecture sequence classifier
built from a config on the CPU, offline.

Its weights are set by hand so that its score is easy to reason about: the
tokenizer is byte-level, the chat template ends with the answer's last byte,
the layers are switched off (the residual stream carries the embedding
through), and the score head reads one direction of the embedding.  So the
model scores a conversation by the answer's final character: ``.`` scores
+2.83, ``!`` scores -2.83, anything else 0.  The demo's sample uses that to
plant a WildGuard pair with a negative margin.  A real run loads a real
reward model by name (see the recipes).
"""

from __future__ import annotations

from typing import Any

CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% if not loop.last %}\n{% endif %}{% endfor %}"


def tiny_reward_model() -> tuple[Any, Any]:
    """(model, tokenizer): see the module docstring."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(byte_chars))}
    pad_id = len(vocab)
    vocab["<pad>"] = pad_id
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE

    hidden = 16
    config = LlamaConfig(  # type: ignore[call-arg]
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        num_labels=1,
        pad_token_id=pad_id,
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.zero_()
        emb[:, 0] = 1.0  # every token: e0
        emb[vocab["."], 1] = 1.0  # "." : e0 + d
        emb[vocab["!"], 1] = -1.0  # "!" : e0 - d
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        model.score.weight.zero_()
        model.score.weight[0, 1] = 1.0  # the score reads d
    model.eval()
    return model, tokenizer
