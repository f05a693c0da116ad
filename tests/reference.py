"""The published reference method, as the RewardBench decontamination gist runs
it: sklearn CountVectorizer(ngram_range) on benchmark + training prompts,
benchmark x training dot product."""

from __future__ import annotations

import re

import numpy as np

TOKEN = re.compile(r"(?u)\b\w\w+\b")


def sklearn_triples(bench: list[str], train: list[str], ngram_range=(7, 13)) -> list[tuple[int, int, int]]:
    """Sorted (train_index, benchmark_index, score) with score > 0."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(ngram_range=ngram_range)
    try:
        X = vec.fit_transform(list(bench) + list(train))
    except ValueError as e:  # "empty vocabulary": nothing to match
        if "empty vocabulary" in str(e):
            return []
        raise
    S = (X[: len(bench)] @ X[len(bench) :].T).tocoo()
    out = [(int(j), int(i), int(v)) for i, j, v in zip(S.row, S.col, S.data) if v > 0]
    return sorted(out)


def python_flagged(bench: list[str], train: list[str], n: int = 7) -> np.ndarray:
    """The pure-Python 7-gram-set approach: the reference's contaminated set."""
    grams = set()
    for b in bench:
        t = TOKEN.findall(b.lower())
        grams.update(zip(*(t[i:] for i in range(n))))
    flags = np.zeros(len(train), dtype=bool)
    for j, s in enumerate(train):
        t = TOKEN.findall(s.lower())
        flags[j] = any(g in grams for g in zip(*(t[i:] for i in range(n))))
    return flags


def triples(res) -> list[tuple[int, int, int]]:
    m = res.matches
    return list(
        zip(
            m.column("train_index").to_pylist(),
            m.column("benchmark_index").to_pylist(),
            m.column("score").to_pylist(),
        )
    )
