#!/usr/bin/env python3
"""The reference method against the precise one on the real prompt sets of
../shared/data: how many rows each flags, and the rows where they disagree
(with the matched span), to judge templates against leaks.

    python benches/precise_vs_reference.py [--show 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import prefcurate

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def real_sets() -> dict[str, list[str]]:
    d = DATA
    with open(d / "pairs/skywork_v0.2_prompt_sample.jsonl", encoding="utf-8") as f:
        sky = [json.loads(x)["query"] for x in f]
    with open(d / "pairs/offsetbias_evalbiasbench.json", encoding="utf-8") as f:
        ob = [r["instruction"] for v in json.load(f).values() for r in v]
    with open(d / "prompts/wildguardmix_prompts.json", encoding="utf-8") as f:
        wg = [r["text"] for r in json.load(f)]
    with open(d / "pairs/stack_exchange_paired_tiny.json", encoding="utf-8") as f:
        se = [r["question"] for r in json.load(f)]
    with open(d / "pairs/magpie_examples_5res_armorm.json", encoding="utf-8") as f:
        mg = [r["instruction"] for r in json.load(f)]
    return {
        "skywork-v0.2 prompts (500)": sky,
        "OffsetBias EvalBiasBench (80)": ob,
        "WildGuardMix prompts (1,554)": wg,
        "StackExchange questions (25)": se,
        "Magpie instructions (5)": mg,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--show", type=int, default=12, help="disagreements to print per set")
    args = ap.parse_args()
    bench = DATA / "benchmark/rewardbench_reconstructed.jsonl"
    ref_idx = prefcurate.BenchmarkIndex(bench)
    pre_idx = prefcurate.BenchmarkIndex(bench, method="precise")
    print(
        f"{'prompt set':34} {'reference':>9} {'precise':>8} {'both':>5} {'ref only':>8} {'precise only':>12}"
    )
    details = []
    for name, prompts in real_sets().items():
        r = prefcurate.decontaminate(prompts, ref_idx)
        p = prefcurate.decontaminate(prompts, pre_idx, method="precise")
        rr = {a["train_index"]: a for a in r.attribution.to_pylist()}
        pp = {a["train_index"]: a for a in p.attribution.to_pylist()}
        both = rr.keys() & pp.keys()
        print(
            f"{name:34} {len(rr):>9} {len(pp):>8} {len(both):>5} {len(rr.keys() - pp.keys()):>8} {len(pp.keys() - rr.keys()):>12}"
        )
        for i in sorted(rr.keys() ^ pp.keys())[: args.show]:
            a = rr.get(i) or pp[i]
            who = "reference only" if i in rr else "precise only"
            span = " ".join((a["matched_span"] or "").split())
            details.append(
                f"  [{name.split(' (')[0]} row {i}, {who}] {a['benchmark_subset']}: {span[:110]!r}"
            )
    print()
    print("\n".join(details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
