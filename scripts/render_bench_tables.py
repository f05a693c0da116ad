#!/usr/bin/env python3
"""Render the README's benchmark tables (Markdown) from
benches/results/results.json, the file ``python benches/run_all.py`` writes.

    python scripts/render_bench_tables.py                    # print every block
    python scripts/render_bench_tables.py --bench dedup      # one block
    python scripts/render_bench_tables.py --write README.md  # replace the marked blocks

Each block states its conditions (cold or warm, threads, runs, machine, date,
commit) above its table.  With ``--write FILE`` the text between
``<!-- bench:NAME -->`` and ``<!-- /bench -->`` in FILE is replaced by the
block for NAME (decontaminate, dedup, select_top, pipeline, io, ray_scaling,
rm_scoring_gpu, targets); markers for benches the results do not hold are
left as they are and listed.  Results of a ``--quick`` run are refused unless
``--allow-quick`` (their workloads are not the README's).

``benches/run_all.py`` also writes its results.md with these functions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "benches" / "results" / "results.json"
ORDER = ("decontaminate", "dedup", "select_top", "pipeline", "io", "ray_scaling", "rm_scoring_gpu")
MARKER = re.compile(r"(<!-- bench:([a-z_]+) -->)(.*?)(<!-- /bench -->)", re.S)

# ---------------------------------------------------------------- numbers


def num(x: float | None, digits: int | None = None) -> str:
    """A figure with a precision that suits its size."""
    if x is None:
        return "-"
    if digits is None:
        a = abs(x)
        digits = 3 if a < 1 else 2 if a < 10 else 1 if a < 100 else 0
    return f"{x:,.{digits}f}"


def stat(st: dict | None, fmt=num, unit: str = "") -> str:
    """``median (min-max)`` over the runs; the median alone for one run or
    when all runs agree."""
    if not st:
        return "-"
    med, lo, hi = fmt(st["median"]), fmt(st["min"]), fmt(st["max"])
    if st.get("n", len(st.get("runs", []))) <= 1 or lo == hi:
        return f"{med}{unit}"
    # a unit the formatter wrote ("249 MB", "47 %") is written once in the range
    tail = re.search(r"[^\d.,]*$", lo).group(0)
    if tail and hi.endswith(tail):
        lo = lo[: len(lo) - len(tail)]
    return f"{med}{unit} ({lo}-{hi}{unit})"


def mb(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1024:.1f} GB" if x >= 1024 else f"{x:,.0f} MB"


def size(x: float | None) -> str:
    """Bytes."""
    return "-" if x is None else mb(x / 2**20)


def secs(x: float | None) -> str:
    return "-" if x is None else num(x) + " s"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{num(x)}"


def tool_ratio(t: dict) -> str:
    if t.get("baseline"):
        return "1.0x"
    st = t.get("ratio")
    if not st:
        return "-"
    s = stat(st, ratio, "x")
    return s + " (scaled)" if t.get("ratio_scaled") else s


def metric(t: dict, name: str) -> Any:
    m = (t.get("metrics") or {}).get(name)
    return m


def mstat(t: dict, name: str, fmt=num, unit: str = "") -> str:
    m = metric(t, name)
    if isinstance(m, dict) and "median" in m:
        return stat(m, fmt, unit)
    if isinstance(m, bool):
        return "yes" if m else "**no**"
    if isinstance(m, (int, float)):
        return fmt(m) + unit
    return "-"


def count(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def name(t: dict) -> str:
    label = t["label"]
    return f"**{label}**" if t.get("baseline") else label


def not_ok(t: dict, width: int) -> list[str] | None:
    """The cells of a tool that did not run."""
    if t["status"] in ("ok", "partial"):
        return None
    why = (t.get("error") or t["status"]).replace("|", "\\|").replace("\n", " ")
    return [name(t), f"{t['status']}: {why[:160]}"] + [""] * (width - 2)


def table(head: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- conditions


def machine_line(res: dict) -> str:
    m = res["machine"]
    load = m.get("loadavg_start")
    commit = res.get("commit") or "?"
    dirty = " with uncommitted changes" if res.get("dirty") else ""
    return (
        f"{m.get('cores')} cores ({m.get('cpu')}), {m.get('memory_gb', 0):.0f} GB, load average "
        f"{load[0]:.2f} at the start; commit {commit[:10]}{dirty}; {res.get('date', '')[:10]}"
        if load
        else f"{m.get('cores')} cores ({m.get('cpu')}); commit {commit[:10]}{dirty}; {res.get('date', '')[:10]}"
    )


def context(res: dict, bench: str) -> dict:
    """The run a bench's figures come from: its own ``run`` entry (a later
    ``run_all.py --only`` replaces one bench's) over the file's."""
    return {**res, **(res["benches"][bench].get("run") or {})}


def conditions(res: dict, bench: str) -> str:
    b = res["benches"][bench]
    res = context(res, bench)
    runs = res.get("runs", 1)
    modes = {t.get("mode") for t in b["tools"] if t["status"] != "missing"}
    if modes <= {"cold"}:
        how = (
            "Cold: each tool in a fresh process, its imports and its first call inside the timing "
            "(the data loaded before the clock); warm: the median of its later calls in the same process"
        )
    elif "warm" in modes and len(modes) == 1:
        how = "Warm: timed after a warm-up pass in the same process"
    else:
        how = (
            "First call: each row's first call in its process, imports and data loaded before the "
            "clock; warm: a second call"
        )
    spread = (
        f"median of {runs} runs, (min-max) over the runs, ratios taken within each run"
        if runs > 1
        else "one run"
    )
    quick = " **Quick run: small workloads, not the README's.**" if res.get("quick") else ""
    return (
        f"{how}; {spread}. Threads: each tool's default (prefcurate: all cores; the peers as their "
        f"users run them) where the row does not say. Machine: {machine_line(res)}. "
        f"`{res.get('command', 'python benches/run_all.py')}`.{quick}"
    )


def workload_line(bench: str, wl: dict) -> str:
    if not wl:
        return ""
    if bench == "decontaminate":
        return (
            f"{wl['rows']:,} synthetic prompts ({wl['mb']:.0f} MB, mean {wl['mean_words']:.0f} words, "
            f"{wl['planted']:,} with a planted benchmark span) against `{wl['bench_file']}` "
            f"({wl['bench_prompts']:,} prompts), from prompts in memory to the result, index build included."
        )
    if bench == "dedup":
        return (
            f"{wl['rows']:,} documents ({wl['mb']:.0f} MB, mean {wl['mean_words']:.0f} words), "
            f"{wl['planted']:,} planted near duplicates; threshold {wl['threshold']}, word {wl['ngram']}-grams, "
            f"{wl['num_perm']} permutations, from the texts in memory (shingling included) to the duplicates; "
            f"recall on the {wl['planted_high']:,} planted pairs at Jaccard >= {wl['threshold'] + 0.05:.2f}."
        )
    if bench == "select_top":
        return f"{wl['rows']:,} rows, Arrow in, Arrow out: {wl['rule']}."
    if bench == "pipeline":
        return (
            f"Synthetic sources shaped like RECIPE.md's raw pool ({wl['source_pairs']:,} pairs, "
            f"{wl['input_bytes'] / 2**30:.2f} GB of Parquet), the CPU stages of the v0.2 recipe "
            "(reward scores from a column), an empty stage cache."
        )
    if bench == "io":
        return (
            f"{wl['pairs']:,} Skywork-format pairs ({wl['text_mb']:,.0f} MB of text, "
            f"{wl['parquet_mb']:,.0f} MB of Parquet) to the canonical table and the prompt scan."
        )
    if bench == "ray_scaling":
        return (
            f"Decontamination of {wl['decont_rows']:,} prompts and dedup of {wl['dedup_rows']:,} texts, "
            f"local engine against a local Ray, batch size {wl['batch_size']}."
        )
    if bench == "rm_scoring_gpu":
        return (
            f"{wl['sequences']:,} sequences ({wl['tokens']:,} tokens, mean {wl['mean_len']:.0f}) on "
            f"{wl['device']}{' (tiny CPU check)' if wl.get('tiny') else ''}."
        )
    return ""


# ---------------------------------------------------------------- tables


def rows_generic(b: dict, cols: list[tuple[str, Any]]) -> str:
    rows = []
    for t in b["tools"]:
        r = not_ok(t, len(cols))
        rows.append(r if r is not None else [f(t) for _, f in cols])
    return table([c for c, _ in cols], rows)


def cold(t: dict) -> str:
    return stat(t.get("seconds"))


def warm(t: dict) -> str:
    return stat(t.get("warm_seconds"))


def peak(t: dict) -> str:
    st = t.get("peak_rss_mb")
    return stat(st, mb) if st else "-"


def render_decontaminate(b: dict) -> str:
    return rows_generic(
        b,
        [
            ("tool", name),
            ("threads", lambda t: str(t.get("threads") or "-")),
            ("seconds, cold", cold),
            ("warm", warm),
            ("MB/s", lambda t: mstat(t, "mb_per_s")),
            ("peak RSS", peak),
            ("time vs prefcurate", tool_ratio),
            ("flagged", lambda t: mstat(t, "flagged", count)),
            ("recall", lambda t: mstat(t, "recall", lambda x: f"{x:.3f}")),
        ],
    )


def render_dedup(b: dict) -> str:
    def links_below(t: dict) -> str:
        s = mstat(t, "links_below_threshold", count)
        low = metric(t, "min_jaccard")
        low = low["median"] if isinstance(low, dict) else low
        return f"{s} ({low:.2f})" if low is not None and s not in ("0", "-") else s

    tools = [t for t in b["tools"] if t["tool"] != "load-only"]
    return rows_generic(
        {**b, "tools": tools},
        [
            ("tool", name),
            ("seconds, cold", cold),
            ("warm", warm),
            ("+MB", lambda t: mstat(t, "peak_over_loaded_mb", lambda x: f"{x:,.0f}")),
            ("time vs prefcurate", tool_ratio),
            ("recall", lambda t: mstat(t, "recall", lambda x: f"{x:.3f}")),
            ("links", lambda t: mstat(t, "links", count)),
            ("links under the threshold (lowest J)", links_below),
        ],
    )


def render_select_top(b: dict) -> str:
    return rows_generic(
        b,
        [
            ("tool", name),
            ("seconds, cold", cold),
            ("warm", warm),
            ("rows/s", lambda t: mstat(t, "rows_per_s", lambda x: f"{x / 1e6:.2f} M")),
            ("peak RSS", peak),
            ("time vs prefcurate", tool_ratio),
            ("same rows as pandas", lambda t: mstat(t, "same_rows_as_pandas")),
        ],
    )


def render_io(b: dict) -> str:
    return rows_generic(
        b,
        [
            ("tool", name),
            ("seconds, cold", cold),
            ("imports + index", lambda t: mstat(t, "setup_seconds")),
            ("read", lambda t: mstat(t, "read_seconds")),
            ("scan", lambda t: mstat(t, "scan_seconds")),
            ("peak RSS", peak),
            ("time vs prefcurate", tool_ratio),
        ],
    )


def render_pipeline(b: dict) -> str:
    t = next((t for t in b["tools"] if t["tool"] == "prefcurate"), None)
    if t is None or t["status"] not in ("ok", "partial"):
        return f"(the pipeline did not run: {t and t.get('error')})"
    m = t["metrics"]

    def share(name: str, fmt) -> str:
        return stat(m.get(name), fmt) if isinstance(m.get(name), dict) else "-"

    pct = lambda x: f"{100 * x:.0f} %"  # noqa: E731
    times = lambda x: f"{x:.2f}x"  # noqa: E731
    summary = table(
        ["figure", "value"],
        [
            ["total, cold (import, stages, output, report, stage cache)", stat(t.get("seconds"), secs)],
            ["import prefcurate", share("import_seconds", secs)],
            ["stages", share("stage_seconds", secs)],
            ["writing after the stages (output, report, cache)", share("write_seconds", secs)],
            ["... as a share of the total", share("write_share", pct)],
            ["peak RSS", peak(t)],
            ["... over the pool in memory (read stages' Arrow tables)", share("peak_over_pool", times)],
            ["the pool in memory", share("pool_bytes", size)],
            ["bytes written (the process's /proc/self/io write_bytes)", share("write_bytes", size)],
            ["... over the input's Parquet", share("written_over_input", times)],
            ["pairs out", share("output_rows", count)],
        ],
        "lr",
    )
    stages = m.get("stages_median_run") or []
    if not stages:
        return summary
    st = table(
        ["stage (the median run)", "input", "kept", "removed", "seconds", "peak RSS"],
        [
            [
                s["name"],
                count(s["input"]),
                count(s["kept"]),
                count(s["removed"]),
                num(s["seconds"], 1),
                mb(s["peak_rss_mb"]),
            ]
            for s in stages
        ],
    )
    return summary + "\n\n" + st


def render_ray_scaling(b: dict) -> str:
    rows = []
    for t in b["tools"]:
        if not t["tool"].startswith("ray-"):
            continue
        r = not_ok(t, 7)
        if r is not None:
            rows.append(r)
            continue
        local = next((x for x in b["tools"] if x["tool"] == t.get("compare_to")), None)
        rows.append(
            [
                str(metric(t, "stage") or "-"),
                str(t.get("threads") or "-"),
                cold(local) if local else "-",
                cold(t),
                warm(t),
                stat(t.get("warm_ratio"), ratio, "x"),
                mstat(t, "ray_init_seconds", secs),
            ]
        )
    return table(
        [
            "stage",
            "workers",
            "local, first call",
            "Ray, first call",
            "Ray, warm",
            "Ray / local, warm",
            "ray.init",
        ],
        rows,
    )


def render_rm_scoring_gpu(b: dict) -> str:
    return rows_generic(
        b,
        [
            ("loop", name),
            ("seconds, warm", cold),
            ("real tokens/s", lambda t: mstat(t, "real_tokens_per_s", count)),
            ("padding efficiency", lambda t: mstat(t, "padding_efficiency", lambda x: f"{x:.3f}")),
            ("MFU", lambda t: mstat(t, "mfu", lambda x: f"{100 * x:.1f} %")),
            ("time vs prefcurate", tool_ratio),
        ],
    )


RENDER = {
    "decontaminate": render_decontaminate,
    "dedup": render_dedup,
    "select_top": render_select_top,
    "pipeline": render_pipeline,
    "io": render_io,
    "ray_scaling": render_ray_scaling,
    "rm_scoring_gpu": render_rm_scoring_gpu,
}


def render_checks(b: dict) -> str:
    lines = []
    for c in b.get("checks", []):
        ok = {True: "yes", False: "**NO**", None: "-"}[c["ok"]]
        lines.append(f"- {c['name']}: {ok}" + (f" ({c['detail']})" if c.get("detail") else ""))
    return "\n".join(lines)


def render_bench(res: dict, bench: str) -> str:
    b = res["benches"][bench]
    parts = [f"**{b['title']}**, `{b['script']}`. {workload_line(bench, b.get('workload') or {})}".strip()]
    if b["status"] == "skipped":
        parts.append(f"Not run: {b.get('note')}.")
        return "\n\n".join(parts)
    parts.append(conditions(res, bench))
    parts.append(RENDER[bench](b))
    checks = render_checks(b)
    if checks:
        parts.append("Checked in the same runs:\n\n" + checks)
    if b.get("targets"):
        parts.append(render_targets(res, [bench]))
    return "\n\n".join(parts)


def target_cells(t: dict) -> list[str]:
    unit = t.get("unit", "")

    def f(x: float) -> str:
        if isinstance(x, bool):
            return "yes" if x else "no"
        if unit == "MB":
            return mb(x)
        if unit == "%":
            return f"{100 * x:.0f} %"
        return num(x, t.get("digits")) + unit

    value = stat(t["value"], f) if t.get("value") else "-"
    goal = f"{t['op']} {f(t['target'])}" if not isinstance(t["target"], bool) else "yes"
    status = {
        "met": "met in every run",
        "met-median": "met by the median, not in every run",
        "missed": "**missed**",
        "not measured": "not measured",
    }[t["status"]]
    if t.get("note"):
        status += f" ({t['note']})"
    return [t["name"], value, goal, status]


def render_targets(res: dict, benches: list[str] | None = None) -> str:
    many = benches is None or len(benches) > 1
    rows = []
    for bench in benches or [b for b in ORDER if b in res["benches"]]:
        for t in res["benches"].get(bench, {}).get("targets", []):
            cells = target_cells(t)
            rows.append([bench, *cells] if many else cells)
    head = ["target", "measured, median (min-max)", "goal", "status"]
    align = "lrrl"
    if many:
        head, align = ["bench", *head], "l" + align
    return table(head, rows, align)


def render_all(res: dict) -> dict[str, str]:
    """NAME -> Markdown block, for every bench in the results, and "targets"."""
    out = {b: render_bench(res, b) for b in ORDER if b in res["benches"]}
    runs = {json.dumps(context(res, b), sort_keys=True, default=str) for b in res["benches"]}
    if len(runs) <= 1:
        n = res.get("runs", 1)
        head = f"Targets, {f'median of {n} runs' if n > 1 else 'one run'}; machine: {machine_line(res)}."
    else:
        head = "Targets; the benches come from different runs: each block states its conditions."
    out["targets"] = head + "\n\n" + render_targets(res)
    return out


def write_markers(path: Path, blocks: dict[str, str]) -> tuple[list[str], list[str]]:
    """Replace each marked block of ``path``; (replaced, markers with no block)."""
    text = path.read_text(encoding="utf-8")
    done, unknown = [], []

    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in blocks:
            unknown.append(name)
            return m.group(0)
        done.append(name)
        return f"{m.group(1)}\n{blocks[name]}\n{m.group(4)}"

    new = MARKER.sub(sub, text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return done, unknown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=DEFAULT, help=f"default: {DEFAULT.relative_to(ROOT)}")
    ap.add_argument("--bench", action="append", help="only this block (repeatable; 'targets' too)")
    ap.add_argument(
        "--write", type=Path, help="replace the <!-- bench:NAME --> ... <!-- /bench --> blocks here"
    )
    ap.add_argument("--allow-quick", action="store_true", help="render the results of a --quick run too")
    args = ap.parse_args()
    try:
        res = json.loads(args.results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"cannot read {args.results}: {e} (run python benches/run_all.py first)", file=sys.stderr)
        return 2
    if res.get("quick") and not args.allow_quick:
        print(
            f"{args.results} holds a --quick run (small workloads): not for the README "
            "(--allow-quick renders it anyway)",
            file=sys.stderr,
        )
        return 2
    blocks = render_all(res)
    if args.bench:
        unknown = [b for b in args.bench if b not in blocks]
        if unknown:
            print(f"no results for {unknown}; the results hold {sorted(blocks)}", file=sys.stderr)
            return 2
        blocks = {b: blocks[b] for b in args.bench}
    if args.write:
        done, unknown = write_markers(args.write, blocks)
        print(f"{args.write}: replaced {done or 'nothing'}")
        missing = [b for b in blocks if b not in done]
        if missing:
            print(f"  no markers for {missing} (add <!-- bench:NAME --> ... <!-- /bench -->)")
        if unknown:
            print(f"  markers without results, left as they are: {unknown}")
        return 0
    for b, text in blocks.items():
        print(f"<!-- bench:{b} -->\n{text}\n<!-- /bench -->\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
