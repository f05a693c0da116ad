#!/usr/bin/env python3
"""The CPU stages of the Skywork v0.2 recipe at full size: synthetic sources
shaped like RECIPE.md's raw pool (378,273 pairs), time and peak memory per
stage.

    python benches/pipeline.py [--scale 1.0] [--answer-words 250] [--work DIR] [--records PATH]

Sources, in their published schemas, written as Parquet (seeded):
  Magpie-Pro-Llama-3.1-DPO, Magpie-Pro-DPO, Magpie-Air-DPO  98,000 rows each
  magpie-ultra-v0.1                                       50,000 rows
  WildGuardMix                                            18,548 pairs
                                                          (refusal + compliance rows; 4,000 not adversarial)
  OffsetBias                                               8,504 rows
  HelpSteer2                                               7,221 pairs (two rows each)
with the task-category mix of RECIPE.md 1.1, ArmoRM-like score distributions
per source, prompts of lognormal length (mean about 100 words) and answers of
lognormal length (mean --answer-words; the real Magpie answers average ~600
tokens: shorter here to keep the run in minutes on 2 cores), words drawn from
the RewardBench reconstruction's vocabulary; 10 % of magpie-ultra prompts hold
a span of a benchmark prompt.  The reward margin comes from a column of
precomputed scores (every stage but the reward model runs).  Checked: the
selection keeps exactly floor(0.3 x Math), floor(0.3 x Code) and
floor(0.1 x the rest).

The run is measured as a user meets it: the sources are generated first
(or reused from ``--work`` when the parameters match), then a fresh process
starts the clock, imports prefcurate and runs the recipe with an empty stage
cache ("cold": the import, every stage, the output, the report and the
stage-cache writes, which end inside ``run()``).  Measured in that process:
wall seconds (and the import's share), seconds per stage and what is left
after the stages (the writing), peak RSS per stage (sampled every 20 ms) and
of the whole run (VmHWM), bytes written (``write_bytes`` of /proc/self/io:
what the process, all its threads included, sent to storage; the parent
also reads ``wait4``'s ``ru_oublock`` x 512, what ``/usr/bin/time -v``
calls "File system outputs"), the pool's in-memory size (the read stages'
Arrow tables) and the input's size (the sources' Parquet).
``--records PATH`` appends the run's JSON record (benches/benchkit.py).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import benchkit

if TYPE_CHECKING:
    import pyarrow as pa

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "data" / "benchmark" / "rewardbench_reconstructed.jsonl"
TOKEN = re.compile(r"(?u)\b\w\w+\b")

CATEGORIES = {
    "Math": 29_657 / 0.3,
    "Coding & Debugging": 8_193 / 0.3,
    "Information seeking": 7_837 / 0.1,
    "Advice seeking": 4_546 / 0.1,
    "Reasoning": 3_854 / 0.1,
    "Planning": 2_185 / 0.1,
    "Brainstorming": 1_081 / 0.1,
    "Creative writing": 794 / 0.1,
    "Data analysis": 725 / 0.1,
    "Editing": 337 / 0.1,
    "Role playing": 330 / 0.1,
}
MAGPIE = {"magpie_pro_llama3.1": (98_000, 0.17), "magpie_pro": (98_000, 0.155), "magpie_air": (98_000, 0.145)}


class Words:
    """Seeded random text from the benchmark's vocabulary."""

    def __init__(self, seed: int) -> None:
        import numpy as np

        bench = [json.loads(x)["prompt"] for x in open(BENCH, encoding="utf-8")]
        self.bench = [TOKEN.findall(b.lower()) for b in bench]
        vocab, counts = np.unique(
            np.array([t for ts in self.bench for t in ts], dtype=object), return_counts=True
        )
        self.vocab, self.p = vocab, counts / counts.sum()
        self.rng = np.random.default_rng(seed)

    def texts(self, n: int, mean_words: float) -> list[str]:
        import numpy as np

        lens = np.maximum(3, self.rng.lognormal(math.log(mean_words) - 0.18, 0.6, n).astype(int))
        words = self.vocab[self.rng.choice(len(self.vocab), size=int(lens.sum()), p=self.p)]
        out, pos = [], 0
        for k in lens:
            out.append(" ".join(words[pos : pos + k]))
            pos += k
        return out


def messages(prompts: list[str], answers: list[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(
        [
            [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
            for p, a in zip(prompts, answers)
        ]
    )


def generate(out: Path, scale: float, answer_words: float, seed: int) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    w = Words(seed)
    rng = w.rng
    cats = np.array(list(CATEGORIES), dtype=object)
    cp = np.array(list(CATEGORIES.values()))
    cp = cp / cp.sum()
    counts = {}
    for src, (n, mean) in MAGPIE.items():
        n = int(n * scale)
        prompts = w.texts(n, 100)
        good, bad = w.texts(n, answer_words), w.texts(n, answer_words)
        mid = w.texts(n, 20)
        s = rng.normal(mean, 0.025, n)
        rewards = [[{"score": float(x + d)} for d in (0.03, 0.01, 0.0, -0.01, -0.03)] for x in s]
        pq.write_table(
            pa.table(
                {
                    "uuid": [f"{src}-{i}" for i in range(n)],
                    "instruction": prompts,
                    "task_category": rng.choice(cats, n, p=cp).tolist(),
                    "responses": [[g, m, m, m, b] for g, m, b in zip(good, mid, bad)],
                    "rewards_armorm": rewards,
                    "chosen": messages(prompts, good),
                    "rejected": messages(prompts, bad),
                }
            ),
            out / f"{src}.parquet",
        )
        counts[src] = n
    n = int(50_000 * scale)
    prompts = w.texts(n, 100)
    for i in np.flatnonzero(rng.random(n) < 0.10):
        d = w.bench[int(rng.integers(len(w.bench)))]
        if len(d) >= 7:
            k = int(rng.integers(7, min(20, len(d)) + 1))
            a = int(rng.integers(0, len(d) - k + 1))
            prompts[i] = prompts[i] + " " + " ".join(d[a : a + k])
    s = rng.normal(0.165, 0.025, n)
    pq.write_table(
        pa.table(
            {
                "instruction": prompts,
                "response": w.texts(n, answer_words),
                "response_base": w.texts(n, answer_words),
                "score": s + 0.01,
                "score_base": s - 0.01,
                "primary_tag": rng.choice(cats, n, p=cp).tolist(),
            }
        ),
        out / "magpie_ultra.parquet",
    )
    counts["magpie_ultra"] = n
    n = int(18_548 * scale)
    prompts = w.texts(n, 120)
    harmful = rng.random(n) < 0.5
    adversarial = np.arange(n) >= int(4_000 * scale)
    refusals, compliances = w.texts(n, 60), w.texts(n, answer_words)
    rows = {
        "prompt": [],
        "adversarial": [],
        "response": [],
        "prompt_harm_label": [],
        "response_harm_label": [],
        "response_refusal_label": [],
        "subcategory": [],
    }
    for i in range(n):
        for resp, label in ((refusals[i], "refusal"), (compliances[i], "compliance")):
            rows["prompt"].append(prompts[i])
            rows["adversarial"].append(bool(adversarial[i]))
            rows["response"].append(resp)
            rows["prompt_harm_label"].append("harmful" if harmful[i] else "unharmful")
            rows["response_harm_label"].append(
                "harmful" if harmful[i] and label == "compliance" else "unharmful"
            )
            rows["response_refusal_label"].append(label)
            rows["subcategory"].append("synthetic")
    pq.write_table(pa.table(rows), out / "wildguard.parquet")
    counts["wildguard"] = n
    n = int(8_504 * scale)
    pq.write_table(
        pa.table(
            {
                "instruction": w.texts(n, 80),
                "output_1": w.texts(n, answer_words),
                "output_2": w.texts(n, answer_words),
                "label": rng.integers(1, 3, n),
            }
        ),
        out / "offsetbias.parquet",
    )
    counts["offsetbias"] = n
    n = int(7_221 * scale)
    prompts = w.texts(n, 20)
    a, b = w.texts(n, answer_words), w.texts(n, answer_words)
    ha = rng.integers(0, 5, n)
    hb = (ha + rng.integers(1, 5, n)) % 5  # never equal: no ties
    hs = {
        "prompt": [],
        "response": [],
        "helpfulness": [],
        "correctness": [],
        "coherence": [],
        "complexity": [],
        "verbosity": [],
    }
    for i in range(n):
        for resp, h in ((a[i], ha[i]), (b[i], hb[i])):
            hs["prompt"].append(prompts[i])
            hs["response"].append(resp)
            hs["helpfulness"].append(int(h))
            for k in ("correctness", "coherence", "complexity", "verbosity"):
                hs[k].append(2)
    pq.write_table(pa.table(hs), out / "helpsteer2.parquet")
    counts["helpsteer2"] = n
    return counts


RECIPE = """
name = "skywork-80k-v0.2-synthetic"
[[sources]]
name = "magpie_pro_llama3.1"
path = "magpie_pro_llama3.1.parquet"
format = "magpie_dpo"
[[sources]]
name = "magpie_pro"
path = "magpie_pro.parquet"
format = "magpie_dpo"
[[sources]]
name = "magpie_air"
path = "magpie_air.parquet"
format = "magpie_dpo"
[[sources]]
name = "magpie_ultra"
path = "magpie_ultra.parquet"
format = "magpie_ultra"
[[sources]]
name = "helpsteer2"
path = "helpsteer2.parquet"
format = "helpsteer2"
[[sources]]
name = "offsetbias"
path = "offsetbias.parquet"
format = "offsetbias"
[[sources]]
name = "wildguard"
path = "wildguard.parquet"
format = "wildguardmix"
where = { adversarial = true }
[select]
sources = ["magpie_pro_llama3.1", "magpie_pro", "magpie_air", "magpie_ultra"]
preset = "skywork-magpie"
[margin]
sources = ["wildguard"]
[decontaminate]
benchmark = "rewardbench.jsonl"
method = "reference"
ngram_range = [7, 13]
[output]
format = "parquet"
"""


class RssSampler:
    """Peak resident memory per stage, sampled from /proc every 20 ms."""

    def __init__(self) -> None:
        self.peak: dict[str, float] = {}
        self.current: str | None = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.current is not None:
                self.peak[self.current] = max(self.peak.get(self.current, 0.0), self.rss_mb())
            time.sleep(0.02)

    def hook(self, name: str, phase: str) -> None:
        if phase == "start":
            self.current = name
            self.peak[name] = self.rss_mb()
        else:
            self.peak[name] = max(self.peak.get(name, 0.0), self.rss_mb())
            self.current = None

    def stop(self) -> None:
        self._stop.set()


def margin_scores(table: pa.Table):
    """Precomputed scores, as a column would hold them: 7 % of pairs negative."""
    import numpy as np

    rng = np.random.default_rng(1)
    c = rng.normal(1.0, 1.0, table.num_rows)
    return c, c - rng.normal(1.5, 1.0, table.num_rows)


def worker(work: Path, result: Path) -> None:
    """The recipe in this fresh process, from ``import prefcurate`` on."""
    data, out = work / "data", work / "out"
    shutil.rmtree(out, ignore_errors=True)  # no stage cached from an earlier run
    sampler = RssSampler()
    io0 = benchkit.proc_io()
    with benchkit.Cold() as c:
        import prefcurate
        from prefcurate.pipeline import Pipeline, Recipe

        imported = time.perf_counter() - c._t0
        recipe = Recipe.from_dict(prefcurate.pipeline._toml_loads(RECIPE))
        res = Pipeline(
            recipe, out, data_dir=data, scorer=margin_scores, cache=True, stage_hook=sampler.hook
        ).run()
    io1 = benchkit.proc_io()
    peak = benchkit.peak_rss_mb()
    sampler.stop()
    import pyarrow as pa

    stages = res.summary()["stages"]
    for st in stages:
        st["peak_rss_mb"] = sampler.peak.get(st["name"], 0.0)
    pool = sum(s.kept.nbytes for s in res.stages if s.stage.startswith("read:"))
    sel = res.stage("select")
    cats = pa.concat_tables([sel.kept.select(["category"]), sel.removed.select(["category"])])
    cats = cats.column("category").to_numpy(zero_copy_only=False)
    kept = sel.kept.column("category").to_numpy(zero_copy_only=False)
    n_math, n_code = int((cats == "Math").sum()), int((cats == "Coding & Debugging").sum())
    k_math, k_code = int((kept == "Math").sum()), int((kept == "Coding & Debugging").sum())
    out_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    result.write_text(
        json.dumps(
            {
                "seconds": c.seconds,
                "import_seconds": imported,
                "stages": stages,
                "peak_rss_mb": peak,
                "loaded_rss_mb": c.loaded_rss_mb,
                "pool_bytes": pool,
                "write_bytes": io1.get("write_bytes", 0) - io0.get("write_bytes", 0),
                "wchar": io1.get("wchar", 0) - io0.get("wchar", 0),
                "out_folder_bytes": out_bytes,
                "output_rows": res.final.num_rows,
                "selection": {
                    "math": [k_math, n_math],
                    "code": [k_code, n_code],
                    "other": [len(kept) - k_math - k_code, len(cats) - n_math - n_code],
                },
            }
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full raw pool")
    ap.add_argument("--answer-words", type=float, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="folder: sources kept for the next run")
    ap.add_argument("--records", type=Path, default=None, help="append the run's JSON record (JSON Lines)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="prefcurate-pipeline-"))
    if args.worker:
        worker(work, args.result)
        return 0

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    params = {"scale": args.scale, "answer_words": args.answer_words, "seed": args.seed}
    if benchkit.stamp_ok(work, params):
        counts = json.loads((work / "counts.json").read_text())
        how = "reused"
    else:
        t0 = time.perf_counter()
        counts = generate(data, args.scale, args.answer_words, args.seed)
        (data / "rewardbench.jsonl").write_bytes(BENCH.read_bytes())
        (work / "counts.json").write_text(json.dumps(counts))
        benchkit.stamp(work, params)
        how = f"generated in {time.perf_counter() - t0:.0f} s"
    import pyarrow.parquet as pq

    files = sorted(data.glob("*.parquet"))
    input_bytes = sum(f.stat().st_size for f in files)
    sources_arrow = 0  # the sources' uncompressed size, from the Parquet metadata
    for f in files:
        meta = pq.ParquetFile(f).metadata
        sources_arrow += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    total = sum(counts.values())
    print(
        f"{total:,} source pairs ({counts}) as {input_bytes / 2**20:.0f} MB of Parquet ({how}); {work}",
        flush=True,
    )
    rec = benchkit.Records(args.records, "pipeline")
    rec.workload(
        source_pairs=total,
        sources=counts,
        scale=args.scale,
        answer_words=args.answer_words,
        input_bytes=input_bytes,
        sources_arrow_bytes=sources_arrow,
    )
    result = work / "result.json"
    result.unlink(missing_ok=True)
    c = benchkit.run_child(
        [sys.executable, __file__, "--worker", "--work", str(work), "--result", str(result)]
    )
    label = "prefcurate, the v0.2 recipe's CPU stages"
    if c["rc"] != 0:
        print(f"the pipeline failed (exit {c['rc']}):\n{c['stderr']}", file=sys.stderr)
        rec.tool("prefcurate", label, "prefcurate", status="failed", error=c["error"])
        return 1
    r = json.loads(result.read_text())
    print(f"\n{'stage':26} {'input':>9} {'kept':>9} {'removed':>9} {'seconds':>8} {'peak RSS MB':>12}")
    for s in r["stages"]:
        print(
            f"{s['name']:26} {s['input']:9,} {s['kept']:9,} {s['removed']:9,} {s['seconds']:8.1f} {s['peak_rss_mb']:12.0f}"
        )
    staged = sum(s["seconds"] for s in r["stages"])
    wall = r["seconds"]
    after = wall - r["import_seconds"] - staged
    print(
        f"total {wall:.1f} s cold (a fresh process: import {r['import_seconds']:.1f} s, stages {staged:.1f} s, "
        f"then {after:.1f} s for the output, the report and the stage-cache writes); {r['output_rows']:,} pairs out"
    )
    print(
        f"peak RSS {r['peak_rss_mb']:,.0f} MB, {r['peak_rss_mb'] * 2**20 / r['pool_bytes']:.2f}x the pool in memory "
        f"({r['pool_bytes'] / 2**20:,.0f} MB as the read stages' Arrow tables); written "
        f"{r['write_bytes'] / 2**20:,.0f} MB (/proc/self/io write_bytes; wait4 ru_oublock: "
        f"{c['fs_output_bytes'] / 2**20:,.0f} MB), {r['write_bytes'] / input_bytes:.2f}x the input's "
        f"{input_bytes / 2**20:,.0f} MB of Parquet; output folder {r['out_folder_bytes'] / 2**20:,.0f} MB"
    )
    sel = r["selection"]
    (k_math, n_math), (k_code, n_code), (k_other, n_other) = sel["math"], sel["code"], sel["other"]
    ok = (k_math, k_code, k_other) == (math.floor(0.3 * n_math), math.floor(0.3 * n_code), n_other // 10)
    print(
        f"selection: Math {k_math:,}/{n_math:,}, Code {k_code:,}/{n_code:,}, other {k_other:,}/{n_other:,}: 30/30/10 % rule {'holds' if ok else 'FAILS'}"
    )
    rec.tool(
        "prefcurate",
        label,
        "prefcurate",
        baseline=True,
        seconds=wall,
        rows=total,
        peak_rss_mb=r["peak_rss_mb"],
        loaded_rss_mb=r["loaded_rss_mb"],
        metrics={
            "import_seconds": r["import_seconds"],
            "stage_seconds": staged,
            "write_seconds": after,
            "write_share": after / wall,
            "pool_bytes": r["pool_bytes"],
            "peak_over_pool": r["peak_rss_mb"] * 2**20 / r["pool_bytes"],
            "write_bytes": r["write_bytes"],
            "wchar": r["wchar"],
            "fs_output_bytes": c["fs_output_bytes"],
            "written_over_input": r["write_bytes"] / input_bytes,
            "input_bytes": input_bytes,
            "out_folder_bytes": r["out_folder_bytes"],
            "output_rows": r["output_rows"],
            "stages": [
                {k: s[k] for k in ("name", "input", "kept", "removed", "seconds", "peak_rss_mb")}
                for s in r["stages"]
            ],
        },
        notes="bytes written: write_bytes of the child's /proc/self/io",
    )
    rec.check("the selection keeps floor(0.3 x Math), floor(0.3 x Code), floor(0.1 x the rest)", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
