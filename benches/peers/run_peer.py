#!/usr/bin/env python3
"""Run one peer decontamination tool (PyPI `corpus-assay` or `decontaminate`) on
a benchmark-prompt file and a training-prompt file, and report which training
rows it flags.

Needs a CPython >= 3.12 venv with `corpus-assay` and `decontaminate` installed
(see setup_peer_venv.sh).  Fully offline: no Hugging Face Hub, no tiktoken
download (decontaminate's tiktoken-rs embeds the BPE ranks in the extension).

    run_peer.py --tool corpus-assay|decontaminate --config exact7|default \
        --bench BENCH.jsonl --train TRAIN.jsonl --out OUT.json [--workdir DIR] [--threads N]

BENCH/TRAIN: JSONL with a `prompt` field per line.  Output JSON:
    {"tool", "config", "contaminated_indices": [sorted 0-based train rows],
     "index_seconds", "scan_seconds", "import_seconds", "cold_seconds",
     "version", "peak_rss_mb", ...}
cold_seconds = import_seconds + index_seconds + scan_seconds: the tool's
imports (timed first, in this fresh process), its index build and its scan;
peak_rss_mb is this process's peak after the prompts were loaded (VmHWM),
or its largest worker process's.

Configs
  default: each tool's shipped defaults (corpus-assay: NFKC+lowercase, stop
           words dropped, reject patterns, word 13-grams, min_hits=3,
           min_coverage=0.001; decontaminate: cl100k 5-grams, sample every 10
           tokens, IDF-weighted score >= 0.8, eval_min_token_length=20, ...).
  exact7:  tuned to approximate "any shared 7-word n-gram (lower-cased,
           tokens = \\b\\w\\w+\\b) between a training and a benchmark prompt".
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # corpus-assay's build_index uses tqdm


def read_prompts(path: str) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                p = json.loads(line).get("prompt")
                out.append(p if isinstance(p, str) else "")
    return out


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's own peak (VmHWM: ru_maxrss of an exec'd process carries
    its parent's peak over exec), or its largest child's if larger."""
    self_kb = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, child_kb) / 1024.0


HEAVY = ("numpy", "pyarrow", "pandas", "corpus_assay", "decon")


def import_tool(tool: str) -> float:
    """Import the tool (a fresh process: nothing heavy imported yet); its seconds."""
    loaded = [m for m in HEAVY if m in sys.modules]
    if loaded:
        raise RuntimeError(f"not a cold start: {loaded} imported before the clock")
    t0 = time.perf_counter()
    if tool == "corpus-assay":
        import corpus_assay
        import corpus_assay._native  # noqa: F401
        import pyarrow  # noqa: F401  (corpus-assay reads Parquet)
    else:
        import decon  # noqa: F401
    return time.perf_counter() - t0


def tool_version(tool: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(tool)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------
# corpus-assay
# --------------------------------------------------------------------------
# Word regex/stop words/reject patterns live in a JSON "ngram config" that the
# Rust extension freezes on first use; it must be staged before anything
# normalizes text, and the same file must be used for index build and scan.
CA_EXACT7_NGRAM_CONFIG = {
    "version": "prefcurate-exact7-1",
    "stop_words": [],
    "word_re": r"\b\w\w+\b",  # Rust regex: Unicode \w and \b, like Python's (?u)
    "ngram_reject_patterns": [],
}


def _shard_bounds(total: int, k: int) -> list[tuple[int, int]]:
    k = max(1, min(k, total or 1))
    step = -(-total // k)
    return [(lo, min(lo + step, total)) for lo in range(0, total, step)] or [(0, 0)]


def run_corpus_assay(
    cfg_name: str, bench: list[str], train: list[str], workdir: str, threads: int | None = None
) -> dict:
    if cfg_name == "exact7":
        ngram_cfg_path = os.path.join(workdir, "ca_exact7_ngram_config.json")
        with open(ngram_cfg_path, "w", encoding="utf-8") as f:
            json.dump(CA_EXACT7_NGRAM_CONFIG, f)
        # must happen before any normalization in this process
        from corpus_assay.normalization import set_ngram_config_path

        set_ngram_config_path(ngram_cfg_path)
        n, min_hits, min_coverage = 7, 1, 0.0
    else:
        import corpus_assay  # noqa: F401  (stages the bundled ngram_config.json)
        from corpus_assay.config import ScanConfig

        d = ScanConfig.model_fields
        n = d["ngram"].default  # 13
        min_hits = d["min_hits"].default  # 3
        min_coverage = d["min_coverage"].default  # 0.001

    from corpus_assay._native import scan_stream_rust
    from corpus_assay.benchmark_spec import BenchmarkSpec
    from corpus_assay.indexing import build_index, write_native_index_artifacts

    class ListLoader:
        """Stands in for corpus_assay.benchmarks.BenchmarkLoader (no HF Hub)."""

        def __init__(self, spec):
            self.spec = spec
            self.dataset_fingerprints = []

        def load_positive(self):
            return iter(bench)

        def load_negative(self):
            return iter(())

    spec = BenchmarkSpec(name="bench", dataset="local", splits=["test"], fields=["prompt"])
    index_path = os.path.join(workdir, "bench.native")

    t0 = time.perf_counter()
    result = build_index(benchmarks=[spec], ngram=n, loader_factory=ListLoader)
    write_native_index_artifacts(result, index_path)
    index_seconds = time.perf_counter() - t0

    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(lo, hi):
        return pa.table(
            {
                "text": pa.array(train[lo:hi], pa.string()),
                "id": pa.array([str(i) for i in range(lo, hi)], pa.string()),
            }
        )

    t1 = time.perf_counter()
    if threads and threads > 1:
        # corpus-assay's own multi-process scanner: one spawned worker per shard file
        from corpus_assay import do_scan
        from corpus_assay.config import ScanConfig

        shard_dir = os.path.join(workdir, "train_shards")
        os.makedirs(shard_dir, exist_ok=True)
        for k, (lo, hi) in enumerate(_shard_bounds(len(train), threads)):
            pq.write_table(table(lo, hi), os.path.join(shard_dir, f"train_{k:05d}.parquet"))
        scan_out = os.path.join(workdir, "scan_out")
        run = do_scan(
            ScanConfig(
                inputs=[shard_dir],
                text_key="text",
                id_key="id",
                index_path=index_path,
                out_dir=scan_out,
                ngram=n,
                min_hits=min_hits,
                min_coverage=min_coverage,
                workers=threads,
                max_return_records=None,
            ),
            print_progress=False,
        )
        if run.failed_files:
            raise RuntimeError(f"corpus-assay scan failed: {[s.error for s in run.per_file if s.error]}")
        flagged = set()
        for path in glob.glob(os.path.join(scan_out, "contaminated_docs", "*.ndjson")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        flagged.add(int(json.loads(line)["doc_id"].rsplit("-part-", 1)[0]))
        scanned, contaminated, empty = (
            run.total_docs_scanned,
            run.total_contaminated,
            run.total_empty_after_filter,
        )
        return _ca_result(
            flagged,
            index_seconds,
            time.perf_counter() - t1,
            n,
            min_hits,
            min_coverage,
            cfg_name,
            result,
            scanned,
            contaminated,
            empty,
        )

    buf = io.BytesIO()
    pq.write_table(table(0, len(train)), buf)
    buf.seek(0)
    scanned, contaminated, records, empty = scan_stream_rust(
        input=buf,
        text_key="text",
        id_key="id",
        index_path=index_path,
        n=n,
        min_hits=min_hits,
        min_coverage=min_coverage,
        index_backend="memory",
        out_hits_path=None,
        max_return_records=None,  # None = return every flagged record
        stopgrams_path=None,
        gate_mode="union",
    )
    flagged = set()
    for rec in records:
        doc_id = json.loads(rec)["doc_id"]  # "<id>-part-<k>" (split on <|endoftext|>)
        flagged.add(int(doc_id.rsplit("-part-", 1)[0]))
    scan_seconds = time.perf_counter() - t1
    if len(flagged) > contaminated or (contaminated and not records):
        raise RuntimeError(f"record/count mismatch: {len(flagged)} ids vs {contaminated}")
    return _ca_result(
        flagged,
        index_seconds,
        scan_seconds,
        n,
        min_hits,
        min_coverage,
        cfg_name,
        result,
        scanned,
        contaminated,
        empty,
    )


def _ca_result(
    flagged,
    index_seconds,
    scan_seconds,
    n,
    min_hits,
    min_coverage,
    cfg_name,
    result,
    scanned,
    contaminated,
    empty,
):
    return {
        "contaminated_indices": sorted(flagged),
        "index_seconds": index_seconds,
        "scan_seconds": scan_seconds,
        "params": {
            "ngram": n,
            "min_hits": min_hits,
            "min_coverage": min_coverage,
            "ngram_config": "exact7 (no stop words, \\b\\w\\w+\\b, no reject patterns)"
            if cfg_name == "exact7"
            else "bundled ngram_config.json",
            "index_ngrams": len(result.hashes),
            "scanned_parts": int(scanned),
            "contaminated_parts": int(contaminated),
            "empty_after_filter": int(empty),
        },
    }


# --------------------------------------------------------------------------
# decontaminate (import name: decon)
# --------------------------------------------------------------------------
DECON_EXACT7 = dict(
    # uniseg = Unicode word-boundary segments of clean_text() output (lowercased,
    # ASCII punctuation -> space).  Spaces are tokens too, so 7 words = 14
    # tokens: every 14-token window holds exactly 7 words.
    tokenizer="uniseg",
    ngram_size=14,
    sample_every_m_tokens=1,  # probe every position
    contamination_score_threshold=0.0,  # any matched n-gram (score = IDF share of eval n-grams)
    perfect_match_decay_start=None,  # no length-based threshold raise for short evals
    perfect_match_decay_end=None,
    eval_min_token_length=0,  # index every benchmark prompt
    eval_min_unique_word_count=0,
    eval_dedup=False,
    # clean_text() turns these chars into spaces.  Default set minus "_" (which
    # \w keeps inside words) plus a few common non-ASCII symbols/punctuation.
    punctuation_chars="!'\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~\u201c\u201d\u2018\u2019\u2014"
    "\u2013\u2026\u00ab\u00bb\u00b7\u2022\u00d7\u00f7\u20ac\u00a3\u00b0\u00a7\u00a9\u00ae\u2122\u00b1\u2192",
)


def _capture_fd1(fn):
    """Run fn() with OS-level stdout captured (Rust println! writes to fd 1)."""
    sys.stdout.flush()
    tmp = tempfile.TemporaryFile(mode="w+b")
    saved = os.dup(1)
    os.dup2(tmp.fileno(), 1)
    try:
        ret = fn()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    tmp.seek(0)
    return ret, tmp.read().decode("utf-8", "replace")


def _parse_seconds(text: str, label: str) -> float | None:
    import re

    m = re.search(re.escape(label) + r"\s+([0-9.]+)\s*(ms|s|µs|μs)", text)
    if not m:
        return None
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000.0 if unit == "ms" else (v / 1e6 if unit in ("µs", "μs") else v)


def run_decon(
    cfg_name: str,
    bench: list[str],
    train: list[str],
    workdir: str,
    threads: int | None,
    pretokenize: bool = False,
) -> dict:
    import decon

    evals_dir = os.path.join(workdir, "evals")
    train_dir = os.path.join(workdir, "train")
    report_dir = os.path.join(workdir, "report")
    for d in (evals_dir, train_dir):
        os.makedirs(d, exist_ok=True)
    shutil.rmtree(report_dir, ignore_errors=True)
    # eval reference format: doc_id (int, required), question (required), optional answer/passage/eval_key
    if pretokenize:  # feed decon the reference tokenization (1-char tokens dropped)
        import re

        tok = re.compile(r"(?u)\b\w\w+\b")
        bench = [" ".join(tok.findall(p.lower())) for p in bench]
        train = [" ".join(tok.findall(p.lower())) for p in train]
    with open(os.path.join(evals_dir, "bench.jsonl"), "w", encoding="utf-8") as f:
        for i, p in enumerate(bench):
            f.write(json.dumps({"doc_id": i, "eval_key": "bench", "question": p}) + "\n")
    # decon parallelises detection over training *files* (rayon par_iter), so
    # shard the train set into one file per worker thread; line numbers in the
    # report are per file.
    shard_start = {}
    for k, (lo, hi) in enumerate(_shard_bounds(len(train), threads or 1)):
        name = f"train_{k:05d}.jsonl"
        shard_start[name] = lo
        with open(os.path.join(train_dir, name), "w", encoding="utf-8") as f:
            for p in train[lo:hi]:
                f.write(json.dumps({"text": p}) + "\n")

    kw = dict(DECON_EXACT7) if cfg_name == "exact7" else {}
    kw["worker_threads"] = threads or 1
    config = decon.Config(train_dir, evals_dir, report_dir, **kw)

    t0 = time.perf_counter()
    _, log = _capture_fd1(lambda: decon.detect(config))
    wall = time.perf_counter() - t0

    flagged = set()
    for path in glob.glob(os.path.join(report_dir, "*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)  # training_line: 0-based line within training_file
                    flagged.add(shard_start[r["training_file"]] + int(r["training_line"]))
    index_s = _parse_seconds(log, "Index building time")
    detect_s = _parse_seconds(log, "Detection time")
    if index_s is None or detect_s is None:  # fall back: everything counted as scan
        index_s, detect_s = 0.0, wall
    return {
        "contaminated_indices": sorted(flagged),
        "index_seconds": index_s,
        "scan_seconds": detect_s,
        "wall_seconds_detect_call": wall,
        "params": {"config": repr(config), **{k: (v if v is not None else None) for k, v in kw.items()}},
        "log_tail": log[-1500:],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", required=True, choices=["corpus-assay", "decontaminate"])
    ap.add_argument("--config", required=True, choices=["exact7", "default"])
    ap.add_argument("--bench", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workdir", default=None, help="scratch dir (default: a temp dir, removed)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="workers: decontaminate worker_threads (+ that many train shard files); "
        "corpus-assay >1 uses its spawned multi-process scanner (default 1)",
    )
    ap.add_argument(
        "--pretokenize",
        action="store_true",
        help="decontaminate only: pass ' '.join(re.findall(r'\\b\\w\\w+\\b', text.lower())) "
        "instead of raw text (removes 1-char-token differences vs the reference)",
    )
    a = ap.parse_args(argv)

    bench = read_prompts(a.bench)
    train = read_prompts(a.train)
    own_tmp = a.workdir is None
    workdir = tempfile.mkdtemp(prefix="peer-") if own_tmp else a.workdir
    os.makedirs(workdir, exist_ok=True)
    # clear the peak RSS: the prompts are loaded, the tool's run starts here
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    loaded_rss_kb = _status_kb("VmRSS")
    import_seconds = import_tool(a.tool)
    try:
        if a.tool == "corpus-assay":
            res = run_corpus_assay(a.config, bench, train, workdir, a.threads)
        else:
            res = run_decon(a.config, bench, train, workdir, a.threads, a.pretokenize)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    out = {
        "tool": a.tool,
        "config": a.config,
        "threads": a.threads,
        "pretokenize": a.pretokenize,
        "n_bench": len(bench),
        "n_train": len(train),
        "n_contaminated": len(res["contaminated_indices"]),
        **res,
        # cold: the tool's imports, its index build and its scan, in a fresh process
        "import_seconds": round(import_seconds, 4),
        "cold_seconds": round(import_seconds + res["index_seconds"] + res["scan_seconds"], 4),
        "version": tool_version(a.tool),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "loaded_rss_mb": round(loaded_rss_kb / 1024, 1) if loaded_rss_kb else None,
        "python": sys.version.split()[0],
    }
    out["index_seconds"] = round(out["index_seconds"], 4)
    out["scan_seconds"] = round(out["scan_seconds"], 4)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    summary = {k: v for k, v in out.items() if k not in ("contaminated_indices", "log_tail", "params")}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
