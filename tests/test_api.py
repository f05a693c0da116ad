"""The Python surface of decontaminate: every input kind, the result's kinds
and columns, the index's life cycle, the precise method, and bad input."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prefcurate
from prefcurate import InvalidInputError
from reference import sklearn_triples, triples

BENCH = [
    "Write a poem about the sea and the sky at night with many stars shining",
    "Explain how photosynthesis converts light energy into chemical energy in plants",
    "Hi",
]
TRAIN = [
    "Please write a poem about the sea and the sky at night with many stars shining, thanks",
    "Tell me a joke",
    "explain how photosynthesis converts light energy into chemical energy in plants and animals",
    "Nothing to see here at all, just an ordinary request about cooking pasta tonight",
]
FLAGS = [True, False, True, False]


def bench_table():
    return pa.table({"prompt": BENCH, "id": ["p", "q", "r"], "subset": ["poems", "science", "chat"]})


def check(res, n=len(TRAIN)):
    assert res.contaminated.dtype == np.bool_ and len(res.contaminated) == n
    assert res.contaminated.tolist() == FLAGS
    assert triples(res) == sklearn_triples(BENCH, TRAIN)


def test_list_in_list_out():
    res = prefcurate.decontaminate(TRAIN, bench_table())
    check(res)
    assert res.kept == [TRAIN[1], TRAIN[3]]
    assert [r["text"] for r in res.removed] == [TRAIN[0], TRAIN[2]]
    r0 = res.removed[0]
    assert r0["benchmark_id"] == "p" and r0["benchmark_subset"] == "poems"
    assert r0["stage"] == "decontaminate" and r0["reason"] == "benchmark_ngram_overlap"
    assert r0["matched_span"] == "write a poem about the sea and the sky at night with many stars shining"
    assert r0["matched_tokens"] == 14 and r0["score"] > 0
    m = res.matches
    assert m.schema.field("score").type == pa.int64()
    assert m.column_names[:3] == ["train_index", "benchmark_index", "score"]


def test_span_keeps_original_case_and_unicode():
    bench = ["ΣΟΦΙΑΣ İstanbul wonderful city of cats and dogs and birds"]
    train = ["Visit: σοφιας İSTANBUL Wonderful City of cats and dogs and birds!"]
    res = prefcurate.decontaminate(train, bench)
    # ΣΟΦΙΑΣ lower-cases with a final sigma, as σοφιας does; İ lower-cases to
    # i + U+0307, which splits the word: the span starts at the first shared token
    assert res.removed[0]["matched_span"] == "σοφιας İSTANBUL Wonderful City of cats and dogs and birds"


@pytest.mark.parametrize(
    "make",
    [
        lambda: pa.array(TRAIN),
        lambda: pa.array(TRAIN, type=pa.large_string()),
        lambda: pa.array(TRAIN, type=pa.string_view()),
        lambda: pa.chunked_array([TRAIN[:1], TRAIN[1:3], TRAIN[3:]]),
        lambda: pa.array(["junk", *TRAIN, "junk"]).slice(1, len(TRAIN)),
        lambda: pa.array(TRAIN).dictionary_encode(),
    ],
    ids=["string", "large_string", "string_view", "chunked", "sliced", "dictionary"],
)
def test_arrow_arrays(make):
    arr = make()
    res = prefcurate.decontaminate(arr, BENCH)
    check(res)
    assert isinstance(res.removed, pa.Table)
    assert res.removed.column("text").to_pylist() == [TRAIN[0], TRAIN[2]]
    assert res.kept.to_pylist() == [TRAIN[1], TRAIN[3]]


def test_table_keeps_columns_and_adds_attribution():
    t = pa.table({"question": TRAIN, "n": list(range(4))})
    res = prefcurate.decontaminate(t, BENCH, text="question")
    check(res)
    assert res.kept.column("n").to_pylist() == [1, 3]
    assert res.removed.column("n").to_pylist() == [0, 2]
    for col in ["benchmark_id", "benchmark_subset", "score", "matched_span", "reason", "stage"]:
        assert col in res.removed.column_names


def test_chat_messages_give_first_user_turn():
    chosen = [
        [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": t},
            {"role": "assistant", "content": "ok"},
        ]
        for t in TRAIN
    ]
    t = pa.table({"chosen": chosen, "rejected": chosen})
    res = prefcurate.decontaminate(t, BENCH)  # no prompt column: the chat column is used
    check(res)
    sharegpt = pa.table(
        {"conversations": [[{"from": "human", "value": x}, {"from": "gpt", "value": "y"}] for x in TRAIN]}
    )
    check(prefcurate.decontaminate(sharegpt, BENCH, text="conversations"))


def test_chat_without_user_turn_is_an_error():
    t = pa.table({"chosen": [[{"role": "assistant", "content": "x"}]]})
    with pytest.raises(InvalidInputError, match="row 0 has no user turn"):
        prefcurate.decontaminate(t, BENCH)


def test_datasets_and_polars():
    datasets = pytest.importorskip("datasets")
    import polars as pl

    ds = datasets.Dataset.from_dict({"prompt": TRAIN, "k": [0, 1, 2, 3]})
    res = prefcurate.decontaminate(ds, BENCH)
    check(res)
    assert isinstance(res.kept, datasets.Dataset) and res.kept["k"] == [1, 3]
    assert res.removed["benchmark_id"] == ["0", "1"]
    # a Dataset with a pending indices mapping
    shuffled = ds.select([3, 2, 1, 0])
    res = prefcurate.decontaminate(shuffled, BENCH)
    assert res.contaminated.tolist() == FLAGS[::-1]
    df = pl.DataFrame({"prompt": TRAIN})
    res = prefcurate.decontaminate(df, pl.DataFrame({"prompt": BENCH}))
    check(res)
    assert isinstance(res.kept, pl.DataFrame) and res.kept["prompt"].to_list() == [TRAIN[1], TRAIN[3]]
    check(prefcurate.decontaminate(pl.Series(TRAIN), BENCH))


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz", "t.jsonl.zst", "t.json", "t.parquet", "t.csv"])
def test_paths(tmp_path, name):
    table = pa.table({"prompt": TRAIN, "id": ["a", "b", "c", "d"]})
    p = prefcurate.write_table(table, tmp_path / name)
    bp = prefcurate.write_table(bench_table(), tmp_path / "bench.jsonl")
    res = prefcurate.decontaminate(p, bp)
    check(res)
    assert res.removed.column("id").to_pylist() == ["a", "c"]
    assert res.removed.column("benchmark_id").to_pylist() == ["p", "q"]


def test_hf_saved_dataset_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"prompt": TRAIN}).save_to_disk(str(tmp_path / "ds"))
    check(prefcurate.decontaminate(tmp_path / "ds", BENCH))


def test_index_reuse_save_load_pickle(tmp_path):
    idx = prefcurate.BenchmarkIndex(bench_table())
    assert len(idx) == 3 and idx.ids == ["p", "q", "r"] and idx.subsets == ["poems", "science", "chat"]
    check(prefcurate.decontaminate(TRAIN, idx))
    idx.save(tmp_path / "bench.pcidx")
    loaded = prefcurate.BenchmarkIndex.load(tmp_path / "bench.pcidx")
    assert loaded.texts == BENCH and loaded.ids == idx.ids and loaded.n_grams == idx.n_grams
    check(prefcurate.decontaminate(TRAIN, loaded))
    again = pickle.loads(pickle.dumps(idx))
    check(prefcurate.decontaminate(TRAIN, again))
    # an index as the training side: its texts
    res = prefcurate.decontaminate(idx, BENCH)
    assert res.contaminated.tolist() == [True, True, False]


def test_index_shared_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    idx = prefcurate.BenchmarkIndex(BENCH)
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: prefcurate.decontaminate(TRAIN, idx), range(8)))
    for r in results:
        check(r)


def test_index_method_mismatch():
    idx = prefcurate.BenchmarkIndex(BENCH)
    with pytest.raises(InvalidInputError, match="method"):
        prefcurate.decontaminate(TRAIN, idx, method="precise")
    with pytest.raises(InvalidInputError, match="n-grams"):
        prefcurate.decontaminate(TRAIN, idx, ngram_range=(5, 13))


def test_summary_by_subset():
    res = prefcurate.decontaminate(TRAIN, bench_table())
    s = {r["benchmark_subset"]: r for r in res.summary().to_pylist()}
    assert s["poems"]["train_rows_removed"] == 1 and s["science"]["items_matched"] == 1
    assert s["chat"]["benchmark_items"] == 1 and s["chat"]["items_matched"] == 0


def test_precise_method_flags_leaks_not_templates():
    template = "I want you to act as a travel guide. My first request is"
    bench = [
        template + " to plan a trip to Rome for three days in spring with a small budget",
        "Name five benefits of exercising daily",  # short: matched whole
    ]
    train = [
        template + " to suggest museums in Paris for a rainy afternoon with kids",  # shares only the template
        "Q: " + bench[0] + " Please answer.",  # a real leak
        "Name five benefits of exercising daily",
        "Name five benefits",
    ]
    ref = prefcurate.decontaminate(train, bench)
    assert ref.contaminated.tolist() == [
        True,
        True,
        False,
        False,
    ]  # the reference flags the template, misses the short one
    precise = prefcurate.decontaminate(train, bench, method="precise")
    assert precise.contaminated.tolist() == [False, True, True, False]
    assert precise.matches.column("coverage").to_pylist() == [1.0, 1.0]
    assert precise.removed[0]["reason"] == "benchmark_coverage"


def test_precise_train_stop_grams():
    template = "Solve the following math problem step by step and put the final answer in a box at the end"
    bench = [template + ": what is the sum of the first ten positive integers"]
    train = [f"{template}: what is the product of {i} and {i + 1}" for i in range(30)]
    train.append("Homework. " + bench[0])  # a real leak
    ref = prefcurate.decontaminate(train, bench)
    assert ref.n_removed == 31  # the reference flags every use of the template
    # the template's n-grams are in more than 10 training prompts: stop-grams,
    # left out of the coverage; the leak still covers the rest of the prompt
    res = prefcurate.decontaminate(train, bench, method="precise")
    assert np.flatnonzero(res.contaminated).tolist() == [30]
    # a benchmark prompt that is all template is matched only when whole
    only_template = prefcurate.decontaminate(train, [template], method="precise")
    assert only_template.n_removed == 31
    assert only_template.matches.column("coverage").to_pylist() == [1.0] * 31


def test_progress_callback():
    calls = []
    prefcurate.decontaminate(TRAIN, BENCH, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (4, 4)


# ---- bad input -----------------------------------------------------------


def test_null_and_non_string_rows():
    with pytest.raises(InvalidInputError, match="row 1 is None"):
        prefcurate.decontaminate(["a", None], BENCH)
    with pytest.raises(InvalidInputError, match="row 2 is int"):
        prefcurate.decontaminate(["a", "b", 3], BENCH)
    with pytest.raises(InvalidInputError, match="row 1 is null"):
        prefcurate.decontaminate(pa.array(["a", None]), BENCH)
    with pytest.raises(InvalidInputError, match="row 1 is null"):
        prefcurate.decontaminate(pa.table({"prompt": ["a", None]}), BENCH)
    with pytest.raises(InvalidInputError, match="expected text"):
        prefcurate.decontaminate(pa.table({"prompt": [1, 2]}), BENCH)
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        prefcurate.decontaminate(["ok", "bad \ud800"], BENCH)


def test_missing_column_and_empty_benchmark():
    with pytest.raises(InvalidInputError, match="no column 'text'.*columns are \\['prompt'\\]"):
        prefcurate.decontaminate(pa.table({"prompt": TRAIN}), BENCH, text="text")
    with pytest.raises(InvalidInputError, match="no 'prompt' column"):
        prefcurate.decontaminate(pa.table({"q": TRAIN}), BENCH)
    with pytest.raises(InvalidInputError, match="benchmark: it has no rows"):
        prefcurate.decontaminate(TRAIN, [])
    with pytest.raises(InvalidInputError, match="unsupported input"):
        prefcurate.decontaminate(42, BENCH)


def test_bad_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        prefcurate.decontaminate(tmp_path / "nope.jsonl", BENCH)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": oops}\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2: invalid JSON"):
        prefcurate.decontaminate(bad, BENCH)
    utf = tmp_path / "utf.jsonl"
    utf.write_bytes(b'{"prompt": "ok"}\n{"prompt": "\xff\xfe"}\n')
    with pytest.raises(InvalidInputError, match=r"utf.jsonl:2: not valid UTF-8"):
        prefcurate.decontaminate(utf, BENCH)
    notlist = tmp_path / "x.json"
    notlist.write_text('"just a string"')
    with pytest.raises(InvalidInputError, match="expected a JSON list"):
        prefcurate.decontaminate(notlist, BENCH)
    unknown = tmp_path / "x.xyz"
    unknown.write_text("hello")
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        prefcurate.decontaminate(unknown, BENCH)
    gz = tmp_path / "broken.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"prompt": "a"}\n')[:-6])
    with pytest.raises((InvalidInputError, OSError)):
        prefcurate.decontaminate(gz, BENCH)
    pqf = tmp_path / "x.parquet"
    pqf.write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInputError, match="x.parquet: unreadable Parquet"):
        prefcurate.decontaminate(pqf, BENCH)


def test_bad_index_files(tmp_path):
    idx = prefcurate.BenchmarkIndex(BENCH)
    p = tmp_path / "i.pcidx"
    idx.save(p)
    data = bytearray(p.read_bytes())
    data[30] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(prefcurate.IndexFileError, match="checksum"):
        prefcurate.BenchmarkIndex.load(p)
    p.write_bytes(b"hello")
    with pytest.raises(prefcurate.IndexFileError, match="not a valid prefcurate index"):
        prefcurate.BenchmarkIndex.load(p)
    with pytest.raises(FileNotFoundError):
        prefcurate.BenchmarkIndex.load(tmp_path / "missing.pcidx")


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="ngram_range"):
        prefcurate.decontaminate(TRAIN, BENCH, ngram_range=(8, 7))
    with pytest.raises(InvalidInputError, match="method"):
        prefcurate.decontaminate(TRAIN, BENCH, method="fuzzy")
    with pytest.raises(InvalidInputError, match="min_coverage"):
        prefcurate.decontaminate(TRAIN, BENCH, method="precise", min_coverage=2)
    with pytest.raises(InvalidInputError, match="num_threads"):
        prefcurate.decontaminate(TRAIN, BENCH, num_threads=0)


def test_empty_train_and_empty_texts():
    res = prefcurate.decontaminate([], BENCH)
    assert len(res.contaminated) == 0 and res.matches.num_rows == 0 and res.kept == [] and res.removed == []
    res = prefcurate.decontaminate(["", " ", "a"], BENCH)
    assert not res.contaminated.any()


def test_huge_text_is_fine():
    text = ("lorem ipsum dolor sit amet " * 200_000) + BENCH[0]
    res = prefcurate.decontaminate([text], BENCH)
    assert res.contaminated.tolist() == [True]


def test_jsonl_mixed_types_named(tmp_path):
    p = tmp_path / "mixed.jsonl"
    p.write_text(json.dumps({"prompt": "a", "x": 1}) + "\n" + json.dumps({"prompt": "b", "x": "s"}) + "\n")
    with pytest.raises(InvalidInputError, match="mixed.jsonl"):
        prefcurate.read_table(p)


def test_parquet_roundtrip_of_removed(tmp_path):
    t = pa.table({"prompt": TRAIN})
    res = prefcurate.decontaminate(t, BENCH)
    pq.write_table(res.removed, tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 2


@pytest.mark.parametrize("n", [7, 30_000])  # the second takes the threaded path
def test_split_table_equals_take_in_order(n):
    from prefcurate.schema import MESSAGES, split_table

    rng = np.random.default_rng(n)
    msgs = [
        [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a" * (i % 5)}]
        for i in range(n)
    ]
    text = pa.chunked_array(
        [[f"t{i}" for i in range(n // 2)], [None] + [f"t{i}" for i in range(n // 2 + 1, n)]]
    )
    table = pa.table(
        {
            "text": text,
            "view": pa.array([f"v{i}" for i in range(n)], pa.string_view()),
            "chosen": pa.array(msgs, MESSAGES),
        }
    ).replace_schema_metadata({"k": "v"})
    keep = rng.random(n) < 0.3
    kept, removed = split_table(table, keep)
    plain = table.set_column(1, "view", table.column("view").cast(pa.large_string()))
    assert kept.equals(plain.take(pa.array(np.flatnonzero(keep))))
    assert removed.equals(plain.take(pa.array(np.flatnonzero(~keep))))
    # without a view column the schema (and its metadata) is kept as it is
    k2, r2 = split_table(table.drop_columns(["view"]), keep)
    assert k2.schema.equals(table.drop_columns(["view"]).schema, check_metadata=True)
    assert k2.num_rows + r2.num_rows == n and k2.column("text").to_pylist() == [
        x for x, k in zip(text.to_pylist(), keep) if k
    ]
    # with a view column cast, the metadata stays
    assert kept.schema.metadata == {b"k": b"v"} and kept.schema.field("view").type == pa.large_string()
    # rows without columns keep their count
    k0, r0 = split_table(table.drop_columns(table.column_names), keep)
    assert (k0.num_rows, r0.num_rows) == (int(keep.sum()), int((~keep).sum()))
    with pytest.raises(ValueError, match="keep has 3 values"):
        split_table(table, keep[:3])
