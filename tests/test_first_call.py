"""The first call of a process: no import it does not need.

After ``import prefcurate`` and calls of decontaminate, dedup and select_top
on lists and pyarrow tables (reading kept / removed), none of the heavy
optional packages is loaded: pyarrow imports pandas from ``pa.array``,
``pa.scalar`` and ``to_numpy``, so the library builds its arrays with
:mod:`prefcurate.arrays`, property-tested here against pyarrow's own
converters (this test process may import pandas; the library path may not).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from prefcurate import arrays

HEAVY = ("pandas", "polars", "datasets", "torch", "transformers", "ray", "matplotlib")

NUMERIC = [
    np.dtype(t)
    for t in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
]
STRING_TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()]


def _py(values: list) -> list:
    """Values with NaN made comparable."""
    return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in values]


def assert_same(got: pa.Array | pa.ChunkedArray, want: pa.Array | pa.ChunkedArray) -> None:
    assert type(got) is type(want)
    assert got.type == want.type
    assert len(got) == len(want)
    assert got.null_count == want.null_count
    if isinstance(got, pa.Array):
        got.validate(full=True)
    assert _py(got.to_pylist()) == _py(want.to_pylist())


@st.composite
def numpy_values(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(NUMERIC))
    n = draw(st.integers(0, 70))
    values = draw(hnp.arrays(dtype, n))
    if draw(st.booleans()):  # a strided or byte-swapped input
        values = draw(st.sampled_from([values[::-1], values.astype(dtype.newbyteorder(">"))]))
    return values


@settings(max_examples=300, deadline=None)
@given(values=numpy_values(), data=st.data())
def test_from_numpy_equals_pa_array(values: np.ndarray, data: st.DataObject) -> None:
    mask = None
    if data.draw(st.booleans()):
        mask = data.draw(hnp.arrays(np.bool_, len(values)))
    native = values.astype(values.dtype.newbyteorder("="))  # pa.array takes native order only
    want = pa.array(native, mask=mask)
    assert_same(arrays.from_numpy(values, mask=mask), want)
    assert_same(arrays.array(values), pa.array(native))


def test_from_numpy_casts_and_checks() -> None:
    assert_same(arrays.from_numpy(np.arange(3), type=pa.float64()), pa.array(np.arange(3), pa.float64()))
    with pytest.raises(TypeError):
        arrays.from_numpy(np.array(["a"], dtype=object))
    with pytest.raises(ValueError):
        arrays.from_numpy(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        arrays.from_numpy(np.zeros(3), mask=np.zeros(2, bool))


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(TEXT, st.none()), max_size=40),
    typ=st.sampled_from(STRING_TYPES),
)
def test_strings_equal_pa_array(values: list, typ: pa.DataType) -> None:
    assert_same(arrays.strings(values, typ), pa.array(values, typ))
    assert_same(arrays.strings(iter(values), typ), pa.array(values, typ))
    if any(isinstance(v, str) for v in values):
        assert_same(arrays.array(values), pa.array(values))
    assert_same(arrays.array(values, typ), pa.array(values, typ))


def test_strings_errors_and_other_values() -> None:
    with pytest.raises(UnicodeEncodeError):
        arrays.strings(["a", "\ud800"])
    with pytest.raises(pa.ArrowTypeError):
        arrays.strings(["a", 1])
    assert_same(arrays.strings(["a", b"b"]), pa.array(["a", b"b"], pa.string()))  # left to pa.array
    assert_same(arrays.array([1, 2, None]), pa.array([1, 2, None]))
    assert_same(arrays.strings([]), pa.array([], pa.string()))


def test_strings_over_2gib_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    # the chunking rule with a small limit (2 GiB of text is too much for a test)
    monkeypatch.setattr(arrays, "_INT32_MAX", 5)
    got = arrays.strings(["abc", "de", None, "fgh", "ijklmn", "o"])
    assert isinstance(got, pa.ChunkedArray)
    assert got.to_pylist() == ["abc", "de", None, "fgh", "ijklmn", "o"]
    assert all(len(c.buffers()[2]) <= 6 for c in got.chunks)
    assert arrays.strings(["abc", "de", "fgh"], pa.large_string()).type == pa.large_string()
    got = arrays.constant_strings("abc", 3)
    assert isinstance(got, pa.ChunkedArray) and got.to_pylist() == ["abc"] * 3


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(TEXT, st.none()), n=st.integers(0, 30), typ=st.sampled_from(STRING_TYPES))
def test_constant_strings_equal_pa_array(value: str | None, n: int, typ: pa.DataType) -> None:
    assert_same(arrays.constant_strings(value, n, typ), pa.array([value] * n, typ))
    if value is not None:
        s = arrays.scalar(value, typ)
        assert s.type == typ and s.as_py() == pa.scalar(value, typ).as_py()


@st.composite
def arrow_numbers(draw: st.DrawFn) -> pa.Array | pa.ChunkedArray:
    """A numeric Arrow array, maybe sliced, maybe chunked, maybe with nulls."""
    dtype = draw(st.sampled_from(NUMERIC))
    chunks = []
    for _ in range(draw(st.integers(0 if draw(st.booleans()) else 1, 3))):
        values = draw(hnp.arrays(dtype, draw(st.integers(0, 40))))
        mask = draw(hnp.arrays(np.bool_, len(values))) if draw(st.booleans()) else None
        arr = pa.array(values, mask=mask)
        lo = draw(st.integers(0, len(arr)))
        chunks.append(arr.slice(lo, draw(st.integers(0, len(arr) - lo))))
    typ = pa.from_numpy_dtype(dtype)
    if len(chunks) == 1 and draw(st.booleans()):
        return chunks[0]
    return pa.chunked_array(chunks, type=typ)


@settings(max_examples=300, deadline=None)
@given(arr=arrow_numbers())
def test_to_numpy_equals_pyarrow(arr: pa.Array | pa.ChunkedArray) -> None:
    assert np.array_equal(arrays.valid_mask(arr), np.asarray(arr.is_valid()))
    if arr.null_count:
        with pytest.raises(ValueError):
            arrays.to_numpy(arr)
        fill = False if pa.types.is_boolean(arr.type) else 7
        got = arrays.to_numpy(arr, fill=fill)
        want = pc.fill_null(arr, fill).to_numpy(zero_copy_only=False)
    else:
        got = arrays.to_numpy(arr)
        want = arr.to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_to_numpy_nan_fill_and_null_type() -> None:
    arr = pa.chunked_array([pa.array([1.5, None]), pa.array([None, 2.0])])
    np.testing.assert_array_equal(arrays.to_numpy(arr, fill=np.nan), [1.5, np.nan, np.nan, 2.0])
    assert arrays.to_numpy(pa.nulls(2), fill=0).tolist() == [0, 0]
    with pytest.raises(ValueError):
        arrays.to_numpy(pa.nulls(2))
    with pytest.raises(TypeError):
        arrays.to_numpy(pa.array(["a"]))
    # a zero-copy view, as to_numpy gives
    view = arrays.to_numpy(pa.array(np.arange(4.0)))
    assert not view.flags.writeable


# ---------------------------------------------------------------- no heavy import

FIRST_CALLS = """
import json, sys
import numpy as np
import pyarrow as pa
assert not [m for m in HEAVY if m in sys.modules], "loaded before prefcurate"
import prefcurate
from prefcurate.arrays import from_numpy, strings

train = [f"what is the capital of france and why is it famous number {i} today" for i in range(300)]
train += train[:20] + ["please tell me the capital of france and why is it famous for many things"]
bench = ["the capital of france and why is it famous for many things", "an unrelated benchmark question here"]
ids = strings([str(i) for i in range(len(train))])
score = from_numpy(np.arange(len(train), dtype=np.float64), mask=np.arange(len(train)) % 7 == 0)
source = strings([("a", "b", None)[i % 3] for i in range(len(train))])
table = pa.table({"prompt": strings(train), "id": ids, "score": score, "source": source,
                  "category": strings([("Math", "x", "y")[i % 3] for i in range(len(train))])})
bench_table = pa.table({"prompt": strings(bench), "id": strings(["b0", "b1"]), "subset": strings(["s", "t"])})

def messages(users, answers):
    n = len(users)
    roles = strings(["user", "assistant"] * n)
    content = strings([x for pair in zip(users, answers) for x in pair])
    structs = pa.StructArray.from_arrays([roles, content], ["role", "content"])
    return pa.ListArray.from_arrays(from_numpy(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), structs)

chosen = messages(train, ["yes " + t for t in train])
rejected = messages(train, ["no"] * len(train))
pairs = pa.table({"id": ids, "source": source, "chosen": chosen, "rejected": rejected,
                  "prompt": strings(train), "score": score})

def rows(r):
    r.kept, r.removed
    return r

for method in ("reference", "precise"):
    for tr in (train, table, pairs):
        for be in (bench, bench_table):
            r = rows(prefcurate.decontaminate(tr, be, method=method, n=5, min_tokens=3))
            assert r.n_removed > 0, (method, type(tr), type(be))
            r.matches, r.attribution, r.summary(), repr(r)
            if not isinstance(tr, list):
                r.stage_result().summary()
for data in (train, table, pairs):
    for settings in ({}, {"method": "exact"}, {"threshold": 0.5}):
        r = rows(prefcurate.dedup(data, **settings))
        assert r.n_removed >= 20, settings
        r.attribution(), r.summary(), r.links, repr(r)
        if not isinstance(data, list):
            r.stage_result().summary()
for keep in ("score", ["b", "a"]):
    rows(prefcurate.dedup(table, keep=keep)).stage_result()
index = prefcurate.DedupIndex(train[:100])
rows(prefcurate.dedup(train[50:], against=index)).attribution()
import os, tempfile
with tempfile.TemporaryDirectory() as tmp:
    index.save(os.path.join(tmp, "index.parquet"))
    index = prefcurate.DedupIndex.load(os.path.join(tmp, "index.parquet"))
rows(prefcurate.dedup(table, against=index)).attribution()
for settings in ({"k": 5}, {"fraction": 0.3, "group_by": ["category", "source"]}, prefcurate.SKYWORK_MAGPIE):
    prefcurate.select_top(table, **settings)
    prefcurate.select_top_indices(table, **settings)
    prefcurate.select_top_result(table, **settings).summary()
n = len(train)
prefcurate.filter_margin(pairs, (np.arange(n), np.ones(n))).summary()
prefcurate.filter_margin(pairs, {"chosen_score": score, "rejected_score": from_numpy(np.ones(n))}).summary()
print(json.dumps([m for m in HEAVY if m in sys.modules]))
"""


def test_calls_load_no_heavy_package() -> None:
    """decontaminate, dedup, select_top (and filter_margin) on lists and
    pyarrow tables, with their kept / removed rows, in a fresh process: none
    of the heavy optional packages is imported (pyarrow would import pandas
    from pa.array)."""
    out = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{FIRST_CALLS}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ---------------------------------------------------------------- table set-up


def _lsh_params_one_by_one(threshold: float, num_perm: int, recall: float, margin: float) -> tuple[int, int]:
    """The banding choice evaluated one banding at a time (what
    ``lsh_params`` computes in one array)."""
    lo = np.linspace(0.0, threshold, 201)
    at = min(threshold + margin, 1.0)
    best, best_fp = None, float("inf")
    fallback, fallback_p = (1, num_perm), -1.0
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p_at = 1 - (1 - at**r) ** b
            if p_at < recall:
                if p_at > fallback_p:
                    fallback, fallback_p = (b, r), p_at
                continue
            y = 1 - (1 - lo**r) ** b
            fp = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(lo)))
            if fp < best_fp:
                best, best_fp = (b, r), fp
    return best if best is not None else fallback


@pytest.mark.parametrize("num_perm", [1, 2, 7, 64, 128, 256])
@pytest.mark.parametrize(("recall", "margin"), [(0.995, 0.05), (0.999, 0.2), (0.5, 0.0)])
def test_lsh_params_equal_the_one_by_one_choice(num_perm: int, recall: float, margin: float) -> None:
    from prefcurate.stages.dedup import lsh_params

    for threshold in (0.0, 0.05, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0):
        want = _lsh_params_one_by_one(threshold, num_perm, recall, margin)
        assert lsh_params.__wrapped__(threshold, num_perm, recall, margin) == want, threshold
