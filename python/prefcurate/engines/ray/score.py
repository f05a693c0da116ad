"""Reward-model scoring on Ray: an actor pool, one model replica each."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ...errors import InvalidInputError
from .common import _hook, _numbered, _opts, _ray, _rows_named, _strip

# ================================================================ scoring


class _ScoreActor:
    """One reward model per actor (one GPU each, or CPU)."""

    def __init__(self, cls: type, spec: dict[str, Any], device: str, hook: Any) -> None:
        # the scorer's class travels by reference (no import of the scoring
        # package here: scoring runs on engines, engines do not import it)
        self.scorer = cls(**{**spec, "device": device})
        self.hook = hook

    def __call__(self, batch: pa.Table) -> pa.Table:
        _hook(self.hook, "score", batch)
        table, rows = _strip(batch)
        with _rows_named(rows):
            return self.scorer.score_pairs(table)


def score_pairs(scorer: Any, pairs: Any, options: Any = None) -> Any:
    """:meth:`prefcurate.RewardScorer.score_pairs` on Ray: an actor pool (one
    actor per GPU with ``num_gpus=1``, or CPU actors) each holding a replica
    built from the scorer's settings (the model by name, or a CPU copy of the
    model object); returns the pairs with ``chosen_score``,
    ``rejected_score``, ``chosen_truncated`` and ``rejected_truncated`` as a
    lazy Ray dataset in row order."""
    ray = _ray()
    o = _opts(options)
    nd = _numbered(pairs, o, text=None, what="pairs")
    for col in ("chosen", "rejected"):
        if col not in nd.schema.names:
            raise InvalidInputError(f"score_pairs: no {col!r} column; columns are {nd.schema.names}")
    gpus = int(ray.cluster_resources().get("GPU", 0))
    wants_cuda = any(getattr(d, "type", str(d)) == "cuda" for d in scorer.devices)
    if gpus and wants_cuda:
        resources: dict[str, Any] = {"num_gpus": 1}
        device = "cuda"
        concurrency = o.concurrency or gpus
    else:
        resources = {"num_cpus": o.num_cpus}
        device = "cpu"
        concurrency = o.concurrency or 1
    return nd.ds.map_batches(
        _ScoreActor,
        fn_constructor_kwargs={
            "cls": type(scorer),
            "spec": scorer._ray_spec(),
            "device": device,
            "hook": o.batch_hook,
        },
        batch_format="pyarrow",
        batch_size=o.batch_size,
        concurrency=concurrency,
        **resources,
    )
