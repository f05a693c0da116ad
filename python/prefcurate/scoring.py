"""Reward-model scoring and the margin filter (the WildGuard stage).

:class:`RewardScorer` scores conversations with a sequence-classification
reward model (``AutoModelForSequenceClassification``, ``num_labels=1``):

- conversations go through the tokenizer's chat template to text, then to ids
  **without** adding special tokens again (the template already wrote the BOS);
- inputs longer than ``max_length`` are truncated from the **left** (the answer
  at the end is what is scored), keeping a leading BOS; every row records
  whether it was truncated;
- rows are sorted by length within chunks of ``chunk_size`` and packed into
  batches of at most ``token_budget`` padded tokens, padded on the right to
  the longest row of the batch; scores come back in input order;
- a background thread templates and tokenises the next chunk and builds the
  (pinned, on CUDA) batch tensors while the devices run the current one; one
  worker thread per device, each with its own model replica, pulls batches
  from a shared queue;
- an out-of-memory error halves the batch and retries (and lowers that
  device's budget for later batches); no row is lost or scored twice;
- with ``cache_dir``, scores are written incrementally as Parquet shards keyed
  by a hash of the model and the exact token ids, so an interrupted run
  resumes where it stopped and gives the same scores.

torch and transformers (the ``scoring`` extra) are imported only when a scorer
is built, so ``import prefcurate`` stays light.

Padding-free (packed) batches are deliberately not implemented: see
``docs/scoring.md``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ._progress import ProgressArg, progress_callback
from .errors import InvalidInputError, PrefcurateError
from .schema import StageResult, split_stage, with_columns

if TYPE_CHECKING:
    import torch

log = logging.getLogger("prefcurate.scoring")

__all__ = [
    "RewardScorer",
    "ScoreCache",
    "ScoreResult",
    "ScoringError",
    "ScoringStats",
    "filter_margin",
]

STAGE = "filter_margin"

#: Decoder-only model types whose attention is causal: with right padding the
#: real tokens never attend to the pads, so the padding mask can be left out
#: (``skip_padding_mask=None`` turns this on for them only).
CAUSAL_DECODERS = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi3",
        "olmo",
        "olmo2",
        "granite",
    }
)

#: Model types that need ``eager`` (or ``flash_attention_2``) attention: SDPA
#: degrades Gemma-2 (logit soft-capping).
EAGER_MODEL_TYPES = frozenset({"gemma2"})

_DTYPES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


class ScoringError(PrefcurateError, RuntimeError):
    """Scoring could not go on: a single row does not fit in device memory, a
    worker failed, or the model is not a reward model."""


# --------------------------------------------------------------------------- results


@dataclass
class ScoringStats:
    """What one :meth:`RewardScorer.score_detailed` call did."""

    rows: int = 0
    rows_cached: int = 0
    rows_computed: int = 0
    rows_truncated: int = 0
    batches: int = 0
    real_tokens: int = 0  # tokens of the computed rows
    padded_tokens: int = 0  # batch rows x padded length, summed over computed batches
    oom_retries: int = 0
    seconds: float = 0.0
    rows_by_device: dict[str, int] = field(default_factory=dict)

    @property
    def padding_efficiency(self) -> float:
        """Real tokens / padded tokens of the computed batches (1.0 = no padding)."""
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0

    @property
    def tokens_per_second(self) -> float:
        return self.real_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rows_cached": self.rows_cached,
            "rows_computed": self.rows_computed,
            "rows_truncated": self.rows_truncated,
            "batches": self.batches,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "padding_efficiency": round(self.padding_efficiency, 4),
            "oom_retries": self.oom_retries,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "rows_by_device": dict(self.rows_by_device),
        }


@dataclass
class ScoreResult:
    """Scores of a list of conversations, in input order."""

    scores: np.ndarray  # float32
    truncated: np.ndarray  # bool: the row was cut from the left to max_length
    n_tokens: np.ndarray  # int64: tokens scored (after truncation)
    n_tokens_original: np.ndarray  # int64: tokens before truncation
    stats: ScoringStats


@dataclass
class _Encoded:
    ids: list[list[int]]
    truncated: np.ndarray
    n_original: np.ndarray


@dataclass
class _Batch:
    rows: np.ndarray  # global row indices, longest first
    keys: list[bytes]
    input_ids: Any  # torch.Tensor [B, L], right-padded (pinned on CUDA)
    lengths: np.ndarray  # real length per row


@dataclass
class _Scored:
    rows: np.ndarray
    keys: list[bytes]
    scores: np.ndarray
    device: str
    real_tokens: int
    padded_tokens: int
    batches: int


@dataclass
class _Cached:
    rows: np.ndarray
    scores: np.ndarray


@dataclass
class _Failure:
    exc: BaseException


class _Done:
    pass


@dataclass
class _Worker:
    name: str
    device: Any  # torch.device
    model: Any
    budget: int
    oom_retries: int = 0


# --------------------------------------------------------------------------- cache


class ScoreCache:
    """Scores on disk: Parquet shards of ``(key: binary(16), score: float32)``
    in ``root / <model>-<hash>/``, one folder per model.

    A row's key is ``blake2b(token ids, key=model key)``, so a cached score is
    reused only for the same model (name, dtype, weights fingerprint) and the
    same token ids (template, tokenizer and truncation included).  Shards are
    written to a temporary name and renamed, so a killed run leaves only
    complete shards.
    """

    def __init__(self, root: str | os.PathLike, model_key: bytes, model_label: str, meta: dict[str, Any]):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_label).strip("_")[-60:] or "model"
        self.dir = Path(root) / f"{safe}-{model_key.hex()[:16]}"
        self.model_key = model_key
        self.dir.mkdir(parents=True, exist_ok=True)
        meta_path = self.dir / "meta.json"
        if not meta_path.exists():
            meta_path.write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")
        self._pending_keys: list[bytes] = []
        self._pending_scores: list[np.ndarray] = []
        self._written = 0

    def load(self) -> dict[bytes, float]:
        """Every cached score of this model."""
        import pyarrow.parquet as pq

        out: dict[bytes, float] = {}
        for f in sorted(self.dir.glob("part-*.parquet")):
            try:
                t = pq.read_table(f, columns=["key", "score"])
            except (pa.ArrowInvalid, OSError) as e:  # not ours to fix: recompute those rows
                log.warning("score cache: skipping unreadable shard %s: %s", f, e)
                continue
            out.update(zip(t.column("key").to_pylist(), t.column("score").to_numpy().tolist()))
        return out

    def add(self, keys: list[bytes], scores: np.ndarray) -> None:
        self._pending_keys.extend(keys)
        self._pending_scores.append(np.asarray(scores, dtype=np.float32))

    @property
    def pending(self) -> int:
        return len(self._pending_keys)

    def flush(self) -> None:
        """Write the pending scores as one shard (atomically)."""
        if not self._pending_keys:
            return
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "key": pa.array(self._pending_keys, pa.binary(16)),
                "score": pa.array(np.concatenate(self._pending_scores), pa.float32()),
            }
        )
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.dir / f".tmp-{name}"
        pq.write_table(table, str(tmp))
        os.replace(tmp, self.dir / name)
        self._written += len(self._pending_keys)
        self._pending_keys, self._pending_scores = [], []


# --------------------------------------------------------------------------- helpers


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reward-model scoring needs torch and transformers: pip install 'prefcurate[scoring]'"
        ) from e
    return torch


def _resolve_dtype(dtype: Any, on_cuda: bool) -> Any:
    torch = _torch()
    if dtype is None:
        return torch.bfloat16 if on_cuda else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise InvalidInputError(f"dtype {dtype!r}: expected one of bfloat16, float16, float32")
    return getattr(torch, name)


def _resolve_devices(device: Any) -> list[Any]:
    torch = _torch()
    items = list(device) if isinstance(device, (list, tuple)) else [device]
    if not items:
        raise InvalidInputError("device: empty list")
    out: list[Any] = []
    for d in items:
        dev = torch.device(d)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise InvalidInputError(f"device {d!r}: no CUDA device is visible; pass device='cpu'")
            if dev.index is None:
                if len(items) > 1:
                    raise InvalidInputError(
                        "device: name each CUDA device ('cuda:0', 'cuda:1', ...) in a list"
                    )
                out.extend(torch.device("cuda", i) for i in range(torch.cuda.device_count()))
                continue
            if dev.index >= torch.cuda.device_count():
                raise InvalidInputError(
                    f"device {d!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
                )
        out.append(dev)
    return out


def _default_attn(model_type: str | None, on_cuda: bool, dtype: Any) -> str:
    torch = _torch()
    if model_type in EAGER_MODEL_TYPES:
        return "eager"
    if (
        on_cuda
        and dtype in (torch.bfloat16, torch.float16)
        and importlib.util.find_spec("flash_attn") is not None
    ):
        return "flash_attention_2"
    return "sdpa"


def _text_config(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _is_oom(e: BaseException) -> bool:
    torch = _torch()
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom) or (isinstance(e, RuntimeError) and "CUDA out of memory" in str(e))


def plan_batches(
    lengths: np.ndarray, token_budget: int, max_batch_size: int | None = None
) -> list[np.ndarray]:
    """Split row positions into batches: longest first (ties in input order),
    each filled while ``rows x longest <= token_budget`` (a row longer than the
    budget goes alone)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    order = np.lexsort((np.arange(n), -lengths))
    cap = max_batch_size or n or 1
    out = []
    i = 0
    while i < n:
        longest = max(int(lengths[order[i]]), 1)
        size = max(1, min(cap, token_budget // longest, n - i))
        out.append(order[i : i + size])
        i += size
    return out


def _check_conversation(conv: Any, label: str) -> list[dict[str, str]]:
    if isinstance(conv, np.ndarray):
        conv = conv.tolist()
    if not isinstance(conv, (list, tuple)):
        raise InvalidInputError(
            f"{label}: expected a list of {{role, content}} messages, got {type(conv).__name__}"
        )
    if not conv:
        raise InvalidInputError(f"{label}: empty conversation (no messages)")
    out = []
    for k, m in enumerate(conv):
        if not isinstance(m, Mapping):
            raise InvalidInputError(
                f"{label}: message {k} is a {type(m).__name__}, not a {{role, content}} object"
            )
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise InvalidInputError(f"{label}: message {k} has no role (got {role!r})")
        if not isinstance(content, str):
            raise InvalidInputError(
                f"{label}: message {k} ({role}) has {type(content).__name__} content, expected str"
            )
        out.append({"role": role, "content": content})
    return out


# --------------------------------------------------------------------------- scorer


class RewardScorer:
    """Score conversations with a sequence-classification reward model.

    ``model``: a Hub name or local path (loaded with
    ``AutoModelForSequenceClassification.from_pretrained(model, num_labels=1,
    dtype=..., attn_implementation=...)``) or a model object (used as is, moved
    to the device; cast only when ``dtype`` is given).

    ``tokenizer``: a name, path or tokenizer object; default: the model's own.
    Only :meth:`score_ids` works without one.

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

    ``cache_dir``: write scores there as they are computed and reuse them (see
    :class:`ScoreCache`); ``model_id`` names the model in the cache key when
    ``model`` is an object without ``config._name_or_path``.
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
        cache_dir: str | os.PathLike | None = None,
        model_id: str | None = None,
        chunk_size: int = 8192,
        cache_flush_rows: int = 4096,
        cache_flush_seconds: float = 60.0,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ):
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
            base = self._load_model(name, attn_implementation, on_cuda, trust_remote_code, model_kwargs or {})
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

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer), trust_remote_code=trust_remote_code)
        self.tokenizer = tokenizer
        if chat_template is not None:
            if tokenizer is None:
                raise InvalidInputError("chat_template given without a tokenizer")
            tokenizer.chat_template = chat_template

        config = base.config
        tcfg = _text_config(config)
        self.model_type: str | None = getattr(config, "model_type", None)
        self.attn_implementation: str | None = getattr(config, "_attn_implementation", None)
        pad = getattr(tcfg, "pad_token_id", None)
        if pad is None and tokenizer is not None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            pad = getattr(tcfg, "eos_token_id", None)
            if isinstance(pad, (list, tuple)):
                pad = pad[0] if pad else None
        if pad is None:
            raise InvalidInputError(
                "the model has no pad_token_id and the tokenizer no pad or eos token; set model.config.pad_token_id"
            )
        tcfg.pad_token_id = int(pad)
        if config is not tcfg:
            config.pad_token_id = int(pad)
        self.pad_token_id = int(pad)
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
        self._workers = self._make_workers(base)
        self.model = self._workers[0].model
        self._model_key = self._fingerprint()
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

    def _load_model(
        self,
        name: str,
        attn: str | None,
        on_cuda: bool,
        trust_remote_code: bool,
        model_kwargs: dict[str, Any],
    ) -> Any:
        import transformers
        from transformers import AutoConfig, AutoModelForSequenceClassification

        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
        attn = attn or _default_attn(getattr(config, "model_type", None), on_cuda, self.dtype)
        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        kwargs: dict[str, Any] = {
            "num_labels": 1,
            dtype_kw: self.dtype,
            "attn_implementation": attn,
            "trust_remote_code": trust_remote_code,
            "output_loading_info": True,
            **model_kwargs,
        }
        model, info = AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
        missing = [
            k for k in info.get("missing_keys", ()) if k.split(".")[0] in ("score", "classifier", "v_head")
        ]
        if missing:
            raise ScoringError(
                f"{name}: the checkpoint has no trained reward head (missing {missing}); it is not a "
                "sequence-classification reward model"
            )
        return model

    def _make_workers(self, base: Any) -> list[_Worker]:
        """One worker per device entry.  Replicas for the other devices are
        copied before ``base`` moves to the first one (a model loaded by name
        is still on the CPU then, so no GPU holds two copies); workers on the
        same device share one model."""
        first = self.devices[0]
        replicas: dict[Any, Any] = {}
        for dev in self.devices[1:]:
            if dev != first and dev not in replicas:
                replicas[dev] = copy.deepcopy(base).to(dev)
        replicas[first] = base.to(first)
        return [
            _Worker(name=f"{dev}#{i}", device=dev, model=replicas[dev], budget=self.token_budget)
            for i, dev in enumerate(self.devices)
        ]

    def _fingerprint(self) -> bytes:
        """A key for the model: its name, dtype and a sample of its weights
        (the first and the last two parameter tensors), so a retrained
        checkpoint at the same path gets new cache entries."""
        h = hashlib.blake2b(digest_size=32)
        h.update(json.dumps({"model": self.model_id, "dtype": str(self.dtype)}).encode())
        params = list(self.model.named_parameters())
        for name, p in params[:1] + params[-2:]:
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(p.detach().reshape(-1)[:65536].float().cpu().numpy().tobytes())
        return h.digest()

    def _ray_spec(self) -> dict[str, Any]:
        """Constructor arguments for a replica of this scorer in another
        process (``device`` is set there): the model by name, or a CPU copy
        of the model object."""
        spec = dict(self._settings)
        name = self._model_name
        spec["model"] = name if name is not None else copy.deepcopy(self.model).to("cpu")
        spec["tokenizer"] = self.tokenizer
        spec["chat_template"] = None  # already set on the tokenizer
        if name is None and spec.get("dtype") is None:
            spec["dtype"] = self.dtype
        if spec.get("model_id") is None:
            spec["model_id"] = self.model_id or None
        return spec

    def __repr__(self) -> str:
        devs = ", ".join(str(d) for d in self.devices)
        return (
            f"RewardScorer({self.model_id or type(self.model).__name__!r}, devices=[{devs}], dtype={self.dtype}, "
            f"attn={self.attn_implementation}, max_length={self.max_length}, token_budget={self.token_budget})"
        )

    # ---------------------------------------------------------------- tokenisation

    def encode(self, conversations: Sequence[Any], *, labels: Callable[[int], str] | None = None) -> _Encoded:
        """The token ids that are scored: chat template to text, tokenised
        without adding special tokens, cut from the left to ``max_length``."""
        return self._encode(list(conversations), 0, labels)

    def _label(self, labels: Callable[[int], str] | None, row: int) -> str:
        return labels(row) if labels else f"row {row}"

    def _encode(self, convs: list[Any], start: int, labels: Callable[[int], str] | None) -> _Encoded:
        tok = self.tokenizer
        if tok is None:
            raise InvalidInputError(
                "scoring conversations needs a tokenizer: pass tokenizer= (or use score_ids)"
            )
        if not getattr(tok, "chat_template", None):
            raise InvalidInputError("the tokenizer has no chat template: pass chat_template= to RewardScorer")
        msgs = [_check_conversation(c, self._label(labels, start + k)) for k, c in enumerate(convs)]
        try:
            texts = tok.apply_chat_template(msgs, tokenize=False)
        except Exception:
            texts = []
            for k, m in enumerate(msgs):  # find the row the template rejects
                try:
                    texts.append(tok.apply_chat_template(m, tokenize=False))
                except Exception as e:
                    raise InvalidInputError(
                        f"{self._label(labels, start + k)}: the chat template failed: {type(e).__name__}: {e}"
                    ) from None
        if isinstance(texts, str):
            texts = [texts]
        ids = tok(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return self._truncate([list(x) for x in ids], start, labels)

    def _truncate(self, ids: list[list[int]], start: int, labels: Callable[[int], str] | None) -> _Encoded:
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
        return _Encoded(ids, truncated, n_original)

    def _row_key(self, ids: list[int]) -> bytes:
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

        def encode(a: int, b: int) -> _Encoded:
            return self._encode(convs[a:b], a, labels)

        return self._run(len(convs), encode, progress, labels)

    def score_ids(self, input_ids: Sequence[Sequence[int]], *, progress: ProgressArg = None) -> ScoreResult:
        """Score already tokenised inputs (each a full templated sequence);
        truncation, batching and the cache apply as for conversations."""
        rows = [list(map(int, x)) for x in input_ids]

        def encode(a: int, b: int) -> _Encoded:
            return self._truncate([list(x) for x in rows[a:b]], a, None)

        return self._run(len(rows), encode, progress)

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
        from .ray_engine import check_engine

        if check_engine(engine):
            from . import ray_engine

            return ray_engine.score_pairs(self, pairs, ray_options)
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

    # ---------------------------------------------------------------- the run

    def _run(
        self,
        n: int,
        encode: Callable[[int, int], _Encoded],
        progress: ProgressArg,
        labels: Callable[[int], str] | None = None,
    ) -> ScoreResult:
        torch = _torch()
        self._labels = labels
        t0 = time.perf_counter()
        scores = np.full(n, np.nan, dtype=np.float32)
        filled = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        n_tokens = np.zeros(n, dtype=np.int64)
        n_original = np.zeros(n, dtype=np.int64)
        stats = ScoringStats(rows=n)
        cached = self.cache.load() if self.cache is not None else {}
        stop = threading.Event()
        work_q: queue.Queue[Any] = queue.Queue(maxsize=2 * len(self._workers) + 1)
        result_q: queue.Queue[Any] = queue.Queue()
        pin = self._workers[0].device.type == "cuda"

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    work_q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for a in range(0, n, self.chunk_size):
                    b = min(n, a + self.chunk_size)
                    enc = encode(a, b)
                    lengths = np.array([len(x) for x in enc.ids], dtype=np.int64)
                    truncated[a:b], n_tokens[a:b], n_original[a:b] = enc.truncated, lengths, enc.n_original
                    keys = [self._row_key(x) for x in enc.ids]
                    for part in plan_batches(lengths, self.token_budget, self.max_batch_size):
                        hit = np.array([keys[k] in cached for k in part], dtype=bool)
                        if hit.any():
                            result_q.put(
                                _Cached(
                                    a + part[hit], np.array([cached[keys[k]] for k in part[hit]], np.float32)
                                )
                            )
                        todo = part[~hit]
                        if not len(todo):
                            continue
                        lens = lengths[todo]
                        arr = np.full((len(todo), int(lens.max())), self.pad_token_id, dtype=np.int64)
                        for r, k in enumerate(todo):
                            arr[r, : lens[r]] = enc.ids[k]
                        t = torch.from_numpy(arr)
                        if pin:
                            t = t.pin_memory()
                        if not put(_Batch(a + todo, [keys[k] for k in todo], t, lens)):
                            return
                    if stop.is_set():
                        return
                for _ in self._workers:
                    if not put(None):
                        return
            except BaseException as e:
                result_q.put(_Failure(e))

        def work(w: _Worker) -> None:
            try:
                if w.device.type == "cuda":
                    torch.cuda.set_device(w.device)
                with torch.inference_mode():
                    while not stop.is_set():
                        try:
                            item = work_q.get(timeout=0.05)
                        except queue.Empty:
                            continue
                        if item is None:
                            result_q.put(_Done())
                            return
                        counts = [0, 0, 0]
                        out = self._score_batch(w, item.input_ids, item.lengths, item.rows, counts)
                        result_q.put(
                            _Scored(item.rows, item.keys, out, w.name, counts[0], counts[1], counts[2])
                        )
            except BaseException as e:
                result_q.put(_Failure(e))

        threads = [threading.Thread(target=produce, name="prefcurate-tokenize", daemon=True)]
        threads += [
            threading.Thread(target=work, args=(w,), name=f"prefcurate-{w.name}", daemon=True)
            for w in self._workers
        ]
        oom_before = sum(w.oom_retries for w in self._workers)
        error: BaseException | None = None
        last_flush = time.monotonic()

        def take(msg: Any) -> None:
            nonlocal last_flush
            if isinstance(msg, (_Scored, _Cached)):
                if filled[msg.rows].any():
                    raise ScoringError(
                        f"internal error: rows {msg.rows[filled[msg.rows]].tolist()} scored twice"
                    )
                scores[msg.rows] = msg.scores
                filled[msg.rows] = True
            if isinstance(msg, _Cached):
                stats.rows_cached += len(msg.rows)
            elif isinstance(msg, _Scored):
                stats.rows_computed += len(msg.rows)
                stats.batches += msg.batches
                stats.real_tokens += msg.real_tokens
                stats.padded_tokens += msg.padded_tokens
                stats.rows_by_device[msg.device] = stats.rows_by_device.get(msg.device, 0) + len(msg.rows)
                if self.cache is not None:
                    self.cache.add(msg.keys, msg.scores)
                    if (
                        self.cache.pending >= self.cache_flush_rows
                        or time.monotonic() - last_flush >= self.cache_flush_seconds
                    ):
                        self.cache.flush()
                        last_flush = time.monotonic()

        with progress_callback(progress, "scoring") as cb:
            for th in threads:
                th.start()
            try:
                done_workers = 0
                while done_workers < len(self._workers):
                    msg = result_q.get()
                    if isinstance(msg, _Failure):
                        error = msg.exc
                        break
                    if isinstance(msg, _Done):
                        done_workers += 1
                        continue
                    take(msg)
                    if cb is not None:
                        cb(int(filled.sum()), n)
            except BaseException as e:  # KeyboardInterrupt included: keep what was computed
                error = e
            finally:
                stop.set()
                for th in threads:
                    th.join()
                while True:  # results that arrived after a failure are still worth caching
                    try:
                        msg = result_q.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(msg, (_Scored, _Cached)):
                        take(msg)
                if self.cache is not None:
                    self.cache.flush()
        stats.oom_retries = sum(w.oom_retries for w in self._workers) - oom_before
        stats.rows_truncated = int(truncated.sum())
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        if error is not None:
            raise error
        if not filled.all():
            raise ScoringError(f"internal error: {int((~filled).sum())} rows were not scored")
        return ScoreResult(scores, truncated, n_tokens, n_original, stats)

    # ---------------------------------------------------------------- one batch on one device

    def _forward(
        self, worker: _Worker, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``logits[:, 0]`` as float32 on the worker's device.  The
        classification head reads them at the last non-pad token."""
        out = worker.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.logits[:, 0].float()

    def _score_batch(
        self, w: _Worker, ids: torch.Tensor, lengths: np.ndarray, rows: np.ndarray, counts: list[int]
    ) -> np.ndarray:
        """Scores of one right-padded batch (rows longest first); splits it
        in halves while it is over the worker's budget or runs out of memory."""
        torch = _torch()
        b, length = ids.shape
        if b > 1 and b * length > w.budget:
            return self._split(w, ids, lengths, rows, counts)
        oom: str | None = None
        x: Any = None
        mask: Any = None
        try:
            x = ids.to(w.device, non_blocking=True)
            if not self.skip_padding_mask:
                lens = torch.from_numpy(lengths).to(w.device, non_blocking=True)
                mask = (torch.arange(length, device=w.device)[None, :] < lens[:, None]).long()
            out = self._forward(w, x, mask).cpu().numpy()
        except Exception as e:
            if not _is_oom(e):
                raise
            oom = f"{type(e).__name__}: {str(e)[:300]}"
        # retry outside the except block: the exception's traceback holds the
        # failed forward pass's activations until the block ends
        x = mask = None
        if oom is not None:
            w.oom_retries += 1
            if w.device.type == "cuda":
                torch.cuda.empty_cache()
            if b == 1:
                raise ScoringError(
                    f"{self._label(self._labels, int(rows[0]))} ({int(lengths[0])} tokens) does not fit in "
                    f"{w.device} memory even alone; lower max_length ({oom})"
                )
            w.budget = max(length, (b * length) // 2)
            log.warning("%s: out of memory on %d x %d tokens; retrying in halves", w.name, b, length)
            return self._split(w, ids, lengths, rows, counts)
        counts[0] += int(lengths.sum())
        counts[1] += b * length
        counts[2] += 1
        return np.asarray(out, dtype=np.float32)

    def _split(
        self, w: _Worker, ids: torch.Tensor, lengths: np.ndarray, rows: np.ndarray, counts: list[int]
    ) -> np.ndarray:
        h = (len(rows) + 1) // 2
        parts = []
        for s in (slice(0, h), slice(h, len(rows))):
            sub_len = lengths[s]
            parts.append(self._score_batch(w, ids[s, : int(sub_len.max())], sub_len, rows[s], counts))
        return np.concatenate(parts)


# --------------------------------------------------------------------------- the margin filter


def _as_pair_table(pairs: Any) -> pa.Table:
    if isinstance(pairs, pa.Table):
        return pairs
    if isinstance(pairs, (str, os.PathLike)):
        from .io import read_table

        return read_table(pairs)
    if isinstance(pairs, list):
        return pa.Table.from_pylist(pairs)
    if hasattr(pairs, "to_arrow"):  # polars
        return pairs.to_arrow()
    if hasattr(pairs, "data") and hasattr(pairs.data, "table"):  # datasets.Dataset
        from ._inputs import dataset_table

        return dataset_table(pairs)
    raise InvalidInputError(
        f"pairs: expected a pyarrow Table, a path or a datasets.Dataset, got {type(pairs).__name__}"
    )


def _float_column(values: Any, n: int, what: str) -> np.ndarray:
    arr = values.to_numpy(zero_copy_only=False) if isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what}: not numeric: {e}") from None
    if out.shape != (n,):
        raise InvalidInputError(f"{what}: {out.shape[0] if out.ndim else 0} values for {n} pairs")
    return out


def filter_margin(
    pairs: Any,
    scorer_or_scores: Any = None,
    *,
    min_margin: float = 0.0,
    progress: ProgressArg = None,
) -> StageResult:
    """Keep the pairs whose reward margin ``chosen_score - rejected_score`` is
    greater than ``min_margin`` (the WildGuard stage of the Skywork recipe:
    ``score(chosen) > score(rejected)``).

    ``scorer_or_scores``: a :class:`RewardScorer` (the pairs are scored), a
    ``(chosen_scores, rejected_scores)`` pair of arrays, a mapping with
    ``chosen_score`` and ``rejected_score``, or ``None`` when ``pairs``
    already has those columns.  Kept and removed rows carry ``chosen_score``,
    ``rejected_score`` and ``margin``; removed rows have ``reason``
    ``non_positive_margin`` (``min_margin == 0``), ``margin_below_min``
    (otherwise) or ``nan_score``.
    """
    table = _as_pair_table(pairs)
    n = table.num_rows
    info: dict[str, Any] = {"min_margin": float(min_margin)}
    if isinstance(scorer_or_scores, RewardScorer):
        table = scorer_or_scores.score_pairs(table, progress=progress)
        info["model"] = scorer_or_scores.model_id
        if scorer_or_scores.last_stats is not None:
            info["scoring"] = scorer_or_scores.last_stats.as_dict()
        chosen, rejected = table.column("chosen_score"), table.column("rejected_score")
    elif scorer_or_scores is None:
        missing = [c for c in ("chosen_score", "rejected_score") if c not in table.column_names]
        if missing:
            raise InvalidInputError(
                f"filter_margin: pairs have no {missing} column(s); pass a RewardScorer or the scores"
            )
        chosen, rejected = table.column("chosen_score"), table.column("rejected_score")
    elif isinstance(scorer_or_scores, Mapping):
        try:
            chosen, rejected = scorer_or_scores["chosen_score"], scorer_or_scores["rejected_score"]
        except KeyError as e:
            raise InvalidInputError(f"filter_margin: scores mapping has no {e} key") from None
    elif isinstance(scorer_or_scores, (tuple, list)) and len(scorer_or_scores) == 2:
        chosen, rejected = scorer_or_scores
    else:
        raise InvalidInputError(
            "filter_margin: scorer_or_scores must be a RewardScorer, (chosen, rejected) arrays, a mapping or None; "
            f"got {type(scorer_or_scores).__name__}"
        )
    c = _float_column(chosen, n, "chosen_score")
    r = _float_column(rejected, n, "rejected_score")
    margin = c - r
    table = with_columns(
        table,
        {
            "chosen_score": pa.array(c, pa.float64()),
            "rejected_score": pa.array(r, pa.float64()),
            "margin": pa.array(margin, pa.float64()),
        },
    )
    nan = np.isnan(margin)
    keep = ~nan & (margin > min_margin)
    drop = np.flatnonzero(~keep)
    low_reason = "non_positive_margin" if min_margin == 0 else "margin_below_min"
    reasons = np.where(nan[drop], "nan_score", low_reason).tolist()
    kept, removed = split_stage(table, keep, STAGE, reasons)
    if len(margin) and not nan.all():
        info["margin_quantiles"] = {
            q: round(float(np.nanquantile(margin, float(q))), 6)
            for q in ("0.01", "0.1", "0.5", "0.9", "0.99")
        }
    return StageResult(STAGE, kept, removed, n, info)
