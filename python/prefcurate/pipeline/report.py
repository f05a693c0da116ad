"""The audit report of a pipeline run: ``report.md``, ``report.html`` and PNG
plots (matplotlib, from the ``report`` extra; without it the report has
tables only and says so)."""

from __future__ import annotations

import html
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import __version__

if TYPE_CHECKING:
    from .run import PipelineResult


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def mixture(table: pa.Table) -> list[dict[str, Any]]:
    """Per source (and in total): pairs, average messages per conversation,
    average prompt words and answer words (chosen and rejected)."""
    if table.num_rows == 0:
        return []
    sources = table.column("source").to_pylist()
    chosen = table.column("chosen").to_pylist()
    rejected = table.column("rejected").to_pylist()
    acc: dict[str, list[float]] = {}
    for src, c, r in zip(sources, chosen, rejected):
        prompt = sum(_words(m["content"]) for m in c[:-1])
        answer = (_words(c[-1]["content"]) + _words(r[-1]["content"])) / 2
        sums = acc.setdefault(src, [0.0, 0.0, 0.0, 0.0])
        sums[0] += 1
        sums[1] += len(c)
        sums[2] += prompt
        sums[3] += answer

    def row(name: str, v: list[float]) -> dict[str, Any]:
        n = v[0]
        return {
            "source": name,
            "pairs": int(n),
            "avg_turns": v[1] / n,
            "avg_prompt_words": v[2] / n,
            "avg_answer_words": v[3] / n,
        }

    rows = [row(src, acc[src]) for src in sorted(acc)]
    rows.append(row("total", [sum(v[k] for v in acc.values()) for k in range(4)]))
    return rows


def _md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _html_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Doc:
    """Builds the Markdown and the HTML report side by side."""

    def __init__(self, title: str) -> None:
        self.md: list[str] = [f"# {title}\n"]
        self.html: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def h2(self, text: str) -> None:
        self.md.append(f"\n## {text}\n")
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, rows: list[dict[str, Any]], cols: list[str]) -> None:
        if not rows:
            self.p("(none)")
            return
        self.md.append(_md_table(rows, cols) + "\n")
        self.html.append(_html_table(rows, cols))

    def image(self, rel: str | None, alt: str) -> None:
        if rel is None:
            return
        self.md.append(f"![{alt}]({rel})\n")
        self.html.append(
            f'<figure><img src="{html.escape(rel)}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'
        )


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; max-width: 520px; }
th { background: #f0f0f0; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
"""


def _integer_ticks(axis: Any) -> None:
    """Counts are whole: no 0.5-row ticks."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _round(v: Any) -> Any:
    """A float as a person reads it (0.42, not 0.42000000000000004)."""
    return float(f"{v:.6g}") if isinstance(v, float) else v


def _plot_funnel(plt: Any, stages: list[dict[str, Any]], path: Path) -> None:
    names = [s["name"] for s in stages]
    kept = [s["kept"] for s in stages]
    removed = [s["removed"] for s in stages]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    y = np.arange(len(names))[::-1]
    ax.barh(y, kept, color="#4c78a8", label="kept")
    ax.barh(y, removed, left=kept, color="#e45756", label="removed")
    ax.set_yticks(y, names)
    ax.set_xlabel("rows")
    _integer_ticks(ax.xaxis)
    ax.set_title("rows in, kept and removed per stage")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_mixture(plt: Any, rows: list[dict[str, Any]], path: Path) -> None:
    rows = [r for r in rows if r["source"] != "total"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar([r["source"] for r in rows], [r["pairs"] for r in rows], color="#54a24b")
    ax.set_ylabel("pairs")
    _integer_ticks(ax.yaxis)
    ax.set_title("final mixture by source")
    plt.setp(ax.get_xticklabels(), rotation=25, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_scores(
    plt: Any, before: np.ndarray, after: np.ndarray, title: str, xlabel: str, path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    finite = np.concatenate([before[np.isfinite(before)], after[np.isfinite(after)]])
    bins = np.linspace(finite.min(), finite.max(), 40) if finite.size and finite.min() < finite.max() else 20
    ax.hist(
        before[np.isfinite(before)],
        bins=bins,
        alpha=0.55,
        label=f"before ({np.isfinite(before).sum()})",
        color="#9ecae9",
    )
    ax.hist(
        after[np.isfinite(after)],
        bins=bins,
        alpha=0.75,
        label=f"kept ({np.isfinite(after).sum()})",
        color="#4c78a8",
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    _integer_ticks(ax.yaxis)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_counts(plt: Any, counts: dict[str, int], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    keys = sorted(counts, key=lambda k: -counts[k])
    ax.bar(keys, [counts[k] for k in keys], color="#f58518")
    ax.set_title(title)
    ax.set_ylabel("rows")
    _integer_ticks(ax.yaxis)
    plt.setp(ax.get_xticklabels(), rotation=25, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _column(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.zeros(0)
    return np.array([np.nan if v is None else float(v) for v in t.column(name).to_pylist()], dtype=float)


def _plot_calibration(
    plt: Any, hist: dict[str, Any], flagged: list[float], threshold: float, path: Path
) -> None:
    """The best cosines of unrelated texts (the calibration) against the
    flagged rows' best cosines and the threshold."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    edges = np.asarray(hist["edges"])
    counts = np.asarray(hist["counts"], dtype=float)
    if counts.sum():
        ax.stairs(
            counts / counts.sum(), edges, fill=True, alpha=0.5, color="#9ecae9", label="unrelated texts"
        )
    if flagged:
        lo = min(float(edges[0]), min(flagged)) if len(edges) else min(flagged)
        hi = max(float(edges[-1]), max(flagged)) if len(edges) else max(flagged)
        f, e = np.histogram(flagged, bins=40, range=(lo, hi if hi > lo else lo + 1e-3))
        ax.stairs(
            f / max(1, f.sum()), e, color="#e45756", linewidth=2, label=f"flagged rows ({len(flagged)})"
        )
    ax.axvline(threshold, color="#222", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("best cosine with a benchmark item")
    ax.set_ylabel("share")
    ax.set_title("semantic tier: flagged rows against the calibration")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _semantic_section(doc: Any, img: Any, first: Any, st: Any) -> None:
    """The semantic tier beside the n-gram tier: what each flagged per
    benchmark subset, their overlap, the scores against the calibration,
    the closest pairs side by side."""
    doc.h2("Contamination: the semantic tier")
    info = st.info
    tiers = info.get("tiers", {})
    doc.p(
        f"Embedder {info.get('embedder')}, threshold {_round(info.get('threshold'))} "
        + (
            f"(calibrated at a false-positive rate of {info['calibration'].get('rate')})"
            if info.get("calibration")
            else "(given)"
        )
        + f". The n-gram tier removed {tiers.get('ngram_removed', 0)} rows, of which the semantic tier "
        f"also flags {tiers.get('flagged_by_both', 0)}; the semantic tier removed {tiers.get('semantic_only', 0)} "
        "more that no n-gram matched (paraphrases)."
    )
    by_ngram = (
        Counter(first.removed.column("benchmark_subset").to_pylist()) if first.removed.num_rows else Counter()
    )
    by_sem = Counter(st.removed.column("benchmark_subset").to_pylist()) if st.removed.num_rows else Counter()
    doc.table(
        [
            {
                "benchmark_subset": k or "(none)",
                "ngram_removed": by_ngram.get(k, 0),
                "semantic_removed": by_sem.get(k, 0),
            }
            for k in sorted(set(by_ngram) | set(by_sem), key=str)
        ],
        ["benchmark_subset", "ngram_removed", "semantic_removed"],
    )
    hist = info.get("calibration_histogram")
    if hist:
        doc.image(
            img(
                "semantic_calibration.png",
                _plot_calibration,
                hist,
                info.get("flagged_scores", []),
                float(info.get("threshold") or 0.0),
            ),
            "semantic tier: flagged rows against the calibration",
        )
    if st.removed.num_rows:
        rows = sorted(st.removed.to_pylist(), key=lambda r: -(r.get("score") or 0.0))[:10]
        doc.table(
            [
                {
                    "cosine": _round(float(r.get("score") or 0.0)),
                    "training prompt": (r.get("prompt") or "")[:160],
                    "benchmark item": (r.get("benchmark_text") or "")[:160],
                    "subset": r.get("benchmark_subset"),
                }
                for r in rows
            ],
            ["cosine", "training prompt", "benchmark item", "subset"],
        )


def write_report(result: PipelineResult, out: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``out``."""
    plt = _plt()
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    stages = summary["stages"]
    doc = _Doc(f"prefcurate report: {result.recipe.name}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc.p(f"prefcurate {__version__}, {now}. {result.final.num_rows} pairs written to {result.recipe.name}.")
    if result.recipe.description:
        doc.p(result.recipe.description)
    if plt is None:
        doc.p("matplotlib is not installed (pip install 'prefcurate[report]'): plots are left out.")

    def img(name: str, draw: Any, *args: Any) -> str | None:
        if plt is None:
            return None
        draw(plt, *args, plots / name)
        return f"plots/{name}"

    doc.h2("Stages")
    doc.p("Every stage accounts for every row: input = kept + removed (checked during the run).")
    doc.p(
        "A read stage's input is the pairs it made plus the records it dropped; the records its file "
        "holds are in the records_in column (formats that pair two records make fewer pairs than records)."
    )
    rows = [
        {
            "stage": s["name"],
            "records_in": s.get("records_in", ""),
            "input": s["input"],
            "kept": s["kept"],
            "removed": s["removed"],
            "reasons": ", ".join(f"{k}: {v}" for k, v in s["by_reason"].items()) or "-",
            "seconds": s["seconds"],
            "cached": "yes" if s["cached"] else "",
        }
        for s in stages
    ]
    doc.table(rows, ["stage", "records_in", "input", "kept", "removed", "reasons", "seconds", "cached"])
    doc.image(img("stages.png", _plot_funnel, stages), "rows in, kept and removed per stage")

    doc.h2("By source")
    src_rows = []
    for s in stages:
        for src, v in s.get("by_source", {}).items():
            src_rows.append({"stage": s["name"], "source": src, "kept": v["kept"], "removed": v["removed"]})
    doc.table(src_rows, ["stage", "source", "kept", "removed"])

    doc.h2("Final mixture")
    doc.p("Words are whitespace-separated; answer words average the chosen and the rejected answer.")
    mix = mixture(result.final)
    doc.table(mix, ["source", "pairs", "avg_turns", "avg_prompt_words", "avg_answer_words"])
    if mix:
        doc.image(img("mixture.png", _plot_mixture, mix), "final mixture by source")

    names = [s.stage for s in result.stages]
    if "select" in names:
        st = result.stage("select")
        doc.h2("Selection")
        groups = st.info.get("groups", {})
        doc.table(
            [
                {
                    "group": g,
                    "quota": " ".join(map(str, v["quota"])),
                    "ranked": v["ranked"],
                    "kept": v["kept"],
                    "cutoff": _round(v["cutoff"]),
                }
                for g, v in groups.items()
            ],
            ["group", "quota", "ranked", "kept", "cutoff"],
        )
        before = np.concatenate([_column(st.kept, "score"), _column(st.removed, "score")])
        doc.image(
            img(
                "scores.png",
                _plot_scores,
                before,
                _column(st.kept, "score"),
                "score before and after selection",
                "score",
            ),
            "score distribution before and after selection",
        )

    if "margin" in names:
        st = result.stage("margin")
        doc.h2("Reward margin")
        check = st.info.get("parity_check")
        if check:
            doc.p(
                f"Parity check before scoring ({len(check.get('rows', []))} rows, {check.get('dtype')}, "
                f"packing {'on' if check.get('packing') else 'off'}): largest difference between the scorer and "
                f"the model's plain forward {check.get('max_abs_diff', float('nan')):.3g} "
                f"(tolerance {check.get('tolerance', float('nan')):.3g}): "
                f"{'passed' if check.get('passed') else 'FAILED'}."
            )
        m_all = np.concatenate([_column(st.kept, "margin"), _column(st.removed, "margin")])
        doc.image(
            img(
                "margins.png",
                _plot_scores,
                m_all,
                _column(st.kept, "margin"),
                "chosen - rejected reward",
                "margin",
            ),
            "reward margins, all pairs and kept pairs",
        )
        worst = sorted(
            st.removed.to_pylist(), key=lambda r: r.get("margin") if r.get("margin") is not None else 0
        )[:10]
        doc.table(
            [
                {
                    "id": r.get("id"),
                    "source": r.get("source"),
                    "margin": r.get("margin"),
                    "prompt": (r.get("prompt") or "")[:160],
                }
                for r in worst
            ],
            ["id", "source", "margin", "prompt"],
        )

    if "dedup" in names:
        st = result.stage("dedup")
        doc.h2("Duplicates")
        rem = st.removed
        if rem.num_rows:
            by_cluster = Counter(v for v in rem.column("cluster_id").to_pylist() if v is not None)
            prompts = (
                dict(zip(rem.column("cluster_id").to_pylist(), rem.column("prompt").to_pylist()))
                if "prompt" in rem.column_names
                else {}
            )
            top = by_cluster.most_common(10)
            doc.table(
                [
                    {"cluster": c, "rows removed": k, "example prompt": (prompts.get(c) or "")[:160]}
                    for c, k in top
                ],
                ["cluster", "rows removed", "example prompt"],
            )
            doc.image(
                img(
                    "duplicates.png",
                    _plot_counts,
                    dict(Counter(rem.column("reason").to_pylist())),
                    "duplicates removed by reason",
                ),
                "duplicates removed by reason",
            )
        else:
            doc.p("No duplicates.")

    if "decontaminate" in names:
        st = result.stage("decontaminate")
        doc.h2("Contamination")
        doc.table(
            st.info.get("summary", []),
            ["benchmark_subset", "benchmark_items", "items_matched", "train_rows_removed"],
        )
        rem = st.removed
        if rem.num_rows:
            counts = Counter(rem.column("benchmark_subset").to_pylist())
            doc.image(
                img("contamination.png", _plot_counts, dict(counts), "removed rows by benchmark subset"),
                "removed rows by benchmark subset",
            )
            examples: list[dict[str, Any]] = sorted(
                rem.to_pylist(), key=lambda r: -(r.get("matched_tokens") or 0)
            )[:10]
            doc.table(
                [
                    {
                        "id": r.get("id"),
                        "source": r.get("source"),
                        "benchmark": r.get("benchmark_id"),
                        "subset": r.get("benchmark_subset"),
                        "tokens": r.get("matched_tokens"),
                        "matched span": (r.get("matched_span") or "")[:200],
                    }
                    for r in examples
                ],
                ["id", "source", "benchmark", "subset", "tokens", "matched span"],
            )
        else:
            doc.p("No training prompt overlaps the benchmark.")

    if "decontaminate:semantic" in names:
        _semantic_section(doc, img, result.stage("decontaminate"), result.stage("decontaminate:semantic"))

    md_path = out / "report.md"
    md_path.write_text("\n".join(doc.md) + "\n", encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>prefcurate report: {html.escape(result.recipe.name)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(doc.html)}"
        f"<details><summary>summary.json</summary><pre>{html.escape(json.dumps(summary, indent=1, default=str))}</pre></details>"
        "</body></html>\n",
        encoding="utf-8",
    )
    return {"md": md_path, "html": html_path}
