"""The Ray Data engine: the same stages on a cluster, with the same results.

``engine="ray"`` on :func:`prefcurate.decontaminate`, :func:`prefcurate.dedup`,
:func:`prefcurate.select_top` (and ``select_top_indices`` /
``select_top_result``) and :meth:`prefcurate.RewardScorer.score_pairs` runs
the stage on a ``ray.data.Dataset``: ``map_batches`` over Arrow batches call
the same Rust functions as the local engine, shuffles group rows by key, and
the driver only combines small per-row results.  The kept and removed rows are
exactly the local engine's, in the same order (by original row number).

Input: a Parquet file or folder of Parquet shards (read lazily in every pass,
one task per row group and only the columns the pass needs, shards in name
order as :func:`prefcurate.read_table` reads them, row numbers from the
footers), a ``ray.data.Dataset`` (e.g. ``ray.data.read_parquet("s3://...")``;
executed once in order and numbered, so it stays in the object store), or
anything the local engine takes (a table, a ``datasets.Dataset``, a list of
str...; cut into blocks and put in the object store).  Every row carries its
number (a ``__prefcurate_row`` column) so that every result refers to the
original row numbers.

Output: the result objects of the local engine (same fields and methods) whose
``kept`` and ``removed`` are lazy ``ray.data.Dataset`` s in row order; write
them with ``write_parquet`` (:func:`write_parquet` writes both), or gather a
small one with :func:`to_table`.

Connect to a cluster with ``ray.init(address=...)`` before calling; without
it a local Ray instance is started.  ``ray_options=`` (a dict or
:class:`RayOptions`) sets the batch size, shuffle partitions and resources.
See ``docs/scaling.md`` for what runs where.
"""

from __future__ import annotations

from .common import ROW, FailOnce, RayOptions, to_table, write_parquet
from .decontaminate import decontaminate
from .dedup import dedup
from .score import score_pairs
from .select import select, select_indices

NAME = "ray"

__all__ = [
    "NAME",
    "ROW",
    "FailOnce",
    "RayOptions",
    "decontaminate",
    "dedup",
    "score_pairs",
    "select",
    "select_indices",
    "to_table",
    "write_parquet",
]
