"""Where a score is read, and the forward pass that reads it there.

A transformers ``*ForSequenceClassification`` decoder runs its base model,
applies the ``score`` layer to every token and reads the logits at one token
per row: the last token when ``config.pad_token_id`` is ``None``, else the
rightmost token whose id is not the pad id (transformers >= 4.49; before,
the token before the first pad id).  On an unpadded sequence that is the
last token, unless the sequence ends with the pad id (a template ending with
EOS when pad == EOS): then the model's own forward reads an earlier token.

The scorer computes that same index from the token ids of each unpadded
row (:func:`pooled_index`), so the padding of a batch, its side and the pad
id used to fill it never move the read position, and runs the base model
and applies the head at those positions only (:func:`forward_pooled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .models import _text_config, _torch, _transformers_version

#: transformers >= 4.49 (PR #35911): the rightmost token that is not the pad id.
RIGHTMOST_NON_PAD = "rightmost_non_pad"
#: transformers < 4.49: the token before the first pad id (the last token
#: when there is none).
BEFORE_FIRST_PAD = "before_first_pad"


def pool_rule() -> str:
    """The pooling rule of the installed transformers."""
    return RIGHTMOST_NON_PAD if _transformers_version() >= (4, 49) else BEFORE_FIRST_PAD


def model_pad_id(config: Any) -> int | None:
    """The pad id the model's own head compares token ids with."""
    pad = getattr(_text_config(config), "pad_token_id", None)
    if pad is None:
        pad = getattr(config, "pad_token_id", None)
    return int(pad) if isinstance(pad, (int, np.integer)) else None


def pooled_index(ids: Sequence[int] | np.ndarray, pad_id: int | None, rule: str = RIGHTMOST_NON_PAD) -> int:
    """The index of the token whose logits the model's own forward returns
    for the unpadded sequence ``ids``."""
    n = len(ids)
    if pad_id is None or n == 0:
        return n - 1
    is_pad = np.asarray(ids) == pad_id
    if rule == BEFORE_FIRST_PAD:
        return int((int(is_pad.argmax()) - 1) % n)
    non_pad = np.flatnonzero(~is_pad)
    return int(non_pad[-1]) if len(non_pad) else 0


def forward_pooled(
    worker: Any,
    input_ids: Any,
    attention_mask: Any,
    position_ids: Any = None,
    pool: tuple[Any, Any] | None = None,
) -> Any:
    """Float32 scores on the worker's device, one per ``(row, column)`` of
    ``pool``: the base model's last hidden state at those tokens, through
    the score head.  A model without a separable head (``worker.head is
    None``) is called as a whole and pools by itself (one row at a time when
    it has no pad id, since transformers cannot pool a batch then)."""
    if worker.head is not None and pool is not None:
        out = worker.base(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        )
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return worker.head(hidden[pool[0], pool[1]])[:, 0].float()
    model = worker.model
    if pool is not None and input_ids.shape[0] > 1 and model_pad_id(model.config) is None:
        torch = _torch()
        rows = []
        for r in range(input_ids.shape[0]):
            n = int(pool[1][r]) + 1
            mask = attention_mask[r : r + 1, :n] if attention_mask is not None else None
            rows.append(
                model(input_ids=input_ids[r : r + 1, :n], attention_mask=mask, use_cache=False).logits[:, 0]
            )
        return torch.cat(rows).float()
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.logits[:, 0].float()


def block_causal_mask(segments: Any, dtype: Any) -> Any:
    """An additive ``[P, 1, T, T]`` mask (0 where a token may attend, the
    dtype's minimum elsewhere) from ``[P, T]`` segment ids: causal within a
    segment, nothing across segments."""
    torch = _torch()
    t = segments.shape[-1]
    allowed = segments[:, :, None] == segments[:, None, :]
    allowed &= torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]
