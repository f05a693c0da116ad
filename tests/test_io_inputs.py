"""Regression tests of the issue "first contact": damaged compressed input,
real public data read with the default options (HH-RLHF), and the Magpie set
of pairs converted without ``source=``.  They use the public API only, so
that they ran (and failed) against the code before the fixes."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

import prefcurate
from prefcurate import InvalidInputError, convert_pairs, read_pairs, read_table

FIX = Path(__file__).parent / "fixtures"


def u(c: str) -> dict:
    return {"role": "user", "content": c}


def a(c: str) -> dict:
    return {"role": "assistant", "content": c}


def skywork_lines(n: int) -> bytes:
    rows = [
        {
            "chosen": [u(f"question {i} " * 20), a("good " * 40)],
            "rejected": [u(f"question {i} " * 20), a("bad")],
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def compress(kind: str, data: bytes, path: Path) -> None:
    if kind == "gz":
        path.write_bytes(gzip.compress(data))
    elif kind == "bz2":
        path.write_bytes(bz2.compress(data))
    elif kind == "xz":
        path.write_bytes(lzma.compress(data))
    else:
        with pa.output_stream(str(path), compression="zstd") as f:
            f.write(data)


# ---------------------------------------------------------------- damaged compressed files


@pytest.mark.parametrize("kind", ["gz", "zst", "bz2", "xz"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_compressed_input_is_an_invalid_input_error_naming_the_file(tmp_path, kind, damage):
    path = tmp_path / f"pairs.jsonl.{kind}"
    compress(kind, skywork_lines(3000), path)
    whole = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    else:
        path.write_bytes(b"\x00not compressed data at all\x00" * 50)
    for read in (
        read_pairs,
        read_table,
        lambda p: convert_pairs(p, on_invalid="quarantine"),
        lambda p: list(prefcurate.iter_pairs(p)),
    ):
        with pytest.raises(InvalidInputError) as e:
            read(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: ")
        assert "truncated or corrupt" in msg and "download or write it again" in msg


def test_damaged_json_document_and_csv_name_the_file(tmp_path):
    path = tmp_path / "pairs.json.gz"
    path.write_bytes(
        gzip.compress(json.dumps([json.loads(x) for x in skywork_lines(500).splitlines()]).encode())[:300]
    )
    with pytest.raises(InvalidInputError, match=rf"^{path}: the gzip stream is truncated or corrupt"):
        read_pairs(path)
    csv = tmp_path / "x.csv.xz"
    whole = lzma.compress(b"prompt,chosen,rejected\n" + b"p,c,r\n" * 5000)
    csv.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidInputError, match=rf"^{csv}: the xz stream is truncated or corrupt"):
        read_table(csv)


def test_intact_compressed_files_of_every_kind_read(tmp_path):
    for kind in ("gz", "zst", "bz2", "xz"):
        path = tmp_path / f"p.jsonl.{kind}"
        compress(kind, skywork_lines(7), path)
        assert read_pairs(path).num_rows == 7
        # and the writer writes every kind the reader reads
        out = prefcurate.write_pairs(read_pairs(path), tmp_path / f"back.jsonl.{kind}")
        assert read_pairs(out).num_rows == 7


# ---------------------------------------------------------------- real data, default options


def hh(*turns: str) -> str:
    return "".join(f"\n\n{t}" for t in turns)


HH_ROWS = [
    {
        "chosen": hh("Human: Hi there", "Assistant: Hello!"),
        "rejected": hh("Human: Hi there", "Assistant: Go away."),
    },
    # the chosen transcript ends with an empty assistant turn (as 4 rows of the real harmless test set)
    {
        "chosen": hh("Human: What is 2+2?", "Assistant: 4", "Human: And 3+3?", "Assistant:"),
        "rejected": hh("Human: What is 2+2?", "Assistant: 4", "Human: And 3+3?", "Assistant: 7"),
    },
    {
        "chosen": hh("Human: Name a fruit", "Assistant: Apple"),
        "rejected": hh("Human: Name a fruit", "Assistant: Rock"),
    },
    # two human turns in a row (turn order problems: 9 more rows of the real file)
    {
        "chosen": hh("Human: Help me", "Human: Please?", "Assistant: Sure."),
        "rejected": hh("Human: Help me", "Human: Please?", "Assistant: No."),
    },
    {
        "chosen": hh("Human: Thanks", "Assistant: You're welcome"),
        "rejected": hh("Human: Thanks", "Assistant: Whatever"),
    },
]


@pytest.fixture()
def hh_file(tmp_path) -> Path:
    path = tmp_path / "harmless-base-test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HH_ROWS), encoding="utf-8")
    return path


def test_hh_rlhf_with_content_problems_reads_with_default_options(hh_file):
    with pytest.warns(UserWarning) as w:
        t = read_pairs(hh_file)
    assert t.num_rows == 3
    assert [m[0]["content"] for m in t.column("chosen").to_pylist()] == ["Hi there", "Name a fruit", "Thanks"]
    msgs = [str(x.message) for x in w if "invalid" in str(x.message)]
    assert len(msgs) == 1
    msg = msgs[0]
    # how many, why, and how to get them
    assert msg.startswith(f"{hh_file}: 2 of 5 rows were invalid and left out (")
    assert "1 empty_content" in msg and "1 bad_turn_order" in msg
    assert "convert_pairs(...).quarantine" in msg and "on_invalid='raise'" in msg


def test_hh_rlhf_quarantine_holds_the_bad_rows_with_reasons(hh_file):
    with pytest.warns(UserWarning, match="2 of 5 rows were invalid"):
        res = convert_pairs(hh_file)
    assert res.pairs.num_rows == 3 and res.format == "hh_rlhf"
    q = res.quarantine.to_pylist()
    assert [(r["line"], r["field"], r["reason"]) for r in q] == [
        (2, "chosen[3].content", "empty_content"),
        (4, "chosen[1].role", "bad_turn_order"),
    ]
    assert all(r["file"] == str(hh_file) and r["record"] for r in q)
    # strict use: the first invalid row raises, naming file and line
    with pytest.raises(InvalidInputError, match=rf"^{hh_file}:2: field 'chosen\[3\].content' is empty"):
        read_pairs(hh_file, on_invalid="raise")
    # streaming warns too, once the stream is read
    with pytest.warns(UserWarning, match="2 of 5 rows were invalid"):
        assert sum(b.num_rows for b in prefcurate.iter_pairs(hh_file)) == 3


def test_malformed_records_still_raise_with_file_and_line_by_default(hh_file):
    lines = hh_file.read_text(encoding="utf-8").splitlines()
    lines.insert(2, '{"chosen": "\\n\\nHuman: hi", "rejected": ')  # broken JSON on line 3
    hh_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=rf"^{hh_file}:3: invalid JSON"):
        read_pairs(hh_file)
    # a value of the wrong type
    wrong = hh_file.with_name("wrong.jsonl")
    rows = [*HH_ROWS[:2], {"chosen": 5, "rejected": HH_ROWS[0]["rejected"]}]
    wrong.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=rf"^{wrong}:3: field 'chosen' is a number"):
        read_pairs(wrong)
    # explicit quarantine takes every invalid row
    res = convert_pairs(hh_file, on_invalid="quarantine")
    assert sorted(res.quarantine.column("reason").to_pylist()) == [
        "bad_turn_order",
        "empty_content",
        "invalid_json",
    ]


# ---------------------------------------------------------------- the Magpie set


@pytest.fixture()
def magpie_records() -> list[dict]:
    return [json.loads(x) for x in open(FIX / "magpie_dpo.jsonl", encoding="utf-8")]


def write_json(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name,source",
    [
        ("Magpie-Air-DPO-100K-v0.1.jsonl", "magpie_air"),
        ("magpie_pro.jsonl", "magpie_pro"),
        ("Magpie-Pro-DPO-100K-v0.1/data/train-00000-of-00001.jsonl", "magpie_pro"),
        ("Magpie-Llama-3.1-Pro-DPO-100K-v0.1/data/train-00000-of-00004.jsonl", "magpie_pro_llama3.1"),
        ("datasets--Magpie-Align--Magpie-Air-DPO-100K-v0.1/snapshots/abc/data/train.jsonl", "magpie_air"),
    ],
)
def test_magpie_set_from_the_file_name(tmp_path, magpie_records, name, source):
    path = write_json(tmp_path / name, magpie_records)
    t = read_pairs(path)
    assert set(t.column("source").to_pylist()) == {source}
    # the skywork-magpie preset has an offset for each set it names
    if source in ("magpie_air", "magpie_pro"):
        assert source in prefcurate.SKYWORK_MAGPIE["offsets"]
    # an explicit source= still wins
    assert set(read_pairs(path, source="mine").column("source").to_pylist()) == {"mine"}


def test_magpie_set_from_the_records(tmp_path, magpie_records):
    gen = {
        "meta-llama/Meta-Llama-3-8B-Instruct": "magpie_air",
        "meta-llama/Meta-Llama-3-70B-Instruct": "magpie_pro",
        "meta-llama/Meta-Llama-3.1-70B-Instruct": "magpie_pro_llama3.1",
    }
    recs = []
    for model in gen:
        for r in magpie_records:
            recs.append(
                dict(
                    r,
                    uuid=f"{r['uuid']}-{model}",
                    gen_input_configs={"temperature": 1.0, "input_generator": model},
                )
            )
    # records whose responses come from Llama 3.1 (the Llama-3.1-Pro DPO set)
    recs.append(
        dict(
            magpie_records[0],
            uuid="r31",
            gen_response_configs={"output_generator": "meta-llama/Meta-Llama-3.1-8B-Instruct"},
        )
    )
    # the data wins over a neutral or even a contradicting file name
    t = read_pairs(write_json(tmp_path / "magpie_air.jsonl", recs))
    got = dict(zip(t.column("id").to_pylist(), t.column("source").to_pylist()))
    for model, source in gen.items():
        assert {got[f"{r['uuid']}-{model}"] for r in magpie_records} == {source}
    assert got["r31"] == "magpie_pro_llama3.1"


def test_magpie_set_unknown_is_said_not_silent(tmp_path, shared):
    # the real records' responses come from Llama 3 8B (Air and Pro alike) and
    # their file name names no set
    path = shared / "pairs" / "magpie_examples_5res_armorm.json"
    with pytest.warns(
        UserWarning, match=r"5 magpie_dpo pairs are labelled source='magpie_dpo'.*pass source="
    ):
        t = read_pairs(path)
    assert set(t.column("source").to_pylist()) == {"magpie_dpo"}
    copy = tmp_path / "Magpie-Air-DPO-100K-v0.1" / "examples.json"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert set(read_pairs(copy).column("source").to_pylist()) == {"magpie_air"}


def test_magpie_set_from_a_hub_name(monkeypatch, magpie_records):
    import datasets

    def fake_load(name, split=None, **kw):
        ds = datasets.Dataset.from_list(magpie_records)
        return ds if split else datasets.DatasetDict({"train": ds})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the reachability check steps aside: the fake answers
    t = read_pairs("Magpie-Align/Magpie-Llama-3.1-Pro-DPO-100K-v0.1", split="train")
    assert set(t.column("source").to_pylist()) == {"magpie_pro_llama3.1"}
    t = read_pairs("Magpie-Align/Magpie-Air-DPO-100K-v0.1")
    assert set(t.column("source").to_pylist()) == {"magpie_air"}


def test_magpie_variant_names():
    from prefcurate.io.adapters.magpie import variant_from_model, variant_from_name

    assert variant_from_name("magpie-ultra-v0.1") == "magpie_ultra"
    assert variant_from_name("Magpie-Llama-3.1-Pro-DPO-100K-v0.1") == "magpie_pro_llama3.1"
    assert variant_from_name("magpie_pro_llama3.1.jsonl") == "magpie_pro_llama3.1"
    assert variant_from_name("Magpie-Pro-DPO-100K-v0.1") == "magpie_pro"
    assert variant_from_name("magpie_air_dpo.parquet") == "magpie_air"
    assert variant_from_name("repair_prompts.jsonl") is None  # "air" must be a word
    assert variant_from_name("magpie_examples_5res_armorm.json") is None
    assert variant_from_model("meta-llama/Meta-Llama-3-8B-Instruct", generated="instruction") == "magpie_air"
    assert variant_from_model("meta-llama/Meta-Llama-3-8B-Instruct", generated="response") is None
    assert (
        variant_from_model("meta-llama/Llama-3.1-405B-Instruct-FP8", generated="instruction")
        == "magpie_ultra"
    )
    assert variant_from_model("Qwen/Qwen2-72B-Instruct", generated="instruction") is None
