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

Cold and warm: every tool runs in a fresh process that loads the prompts
(untimed: they stand for the user's data) and then starts the clock before
the tool's imports, so "cold" is what a user waits for ``import prefcurate;
prefcurate.decontaminate(...)`` (the peers: their imports, index build and
scan).  Later calls in the same process are "warm" (``--repeat`` calls in
all, the first cold).  The Arrow-input row builds its Arrow array before the
clock (pyarrow is imported then: the user's data is already Arrow).
``--records PATH`` appends one JSON record per tool run (benches/benchkit.py
describes them; benches/run_all.py collects them); ``--work DIR`` keeps the
generated corpus for the next run with the same parameters.
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
from typing import TYPE_CHECKING

import benchkit

if TYPE_CHECKING:
    import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_BENCH = ROOT.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
TOKEN = re.compile(r"(?u)\b\w\w+\b")
PEER_VENVS = (
    HERE / "peers" / ".peer-venv" / "venv" / "bin" / "python",
    ROOT / ".venv-peers" / "venv" / "bin" / "python",
)


# ---------------------------------------------------------------- corpus


def generate(bench_prompts: list[str], n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Synthetic prompts and which of them got a planted benchmark span."""
    import numpy as np

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
# Each runs in a fresh process: the prompts are loaded first (untimed), then
# benchkit.Cold checks that no heavy module is imported yet and starts the clock.


def _load(work: Path) -> tuple[list[str], list[str]]:
    bench = [json.loads(x)["prompt"] for x in open(work / "bench.jsonl", encoding="utf-8")]
    train = [json.loads(x)["prompt"] for x in open(work / "train.jsonl", encoding="utf-8")]
    return bench, train


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
    with benchkit.Cold() as c:
        flagged = pure_python(bench, train)
    secs, _ = benchkit.warm(lambda: pure_python(bench, train), args.repeat - 1)
    peak = benchkit.peak_rss_mb()
    return {
        "seconds": c.seconds,
        "warm_seconds": secs,
        "flagged": flagged,
        "peak_rss_mb": peak,
        "loaded_rss_mb": c.loaded_rss_mb,
    }


def worker_prefcurate(work: Path, args) -> dict:
    bench, train = _load(work)
    data: object = train
    allow: tuple[str, ...] = ()
    if args.input == "arrow":
        # the user's data is already Arrow: built (and pyarrow imported) before the clock
        import pyarrow as pa

        data = pa.array(train, type=pa.large_string())
        allow = ("pyarrow", "numpy", "pandas")
    with benchkit.Cold(allow) as c:
        import prefcurate

        res = prefcurate.decontaminate(data, bench, num_threads=args.threads)
        if args.rows_flag:
            _ = res.kept, res.removed

    def again():
        r = prefcurate.decontaminate(data, bench, num_threads=args.threads)
        if args.rows_flag:
            _ = r.kept, r.removed
        return r

    secs, last = benchkit.warm(again, args.repeat - 1)
    peak = benchkit.peak_rss_mb()
    if last is not None:
        res = last
    import numpy as np

    m = res.matches
    triples_path = work / f"prefcurate-t{args.threads}-{args.input}.npz"
    np.savez(
        triples_path,
        train=m.column("train_index").to_numpy(),
        bench=m.column("benchmark_index").to_numpy(),
        score=m.column("score").to_numpy(),
    )
    return {
        "seconds": c.seconds,
        "warm_seconds": secs,
        "flagged": np.flatnonzero(res.contaminated).tolist(),
        "matches": m.num_rows,
        "triples": str(triples_path),
        "peak_rss_mb": peak,
        "loaded_rss_mb": c.loaded_rss_mb,
        "index_mb": res.index.nbytes / 2**20,
    }


def worker_sklearn(work: Path, args) -> dict:
    bench, train = _load(work)
    train = train[: args.sklearn_rows]
    with benchkit.Cold() as c:
        from sklearn.feature_extraction.text import CountVectorizer

        vec = CountVectorizer(ngram_range=(7, 13))
        X = vec.fit_transform(bench + train)
        S = (X[: len(bench)] @ X[len(bench) :].T).tocoo()
    peak = benchkit.peak_rss_mb()
    import numpy as np

    keep = S.data > 0
    path = work / "sklearn.npz"
    order = np.lexsort((S.row[keep], S.col[keep]))
    np.savez(path, train=S.col[keep][order], bench=S.row[keep][order], score=S.data[keep][order])
    return {
        "seconds": c.seconds,
        "warm_seconds": [],
        "flagged": sorted(set(S.col[keep].tolist())),
        "matches": int(keep.sum()),
        "triples": str(path),
        "peak_rss_mb": peak,
        "loaded_rss_mb": c.loaded_rss_mb,
    }


WORKERS = {"pure-python": worker_pure_python, "prefcurate": worker_prefcurate, "sklearn": worker_sklearn}


# ---------------------------------------------------------------- driver


def run_tool(work: Path, name: str, extra: list[str]) -> dict:
    """The worker's result, or {"error": ...}."""
    out = work / f"result-{name}-{'-'.join(extra).replace('--', '')}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--worker", name, "--work", str(work), "--result", str(out), *extra]
    c = benchkit.run_child(cmd)
    if c["rc"] != 0:
        print(f"  {name} {' '.join(extra)} failed (exit {c['rc']}):\n{c['stderr']}", file=sys.stderr)
        return {"error": c["error"]}
    return json.loads(out.read_text())


def peer_python(args) -> tuple[str | None, str | None]:
    """(the peers' Python, why there is none)."""
    if args.peer_python:
        if not os.access(args.peer_python, os.X_OK):
            return None, f"--peer-python {args.peer_python}: no such interpreter"
        return args.peer_python, None
    for py in PEER_VENVS:
        if py.exists():
            return str(py), None
    if args.no_peer_setup:
        return None, (
            "no Python >= 3.12 venv with corpus-assay and decontaminate: run "
            "`bash benches/peers/setup_peer_venv.sh` (or pass --peer-python)"
        )
    dest = ROOT / ".venv-peers"
    print(f"setting up the peers' Python >= 3.12 venv in {dest} (once; about a minute)", file=sys.stderr)
    p = subprocess.run(
        ["bash", str(HERE / "peers" / "setup_peer_venv.sh"), str(dest)], capture_output=True, text=True
    )
    if p.returncode != 0:
        print(f"  peer venv set-up failed:\n{p.stderr[-2000:]}", file=sys.stderr)
        return None, f"peer venv set-up failed: {p.stderr[-300:]}"
    return p.stdout.strip().splitlines()[-1], None


def run_peer(work: Path, py: str, tool: str, config: str, threads: int) -> dict:
    out = work / f"peer-{tool}-{config}.json"
    out.unlink(missing_ok=True)
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
    c = benchkit.run_child(cmd)
    if c["rc"] != 0:
        print(f"  {tool} {config} failed (exit {c['rc']}):\n{c['stderr']}", file=sys.stderr)
        return {"error": c["error"]}
    r = json.loads(out.read_text())
    return {
        "seconds": r["cold_seconds"],
        "warm_seconds": [],
        "flagged": r["contaminated_indices"],
        "peak_rss_mb": r["peak_rss_mb"],
        "loaded_rss_mb": r.get("loaded_rss_mb"),
        "import_seconds": r.get("import_seconds"),
        "version": r.get("version"),
    }


def agreement_stats(flagged: list[int], ref: set[int]) -> tuple[int, float, float]:
    s = set(flagged)
    tp = len(s & ref)
    return len(s), (tp / len(s) if s else 1.0), (tp / len(ref) if ref else 1.0)


def agreement(flagged: list[int], ref: set[int]) -> str:
    n, prec, rec = agreement_stats(flagged, ref)
    return f"{n:>6} {prec:>6.3f} {rec:>6.3f}" + ("  = ref" if set(flagged) == ref else "")


def make_corpus(args, work: Path) -> dict:
    """Write bench.jsonl and train.jsonl into ``work`` (kept when the
    parameters match a previous run's); return the workload's description."""
    params = {"rows": args.rows, "seed": args.seed, "bench": str(args.bench)}
    if benchkit.stamp_ok(work, params):
        return json.loads((work / "workload.json").read_text())
    bench = [json.loads(x)["prompt"] for x in open(args.bench, encoding="utf-8")]
    t0 = time.perf_counter()
    train, planted = generate(bench, args.rows, args.seed)
    with open(work / "bench.jsonl", "w", encoding="utf-8") as f:
        for p in bench:
            f.write(json.dumps({"prompt": p}) + "\n")
    with open(work / "train.jsonl", "w", encoding="utf-8") as f:
        for p in train:
            f.write(json.dumps({"prompt": p}) + "\n")
    wl = {
        "rows": len(train),
        "mb": sum(len(s.encode()) for s in train) / 2**20,
        "mean_words": sum(len(s.split()) for s in train) / len(train),
        "planted": int(planted.sum()),
        "bench_prompts": len(bench),
        "bench_file": args.bench.name,
        "generate_seconds": time.perf_counter() - t0,
    }
    (work / "workload.json").write_text(json.dumps(wl))
    benchkit.stamp(work, params)
    return wl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=80_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--sklearn-rows", type=int, default=10_000, help="rows given to the sklearn reference")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument(
        "--skip-peers", action="store_true", help="no corpus-assay / decontaminate (Python >= 3.12 venv)"
    )
    ap.add_argument(
        "--peer-python", default=os.environ.get("PEER_PYTHON"), help="a Python >= 3.12 with the peers"
    )
    ap.add_argument(
        "--no-peer-setup",
        action="store_true",
        help="without --peer-python or an existing peer venv, record the peers as missing (no set-up)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=7,
        help="calls of prefcurate per process (the first cold, the rest warm)",
    )
    ap.add_argument("--pure-repeat", type=int, default=3, help="calls of pure-python per process (likewise)")
    ap.add_argument(
        "--work", type=Path, default=None, help="scratch folder, corpus kept (default: a temp folder)"
    )
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument(
        "--records", type=Path, default=None, help="append one JSON record per tool run (JSON Lines)"
    )
    # worker mode
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--input", default="list", help=argparse.SUPPRESS)
    ap.add_argument("--rows-out", dest="rows_flag", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        r = WORKERS[args.worker](args.work, args)
        args.result.write_text(json.dumps(r))
        return 0

    import numpy as np

    work = args.work or Path(tempfile.mkdtemp(prefix="prefcurate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    wl = make_corpus(args, work)
    mb = wl["mb"]
    print(
        f"corpus: {wl['rows']:,} prompts, {mb:.1f} MB, mean {wl['mean_words']:.0f} words, "
        f"{wl['planted']:,} planted; benchmark: {wl['bench_prompts']:,} prompts "
        f"(generated in {wl['generate_seconds']:.1f} s; work dir {work})",
        flush=True,
    )
    rec = benchkit.Records(args.records, "decontaminate")
    rec.workload(**wl, sklearn_rows=None if args.skip_sklearn else min(args.sklearn_rows, args.rows))

    # (label, tool id, role, worker, extra args, threads)
    rep = ["--repeat", str(args.repeat)]
    plan = [
        (
            "pure-python 7-gram set",
            "pure-python",
            "peer",
            "pure-python",
            ["--repeat", str(args.pure_repeat)],
            1,
        ),
        ("prefcurate, 1 thread", "prefcurate-t1", "prefcurate", "prefcurate", ["--threads", "1", *rep], 1),
        ("prefcurate, 2 threads", "prefcurate-t2", "prefcurate", "prefcurate", ["--threads", "2", *rep], 2),
        (
            "prefcurate, 2 threads, Arrow in",
            "prefcurate-t2-arrow",
            "prefcurate",
            "prefcurate",
            ["--threads", "2", "--input", "arrow", *rep],
            2,
        ),
        (
            "prefcurate, 2 threads, + kept/removed rows",
            "prefcurate-t2-rows",
            "prefcurate",
            "prefcurate",
            ["--threads", "2", "--rows-out", *rep],
            2,
        ),
    ]
    sk_rows = min(args.sklearn_rows, args.rows)
    if not args.skip_sklearn:
        plan.append(
            (
                f"sklearn CountVectorizer reference ({sk_rows:,} rows)",
                "sklearn",
                "reference",
                "sklearn",
                ["--sklearn-rows", str(sk_rows)],
                1,
            )
        )
    results: dict[str, dict] = {}
    meta: dict[str, tuple[str, str, int]] = {}
    for label, tid, role, name, extra, threads in plan:
        print(f"running {label} ...", flush=True)
        why = benchkit.missing("sklearn") if name == "sklearn" else None
        r = {"error": why} if why else run_tool(work, name, extra)
        results[label] = r
        meta[label] = (tid, role, threads)
    if not args.skip_peers:
        py, why = peer_python(args)
        for tool in ("corpus-assay", "decontaminate"):
            for config in ("exact7", "default"):
                label = f"{tool} {config}, 2 threads"
                meta[label] = (f"{tool}-{config}", "peer", 2)
                if py is None:
                    results[label] = {"error": why, "missing": True}
                    continue
                print(f"running {label} ...", flush=True)
                results[label] = run_peer(work, py, tool, config, threads=2)

    ok = {k: v for k, v in results.items() if "error" not in v}
    ref = set(ok["pure-python 7-gram set"]["flagged"]) if "pure-python 7-gram set" in ok else None
    # exactness checks
    checks: list[tuple[str, bool]] = []
    t1 = ok.get("prefcurate, 1 thread")
    t2 = ok.get("prefcurate, 2 threads")
    if t1 and t2:
        a, b = np.load(t1["triples"]), np.load(t2["triples"])
        same = all(np.array_equal(a[k], b[k]) for k in ("train", "bench", "score"))
        checks.append(("1 thread and 2 threads give identical triples", same))
    sk = next((v for k, v in ok.items() if k.startswith("sklearn")), None)
    n_sub = None
    if sk and t2:
        a, s = np.load(t2["triples"]), np.load(sk["triples"])
        m = a["train"] < sk_rows
        n_sub = int(m.sum())
        same = all(np.array_equal(a[k][m], s[k]) for k in ("train", "bench", "score"))
        checks.append((f"prefcurate triples == sklearn triples on the first {sk_rows:,} rows", same))
    if ref is not None and sk:
        sub = {j for j in ref if j < sk_rows}
        checks.append(("pure-python flagged set == sklearn's on the subset", sub == set(sk["flagged"])))

    base = t2["seconds"] if t2 else None
    wbase = statistics.median(t2["warm_seconds"]) if t2 and t2["warm_seconds"] else None
    print()
    print(
        f"{'tool (cold: fresh process, imports in)':44} {'cold s':>8} {'warm s':>8} {'MB/s':>8} {'peak MB':>8} "
        f"{'x prefc.':>9} {'x warm':>8} {'flagged':>6} {'prec':>6} {'recall':>6}"
    )
    for label, r in results.items():
        tid, role, threads = meta[label]
        is_sk = label.startswith("sklearn")
        rows = sk_rows if is_sk else args.rows
        if "error" in r:
            status = "missing" if r.get("missing") or "not installed" in (r["error"] or "") else "failed"
            print(f"{label:44} {status}: {r['error']}")
            rec.tool(tid, label, role, status=status, error=r["error"], threads=threads, rows=rows)
            continue
        sec = r["seconds"]
        wsec = statistics.median(r["warm_seconds"]) if r["warm_seconds"] else None
        rate = mb * rows / args.rows / sec
        scale = args.rows / sk_rows if is_sk else 1.0
        ratio = f"{sec / base * scale:8.1f}x" + ("*" if is_sk else "") if base else "        -"
        wratio = f"{wsec / wbase:7.1f}x" if wsec and wbase else "       -"
        if is_sk:
            sub_ref = {j for j in ref if j < sk_rows} if ref is not None else None
            agree = agreement(r["flagged"], sub_ref) if sub_ref is not None else ""
            stats = agreement_stats(r["flagged"], sub_ref) if sub_ref is not None else None
        else:
            agree = agreement(r["flagged"], ref) if ref is not None else ""
            stats = agreement_stats(r["flagged"], ref) if ref is not None else None
        wtxt = f"{wsec:8.3f}" if wsec else "       -"
        print(
            f"{label:44} {sec:8.3f} {wtxt} {rate:8.1f} {r['peak_rss_mb']:8.0f} {ratio:>9} {wratio:>8} {agree}"
        )
        metrics = {"mb_per_s": rate, "flagged": len(r["flagged"])}
        if stats:
            metrics.update(precision=stats[1], recall=stats[2])
        for k in ("matches", "index_mb", "import_seconds"):
            if r.get(k) is not None:
                metrics[k] = r[k]
        rec.tool(
            tid,
            label,
            role,
            baseline=tid == "prefcurate-t2",
            seconds=sec,
            warm_seconds=r["warm_seconds"],
            threads=threads,
            rows=rows,
            peak_rss_mb=r["peak_rss_mb"],
            loaded_rss_mb=r.get("loaded_rss_mb"),
            metrics=metrics,
            notes=(
                "the first rows only: its ratio is scaled linearly to the full corpus"
                if is_sk
                else (f"version {r['version']}" if r.get("version") else None)
            ),
        )
    print()
    if base and "pure-python 7-gram set" in ok:
        pp = ok["pure-python 7-gram set"]
        line = f"pure-python / prefcurate (2 threads), cold: {pp['seconds'] / base:.1f}x"
        if wbase and pp["warm_seconds"]:
            line += f"; warm: {statistics.median(pp['warm_seconds']) / wbase:.1f}x"
        print(
            line + "  (prefcurate gives full scored triples, best match and span; "
            "pure-python gives the flagged set only)"
        )
    if sk and base:
        print(
            "* sklearn ratio scaled linearly from its subset to the full corpus (it grows faster than linearly)"
        )
    for name, good in checks:
        print(f"{name}: {good}")
        rec.check(
            name, good, f"{n_sub:,} triples" if "sklearn triples" in name and n_sub is not None else None
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": args.rows, "mb": mb, "results": results, "checks": [f"{n}: {g}" for n, g in checks]},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
