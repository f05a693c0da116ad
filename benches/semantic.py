#!/usr/bin/env python3
"""Semantic dedup's neighbour search: recall of the approximate path
against exact search, and speed against exact search and a plain faiss
flat index, in one run.

    python benches/semantic.py [--rows 200000] [--dim 384] [--threshold 0.9] [--k 10]
    python benches/semantic.py --model NAME_OR_PATH --pairs FILE.jsonl   # quality on real paraphrases

Vectors (seeded, synthetic: no model needed): ``--clusters`` topic centres
(2000), each row a centre plus Gaussian noise (within-topic cosine about
0.4, across topics about 0), L2-normalised; ``--dup-rate`` (0.2) of the
rows are planted near duplicates of another row (noise 0.05-0.45 per unit
length: cosine 0.90-0.999 with their source), rows shuffled.

Measured, each on the same vectors in one process:

- ``exact``: :func:`prefcurate.embed.exact_topk` (blocked matrix products)
  for ``--queries`` (3000) sampled rows against all rows: the ground truth,
  and its time scaled to all rows (exact search is linear in the queries);
  ``--full-exact`` runs it on every row instead;
- ``faiss-flat``: ``faiss.IndexFlatIP`` on the same sampled queries, scaled
  the same way;
- the approximate path of semantic dedup,
  :func:`prefcurate.embed.self_neighbours` with ``ann=faiss`` (IVF-Flat,
  the stage's defaults: about ``4 sqrt(n)`` lists, ``--probe`` of them
  searched) and ``ann=usearch`` (HNSW), on every row: build + search +
  exact rescoring, timed whole.

Recall: of the sampled rows' links at cosine >= ``--threshold`` found by
exact search (the pairs semantic dedup links), the share the approximate
neighbour lists hold (links recall), and the share of the exact top ``k``
they hold (neighbour recall).

Quality (``--model`` with ``--pairs``): a JSON-lines file of ``text_a``,
``text_b``, ``label`` (1: paraphrase; e.g. PAWS, MRPC or STS-B exported
with ``label = score >= 4``); prints the ROC AUC of the pairs' cosine, the
threshold of best F1, and with ``--benchmark`` the self-calibrated
threshold at ``--rate`` and its precision and recall on the pairs.  No
model hub is reachable in this project's CI: run it where a model is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from prefcurate.embed import AnnSettings, exact_topk, self_neighbours  # noqa: E402
from prefcurate.embed.search import available  # noqa: E402


def synthetic(n: int, d: int, clusters: int, dup_rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n_base = int(n / (1 + dup_rate))
    x = centres[rng.integers(0, clusters, n_base)]
    x = x + rng.standard_normal((n_base, d)).astype(np.float32) * np.float32(1.2 / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n_dup = n - n_base
    src = rng.integers(0, n_base, n_dup)
    noise = rng.uniform(0.05, 0.45, n_dup).astype(np.float32)[:, None]
    y = x[src] + rng.standard_normal((n_dup, d)).astype(np.float32) * noise / np.float32(np.sqrt(d))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    out = np.concatenate([x, y])[rng.permutation(n)]
    return np.ascontiguousarray(out, dtype=np.float32)


def recall(
    truth_i: np.ndarray, truth_s: np.ndarray, got_i: np.ndarray, threshold: float
) -> tuple[float, float, int]:
    links = hits = top = top_hits = 0
    for ti, ts, gi in zip(truth_i, truth_s, got_i):
        g = set(gi.tolist())
        want = ti[ts >= threshold]
        links += len(want)
        hits += sum(int(w) in g for w in want)
        top += len(ti)
        top_hits += sum(int(w) in g for w in ti)
    return (hits / links if links else 1.0), top_hits / top, links


def bench_search(a: argparse.Namespace) -> dict:
    t = time.perf_counter()
    x = synthetic(a.rows, a.dim, a.clusters, a.dup_rate, a.seed)
    print(f"vectors: {a.rows} x {a.dim} in {time.perf_counter() - t:.1f}s", flush=True)
    rng = np.random.default_rng(a.seed + 1)
    q = (
        np.arange(a.rows)
        if a.full_exact
        else np.sort(rng.choice(a.rows, min(a.queries, a.rows), replace=False))
    )
    scale = a.rows / len(q)
    exact_topk(x[:8], x[:64], 2)  # warm-up: torch's import is not search time
    out: dict = {
        "rows": a.rows,
        "dim": a.dim,
        "k": a.k,
        "threshold": a.threshold,
        "queries": len(q),
        "runs": [],
    }
    t = time.perf_counter()
    ti, ts = exact_topk(x[q], x, a.k, self_rows=q, block_size=a.block_size)
    dt = time.perf_counter() - t
    out["runs"].append(
        {"method": "exact (prefcurate, blocked)", "seconds_sample": dt, "seconds_all_rows": dt * scale}
    )
    print(f"exact: {dt:.1f}s for {len(q)} queries -> {dt * scale:.0f}s for all rows", flush=True)
    if available("faiss"):
        import faiss

        t = time.perf_counter()
        flat = faiss.IndexFlatIP(a.dim)
        flat.add(x)
        flat.search(x[q], a.k + 1)
        dt = time.perf_counter() - t
        out["runs"].append(
            {"method": "faiss IndexFlatIP", "seconds_sample": dt, "seconds_all_rows": dt * scale}
        )
        print(f"faiss flat: {dt:.1f}s for {len(q)} queries -> {dt * scale:.0f}s for all rows", flush=True)
    for backend in a.ann:
        if not available(backend):
            print(f"{backend}: not installed", flush=True)
            continue
        s = AnnSettings(
            backend=backend, lists=a.lists, probe=a.probe, connectivity=a.connectivity, expansion=a.expansion
        )
        t = time.perf_counter()
        gi, _, _ = self_neighbours(x, a.k, method=backend, ann=s, block_size=a.block_size)
        dt = time.perf_counter() - t
        links, top, n_links = recall(ti, ts, gi[q], a.threshold)
        exact_all = out["runs"][0]["seconds_all_rows"]
        run = {
            "method": f"{backend} ({'probe ' + str(a.probe) if backend == 'faiss' else 'expansion ' + str(a.expansion)})",
            "seconds_all_rows": dt,
            "link_recall": links,
            "neighbour_recall": top,
            "links": n_links,
            "speedup_vs_exact": exact_all / dt,
        }
        if len(out["runs"]) > 1 and out["runs"][1]["method"].startswith("faiss IndexFlat"):
            run["speedup_vs_faiss_flat"] = out["runs"][1]["seconds_all_rows"] / dt
        out["runs"].append(run)
        print(
            f"{run['method']}: {dt:.1f}s all rows, link recall {links:.4f} ({n_links} links), "
            f"top-{a.k} recall {top:.4f}, {run['speedup_vs_exact']:.1f}x exact",
            flush=True,
        )
    return out


def bench_quality(a: argparse.Namespace) -> dict:
    from prefcurate.embed import as_embedder, embed_texts
    from prefcurate.stages.semantic import calibrate_threshold

    rows = [
        json.loads(line) for line in Path(a.pairs).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    emb = as_embedder(a.model)
    va = embed_texts(emb, [r["text_a"] for r in rows])
    vb = embed_texts(emb, [r["text_b"] for r in rows])
    cos = (va.astype(np.float64) * vb).sum(1)
    y = np.array([int(r["label"]) for r in rows])
    order = np.argsort(-cos)
    ranks = np.empty(len(cos))
    ranks[order] = np.arange(len(cos), 0, -1)
    pos, neg = y.sum(), len(y) - y.sum()
    auc = (ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg) if pos and neg else float("nan")
    tp = np.cumsum(y[order])
    prec, rec = tp / np.arange(1, len(y) + 1), tp / max(pos, 1)
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    best = int(np.argmax(f1))
    out = {
        "model": a.model,
        "pairs": len(rows),
        "auc": auc,
        "best_f1": float(f1[best]),
        "best_f1_threshold": float(cos[order][best]),
    }
    if a.benchmark:
        cal = calibrate_threshold(emb, a.benchmark, false_positive_rate=a.rate)
        flag = cos >= cal.threshold
        out["calibrated_threshold"] = cal.threshold
        out["calibrated_precision"] = float(y[flag].mean()) if flag.any() else float("nan")
        out["calibrated_recall"] = float(flag[y == 1].mean()) if pos else float("nan")
    print(json.dumps(out, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--clusters", type=int, default=2000)
    p.add_argument("--dup-rate", type=float, default=0.2)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=3000)
    p.add_argument("--full-exact", action="store_true")
    p.add_argument("--ann", nargs="*", default=["faiss", "usearch"], choices=["faiss", "usearch"])
    p.add_argument("--lists", type=int, default=0)
    p.add_argument("--probe", type=int, default=16)
    p.add_argument("--connectivity", type=int, default=16)
    p.add_argument("--expansion", type=int, default=64)
    p.add_argument("--block-size", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--model", help="an embedding model (name or folder): measure quality on --pairs")
    p.add_argument("--pairs", help="JSON lines of text_a, text_b, label (1: paraphrase)")
    p.add_argument("--benchmark", help="with --model: calibrate a threshold on this benchmark file")
    p.add_argument("--rate", type=float, default=1e-3)
    a = p.parse_args(argv)
    if a.model:
        if not a.pairs:
            p.error("--model needs --pairs")
        out = bench_quality(a)
    else:
        out = bench_search(a)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
