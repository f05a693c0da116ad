#!/usr/bin/env python3
"""Near-duplicate benchmark: prefcurate.dedup against datasketch and rensa on
the same task, each tool in its own process, in one run.

    python benches/dedup.py [--rows 50000] [--threshold 0.8]

Corpus (seeded): synthetic prompts (lognormal length, mean about 100 words
from the RewardBench reconstruction's vocabulary) plus planted near
duplicates: 10 % of the rows get a copy with random words replaced, at a
known Jaccard similarity of their word 5-gram shingle sets between 0.5 and
1.0, and 2 % an exact copy.  Every tool shingles the same way (lower-cased
\\b\\w\\w+\\b tokens, word 5-grams; peers shingle in Python, as their users do),
uses 128 permutations and LSH for the threshold, and reports its duplicate
pairs / clusters.  Measured: time from texts in memory to the clusters,
peak RSS, recall on planted pairs at Jaccard >= threshold + 0.05, and
links below the threshold (prefcurate verifies every candidate; the peers
report LSH candidates as they are).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
TOKEN = re.compile(r"(?u)\b\w\w+\b")
N = 5


def shingles(text: str) -> set[str]:
    t = TOKEN.findall(text.lower())
    if len(t) < N:
        return {" ".join(t)} if t else set()
    return {" ".join(t[i : i + N]) for i in range(len(t) - N + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def generate(rows: int, seed: int) -> tuple[list[str], list[tuple[int, int, float]]]:
    bench = [json.loads(x)["prompt"] for x in open(BENCH, encoding="utf-8")]
    vocab, counts = np.unique(
        np.array([t for b in bench for t in TOKEN.findall(b.lower())], dtype=object), return_counts=True
    )
    rng = np.random.default_rng(seed)
    n_base = int(rows / 1.12)
    lens = np.maximum(8, rng.lognormal(np.log(100) - 0.18, 0.6, n_base).astype(int))
    words = vocab[rng.choice(len(vocab), size=int(lens.sum()), p=counts / counts.sum())]
    texts, pos = [], 0
    for n in lens:
        texts.append(" ".join(words[pos : pos + n]))
        pos += n
    planted = []
    for i in rng.choice(n_base, int(0.10 * rows), replace=False).tolist():
        w = texts[i].split()
        base = shingles(texts[i])
        target = rng.uniform(0.5, 1.0)
        v = w[:]
        j = 1.0
        while j > target:
            v[int(rng.integers(len(v)))] = f"zq{int(rng.integers(10**9))}"
            j = jaccard(base, shingles(" ".join(v)))
        planted.append((i, len(texts), j))
        texts.append(" ".join(v))
    for i in rng.choice(n_base, rows - len(texts), replace=False).tolist():
        planted.append((i, len(texts), 1.0))
        texts.append(texts[i])
    return texts, planted


# ---------------------------------------------------------------- tools


def run_prefcurate(texts, threshold):
    import prefcurate

    res = prefcurate.dedup(texts, threshold=threshold, ngram=N, num_perm=128)
    return res.cluster_id.tolist(), [
        (i, j) for i, j in zip(res.links["i"].to_pylist(), res.links["j"].to_pylist())
    ]


def _clusters(n, pairs):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = [find(x) for x in range(n)]
    size = np.bincount(roots, minlength=n)
    return [r if size[r] > 1 else -1 for r in roots]


def run_datasketch(texts, threshold):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    pairs = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in shingles(t)])
        for j in lsh.query(m):
            pairs.append((j, i))
        lsh.insert(i, m)
    return _clusters(len(texts), pairs), pairs


def run_rensa(texts, threshold):
    from rensa import RMinHash, RMinHashLSH

    # rensa needs num_bands to divide num_perm: 16 bands of 8 rows
    bands = 16
    lsh = RMinHashLSH(threshold=threshold, num_perm=128, num_bands=bands)
    pairs = []
    for i, t in enumerate(texts):
        m = RMinHash(num_perm=128, seed=42)
        m.update(list(shingles(t)))
        for j in lsh.query(m):
            pairs.append((j, i))
        lsh.insert(i, m)
    return _clusters(len(texts), pairs), pairs


TOOLS = {"prefcurate": run_prefcurate, "datasketch": run_datasketch, "rensa": run_rensa}


def worker(tool: str, work: Path, threshold: float, repeat: int) -> None:
    texts = json.loads((work / "texts.json").read_text())
    TOOLS[tool](texts[:50], threshold)  # warm-up
    secs, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = TOOLS[tool](texts, threshold)
        secs.append(time.perf_counter() - t0)
    assert out is not None
    cl, pairs = out
    (work / f"{tool}.json").write_text(
        json.dumps({"seconds": secs, "cluster": cl, "pairs": pairs[:2_000_000]})
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.work, args.threshold, args.repeat)
        return 0
    work = Path(tempfile.mkdtemp(prefix="prefcurate-dedup-"))
    t0 = time.perf_counter()
    texts, planted = generate(args.rows, args.seed)
    (work / "texts.json").write_text(json.dumps(texts))
    mb = sum(len(t.encode()) for t in texts) / 2**20
    print(
        f"{len(texts):,} texts ({mb:.1f} MB), {len(planted):,} planted pairs, generated in {time.perf_counter() - t0:.1f} s"
    )
    sets = {}
    results = {}
    for tool in args.tools:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            tool,
            "--work",
            str(work),
            "--threshold",
            str(args.threshold),
            "--repeat",
            str(args.repeat),
        ]
        p = subprocess.Popen(cmd)
        _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"{tool} failed", file=sys.stderr)
            continue
        r = json.loads((work / f"{tool}.json").read_text())
        r["peak_mb"] = ru.ru_maxrss / 1024
        results[tool] = r
    high = [(a, b) for a, b, j in planted if j >= args.threshold + 0.05]
    base = statistics.median(results["prefcurate"]["seconds"]) if "prefcurate" in results else None
    print(
        f"\n{'tool':12} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} {'x prefc.':>9} {'recall':>7} {'links':>8} {'links < t':>9}"
    )
    for tool, r in results.items():
        sec = statistics.median(r["seconds"])
        cl = r["cluster"]
        recall = sum(cl[a] >= 0 and cl[a] == cl[b] for a, b in high) / len(high)
        below = 0
        for a, b in r["pairs"]:
            key = (a, b)
            if key not in sets:
                sets[key] = jaccard(shingles(texts[a]), shingles(texts[b]))
            below += sets[key] < args.threshold
        ratio = f"{sec / base:8.1f}x" if base else "-"
        print(
            f"{tool:12} {sec:8.2f} {len(texts) / sec:9,.0f} {r['peak_mb']:8.0f} {ratio:>9} {recall:7.3f} {len(r['pairs']):8,} {below:9,}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
