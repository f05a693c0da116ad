#!/usr/bin/env python3
"""Decontamination benchmark: prefcurate against the reference and the peers,
side by side in one run, each tool in its own process.

    python benches/decontaminate.py                     # 80,000 prompts, all tools
    python benches/decontaminate.py --sklearn-rows 80000  # the full sklearn reference (~5 min, ~15 GB)
    python benches/decontaminate.py --skip-peers         # no Python >= 3.12 venv

Corpus: a seeded generator of synthetic training prompts (lognormal length,
mean about 100 words, words drawn from the benchmark's own vocabulary with its
frequencies, 5 % with a planted 7-20-token span of a benchmark prompt) against
../shared/data/benchmark/rewardbench_reconstructed.jsonl.

Tools (each timed inside its own process, from prompts in memory to result,
index build included; peak RSS of the whole process from wait4):
  prefcurate       decontaminate(): full (train, benchmark, score) triples,
                   best match and matched span per flagged row; 1 and 2 threads;
                   list input and Arrow input; "+rows" also materialises kept/removed
  pure-python      lower(), the same token regex, a set of the benchmark's
                   7-gram tuples, scan each prompt: the reference's flagged set
  sklearn          the published reference (CountVectorizer(ngram_range=(7, 13)),
                   dot product) on the first --sklearn-rows prompts
  corpus-assay     PyPI corpus-assay 0.1.0 (Python >= 3.12 venv), exact7 config
                   (7-grams, \\b\\w\\w+\\b, one hit) and its defaults
  decontaminate    PyPI decontaminate 0.3.0.post4 (allenai/decon fork), its closest
                   configuration to "any shared 7-word n-gram" and its defaults

The agreement columns compare each tool's flagged set with the reference set
(pure-python, checked against sklearn on the subset).
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
ROOT = HERE.parent
DEFAULT_BENCH = ROOT.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
TOKEN = re.compile(r"(?u)\b\w\w+\b")


# ---------------------------------------------------------------- corpus


def generate(bench_prompts: list[str], n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Synthetic prompts and which of them got a planted benchmark span."""
    toks = [TOKEN.findall(p.lower()) for p in bench_prompts]
    vocab, counts = np.unique(np.array([t for ts in toks for t in ts], dtype=object), return_counts=True)
    rng = np.random.default_rng(seed)
    sigma = 0.6
    lens = np.maximum(1, rng.lognormal(np.log(100) - sigma**2 / 2, sigma, n).astype(int))
    words = vocab[rng.choice(len(vocab), size=int(lens.sum()), p=counts / counts.sum())]
    long_docs = [t for t in toks if len(t) >= 7]
    planted = rng.random(n) < 0.05
    out, pos = [], 0
    for i in range(n):
        w = words[pos : pos + lens[i]].tolist()
        pos += lens[i]
        if planted[i]:
            d = long_docs[rng.integers(len(long_docs))]
            span = min(int(rng.integers(7, 21)), len(d))
            s = int(rng.integers(0, len(d) - span + 1))
            at = int(rng.integers(0, len(w) + 1))
            w = w[:at] + d[s : s + span] + w[at:]
        out.append(" ".join(w))
    return out, planted


# ---------------------------------------------------------------- workers


def _load(work: Path) -> tuple[list[str], list[str]]:
    bench = [json.loads(x)["prompt"] for x in open(work / "bench.jsonl", encoding="utf-8")]
    train = [json.loads(x)["prompt"] for x in open(work / "train.jsonl", encoding="utf-8")]
    return bench, train


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pure_python(bench: list[str], train: list[str]) -> list[int]:
    """The 10 lines a user would write: the reference's flagged set."""
    grams = set()
    for b in bench:
        t = TOKEN.findall(b.lower())
        grams.update(zip(*(t[i:] for i in range(7))))
    flagged = []
    for j, s in enumerate(train):
        t = TOKEN.findall(s.lower())
        if any(g in grams for g in zip(*(t[i:] for i in range(7)))):
            flagged.append(j)
    return flagged


def worker_pure_python(work: Path, args) -> dict:
    bench, train = _load(work)
    secs, flagged = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        flagged = pure_python(bench, train)
        secs.append(time.perf_counter() - t0)
    return {"seconds": secs, "flagged": flagged}


def worker_prefcurate(work: Path, args) -> dict:
    import pyarrow as pa

    import prefcurate

    bench, train = _load(work)
    data = pa.array(train, type=pa.large_string()) if args.input == "arrow" else train
    # warm-up on two prompts, untimed: the first pyarrow array a process
    # builds imports pandas when it is installed (pyarrow's one-time cost)
    prefcurate.decontaminate(train[:2], bench[:2])
    base = _rss_mb()
    secs, res = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = prefcurate.decontaminate(data, bench, num_threads=args.threads)
        if args.rows_flag:
            _ = res.kept, res.removed
        secs.append(time.perf_counter() - t0)
    assert res is not None
    m = res.matches
    triples_path = work / f"prefcurate-t{args.threads}-{args.input}.npz"
    np.savez(
        triples_path,
        train=m.column("train_index").to_numpy(),
        bench=m.column("benchmark_index").to_numpy(),
        score=m.column("score").to_numpy(),
    )
    return {
        "seconds": secs,
        "flagged": np.flatnonzero(res.contaminated).tolist(),
        "matches": m.num_rows,
        "triples": str(triples_path),
        "rss_before_mb": base,
        "index_mb": res.index.nbytes / 2**20,
    }


def worker_sklearn(work: Path, args) -> dict:
    from scipy import sparse  # noqa: F401  (imported by sklearn anyway)
    from sklearn.feature_extraction.text import CountVectorizer

    bench, train = _load(work)
    train = train[: args.sklearn_rows]
    t0 = time.perf_counter()
    vec = CountVectorizer(ngram_range=(7, 13))
    X = vec.fit_transform(bench + train)
    S = (X[: len(bench)] @ X[len(bench) :].T).tocoo()
    secs = time.perf_counter() - t0
    keep = S.data > 0
    path = work / "sklearn.npz"
    order = np.lexsort((S.row[keep], S.col[keep]))
    np.savez(path, train=S.col[keep][order], bench=S.row[keep][order], score=S.data[keep][order])
    return {
        "seconds": [secs],
        "flagged": sorted(set(S.col[keep].tolist())),
        "matches": int(keep.sum()),
        "triples": str(path),
    }


WORKERS = {"pure-python": worker_pure_python, "prefcurate": worker_prefcurate, "sklearn": worker_sklearn}


# ---------------------------------------------------------------- driver


def run_child(cmd: list[str], env=None) -> tuple[int, float, str]:
    """(return code, peak RSS in MB of the child, its stderr)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, ru.ru_maxrss / 1024, err.read().decode(errors="replace")[-3000:]


def run_tool(work: Path, name: str, extra: list[str]) -> dict | None:
    out = work / f"result-{name}-{'-'.join(extra).replace('--', '')}.json"
    cmd = [sys.executable, __file__, "--worker", name, "--work", str(work), "--result", str(out), *extra]
    rc, rss, err = run_child(cmd)
    if rc != 0:
        print(f"  {name} {' '.join(extra)} failed (exit {rc}):\n{err}", file=sys.stderr)
        return None
    r = json.loads(out.read_text())
    r["peak_rss_mb"] = rss
    return r


def peer_python(args) -> str | None:
    if args.peer_python:
        return args.peer_python
    dest = ROOT / ".venv-peers"
    print(f"setting up the peers' Python >= 3.12 venv in {dest} (once; about a minute)", file=sys.stderr)
    p = subprocess.run(
        ["bash", str(HERE / "peers" / "setup_peer_venv.sh"), str(dest)], capture_output=True, text=True
    )
    if p.returncode != 0:
        print(f"  peer venv set-up failed:\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    return p.stdout.strip().splitlines()[-1]


def run_peer(work: Path, py: str, tool: str, config: str, threads: int) -> dict | None:
    out = work / f"peer-{tool}-{config}.json"
    cmd = [
        py,
        str(HERE / "peers" / "run_peer.py"),
        "--tool",
        tool,
        "--config",
        config,
        "--bench",
        str(work / "bench.jsonl"),
        "--train",
        str(work / "train.jsonl"),
        "--out",
        str(out),
        "--threads",
        str(threads),
        "--workdir",
        str(work / f"peer-{tool}-{config}"),
    ]
    rc, rss, err = run_child(cmd)
    if rc != 0:
        print(f"  {tool} {config} failed (exit {rc}):\n{err}", file=sys.stderr)
        return None
    r = json.loads(out.read_text())
    secs = (r.get("index_seconds") or 0) + (r.get("scan_seconds") or 0)
    return {"seconds": [secs], "flagged": r["contaminated_indices"], "peak_rss_mb": rss}


def agreement(flagged: list[int], ref: set[int]) -> str:
    s = set(flagged)
    tp = len(s & ref)
    prec = tp / len(s) if s else 1.0
    rec = tp / len(ref) if ref else 1.0
    return f"{len(s):>6} {prec:>6.3f} {rec:>6.3f}" + ("  = ref" if s == ref else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=80_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--sklearn-rows", type=int, default=10_000, help="rows given to the sklearn reference")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument(
        "--peer-python", default=os.environ.get("PEER_PYTHON"), help="a Python >= 3.12 with the peers"
    )
    ap.add_argument("--repeat", type=int, default=7, help="timed repetitions of prefcurate (median reported)")
    ap.add_argument(
        "--pure-repeat", type=int, default=3, help="timed repetitions of pure-python (median reported)"
    )
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    # worker mode
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--input", default="list", help=argparse.SUPPRESS)
    ap.add_argument("--rows-out", dest="rows_flag", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        r = WORKERS[args.worker](args.work, args)
        r["rss_mb"] = _rss_mb()
        args.result.write_text(json.dumps(r))
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="prefcurate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = [json.loads(x)["prompt"] for x in open(args.bench, encoding="utf-8")]
    t0 = time.perf_counter()
    train, planted = generate(bench, args.rows, args.seed)
    mb = sum(len(s.encode()) for s in train) / 2**20
    with open(work / "bench.jsonl", "w", encoding="utf-8") as f:
        for p in bench:
            f.write(json.dumps({"prompt": p}) + "\n")
    with open(work / "train.jsonl", "w", encoding="utf-8") as f:
        for p in train:
            f.write(json.dumps({"prompt": p}) + "\n")
    n_words = sum(len(s.split()) for s in train)
    print(
        f"corpus: {len(train):,} prompts, {mb:.1f} MB, mean {n_words / len(train):.0f} words, "
        f"{int(planted.sum()):,} planted; benchmark: {len(bench):,} prompts "
        f"(generated in {time.perf_counter() - t0:.1f} s; work dir {work})",
        flush=True,
    )

    results: dict[str, dict] = {}
    rep = ["--repeat", str(args.repeat)]
    plan = [
        ("pure-python", "pure-python", ["--repeat", str(args.pure_repeat)]),
        ("prefcurate 1 thread", "prefcurate", ["--threads", "1", *rep]),
        ("prefcurate 2 threads", "prefcurate", ["--threads", "2", *rep]),
        ("prefcurate 2 thr, Arrow in", "prefcurate", ["--threads", "2", "--input", "arrow", *rep]),
        ("prefcurate 2 thr, +rows", "prefcurate", ["--threads", "2", "--rows-out", *rep]),
    ]
    if not args.skip_sklearn:
        plan.append(
            (f"sklearn ({args.sklearn_rows:,} rows)", "sklearn", ["--sklearn-rows", str(args.sklearn_rows)])
        )
    for label, name, extra in plan:
        print(f"running {label} ...", flush=True)
        r = run_tool(work, name, extra)
        if r:
            results[label] = r
    if not args.skip_peers:
        py = peer_python(args)
        if py:
            for tool in ("corpus-assay", "decontaminate"):
                for config in ("exact7", "default"):
                    label = f"{tool} {config} (2 thr)"
                    print(f"running {label} ...", flush=True)
                    r = run_peer(work, py, tool, config, threads=2)
                    if r:
                        results[label] = r

    ref = set(results["pure-python"]["flagged"]) if "pure-python" in results else None
    # exactness checks
    checks = []
    t1 = results.get("prefcurate 1 thread")
    t2 = results.get("prefcurate 2 threads")
    if t1 and t2:
        a, b = np.load(t1["triples"]), np.load(t2["triples"])
        same = all(np.array_equal(a[k], b[k]) for k in ("train", "bench", "score"))
        checks.append(f"1 thread and 2 threads give identical triples: {same}")
    sk = next((v for k, v in results.items() if k.startswith("sklearn")), None)
    if sk and t2:
        a, s = np.load(t2["triples"]), np.load(sk["triples"])
        m = a["train"] < args.sklearn_rows
        same = all(np.array_equal(a[k][m], s[k]) for k in ("train", "bench", "score"))
        checks.append(
            f"prefcurate triples == sklearn triples on the first {args.sklearn_rows:,} rows: {same} ({int(m.sum()):,} triples)"
        )
    if ref is not None and sk:
        sub = {j for j in ref if j < args.sklearn_rows}
        checks.append(f"pure-python flagged set == sklearn's on the subset: {sub == set(sk['flagged'])}")

    base = statistics.median(results["prefcurate 2 threads"]["seconds"]) if t2 else None
    print()
    print(
        f"{'tool':34} {'seconds':>9} {'MB/s':>8} {'peak MB':>8} {'x prefc.':>9} {'flagged':>6} {'prec':>6} {'recall':>6}"
    )
    for label, r in results.items():
        sec = statistics.median(r["seconds"])
        rows = args.sklearn_rows if label.startswith("sklearn") else args.rows
        rate = mb * rows / args.rows / sec
        ratio = f"{sec / base:8.1f}x" if base else "        -"
        if label.startswith("sklearn"):
            # compare on the subset only
            sub_ref = {j for j in ref if j < args.sklearn_rows} if ref is not None else None
            agree = agreement(r["flagged"], sub_ref) if sub_ref is not None else ""
            ratio = f"{sec / base * args.rows / args.sklearn_rows:8.1f}x*" if base else ratio
        else:
            agree = agreement(r["flagged"], ref) if ref is not None else ""
        print(f"{label:34} {sec:9.3f} {rate:8.1f} {r['peak_rss_mb']:8.0f} {ratio:>9} {agree}")
    print()
    if base and "pure-python" in results:
        pp = statistics.median(results["pure-python"]["seconds"])
        print(
            f"pure-python / prefcurate (2 threads): {pp / base:.1f}x  (prefcurate gives full scored triples, "
            "best match and span; pure-python gives the flagged set only)"
        )
    if sk and base:
        print(
            "* sklearn ratio scaled linearly from its subset to the full corpus (it grows faster than linearly)"
        )
    for c in checks:
        print(c)
    if args.json:
        args.json.write_text(
            json.dumps({"rows": args.rows, "mb": mb, "results": results, "checks": checks}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
