"""Embeddings for the semantic stages: pluggable embedders, a disk cache,
exact and approximate nearest-neighbour search, the semantic benchmark
index and threshold calibration.

Only numpy is imported here; torch, sentence-transformers, model2vec, faiss
and usearch are imported on the path that uses them (``pip install
'prefcurate[semantic]'``)."""

from __future__ import annotations

from .base import CallableEmbedder, Embedder, normalize
from .cache import EmbeddingCache
from .calibrate import Calibration, calibrate_vectors, threshold_at
from .encode import EmbedStats, embed_texts, open_cache
from .index import SemanticIndex
from .models import Model2VecEmbedder, SentenceTransformerEmbedder, as_embedder, pick_backend
from .search import AnnSettings, exact_topk, pair_scores, self_neighbours

__all__ = [
    "AnnSettings",
    "Calibration",
    "CallableEmbedder",
    "EmbedStats",
    "Embedder",
    "EmbeddingCache",
    "Model2VecEmbedder",
    "SemanticIndex",
    "SentenceTransformerEmbedder",
    "as_embedder",
    "calibrate_vectors",
    "embed_texts",
    "exact_topk",
    "normalize",
    "open_cache",
    "pair_scores",
    "pick_backend",
    "self_neighbours",
    "threshold_at",
]
