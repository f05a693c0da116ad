"""The scorer's settings as a stage config: what the ``score`` /
``filter-margin`` commands and a recipe's ``[margin]`` section set, parsed
into one object that builds the :class:`~prefcurate.scoring.RewardScorer`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import hub
from ..config import StageConfig, in_range, is_bool, optional_str, param


@dataclass(frozen=True)
class ScoreConfig(StageConfig):
    """How pairs are scored with a reward model."""

    stage: ClassVar[str] = "score"

    model: str | None = param(
        None,
        "reward model: a Hub name or a local folder (AutoModelForSequenceClassification, num_labels=1)",
        check=optional_str,
    )
    tokenizer: str | None = param(None, "tokenizer name or folder (default: the model's)", check=optional_str)
    chat_template: str | None = param(
        None,
        "a file holding a Jinja chat template (default: the tokenizer's)",
        check=optional_str,
        metavar="FILE",
    )
    device: str = param("auto", "auto (every GPU, else cpu), cuda, cuda:1, cpu, or a comma list")
    dtype: str | None = param(
        None,
        "bfloat16, float16 or float32 (default: bf16 on GPU, fp32 on CPU)",
        choices=(None, "bfloat16", "float16", "float32", "bf16", "fp16", "fp32"),
    )
    attn_implementation: str | None = param(
        None,
        "eager, sdpa or flash_attention_2 (default: chosen per model and device)",
        choices=(None, "eager", "sdpa", "flash_attention_2"),
    )
    max_length: int = param(
        4096,
        "longer conversations are cut from the left (the answer is kept)",
        check=in_range(2, 1 << 24, integer=True),
    )
    truncation: str = param("left", "left (cut and record it) or error", choices=("left", "error"))
    token_budget: int = param(
        65536, "rows x padded length per batch", check=in_range(1, 1 << 40, integer=True)
    )
    packing: bool = param(
        False, "pack several conversations per row (no padding; block-diagonal attention)", check=is_bool
    )
    cache_dir: str | None = param(
        None, "reuse and store scores here (resumable)", check=optional_str, metavar="DIR"
    )

    def devices(self) -> Any:
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device.split(",") if "," in self.device else self.device

    def template(self) -> str | None:
        """The chat template: a file's text (a path), or the string given."""
        t = self.chat_template
        if t is not None and len(t) < 4096 and "\n" not in t and Path(t).is_file():
            return Path(t).read_text(encoding="utf-8")
        return t

    def scorer(self, model: Any = None, tokenizer: Any = None, **overrides: Any) -> Any:
        """The :class:`RewardScorer` these settings describe (``model`` /
        ``tokenizer`` objects instead of the named ones, if given)."""
        from .scorer import RewardScorer

        if model is None and self.model is not None:
            hub.check(self.model, "reward model")  # in seconds, before torch is imported
        kw: dict[str, Any] = {
            "device": self.devices(),
            "dtype": self.dtype,
            "attn_implementation": self.attn_implementation,
            "max_length": self.max_length,
            "token_budget": self.token_budget,
            "truncation": self.truncation,
            "chat_template": self.template(),
            "packing": self.packing,
            "cache_dir": os.fspath(self.cache_dir) if self.cache_dir is not None else None,
        }
        kw.update(overrides)
        return RewardScorer(model if model is not None else self.model, tokenizer or self.tokenizer, **kw)
