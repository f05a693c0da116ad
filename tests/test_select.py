"""select_top: equality with a pandas reference, the Skywork Magpie preset on
a pool shaped like the real one, the kept/removed accounting, bad input."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import prefcurate
from prefcurate import InvalidInputError
from prefcurate.stages.select import as_ratio


def reference(
    df: pd.DataFrame, *, k=None, fraction=None, default=None, offsets=None, tie="id", group="category"
):
    """Sort by adjusted score within each group, take the top rows."""
    df = df.copy()
    df["row"] = np.arange(len(df))
    off = df["source"].map(offsets or {}).fillna(0.0) if offsets else 0.0
    df["adj"] = df["score"] + off
    valid = df[df["adj"].notna() & df[group].notna()].copy()
    keys, asc = [group, "adj"], [True, False]
    if tie is not None:
        valid["tie_null"] = valid[tie].isna()
        keys += ["tie_null", tie]
        asc += [True, True]
    keys.append("row")
    asc.append(True)
    valid = valid.sort_values(keys, ascending=asc, kind="mergesort")
    valid["rank"] = valid.groupby(group, sort=False).cumcount() + 1
    size = valid.groupby(group)[group].transform("size")

    def quota(g, n):
        spec = k if k is not None else fraction
        v = spec.get(g, default) if isinstance(spec, dict) else spec
        if v is None:
            return n
        if k is not None:
            return min(int(v), n)
        return math.floor(Fraction(repr(float(v))) * n)

    valid["q"] = [quota(g, n) for g, n in zip(valid[group], size)]
    kept = sorted(valid.loc[valid["rank"] <= valid["q"], "row"].tolist())
    return kept, valid.set_index("row")["rank"].to_dict()


def random_table(rng, n):
    cats = np.array(["Math", "Coding & Debugging", "Reasoning", "Planning", "Editing", None], dtype=object)
    p = np.array([0.3, 0.15, 0.25, 0.15, 0.1, 0.05])
    scores = np.round(rng.normal(0.15, 0.03, n), 2)  # rounding makes ties
    scores[rng.random(n) < 0.05] = np.nan
    ids = rng.integers(0, max(1, n // 2), n).astype(str).astype(object)  # duplicate ids: ties on ties
    ids[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "id": ids,
            "category": rng.choice(cats, n, p=p),
            "source": rng.choice(np.array(["magpie_air", "magpie_pro", "magpie_ultra"], dtype=object), n),
            "score": scores,
        }
    )


@pytest.mark.parametrize("seed", range(40))
def test_equals_pandas_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    df = random_table(rng, n)
    table = pa.Table.from_pandas(df, preserve_index=False)
    offsets = {"magpie_air": -0.1, "magpie_pro": -0.05} if seed % 2 else None
    variants = [
        dict(fraction=0.3),
        dict(fraction={"Math": 0.3, "Coding & Debugging": 0.29, "Nowhere": 0.5}, default_fraction=0.1),
        dict(fraction={"Math": 0.7}),  # other groups: no quota -> all kept
        dict(k=3),
        dict(k={"Math": 5, "Planning": 0}, default_k=1),
    ]
    for v in variants:
        for tie in ("id", None):
            kw = dict(v)
            ref_kw = dict(
                k=kw.get("k"),
                fraction=kw.get("fraction"),
                default=kw.get("default_fraction", kw.get("default_k")),
                offsets=offsets,
                tie=tie,
            )
            want_kept, want_rank = reference(df, **ref_kw)
            res = prefcurate.select_top_result(table, offsets=offsets, tie_break=tie, **kw)
            kept_rows = prefcurate.select_top_indices(table, offsets=offsets, tie_break=tie, **kw).tolist()
            assert kept_rows == want_kept, (v, tie)
            assert res.kept.num_rows == len(want_kept)
            assert res.kept.num_rows + res.removed.num_rows == n
            # every removed row's rank as the reference ranks it
            removed_pos = [i for i in range(n) if i not in set(want_kept)]
            ranks = res.removed.column("rank").to_pylist()
            assert ranks == [want_rank.get(i) for i in removed_pos], (v, tie)


def test_reasons_and_cutoffs():
    t = pa.table(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "category": ["x", "x", "x", "x", None, "y"],
            "source": ["s"] * 6,
            "score": [0.9, 0.5, None, 0.7, 0.8, float("nan")],
        }
    )
    res = prefcurate.select_top_result(t, k=2)
    assert res.kept.column("id").to_pylist() == ["a", "d"]
    rows = {r["id"]: r for r in res.removed.to_pylist()}
    assert (
        rows["b"]["reason"] == "below_cutoff" and rows["b"]["rank"] == 3 and rows["b"]["cutoff_score"] == 0.7
    )
    assert rows["c"]["reason"] == "missing_score" and rows["c"]["rank"] is None
    assert rows["e"]["reason"] == "missing_group"
    assert rows["f"]["reason"] == "missing_score"
    s = res.summary()
    assert s["by_reason"] == {"below_cutoff": 1, "missing_score": 2, "missing_group": 1}
    assert s["input"] == 6 and s["kept"] == 2


def test_exact_decimal_fractions():
    assert as_ratio(0.29) == Fraction(29, 100)
    t = pa.table({"category": ["a"] * 100, "score": np.arange(100.0)})
    # 0.29 * 100 is 28.999999999999996 in floats; the quota is 29
    assert prefcurate.select_top(t, fraction=0.29, tie_break=None).num_rows == 29


def test_composite_groups_quota_across_sources():
    t = pa.table(
        {
            "source": ["a", "a", "a", "b", "b", "b"],
            "category": ["m", "m", "c", "m", "m", "m"],
            "score": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    res = prefcurate.select_top_result(t, group_by=["source", "category"], k={("b", "m"): 2}, default_k=1)
    assert sorted(res.kept.column("score").to_pylist()) == [2.0, 3.0, 5.0, 6.0]
    assert set(res.removed.column("select_group").to_pylist()) == {"a/m", "b/m"}


# ---- the Skywork Magpie preset on a pool shaped like the real one ----------

# RECIPE.md 1.1: after selection Math 29,657, Coding 8,193 (30 % each) and the
# rest 21,689 (10 %); the pool is 98,000 Pro-Llama-3.1 + 98,000 Pro +
# 98,000 Air + 50,000 Ultra pairs
OTHER_MIX = {
    "Information seeking": 7837,
    "Advice seeking": 4546,
    "Reasoning": 3854,
    "Planning": 2185,
    "Brainstorming": 1081,
    "Creative writing": 794,
    "Data analysis": 725,
    "Editing": 337,
    "Role playing": 330,
}
SOURCES = {
    "magpie_pro_llama3.1": (98_000, 0.17),
    "magpie_pro": (98_000, 0.155),
    "magpie_air": (98_000, 0.145),
    "magpie_ultra": (50_000, 0.165),
}


def magpie_pool(seed=0) -> pa.Table:
    rng = np.random.default_rng(seed)
    total_math, total_code, total_other = 29_657 / 0.3, 8_193 / 0.3, 21_689 / 0.1
    mix = {"Math": total_math, "Coding & Debugging": total_code}
    mix.update({c: total_other * v / 21_689 for c, v in OTHER_MIX.items()})
    cats = np.array(list(mix), dtype=object)
    p = np.array(list(mix.values()))
    p = p / p.sum()
    parts = []
    for src, (n, mean) in SOURCES.items():
        parts.append(
            pa.table(
                {
                    "id": [f"{src}-{i}" for i in range(n)],
                    "source": [src] * n,
                    "category": rng.choice(cats, n, p=p),
                    # mean ArmoRM score over 5 responses: roughly normal
                    "score": rng.normal(mean, 0.025, n),
                }
            )
        )
    return pa.concat_tables(parts)


def test_skywork_magpie_preset_counts_and_offsets():
    pool = magpie_pool()
    assert pool.num_rows == 344_000
    cats = pool.column("category").to_numpy(zero_copy_only=False)
    n_math = int((cats == "Math").sum())
    n_code = int((cats == "Coding & Debugging").sum())
    n_other = pool.num_rows - n_math - n_code
    res = prefcurate.select_top_result(pool, **prefcurate.SKYWORK_MAGPIE)
    kept_cats = res.kept.column("category").to_numpy(zero_copy_only=False)
    assert int((kept_cats == "Math").sum()) == math.floor(0.3 * n_math)
    assert int((kept_cats == "Coding & Debugging").sum()) == math.floor(Fraction(3, 10) * n_code)
    assert res.kept.num_rows - int((kept_cats == "Math").sum()) - int(
        (kept_cats == "Coding & Debugging").sum()
    ) == (n_other // 10)
    assert res.info["groups"]["other"]["kept"] == n_other // 10

    # the offsets move Air and Pro down: fewer of them kept than without
    no_off = prefcurate.select_top(pool, **{**prefcurate.SKYWORK_MAGPIE, "offsets": None})

    def share(t, src):
        return float(np.mean(t.column("source").to_numpy(zero_copy_only=False) == src))

    assert share(res.kept, "magpie_air") < share(no_off, "magpie_air")
    assert share(res.kept, "magpie_pro") < share(no_off, "magpie_pro")
    assert share(res.kept, "magpie_pro_llama3.1") > share(no_off, "magpie_pro_llama3.1")
    # every kept row clears its group's cut-off on its adjusted score
    adj = {"magpie_air": -0.1, "magpie_pro": -0.05}
    cut = {g: v["cutoff"] for g, v in res.info["groups"].items()}
    for r in res.kept.slice(0, 5000).to_pylist():
        g = r["category"] if r["category"] in ("Math", "Coding & Debugging") else "other"
        assert r["score"] + adj.get(r["source"], 0.0) >= cut[g]
    # and every removed one is at or below it
    rem = res.removed.to_pandas()
    assert (rem["adjusted_score"] <= rem["cutoff_score"]).all()


def test_bad_input():
    t = pa.table({"category": ["a"], "score": ["x"]})
    with pytest.raises(InvalidInputError, match="score column 'score' is string"):
        prefcurate.select_top(t, k=1)
    with pytest.raises(InvalidInputError, match="no score column 'points'"):
        prefcurate.select_top(t, score="points", k=1)
    t = pa.table({"category": ["a"], "score": [1.0]})
    with pytest.raises(InvalidInputError, match="fraction"):
        prefcurate.select_top(t, fraction=1.5)
    with pytest.raises(InvalidInputError, match="not both"):
        prefcurate.select_top(t, k=1, fraction=0.5)
    with pytest.raises(InvalidInputError, match="no quota"):
        prefcurate.select_top(t)
    with pytest.raises(InvalidInputError, match="non-negative integer"):
        prefcurate.select_top(t, k=1.5)
    with pytest.raises(InvalidInputError, match="no tie_break column"):
        prefcurate.select_top(t, k=1, tie_break="uid")


def test_same_result_for_any_thread_count():
    pool = magpie_pool(1).slice(0, 100_000)
    a = prefcurate.select_top_indices(pool, **prefcurate.SKYWORK_MAGPIE, num_threads=1)
    b = prefcurate.select_top_indices(pool, **prefcurate.SKYWORK_MAGPIE, num_threads=2)
    assert np.array_equal(a, b)


def test_cli_select_with_preset(tmp_path):
    import json

    from prefcurate import cli, write_table

    pool = magpie_pool(2).slice(0, 20_000)
    write_table(pool, tmp_path / "pool.parquet")
    assert (
        cli.main(
            [
                "select",
                str(tmp_path / "pool.parquet"),
                "--preset",
                "skywork-magpie",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    want = prefcurate.select_top_result(pool, **prefcurate.SKYWORK_MAGPIE)
    assert summary["kept"] == want.kept.num_rows and summary["removed"] == want.removed.num_rows
    kept = prefcurate.read_table(tmp_path / "o" / "kept.parquet")
    assert kept.column("id").to_pylist() == want.kept.column("id").to_pylist()
    # explicit options instead of the preset
    assert (
        cli.main(
            [
                "select",
                str(tmp_path / "pool.parquet"),
                "--k",
                "Math=10",
                "--default-k",
                "5",
                "--out",
                str(tmp_path / "k"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "k" / "summary.json").read_text())["kept"] == 10 + 5 * 10
