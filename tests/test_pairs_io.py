"""Pair I/O: every input kind, write -> read round trips, streaming with
bounded batches, bad input (raise / quarantine with file, line or row, and
field), the ids, and ``prefcurate convert``."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prefcurate
from prefcurate import InvalidInputError, convert_pairs, iter_pairs, read_pairs, write_pairs
from prefcurate.io import InvalidRowsWarning, pair_ids, readers, records_to_table
from prefcurate.io.validate import MALFORMED
from prefcurate.schema import MESSAGES, pair_id

FIX = Path(__file__).parent / "fixtures"


def u(c: str) -> dict:
    return {"role": "user", "content": c}


def a(c: str) -> dict:
    return {"role": "assistant", "content": c}


def skywork_rows(n: int) -> list[dict]:
    return [
        {
            "chosen": [u(f'question {i} "quoted" \\ ünï'), a(f"good answer {i}\nline two")],
            "rejected": [u(f'question {i} "quoted" \\ ünï'), a(f"bad answer {i}")],
            "source": "magpie_ultra" if i % 2 else "helpsteer2",
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def canonical() -> pa.Table:
    return read_pairs(FIX / "skywork.jsonl")


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "name", ["pairs.jsonl", "pairs.parquet", "pairs_dataset", "pairs.jsonl.gz", "pairs.json"]
)
def test_write_read_round_trip_is_unchanged(tmp_path, canonical, name):
    path = write_pairs(canonical, tmp_path / name)
    if name == "pairs_dataset":
        assert (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    back = read_pairs(path)
    assert back.schema == canonical.schema
    assert back.equals(canonical)


def test_round_trip_keeps_extra_columns(tmp_path):
    t = read_pairs(FIX / "magpie_ultra.jsonl")
    for name in ("x.parquet", "x.jsonl", "x_ds"):
        back = read_pairs(write_pairs(t, tmp_path / name))
        assert back.column_names == t.column_names
        assert back.select(["id", "chosen", "rejected", "prompt", "score", "category"]).equals(
            t.select(["id", "chosen", "rejected", "prompt", "score", "category"])
        )


def test_write_pairs_rejects_unknown_formats(tmp_path, canonical):
    with pytest.raises(InvalidInputError, match="cannot write pairs"):
        write_pairs(canonical, tmp_path / "x.csv")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not empty"):
        write_pairs(canonical, tmp_path / "full")


# ---------------------------------------------------------------- input kinds


def test_every_input_kind_gives_the_same_table(tmp_path, canonical):
    import datasets
    import polars as pl

    recs = [json.loads(x) for x in open(FIX / "skywork.jsonl", encoding="utf-8")]
    table = pa.Table.from_pylist(recs)
    ds = datasets.Dataset(datasets.table.InMemoryTable(table))
    for src in (
        table,
        table.to_batches()[0],
        ds,
        datasets.DatasetDict({"train": ds}),
        pl.from_arrow(table),
        pl.from_arrow(table).lazy(),
        recs,
        str(FIX / "skywork.jsonl"),
    ):
        got = read_pairs(src)
        assert got.select(canonical.column_names).equals(canonical), type(src).__name__


def test_dataset_dict_needs_a_split(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(skywork_rows(3))
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([0])})
    with pytest.raises(InvalidInputError, match=r"several splits \['train', 'test'\]; pass split="):
        read_pairs(dd)
    assert read_pairs(dd, split="test").num_rows == 1
    with pytest.raises(InvalidInputError, match="no split 'dev'"):
        read_pairs(dd, split="dev")
    dd.save_to_disk(str(tmp_path / "dd"))
    assert read_pairs(tmp_path / "dd", split="train").num_rows == 3
    with pytest.raises(InvalidInputError, match="several splits"):
        read_pairs(tmp_path / "dd")


def test_hub_names_go_through_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load(name, split=None, **kw):
        calls.append((name, split))
        ds = datasets.Dataset.from_list(skywork_rows(2))
        return ds if split else datasets.DatasetDict({"train": ds})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the reachability check steps aside: the fake answers
    assert read_pairs("Skywork/Skywork-Reward-Preference-80K-v0.2", split="train").num_rows == 2
    assert read_pairs("someone/pairs").num_rows == 2  # one split: taken
    assert calls == [("Skywork/Skywork-Reward-Preference-80K-v0.2", "train"), ("someone/pairs", None)]
    # a missing local file is not mistaken for a hub name
    with pytest.raises(FileNotFoundError):
        read_pairs("missing/pairs.jsonl")


def test_folder_of_shards_names_the_shard_in_errors(tmp_path):
    recs = skywork_rows(5)
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(recs[:2]), folder / "part-0.parquet")
    bad = dict(recs[3], rejected=[a("no user turn first")])
    lines = [json.dumps(r) for r in (recs[2], bad, recs[4])]
    with gzip.open(folder / "part-1.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError) as e:
        read_pairs(folder, on_invalid="raise")
    assert str(e.value).startswith(f"{folder / 'part-1.jsonl.gz'}:2: field 'rejected[0].role'")
    res = convert_pairs(folder, on_invalid="quarantine")
    assert res.pairs.num_rows == 4
    [q] = res.quarantine.to_pylist()
    assert (q["file"], q["row"], q["line"], q["reason"]) == (
        str(folder / "part-1.jsonl.gz"),
        1,
        2,
        "bad_turn_order",
    )


def test_csv_and_zstd(tmp_path):
    t = pa.table({"prompt": ["p1", "p2"], "chosen": ["c1", "c2"], "rejected": ["r1", "r2"]})
    import pyarrow.csv as pcsv

    pcsv.write_csv(t, str(tmp_path / "x.csv"))
    assert read_pairs(tmp_path / "x.csv").column("prompt").to_pylist() == ["p1", "p2"]
    data = "\n".join(json.dumps(r) for r in skywork_rows(3)).encode()
    with pa.output_stream(str(tmp_path / "x.jsonl.zst"), compression="zstd") as f:
        f.write(data)
    assert read_pairs(tmp_path / "x.jsonl.zst").num_rows == 3


# ---------------------------------------------------------------- streaming


def test_iter_pairs_parquet_streams_in_bounded_batches(tmp_path):
    recs = skywork_rows(250)
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(recs), path, row_group_size=64)
    whole = read_pairs(path)
    stream = iter_pairs(path, batch_size=50)
    it = iter(stream)
    first = next(it)
    assert isinstance(first, pa.RecordBatch) and first.num_rows == 50
    assert stream.stats["rows_read"] == 50  # only what was needed so far
    rest = list(it)
    assert all(b.num_rows <= 50 for b in rest) and len(rest) == 4
    assert pa.Table.from_batches([first, *rest]).equals(whole)
    assert stream.stats["rows_read"] == 250 and stream.stats["pairs"] == 250


def test_iter_pairs_jsonl_blocks_keep_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "JSONL_BLOCK_BYTES", 300)  # many blocks, lines cut across them
    recs = skywork_rows(40)
    lines = [json.dumps(r) for r in recs]
    lines[33] = lines[33].replace('"assistant"', '"robot"', 1)
    lines.insert(10, "")  # blank lines are skipped but counted
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream = iter_pairs(path, batch_size=7, on_invalid="quarantine")
    it = iter(stream)
    next(it)
    assert stream.stats["rows_read"] < 40
    batches = [*it]
    assert sum(b.num_rows for b in batches) + 7 == 39
    [q] = stream.quarantine.to_pylist()
    assert (q["row"], q["line"], q["field"]) == (33, 35, "chosen[1].role")
    with pytest.raises(InvalidInputError, match=rf"^{path}:35: field 'chosen\[1\].role' is 'robot'"):
        list(iter_pairs(path, batch_size=7, on_invalid="raise"))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_helpsteer2_pairs_survive_batch_boundaries(tmp_path, batch_size):
    path = tmp_path / "hs.parquet"
    table = pa.Table.from_pylist([json.loads(x) for x in open(FIX / "helpsteer2.jsonl", encoding="utf-8")])
    pq.write_table(table, path)
    whole = convert_pairs(FIX / "helpsteer2.jsonl")
    stream = iter_pairs(path, batch_size=batch_size)
    got = pa.Table.from_batches(list(stream))
    assert got.equals(whole.pairs)
    assert stream.stats["removed_by_reason"] == {"tie": 2, "unpaired": 1}
    assert convert_pairs(path, batch_size=batch_size).pairs.equals(whole.pairs)


def test_wildguardmix_streaming_reads_the_whole_input_first(tmp_path):
    stream = iter_pairs(FIX / "wildguardmix.jsonl", batch_size=1)
    batches = list(stream)
    assert [b.num_rows for b in batches] == [1, 1]
    assert pa.Table.from_batches(batches).equals(read_pairs(FIX / "wildguardmix.jsonl"))


def test_iter_pairs_rejects_bad_batch_size():
    with pytest.raises(InvalidInputError, match="batch_size"):
        iter_pairs(FIX / "trl.jsonl", batch_size=0)


# ---------------------------------------------------------------- bad input


GOOD = {"chosen": [u("hi"), a("hello")], "rejected": [u("hi"), a("go away")], "source": "x"}

# (raw line, field, reason, message fragment)
BAD_LINES = [
    (
        b'{"chosen": [{"role": "user", "content": "hi"}, ',
        None,
        "invalid_json",
        "invalid JSON: Expecting value",
    ),
    (
        json.dumps({"chosen": "just text", "rejected": [u("q"), a("r")]}).encode(),
        "chosen",
        "wrong_type",
        "is a string where the other rows have a list",
    ),
    (
        json.dumps({"chosen": [u("q"), a(5)], "rejected": [u("q"), a("r")]}).encode(),
        "chosen[].content",
        "wrong_type",
        "mixes values of types number and string",
    ),
    (json.dumps({"chosen": [u("q"), a("r")]}).encode(), "rejected", "missing_field", "is missing or null"),
    (
        json.dumps({"chosen": [], "rejected": [u("q"), a("r")]}).encode(),
        "chosen",
        "empty_messages",
        "is an empty message list",
    ),
    (
        json.dumps({"chosen": [{"content": "q"}, a("r")], "rejected": [u("q"), a("r")]}).encode(),
        "chosen[0].role",
        "bad_role",
        "is missing or null",
    ),
    (
        json.dumps(
            {"chosen": [u("q"), {"role": "bot", "content": "r"}], "rejected": [u("q"), a("r")]}
        ).encode(),
        "chosen[1].role",
        "bad_role",
        "is 'bot'; expected one of system, user, assistant",
    ),
    (
        json.dumps({"chosen": [a("q"), u("r")], "rejected": [a("q"), u("r")]}).encode(),
        "chosen[0].role",
        "bad_turn_order",
        "is 'assistant' where 'user' was expected",
    ),
    (
        json.dumps({"chosen": [u("q"), a("r"), u("s")], "rejected": [u("q"), a("r"), u("s")]}).encode(),
        "chosen[2].role",
        "bad_turn_order",
        "the last message must be the assistant's answer",
    ),
    (
        b'{"chosen": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "x"}], '
        b'"rejected": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
        None,
        "invalid_utf8",
        "not valid UTF-8",
    ),
    (
        json.dumps({"chosen": [u("q"), a("  \n")], "rejected": [u("q"), a("r")]}).encode(),
        "chosen[1].content",
        "empty_content",
        "is empty",
    ),
    (
        json.dumps({"chosen": [u("q"), a("x")], "rejected": [u("other"), a("y")]}).encode(),
        "chosen[0]/rejected[0]",
        "prompt_mismatch",
        "differ",
    ),
    (b"[1, 2]", None, "not_an_object", "expected a JSON object, got list"),
]


@pytest.mark.parametrize(
    "raw,field,reason,fragment", BAD_LINES, ids=[b[2] + str(i) for i, b in enumerate(BAD_LINES)]
)
def test_bad_rows_raise_or_are_quarantined(tmp_path, raw, field, reason, fragment):
    good = json.dumps(GOOD).encode()
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([good, good, raw, good]) + b"\n")
    with pytest.raises(InvalidInputError) as e:
        read_pairs(path, on_invalid="raise")
    msg = str(e.value)
    assert msg.startswith(f"{path}:3: " + (f"field {field!r} " if field else ""))
    assert fragment in msg
    # the default: a malformed record raises the same error; a well-formed
    # record with a content problem is left out with a warning
    if reason in MALFORMED:
        with pytest.raises(InvalidInputError) as e2:
            read_pairs(path)
        assert str(e2.value) == msg
    else:
        with pytest.warns(InvalidRowsWarning, match=rf"1 of 4 rows were invalid and left out \(1 {reason}\)"):
            assert read_pairs(path).num_rows == 3
    res = read_pairs(path, on_invalid="quarantine")
    assert isinstance(res, prefcurate.ConvertResult)
    assert res.pairs.num_rows == 3
    [q] = res.quarantine.to_pylist()
    assert (q["file"], q["row"], q["line"], q["field"], q["reason"]) == (str(path), 2, 3, field, reason)
    assert q["message"] == msg
    assert q["record"]  # the raw line or the row, for fixing it
    s = res.stats
    assert s["rows_read"] == 4 == s["rows_converted"] + s["rows_quarantined"] + s["rows_removed"]
    assert s["quarantined_by_reason"] == {reason: 1}


def test_many_bad_rows_keep_the_invariant(tmp_path):
    good = json.dumps(GOOD).encode()
    lines = [good]
    for raw, *_ in BAD_LINES:
        lines += [raw, good]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = convert_pairs(path, on_invalid="quarantine")
    assert res.rows_read == len(lines)
    assert res.pairs.num_rows == len(BAD_LINES) + 1
    assert res.quarantine.column("line").to_pylist() == list(range(2, len(lines), 2))
    assert sorted(res.quarantine.column("reason").to_pylist()) == sorted(b[2] for b in BAD_LINES)


def test_bad_rows_in_memory_inputs_are_named_by_row():
    t = pa.table(
        {
            "chosen": pa.array([[u("q"), a("a")], [u("q"), a("a")]], MESSAGES),
            "rejected": pa.array([[u("q"), a("b")], None], MESSAGES),
        }
    )
    with pytest.raises(
        InvalidInputError, match=r"^pyarrow.Table: row 1: field 'rejected' is missing or null$"
    ):
        read_pairs(t, on_invalid="raise")
    import polars as pl

    with pytest.raises(InvalidInputError, match=r"^polars.DataFrame: row 1: field 'rejected'"):
        read_pairs(pl.from_arrow(t), on_invalid="raise")


def test_truncated_parquet_is_an_error_in_both_modes(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(skywork_rows(50)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for mode in ("raise", "quarantine"):
        with pytest.raises(InvalidInputError, match=rf"^{path}: unreadable Parquet file"):
            convert_pairs(path, on_invalid=mode)  # type: ignore[arg-type]


def test_whole_file_json_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('[{"a": 1},\n {"a": }]', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=rf"^{p}:2: invalid JSON"):
        read_pairs(p)
    p.write_text("[" + json.dumps(GOOD) + ', "not a record"]', encoding="utf-8")
    res = convert_pairs(p, on_invalid="quarantine")
    assert res.quarantine.column("reason").to_pylist() == ["not_an_object"]
    assert res.quarantine.column("row").to_pylist() == [1] and res.pairs.num_rows == 1


def test_on_invalid_must_be_known():
    with pytest.raises(InvalidInputError, match="on_invalid"):
        read_pairs(FIX / "trl.jsonl", on_invalid="ignore")  # type: ignore[call-overload]


def test_records_to_table_reports_rows_of_another_type():
    table, bad = records_to_table([{"a": 1, "b": "x"}, {"a": "two", "b": "y"}, {"a": 3}])
    assert table.column("a").to_pylist() == [1, 3]
    assert table.column("b").to_pylist() == ["x", None]
    assert bad == {1: ("a", "wrong_type", "is a string where the other rows have a number")}


def test_json_strings_that_look_like_dates_stay_strings(tmp_path):
    p = tmp_path / "d.jsonl"
    row = {"chosen": [u("2023-01-01"), a("2024-02-02")], "rejected": [u("2023-01-01"), a("x")], "source": "s"}
    p.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert read_pairs(p).column("prompt").to_pylist() == ["2023-01-01"]


# ---------------------------------------------------------------- ids


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from('\\"\n\r\t\b\f\x00\x01\x1f'),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(text, text, text, st.booleans()), min_size=1, max_size=12), text)
def test_vectorised_ids_equal_pair_id(rows, source):
    chosen, rejected = [], []
    for p, c, r, system in rows:
        head = [{"role": "system", "content": "sys " + p}] if system else []
        chosen.append([*head, u(p), a(c)])
        rejected.append([*head, u(p), a(r)])
    got = pair_ids(
        pa.array([source] * len(rows)), pa.array(chosen, MESSAGES), pa.array(rejected, MESSAGES), chunk=5
    )
    assert got.to_pylist() == [pair_id(source, c, r) for c, r in zip(chosen, rejected)]


def test_own_ids_win_and_missing_ones_are_hashed():
    recs = skywork_rows(3)
    recs[0]["id"] = "mine-0"
    recs[2]["id"] = 7
    t = read_pairs([dict(recs[0]), recs[1], dict(recs[2], id="7")])
    assert t.column("id").to_pylist() == [
        "mine-0",
        pair_id(recs[1]["source"], recs[1]["chosen"], recs[1]["rejected"]),
        "7",
    ]


# ---------------------------------------------------------------- CLI


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefcurate.cli", *args], capture_output=True, text=True)


def test_cli_convert_writes_pairs_removed_and_quarantine(tmp_path):
    src = tmp_path / "hs.jsonl"
    lines = open(FIX / "helpsteer2.jsonl", encoding="utf-8").read().splitlines()
    src.write_text("\n".join([*lines, "{not json"]) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "pairs.parquet"
    r = run("convert", str(src), "--out", str(out), "--on-invalid", "quarantine")
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 2 and t.column("source").to_pylist() == ["helpsteer2"] * 2
    quarantine = [json.loads(x) for x in open(tmp_path / "out" / "pairs.quarantine.jsonl", encoding="utf-8")]
    assert [(q["line"], q["reason"]) for q in quarantine] == [(8, "invalid_json")]
    removed = [json.loads(x) for x in open(tmp_path / "out" / "pairs.removed.jsonl", encoding="utf-8")]
    assert [x["reason"] for x in removed] == ["tie", "tie", "unpaired"]
    printed = " ".join(r.stderr.split())  # rich wraps to the terminal's width
    for fragment in ("8 rows read -> 2 pairs", "removed: tie │ 2", "quarantined: invalid_json │ 1"):
        assert fragment in printed, fragment
    # raise (the default): exit status 2 and the message naming file and line
    r = run("convert", str(src), "--out", str(tmp_path / "x.jsonl"))
    assert r.returncode == 2
    assert f"{src}:8: invalid JSON" in " ".join(r.stderr.split())
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_convert_format_source_and_dataset_folder(tmp_path):
    out = tmp_path / "ds"
    r = run(
        "convert",
        str(FIX / "rewardbench.jsonl"),
        "--out",
        str(out),
        "--input-format",
        "trl",
        "--source",
        "rb",
        "--on-invalid",
        "raise",
    )
    assert r.returncode == 2 and "field 'chosen' is missing or null" in " ".join(r.stderr.split())
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    r = run("convert", str(FIX / "magpie_dpo.jsonl"), "--out", str(out), "--source", "magpie_air")
    assert r.returncode == 0, r.stderr
    t = read_pairs(out / "pairs.jsonl")  # --out is a folder; the format follows the input's
    assert set(t.column("source").to_pylist()) == {"magpie_air"} and t.num_rows == 3
    assert not (out / "quarantine.jsonl").exists() and not (out / "removed.jsonl").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == 3 and summary["pairs"] == 3


def test_cli_sidecar_names():
    from prefcurate.cli.convert import sidecar

    assert sidecar(Path("o/pairs.parquet"), "quarantine") == Path("o/pairs.quarantine.jsonl")
    assert sidecar(Path("o/pairs.jsonl.gz"), "removed") == Path("o/pairs.removed.jsonl")
    assert sidecar(Path("o/pairs"), "quarantine") == Path("o/pairs.quarantine.jsonl")


def test_carried_columns_with_canonical_names_must_fit_their_type(canonical):
    with pytest.raises(InvalidInputError, match="column 'score' is string; the canonical 'score' is double"):
        read_pairs(canonical.append_column("score", pa.array(["high"] * canonical.num_rows)))
    t = read_pairs(canonical.append_column("score", pa.array(range(canonical.num_rows))))
    assert t.schema.field("score").type == pa.float64()
    # a source column next to a format that has its own meaning for it is renamed
    rb = read_pairs(
        pa.table({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"], "subset": ["s"], "source": ["x"]})
    )
    assert rb.column("original_source").to_pylist() == ["x"] and rb.column("source").to_pylist() == [
        "rewardbench"
    ]
