"""torch and transformers on the scoring path: lazy imports, dtype and
device resolution, the attention implementation, loading a reward model by
name, and the per-device workers.

Nothing here imports torch or transformers at module level."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from typing import Any

from .. import hub
from ..errors import InvalidInputError
from .results import ScoringError

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


def _has_flash_attn() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def _default_attn(model_type: str | None, on_cuda: bool, dtype: Any) -> str:
    torch = _torch()
    if model_type in EAGER_MODEL_TYPES:
        return "eager"
    if on_cuda and dtype in (torch.bfloat16, torch.float16) and _has_flash_attn():
        return "flash_attention_2"
    return "sdpa"


def _text_config(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _is_oom(e: BaseException) -> bool:
    torch = _torch()
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom) or (isinstance(e, RuntimeError) and "CUDA out of memory" in str(e))


def _transformers_version() -> tuple[int, int]:
    import transformers

    major, minor = (
        int("".join(c for c in x if c.isdigit()) or 0) for x in transformers.__version__.split(".")[:2]
    )
    return major, minor


def sliding_window(config: Any) -> int | None:
    """The attention window of a model whose layers (some or all) attend to a
    sliding window, else ``None``."""
    tcfg = _text_config(config)
    window = getattr(tcfg, "sliding_window", None)
    if not isinstance(window, int) or window <= 0:
        return None
    if getattr(tcfg, "use_sliding_window", True) is False:
        return None
    layer_types = getattr(tcfg, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return window


def split_head(model: Any) -> tuple[Any, Any] | None:
    """``(base model, score head)`` of a transformers decoder reward model
    (``*ForSequenceClassification`` with a ``score`` layer over its base
    model: Llama, Gemma, Qwen, Mistral, GPT-2, ...), so that the scorer can
    run the base model and apply the head at positions it chooses; ``None``
    for anything else (encoders, remote code), which is scored through the
    model's own forward."""
    cls = type(model)
    if not cls.__name__.endswith("ForSequenceClassification"):
        return None
    if not cls.__module__.startswith("transformers."):
        return None
    head = getattr(model, "score", None)
    prefix = getattr(model, "base_model_prefix", None)
    base = getattr(model, prefix, None) if isinstance(prefix, str) and prefix else None
    torch = _torch()
    if not isinstance(head, torch.nn.Module) or not isinstance(base, torch.nn.Module) or base is model:
        return None
    return base, head


def load_model(
    name: str,
    dtype: Any,
    attn: str | None,
    on_cuda: bool,
    trust_remote_code: bool,
    model_kwargs: dict[str, Any],
) -> Any:
    """``AutoModelForSequenceClassification.from_pretrained(name, num_labels=1,
    ...)``; a checkpoint without a trained head raises :class:`ScoringError`."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    hub.check(str(name), "reward model")
    config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    attn = attn or _default_attn(getattr(config, "model_type", None), on_cuda, dtype)
    dtype_kw = "dtype" if _transformers_version() >= (4, 56) else "torch_dtype"
    kwargs: dict[str, Any] = {
        "num_labels": 1,
        dtype_kw: dtype,
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


@dataclass
class Worker:
    """One device's replica: the model, and its base model and head when
    the scorer pools by itself."""

    name: str
    device: Any  # torch.device
    model: Any
    budget: int
    base: Any = None
    head: Any = None
    oom_retries: int = 0


def make_workers(base_model: Any, devices: list[Any], token_budget: int) -> list[Worker]:
    """One worker per device entry.  Replicas for the other devices are
    copied before ``base_model`` moves to the first one (a model loaded by
    name is still on the CPU then, so no GPU holds two copies); workers on
    the same device share one model."""
    first = devices[0]
    replicas: dict[Any, Any] = {}
    for dev in devices[1:]:
        if dev != first and dev not in replicas:
            replicas[dev] = copy.deepcopy(base_model).to(dev)
    replicas[first] = base_model.to(first)
    out = []
    for i, dev in enumerate(devices):
        model = replicas[dev]
        parts = split_head(model)
        out.append(
            Worker(
                name=f"{dev}#{i}",
                device=dev,
                model=model,
                budget=token_budget,
                base=parts[0] if parts else None,
                head=parts[1] if parts else None,
            )
        )
    return out


def fingerprint(model: Any, model_id: str, dtype: Any) -> bytes:
    """A key for the model: its name, dtype and a sample of its weights
    (the first and the last two parameter tensors), so a retrained
    checkpoint at the same path gets new cache entries."""
    h = hashlib.blake2b(digest_size=32)
    h.update(json.dumps({"model": model_id, "dtype": str(dtype)}).encode())
    params = list(model.named_parameters())
    for name, p in params[:1] + params[-2:]:
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().reshape(-1)[:65536].float().cpu().numpy().tobytes())
    return h.digest()
