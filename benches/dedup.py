#!/usr/bin/env python3
"""Near-duplicate benchmark: prefcurate.dedup against datasketch and rensa on
the same task, each tool in its own process, in one run.

    python benches/dedup.py [--rows 200000] [--threshold 0.8] [--tools ...]

Corpus (seeded): documents of words drawn Zipf-like (p ~ 1 / (rank + 2.7))
from the vocabulary of ``rewardbench_reconstructed.jsonl`` (its lower-cased
``\\b\\w\\w+\\b`` tokens, ranked by frequency), lognormal length with mean
150 words (clipped to 10..2000); 10 % of the rows are planted near
duplicates of another row, made by editing 1-8 % of its words (60 %
substitutions, 20 % insertions, 20 % deletions, new words from the same
Zipf law); rows are shuffled.  Ground truth: the exact Jaccard similarity of
the two documents' sets of lower-cased whitespace word 5-grams.

Every tool starts from the raw texts in memory and is timed through
tokenisation and shingling to its duplicate decisions, with 128 permutations
and threshold 0.8:

- prefcurate: ``prefcurate.dedup(texts, ngram=5)`` (word 5-grams of its
  tokeniser, which for this vocabulary are exactly the whitespace 5-grams:
  checked below; every LSH candidate verified by exact Jaccard), 2 threads
  and 1 thread;
- datasketch: its documented ``MinHash.generator`` + ``MinHashLSH``
  query-then-insert loop, Python shingling;
- rensa: ``RMinHashDeduplicator(use_lsh=True).add_pairs`` on full shingle
  sets, with its default bands and with 16 bands, Python shingling.

Reported per tool: cold seconds (a fresh process that loads the texts,
untimed, then starts the clock before the tool's imports: its imports and
first call on the whole corpus; no warm-up) and, for prefcurate, the median
of ``--repeat`` (3) warm calls after it in the same process (peers:
``--peer-repeat``, 0 by default); peak RSS of its process during the timed
runs and that peak over the RSS with the texts loaded ("+MB"; the "load
only" row is the RSS of the texts alone), recall on planted pairs at Jaccard >= 0.85
(same cluster), the links it reports and how many join rows under the
threshold.  rensa's deduplicator returns keep flags, not links: after the
timed run its links are read back (untimed) with ``get_duplicates`` for each
row it flagged.

``--records PATH`` appends one JSON record per tool run (benches/benchkit.py);
``--work DIR`` keeps the generated corpus for the next run with the same
parameters; ``--skip-peers`` runs prefcurate only.  A peer that is not
installed is reported (and recorded) as missing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchkit

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
TOKEN = re.compile(r"(?u)\b\w\w+\b")
N = 5
PERM = 128


def shingles(text: str) -> list[str]:
    """Lower-cased whitespace word 5-grams (the peers' shingling and the
    ground truth's)."""
    w = text.lower().split()
    if len(w) < N:
        return [" ".join(w)] if w else []
    return [" ".join(w[i : i + N]) for i in range(len(w) - N + 1)]


def jaccard(a: str, b: str) -> float:
    x, y = set(shingles(a)), set(shingles(b))
    return len(x & y) / len(x | y) if x | y else 1.0


def generate(rows: int, seed: int) -> tuple[list[str], list[tuple[int, int]]]:
    import numpy as np

    bench = [json.loads(x)["prompt"] for x in open(BENCH, encoding="utf-8")]
    words, counts = np.unique(
        np.array([t for b in bench for t in TOKEN.findall(b.lower())], dtype=object), return_counts=True
    )
    vocab = words[np.argsort(-counts, kind="stable")]
    p = 1.0 / (np.arange(len(vocab)) + 2.7)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    n_plant = rows // 10
    n_base = rows - n_plant
    sigma = 0.5
    lens = np.clip(rng.lognormal(np.log(150) - sigma**2 / 2, sigma, n_base), 10, 2000).astype(int)
    ids = rng.choice(len(vocab), size=int(lens.sum()), p=p)
    docs = np.split(ids, np.cumsum(lens)[:-1])
    texts = [" ".join(vocab[d]) for d in docs]
    planted = []
    for i in rng.choice(n_base, n_plant, replace=False).tolist():
        w = list(docs[i])
        for _ in range(max(1, round(len(w) * rng.uniform(0.01, 0.08)))):
            op, at = rng.random(), int(rng.integers(len(w)))
            new = int(rng.choice(len(vocab), p=p))
            if op < 0.6:
                w[at] = new
            elif op < 0.8:
                w.insert(at, new)
            elif len(w) > N + 1:
                del w[at]
        planted.append((i, len(texts)))
        texts.append(" ".join(vocab[w]))
    perm = rng.permutation(len(texts))
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(texts))
    return [texts[j] for j in perm], [(int(inv[a]), int(inv[b])) for a, b in planted]


# ---------------------------------------------------------------- tools


def run_prefcurate(texts, threshold, threads=None):
    import prefcurate

    res = prefcurate.dedup(texts, threshold=threshold, ngram=N, num_perm=PERM, num_threads=threads)
    return res.links["i"].to_pylist(), res.links["j"].to_pylist()


def run_prefcurate_1(texts, threshold):
    return run_prefcurate(texts, threshold, threads=1)


def run_datasketch(texts, threshold):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=PERM)
    li, lj = [], []
    sets = ([s.encode("utf-8") for s in set(shingles(t))] for t in texts)
    for i, m in enumerate(MinHash.generator(sets, num_perm=PERM)):
        for j in lsh.query(m):
            li.append(j)
            lj.append(i)
        lsh.insert(i, m)
    return li, lj


def _rensa(texts, threshold, bands):
    from rensa import RMinHashDeduplicator

    d = RMinHashDeduplicator(threshold=threshold, num_perm=PERM, use_lsh=True, num_bands=bands)
    keep = d.add_pairs((str(i), shingles(t)) for i, t in enumerate(texts))
    return d, keep


def _rensa_links(texts, d, keep):
    from rensa import RMinHash

    li, lj = [], []
    for i in (k for k, x in enumerate(keep) if not x):
        m = RMinHash(num_perm=PERM, seed=42)
        m.update(shingles(texts[i]))
        for key in d.get_duplicates(m):
            li.append(int(key))
            lj.append(i)
    return li, lj


def run_rensa(texts, threshold):
    return _rensa(texts, threshold, None)


def run_rensa_16(texts, threshold):
    return _rensa(texts, threshold, 16)


def run_load(texts, threshold):
    return [], []


TOOLS = {
    "load only": run_load,
    "prefcurate": run_prefcurate,
    "prefcurate 1 thread": run_prefcurate_1,
    "datasketch": run_datasketch,
    "rensa": run_rensa,
    "rensa 16 bands": run_rensa_16,
}
# (record id, label, role, threads, module a peer needs)
META = {
    "load only": ("load-only", "texts loaded (RSS of the data alone)", "reference", None, None),
    "prefcurate": ("prefcurate-t2", "prefcurate, 2 threads", "prefcurate", 2, None),
    "prefcurate 1 thread": ("prefcurate-t1", "prefcurate, 1 thread", "prefcurate", 1, None),
    "datasketch": (
        "datasketch",
        "datasketch (`MinHash.generator` + `MinHashLSH`)",
        "peer",
        1,
        "datasketch",
    ),
    "rensa": ("rensa", "rensa (`RMinHashDeduplicator`, default bands)", "peer", 1, "rensa"),
    "rensa 16 bands": ("rensa-16", "rensa, 16 bands", "peer", 1, "rensa"),
}
PREFCURATE = ("prefcurate", "prefcurate 1 thread")


def worker(tool: str, work: Path, threshold: float, repeat: int) -> None:
    texts = json.loads((work / "texts.json").read_text())
    with benchkit.Cold() as c:
        out = TOOLS[tool](texts, threshold)
    secs, last = benchkit.warm(lambda: TOOLS[tool](texts, threshold), repeat)
    peak = benchkit.peak_rss_mb()
    if last is not None:
        out = last
    if tool.startswith("rensa"):
        out = _rensa_links(texts, *out)
    (work / "result.json").write_text(
        json.dumps(
            {
                "seconds": c.seconds,
                "warm_seconds": secs,
                "i": out[0],
                "j": out[1],
                "loaded_mb": c.loaded_rss_mb,
                "run_peak_mb": peak,
            }
        )
    )


def _clusters(n: int, li: list[int], lj: list[int]):
    import numpy as np

    parent = np.arange(n)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(li, lj):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)])


def check_shingles(texts: list[str]) -> bool:
    """prefcurate's word 5-grams equal the peers' whitespace 5-grams here."""
    from prefcurate import _core

    for t in texts[:300]:
        ours = _core.shingles(t, norm_opts=(True, True, True), shingle_kind="word", shingle_n=N)
        if sorted(s.decode() for s in ours) != sorted(shingles(t)):
            print(f"shingles differ on: {t[:80]!r}", file=sys.stderr)
            return False
    return True


def make_corpus(rows: int, seed: int, threshold: float, work: Path) -> dict:
    """texts.json and truth.json in ``work`` (kept when the parameters match)."""
    params = {"rows": rows, "seed": seed, "threshold": threshold}
    if benchkit.stamp_ok(work, params):
        return json.loads((work / "workload.json").read_text())
    t0 = time.perf_counter()
    texts, planted = generate(rows, seed)
    (work / "texts.json").write_text(json.dumps(texts))
    truth = [(a, b, jaccard(texts[a], texts[b])) for a, b in planted]
    (work / "truth.json").write_text(json.dumps(truth))
    wl = {
        "rows": len(texts),
        "mb": sum(len(t.encode()) for t in texts) / 2**20,
        "mean_words": sum(len(t.split()) for t in texts) / len(texts),
        "planted": len(planted),
        "planted_high": sum(j >= threshold + 0.05 for *_, j in truth),
        "planted_jaccard_min": min(j for *_, j in truth),
        "planted_jaccard_max": max(j for *_, j in truth),
        "threshold": threshold,
        "ngram": N,
        "num_perm": PERM,
        "generate_seconds": time.perf_counter() - t0,
    }
    (work / "workload.json").write_text(json.dumps(wl))
    benchkit.stamp(work, params)
    return wl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    ap.add_argument("--skip-peers", action="store_true", help="prefcurate only")
    ap.add_argument("--repeat", type=int, default=3, help="warm calls of prefcurate after the cold one")
    ap.add_argument("--peer-repeat", type=int, default=0, help="warm calls of each peer after the cold one")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--records", type=Path, default=None, help="append one JSON record per tool run (JSON Lines)"
    )
    ap.add_argument(
        "--work", type=Path, default=None, help="scratch folder, corpus kept (default: a temp folder)"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-repeat", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.work, args.threshold, args.worker_repeat)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="prefcurate-dedup-"))
    work.mkdir(parents=True, exist_ok=True)
    wl = make_corpus(args.rows, args.seed, args.threshold, work)
    texts = json.loads((work / "texts.json").read_text())
    truth = json.loads((work / "truth.json").read_text())
    high = [(a, b) for a, b, j in truth if j >= args.threshold + 0.05]
    print(
        f"{wl['rows']:,} documents ({wl['mb']:.1f} MB, mean {wl['mean_words']:.0f} words), {wl['planted']:,} planted near duplicates "
        f"({len(high):,} at Jaccard >= {args.threshold + 0.05:.2f}; Jaccard of planted pairs "
        f"{wl['planted_jaccard_min']:.2f}-{wl['planted_jaccard_max']:.2f}), generated in {wl['generate_seconds']:.1f} s"
    )
    rec = benchkit.Records(args.records, "dedup")
    rec.workload(**wl)
    same = check_shingles(texts)
    print(f"prefcurate's word 5-grams equal the whitespace 5-grams on the first 300 documents: {same}")
    rec.check("prefcurate's word 5-grams equal the whitespace 5-grams (first 300 documents)", same)
    tools = [t for t in args.tools if not (args.skip_peers and META[t][2] == "peer")]
    results, failed = {}, {}
    for tool in tools:
        need = META[tool][4]
        why = benchkit.missing(need) if need else None
        if why:
            print(f"{tool}: missing ({why})", file=sys.stderr)
            failed[tool] = ("missing", why)
            continue
        print(f"running {tool} ...", flush=True)
        repeat = args.repeat if tool in PREFCURATE else 0 if tool == "load only" else args.peer_repeat
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            tool,
            "--work",
            str(work),
            "--threshold",
            str(args.threshold),
            "--worker-repeat",
            str(repeat),
        ]
        (work / "result.json").unlink(missing_ok=True)
        c = benchkit.run_child(cmd)
        if c["rc"] != 0:
            print(f"{tool} failed (exit {c['rc']}):\n{c['stderr']}", file=sys.stderr)
            failed[tool] = ("failed", c["error"])
            continue
        results[tool] = json.loads((work / "result.json").read_text())
    cache: dict[tuple[int, int], float] = {}
    base = results["prefcurate"]["seconds"] if "prefcurate" in results else None
    wb = results.get("prefcurate", {}).get("warm_seconds")
    wbase = statistics.median(wb) if wb else None
    print(
        f"\n{'tool (cold: fresh process)':28} {'cold s':>8} {'warm s':>8} {'docs/s':>9} {'peak MB':>8} {'+MB':>6} "
        f"{'x prefc.':>9} {'recall':>7} {'links':>8} {'links < t':>9} {'min J':>6}"
    )
    rows_out = {}
    for tool in tools:
        tid, label, role, threads, _ = META[tool]
        if tool in failed:
            status, why = failed[tool]
            print(f"{tool:28} {status}: {why}")
            rec.tool(tid, label, role, status=status, error=why, threads=threads, rows=len(texts))
            continue
        r = results[tool]
        if tool == "load only":
            print(f"{tool:28} {'':>8} {'':>8} {'':>9} {r['loaded_mb']:8.0f}")
            rows_out[tool] = {"loaded_mb": r["loaded_mb"]}
            rec.tool(
                tid,
                label,
                role,
                status="ok",
                mode="cold",
                seconds=None,
                rows=len(texts),
                loaded_rss_mb=r["loaded_mb"],
                peak_rss_mb=r["run_peak_mb"],
                notes="no tool: the process's RSS with the texts loaded",
            )
            continue
        sec = r["seconds"]
        wsec = statistics.median(r["warm_seconds"]) if r["warm_seconds"] else None
        peak, extra = r["run_peak_mb"], r["run_peak_mb"] - r["loaded_mb"]
        cl = _clusters(len(texts), r["i"], r["j"])
        recall = sum(cl[a] == cl[b] for a, b in high) / len(high) if high else 1.0
        below, low = 0, 1.0
        for a, b in zip(r["i"], r["j"]):
            key = (min(a, b), max(a, b))
            if key not in cache:
                cache[key] = jaccard(texts[a], texts[b])
            below += cache[key] < args.threshold
            low = min(low, cache[key])
        ratio = f"{sec / base:8.1f}x" if base else "-"
        low_s = f"{low:6.2f}" if r["i"] else "-"
        wtxt = f"{wsec:8.2f}" if wsec else "       -"
        print(
            f"{tool:28} {sec:8.2f} {wtxt} {len(texts) / sec:9,.0f} {peak:8.0f} {extra:6.0f} {ratio:>9} {recall:7.3f} {len(r['i']):8,} {below:9,} {low_s:>6}"
        )
        rows_out[tool] = {
            "seconds": sec,
            "warm_seconds": r["warm_seconds"],
            "peak_mb": peak,
            "peak_over_loaded_mb": extra,
            "recall": recall,
            "links": len(r["i"]),
            "links_below": below,
            "min_jaccard": low,
        }
        rec.tool(
            tid,
            label,
            role,
            baseline=tool == "prefcurate",
            seconds=sec,
            warm_seconds=r["warm_seconds"],
            threads=threads,
            rows=len(texts),
            peak_rss_mb=peak,
            loaded_rss_mb=r["loaded_mb"],
            metrics={
                "docs_per_s": len(texts) / sec,
                "peak_over_loaded_mb": extra,
                "recall": recall,
                "links": len(r["i"]),
                "links_below_threshold": below,
                "min_jaccard": low if r["i"] else None,
            },
        )
    if base:
        print()
        for peer in ("datasketch", "rensa", "rensa 16 bands"):
            if peer in results:
                line = f"{peer} / prefcurate, cold: {results[peer]['seconds'] / base:.1f}x"
                if wbase and results[peer]["warm_seconds"]:
                    line += f"; warm: {statistics.median(results[peer]['warm_seconds']) / wbase:.1f}x"
                print(line)
    if args.json:
        args.json.write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
