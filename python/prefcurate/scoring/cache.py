"""The resumable score cache: Parquet shards keyed by model and token ids."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger("prefcurate.scoring")


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
