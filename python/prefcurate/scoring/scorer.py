"""The :class:`RewardScorer`: settings, model and tokenizer set-up,
tokenisation, and the public scoring methods.  The run itself is in
:mod:`.runner`, batch plans in :mod:`.batching`, the read position in
:mod:`.pooling`, the parity check in :mod:`.parity`."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import hub
from .._progress import ProgressArg
from ..errors import InvalidInputError
from ..inputs import as_pair_table as _as_pair_table
from ..schema import with_columns
from . import parity, runner
from .cache import ScoreCache
from .inputs import _check_conversation
from .models import (
    CAUSAL_DECODERS,
    EAGER_MODEL_TYPES,
    Worker,
    _resolve_devices,
    _resolve_dtype,
    _text_config,
    _torch,
    fingerprint,
    load_model,
    make_workers,
    sliding_window,
)
from .pooling import block_causal_mask, forward_pooled, model_pad_id, pool_rule, pooled_index
from .results import Encoded, ScoreResult, ScoringStats

if TYPE_CHECKING:
    import torch

log = logging.getLogger("prefcurate.scoring")


class RewardScorer:
    """Score conversations with a sequence-classification reward model.

    ``model``: a Hub name or local path (loaded with
    ``AutoModelForSequenceClassification.from_pretrained(model, num_labels=1,
    dtype=..., attn_implementation=...)``) or a model object (used as is, moved
    to the device; cast only when ``dtype`` is given).  Its config is never
    changed: the score is read where the model's own forward reads it on the
    unpadded sequence, whatever its pad id (see :mod:`.pooling`).

    ``tokenizer``: a name, path or tokenizer object (never changed); default:
    the model's own.  Only :meth:`score_ids` works without one.

    ``device``: ``"cuda"`` (every visible GPU, one worker each), ``"cuda:1"``,
    ``"cpu"``, or a list (``["cuda:0", "cuda:2"]``; ``["cpu", "cpu"]`` runs two
    CPU workers sharing one model).  ``dtype``: ``None`` is bfloat16 on CUDA and
    float32 on CPU.  ``attn_implementation``: ``None`` picks eager for Gemma-2,
    else flash_attention_2 where ``flash_attn`` is importable (CUDA, 16-bit),
    else sdpa.

    ``max_length``: longer inputs are cut from the left (``truncation="left"``,
    recorded per row) or rejected (``truncation="error"``).  ``token_budget``:
    rows x padded length per batch.  ``skip_padding_mask``: ``None`` leaves the
    attention mask out for known causal decoders (right padding makes it a
    no-op for the real tokens), ``True`` / ``False`` force it.

    ``packing=True``: padding-free batches; several conversations share one
    row, positions restart at 0 for each, and attention stays within each
    (flash-attention's varlen kernel with ``flash_attention_2``, else an
    explicit block-diagonal causal mask).  Needs a transformers decoder
    (``*ForSequenceClassification`` with a ``score`` head).

    ``chat_template``: used instead of the tokenizer's (the tokenizer is not
    changed).  ``cache_dir``: write scores there as they are computed and
    reuse them (see :class:`ScoreCache`); ``model_id`` names the model in the
    cache key when ``model`` is an object without ``config._name_or_path``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        device: Any = "cuda",
        dtype: Any = None,
        attn_implementation: str | None = None,
        max_length: int = 4096,
        token_budget: int = 65536,
        max_batch_size: int | None = None,
        truncation: str = "left",
        chat_template: str | None = None,
        skip_padding_mask: bool | None = None,
        packing: bool = False,
        cache_dir: str | os.PathLike | None = None,
        model_id: str | None = None,
        chunk_size: int = 8192,
        cache_flush_rows: int = 4096,
        cache_flush_seconds: float = 60.0,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ):
        if isinstance(model, (str, os.PathLike)):
            hub.check(str(model), "reward model")  # in seconds, before torch is imported
        _torch()  # a clear error when the scoring extra is missing
        # the settings, to build replicas elsewhere (engine="ray")
        self._settings = {k: v for k, v in locals().items() if k not in ("self", "model", "tokenizer")}
        if truncation not in ("left", "error"):
            raise InvalidInputError(f"truncation={truncation!r}: expected 'left' or 'error'")
        if max_length < 2:
            raise InvalidInputError(f"max_length={max_length}: must be at least 2")
        if token_budget < 1 or chunk_size < 1:
            raise InvalidInputError("token_budget and chunk_size must be positive")
        self.devices = _resolve_devices(device)
        on_cuda = self.devices[0].type == "cuda"
        self.truncation = truncation
        self.token_budget = int(token_budget)
        self.max_batch_size = max_batch_size
        self.chunk_size = int(chunk_size)
        self.cache_flush_rows = int(cache_flush_rows)
        self.cache_flush_seconds = float(cache_flush_seconds)
        self.last_stats: ScoringStats | None = None
        self._bos_warned = False
        self._labels: Callable[[int], str] | None = None

        self._model_name = str(model) if isinstance(model, (str, os.PathLike)) else None
        if isinstance(model, (str, os.PathLike)):
            name = str(model)
            self.dtype = _resolve_dtype(dtype, on_cuda)
            base = load_model(
                name, self.dtype, attn_implementation, on_cuda, trust_remote_code, model_kwargs or {}
            )
            self.model_id = model_id or name
            if tokenizer is None:
                tokenizer = name
        else:
            base = model
            if dtype is not None:
                self.dtype = _resolve_dtype(dtype, on_cuda)
                base = base.to(self.dtype)
            else:
                self.dtype = next(base.parameters()).dtype
            self.model_id = model_id or getattr(getattr(base, "config", None), "_name_or_path", "") or ""
            if attn_implementation is not None and hasattr(base, "set_attn_implementation"):
                base.set_attn_implementation(attn_implementation)
            mt = getattr(getattr(base, "config", None), "model_type", None)
            impl = getattr(getattr(base, "config", None), "_attn_implementation", None)
            if mt in EAGER_MODEL_TYPES and impl == "sdpa":
                log.warning(
                    "%s model with sdpa attention: Gemma-2 reward models need eager or flash_attention_2", mt
                )
            if tokenizer is None and self.model_id and Path(self.model_id).exists():
                tokenizer = self.model_id
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            hub.check(str(tokenizer), "tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer), trust_remote_code=trust_remote_code)
        self.tokenizer = tokenizer
        if chat_template is not None and tokenizer is None:
            raise InvalidInputError("chat_template given without a tokenizer")
        self.chat_template = chat_template

        config = base.config
        tcfg = _text_config(config)
        self.model_type: str | None = getattr(config, "model_type", None)
        self.attn_implementation: str | None = getattr(config, "_attn_implementation", None)
        # where the model's own head reads the score (never changed here)
        self.pool_pad_id: int | None = model_pad_id(config)
        self.pool_rule = pool_rule()
        # the filler of padded batches: any id works, since the score is read
        # at a known position; the model's pad id when it has one
        pad = self.pool_pad_id
        if pad is None and tokenizer is not None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            eos = getattr(tcfg, "eos_token_id", None)
            pad = (eos[0] if eos else None) if isinstance(eos, (list, tuple)) else eos
        self.pad_token_id = int(pad) if pad is not None else 0
        bos = tokenizer.bos_token_id if tokenizer is not None else getattr(tcfg, "bos_token_id", None)
        self.bos_token_id: int | None = bos if isinstance(bos, int) else None

        max_pos = getattr(tcfg, "max_position_embeddings", None)
        self.max_length = (
            int(min(max_length, max_pos)) if isinstance(max_pos, int) and max_pos > 0 else max_length
        )
        if skip_padding_mask is None:
            skip_padding_mask = self.model_type in CAUSAL_DECODERS and not getattr(
                config, "is_encoder_decoder", False
            )
        self.skip_padding_mask = bool(skip_padding_mask)

        base.eval()
        self._workers = make_workers(base, self.devices, self.token_budget)
        self.model = self._workers[0].model
        self.packing = bool(packing)
        #: None (padded batches), "varlen" (flash-attention, one packed row
        #: per batch) or "mask" (packed rows with a block-diagonal mask)
        self.packing_mode: str | None = None
        self.sliding_window = sliding_window(config)
        self.pack_capacity = min(self.token_budget, self.max_length)
        if self.packing:
            if self._workers[0].head is None:
                raise InvalidInputError(
                    f"packing=True: {type(self.model).__name__} is not a transformers decoder reward model "
                    "(*ForSequenceClassification with a score head); score it with packing=False"
                )
            flash = str(self.attn_implementation or "").startswith("flash_attention")
            self.packing_mode = "varlen" if flash else "mask"
            if self.packing_mode == "mask" and on_cuda:
                log.warning(
                    "packing=True with %s attention: packed rows use a dense block-diagonal mask, which is "
                    "slower than padded batches on a GPU; use attn_implementation='flash_attention_2'",
                    self.attn_implementation,
                )
        self._model_key = fingerprint(self.model, self.model_id, self.dtype)
        self.cache: ScoreCache | None = None
        if cache_dir is not None:
            if not self.model_id:
                raise InvalidInputError(
                    "cache_dir needs a model name: pass model_id= (the model object has no config._name_or_path)"
                )
            meta = {
                "model_id": self.model_id,
                "dtype": str(self.dtype),
                "model_key": self._model_key.hex(),
                "max_length": self.max_length,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            self.cache = ScoreCache(cache_dir, self._model_key, self.model_id, meta)

    # ---------------------------------------------------------------- setup

    def _ray_spec(self) -> dict[str, Any]:
        """Constructor arguments for a replica of this scorer in another
        process (``device`` is set there): the model by name, or a CPU copy
        of the model object."""
        spec = dict(self._settings)
        name = self._model_name
        spec["model"] = name if name is not None else copy.deepcopy(self.model).to("cpu")
        spec["tokenizer"] = self.tokenizer
        if name is None and spec.get("dtype") is None:
            spec["dtype"] = self.dtype
        if spec.get("model_id") is None:
            spec["model_id"] = self.model_id or None
        return spec

    def __repr__(self) -> str:
        devs = ", ".join(str(d) for d in self.devices)
        return (
            f"RewardScorer({self.model_id or type(self.model).__name__!r}, devices=[{devs}], dtype={self.dtype}, "
            f"attn={self.attn_implementation}, max_length={self.max_length}, token_budget={self.token_budget}, "
            f"packing={self.packing})"
        )

    # ---------------------------------------------------------------- tokenisation

    def encode(self, conversations: Sequence[Any], *, labels: Callable[[int], str] | None = None) -> Encoded:
        """The token ids that are scored: chat template to text, tokenised
        without adding special tokens, cut from the left to ``max_length``."""
        return self._encode(list(conversations), 0, labels)

    def _label(self, labels: Callable[[int], str] | None, row: int) -> str:
        return labels(row) if labels else f"row {row}"

    def _encode(self, convs: list[Any], start: int, labels: Callable[[int], str] | None) -> Encoded:
        tok = self.tokenizer
        if tok is None:
            raise InvalidInputError(
                "scoring conversations needs a tokenizer: pass tokenizer= (or use score_ids)"
            )
        template = self.chat_template or getattr(tok, "chat_template", None)
        if not template:
            raise InvalidInputError("the tokenizer has no chat template: pass chat_template= to RewardScorer")
        kw: dict[str, Any] = {"tokenize": False}
        if self.chat_template is not None:
            kw["chat_template"] = self.chat_template
        msgs = [_check_conversation(c, self._label(labels, start + k)) for k, c in enumerate(convs)]
        try:
            texts = tok.apply_chat_template(msgs, **kw)
        except Exception:
            texts = []
            for k, m in enumerate(msgs):  # find the row the template rejects
                try:
                    texts.append(tok.apply_chat_template(m, **kw))
                except Exception as e:
                    raise InvalidInputError(
                        f"{self._label(labels, start + k)}: the chat template failed: {type(e).__name__}: {e}"
                    ) from None
        if isinstance(texts, str):
            texts = [texts]
        ids = tok(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return self._truncate([list(x) for x in ids], start, labels)

    def _truncate(self, ids: list[list[int]], start: int, labels: Callable[[int], str] | None) -> Encoded:
        n = len(ids)
        truncated = np.zeros(n, dtype=bool)
        n_original = np.zeros(n, dtype=np.int64)
        bos, limit = self.bos_token_id, self.max_length
        for k, x in enumerate(ids):
            n_original[k] = len(x)
            if not x:
                raise InvalidInputError(f"{self._label(labels, start + k)}: no tokens to score")
            if bos is not None and len(x) > 1 and x[0] == bos and x[1] == bos and not self._bos_warned:
                self._bos_warned = True
                log.warning(
                    "%s starts with two BOS tokens: the chat template writes it twice",
                    self._label(labels, start + k),
                )
            if len(x) > limit:
                if self.truncation == "error":
                    raise InvalidInputError(
                        f"{self._label(labels, start + k)}: {len(x)} tokens, more than max_length={limit} "
                        "(use truncation='left' to keep the last tokens)"
                    )
                ids[k] = (
                    [x[0], *x[len(x) - limit + 1 :]]
                    if bos is not None and x[0] == bos
                    else x[len(x) - limit :]
                )
                truncated[k] = True
        return Encoded(ids, truncated, n_original)

    def _row_key(self, ids: Sequence[int]) -> bytes:
        return hashlib.blake2b(
            np.asarray(ids, dtype=np.int32).tobytes(), digest_size=16, key=self._model_key
        ).digest()

    # ---------------------------------------------------------------- public scoring

    def score(self, conversations: Sequence[Any], *, progress: ProgressArg = None) -> np.ndarray:
        """One float32 score per conversation (a list of ``{role, content}``), in input order."""
        return self.score_detailed(conversations, progress=progress).scores

    def score_detailed(
        self,
        conversations: Sequence[Any],
        *,
        progress: ProgressArg = None,
        labels: Callable[[int], str] | None = None,
    ) -> ScoreResult:
        """Scores plus per-row truncation and token counts, and run statistics."""
        convs = list(conversations)

        def encode(a: int, b: int) -> Encoded:
            return self._encode(convs[a:b], a, labels)

        return runner.run(self, len(convs), encode, progress, labels)

    def score_ids(self, input_ids: Sequence[Sequence[int]], *, progress: ProgressArg = None) -> ScoreResult:
        """Score already tokenised inputs (each a full templated sequence);
        truncation, batching and the cache apply as for conversations."""
        rows = [list(map(int, x)) for x in input_ids]

        def encode(a: int, b: int) -> Encoded:
            return self._truncate([list(x) for x in rows[a:b]], a, None)

        return runner.run(self, len(rows), encode, progress)

    def score_pairs(
        self,
        pairs: pa.Table,
        *,
        progress: ProgressArg = None,
        engine: str = "local",
        ray_options: Any = None,
    ) -> pa.Table:
        """``pairs`` with ``chosen_score``, ``rejected_score`` (float32),
        ``chosen_truncated`` and ``rejected_truncated`` (bool) added; chosen
        and rejected are scored in one pass.

        ``engine="ray"``: score on a Ray Data cluster with an actor pool (one
        actor per GPU, ``num_gpus=1``; CPU actors when the cluster has no
        GPU), each holding a replica built with this scorer's settings;
        ``pairs`` may also be a ``ray.data.Dataset`` or Parquet shards, and the
        result is a lazy Ray dataset in row order."""
        if engine not in ("local", "ray"):
            raise InvalidInputError(f"engine must be 'local' or 'ray', got {engine!r}")
        if engine == "ray":  # the lead rewires engines; until then the Ray scorer is called from here
            from ..engines.ray import score as ray_score

            return ray_score.score_pairs(self, pairs, ray_options)
        table = _as_pair_table(pairs)
        for col in ("chosen", "rejected"):
            if col not in table.column_names:
                raise InvalidInputError(f"score_pairs: no {col!r} column; columns are {table.column_names}")
        chosen = table.column("chosen").to_pylist()
        rejected = table.column("rejected").to_pylist()
        ids = table.column("id").to_pylist() if "id" in table.column_names else None
        n = len(chosen)

        def label(row: int) -> str:
            side, i = ("chosen", row) if row < n else ("rejected", row - n)
            return f"pairs row {i}{f' (id {ids[i]!r})' if ids else ''}: {side}"

        res = self.score_detailed(chosen + rejected, progress=progress, labels=label)
        return with_columns(
            table,
            {
                "chosen_score": pa.array(res.scores[:n], pa.float32()),
                "rejected_score": pa.array(res.scores[n:], pa.float32()),
                "chosen_truncated": pa.array(res.truncated[:n], pa.bool_()),
                "rejected_truncated": pa.array(res.truncated[n:], pa.bool_()),
            },
        )

    def check(
        self,
        conversations: Sequence[Any],
        n: int = 32,
        tol: float | None = None,
        *,
        allow_pad_end: bool = False,
    ) -> parity.ParityResult:
        """Score ``n`` of ``conversations`` through this scorer (batched,
        packed if enabled) and through the model's plain forward, one
        unpadded sequence at a time; raise :class:`ScoringError` when they
        differ by more than ``tol`` (default: :func:`parity.default_tolerance`)
        or when a row ends with the model's pad id (the read position is then
        ambiguous; ``allow_pad_end=True`` accepts it).  Run it before a long
        job.  See :func:`parity.check`."""
        return parity.check(self, conversations, n, tol, allow_pad_end=allow_pad_end)

    # ---------------------------------------------------------------- the model calls

    def _pool_index(self, ids: Sequence[int] | np.ndarray) -> int:
        """The token the score of the unpadded sequence ``ids`` is read at:
        where the model's own forward reads it."""
        return pooled_index(ids, self.pool_pad_id, self.pool_rule)

    def _block_mask(self, segments: torch.Tensor) -> torch.Tensor:
        return block_causal_mask(segments, self.dtype)

    def _forward(
        self,
        worker: Worker,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *,
        position_ids: torch.Tensor | None = None,
        pool: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Float32 scores on the worker's device, one per ``(row, token)`` of
        ``pool``."""
        return forward_pooled(worker, input_ids, attention_mask, position_ids, pool)
