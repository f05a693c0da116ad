"""write_pairs layouts (issue "Output that trainers read as written"): the
columns of each layout, the margin column, the round trip through
read_pairs, LLaMA-Factory's dataset_info.json, the keys OpenRLHF and
LLaMA-Factory read, and one training step of TRL's RewardTrainer and
DPOTrainer on a file written with the default layout."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED

from prefcurate import InvalidInputError, read_pairs, write_pairs
from prefcurate.io import LAYOUTS, layout_table

FIX = Path(__file__).parent / "fixtures"
TOKENIZER = SHARED / "tokenizers" / "torchtune_tiny_bpe_tokenizer.json"
#: column names trainers give a meaning to (TRL: prompt / completion / messages
#: / margin / tools / chat_template_kwargs; OpenRLHF: margin; reward data: score, label)
RESERVED = {"prompt", "margin", "score", "label", "completion", "messages", "tools", "chat_template_kwargs"}


@pytest.fixture(scope="module")
def pairs() -> pa.Table:
    """Canonical pairs of several formats: single and multi-turn, a system
    message, extra columns (scores, categories, nested values, nulls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [
            read_pairs(FIX / n)
            for n in ("skywork.jsonl", "helpsteer2.jsonl", "trl_conversational.jsonl", "magpie_ultra.jsonl")
        ]
    return pa.concat_tables(parts, promote_options="permissive")


def rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(x) for x in open(path, encoding="utf-8")]


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["p.jsonl", "p.parquet", "p.json"])
def test_every_layout_reads_back_unchanged(tmp_path, pairs, layout, name):
    path = write_pairs(pairs, tmp_path / name, layout=layout)
    back = read_pairs(path)
    # the same pairs, sources, ids and extra columns, in the same order
    assert back.column_names == pairs.column_names
    assert back.to_pylist() == pairs.to_pylist()
    for col in ("id", "source", "chosen", "rejected", "prompt"):
        assert back.column(col).equals(pairs.column(col)), col


@pytest.mark.parametrize("layout", ["trl", "skywork"])
def test_layouts_as_saved_datasets_and_compressed_files(tmp_path, pairs, layout):
    for name in ("ds", "p.jsonl.zst"):
        back = read_pairs(write_pairs(pairs, tmp_path / f"{layout}-{name}", layout=layout))
        assert back.select(["id", "source", "chosen", "rejected", "prompt"]).equals(
            pairs.select(["id", "source", "chosen", "rejected", "prompt"])
        )


def test_write_pairs_keeps_its_old_callers_working(tmp_path, pairs):
    # write_pairs(table, path): the trl layout, which read_pairs reads back
    path = write_pairs(pairs, tmp_path / "x.jsonl")
    assert set(rows(path)[0]) >= {"chosen", "rejected", "pc_id", "pc_source"}
    assert read_pairs(path).equals(pairs)
    with pytest.raises(InvalidInputError, match="unknown layout 'nope'"):
        write_pairs(pairs, tmp_path / "y.jsonl", layout="nope")
    with pytest.raises(InvalidInputError, match="must be a column of message lists"):
        write_pairs(pa.table({"chosen": ["a"], "rejected": ["b"]}), tmp_path / "z.jsonl")


# ---------------------------------------------------------------- the columns of each layout


def test_trl_layout_columns(tmp_path, pairs):
    r = rows(write_pairs(pairs, tmp_path / "trl.jsonl"))
    names = list(r[0])
    assert names[:2] == ["chosen", "rejected"]
    assert all(n.startswith("pc_") for n in names[2:]) and not RESERVED & set(names)
    assert {"pc_id", "pc_source", "pc_score", "pc_category", "pc_chosen_score"} <= set(names)
    canon = pairs.to_pylist()
    for got, want in zip(r, canon):
        assert got["chosen"] == want["chosen"] and got["rejected"] == want["rejected"]
        assert (got["pc_id"], got["pc_source"]) == (want["id"], want["source"])


def test_trl_explicit_layout_columns(tmp_path, pairs):
    r = rows(write_pairs(pairs, tmp_path / "x.parquet", layout="trl-explicit"))
    assert list(r[0])[:3] == ["prompt", "chosen", "rejected"]
    assert not (RESERVED - {"prompt"}) & set(r[0])
    for got, want in zip(r, pairs.to_pylist()):
        assert got["prompt"] == want["chosen"][:-1]  # the prompt turns as messages
        assert got["chosen"] == want["chosen"][-1:] and got["rejected"] == want["rejected"][-1:]
        assert got["chosen"][0]["role"] == "assistant"


def test_openrlhf_and_skywork_layout_columns(tmp_path, pairs):
    r = rows(write_pairs(pairs, tmp_path / "o.jsonl", layout="openrlhf"))
    assert list(r[0])[:2] == ["chosen", "rejected"] and not RESERVED & set(r[0])
    s = rows(write_pairs(pairs, tmp_path / "s.jsonl", layout="skywork"))
    assert list(s[0])[:3] == ["chosen", "rejected", "source"] and "pc_id" in s[0] and "pc_source" not in s[0]
    assert [x["source"] for x in s] == pairs.column("source").to_pylist()


def test_llamafactory_layout_columns_and_dataset_info(tmp_path, pairs):
    info_path = tmp_path / "dataset_info.json"
    info_path.write_text(json.dumps({"mine": {"file_name": "mine.json"}}), encoding="utf-8")
    path = write_pairs(pairs, tmp_path / "curated.jsonl", layout="llamafactory")
    r = rows(path)
    assert list(r[0])[:3] == ["conversations", "chosen", "rejected"] and not RESERVED & set(r[0])
    for got, want in zip(r, pairs.to_pylist()):
        tag = {"user": "human", "assistant": "gpt", "system": "system"}
        assert got["conversations"] == [
            {"from": tag[m["role"]], "value": m["content"]} for m in want["chosen"][:-1]
        ]
        assert got["chosen"] == {"from": "gpt", "value": want["chosen"][-1]["content"]}
        assert got["rejected"] == {"from": "gpt", "value": want["rejected"][-1]["content"]}
    info = json.loads(info_path.read_text(encoding="utf-8"))
    assert info["mine"] == {"file_name": "mine.json"}  # other entries are kept
    assert info["curated"] == {
        "file_name": "curated.jsonl",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "system_tag": "system",
        },
    }
    write_pairs(pairs, tmp_path / "other.parquet", layout="llamafactory", dataset_name="prefs")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    assert set(info) == {"mine", "curated", "prefs"} and info["prefs"]["file_name"] == "other.parquet"
    for bad in ("ds", "x.jsonl.gz"):
        with pytest.raises(InvalidInputError, match="LLaMA-Factory reads uncompressed"):
            write_pairs(pairs, tmp_path / bad, layout="llamafactory")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "dataset_info.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="cannot merge into it"):
        write_pairs(pairs, tmp_path / "b" / "x.jsonl", layout="llamafactory")


# ---------------------------------------------------------------- margin


def test_margin_only_when_asked_and_never_null(tmp_path, pairs):
    scored = pairs.append_column("margin", pa.array(np.arange(pairs.num_rows, dtype=float) / 10))
    # not asked: a margin column of the pairs is bookkeeping, not TRL's margin
    assert "margin" not in layout_table(scored) and "pc_margin" in layout_table(scored).column_names
    t = layout_table(scored, margin=True)
    assert t.column("margin").to_pylist() == scored.column("margin").to_pylist()
    assert "pc_margin" not in t.column_names
    # from another column (and the margin column is still bookkeeping)
    has = scored.filter(scored.column("chosen_score").is_valid())
    t = layout_table(has, "trl-explicit", margin="chosen_score")
    assert t.column("margin").to_pylist() == has.column("chosen_score").to_pylist()
    assert "pc_margin" in t.column_names and "pc_chosen_score" in t.column_names
    n, unscored = pairs.num_rows, pairs.column("chosen_score").null_count
    with pytest.raises(InvalidInputError, match=rf"'chosen_score' is null or NaN in {unscored} of {n} rows"):
        layout_table(pairs, margin="chosen_score")  # null for the pairs without scores
    with pytest.raises(InvalidInputError, match="no 'margin' column"):
        layout_table(pairs, margin=True)
    nan = scored.set_column(
        scored.column_names.index("margin"), "margin", pa.array([np.nan] * scored.num_rows)
    )
    with pytest.raises(InvalidInputError, match=f"null or NaN in {n} of {n} rows"):
        layout_table(nan, margin=True)
    with pytest.raises(InvalidInputError, match="layout 'llamafactory' has no margin column"):
        layout_table(scored, "llamafactory", margin=True)
    back = read_pairs(write_pairs(scored, tmp_path / "m.jsonl", margin=True))
    assert back.column("margin").to_pylist() == scored.column("margin").to_pylist()


# ---------------------------------------------------------------- OpenRLHF and LLaMA-Factory


def chatml(messages: list[dict], tokenize: bool = False, add_generation_prompt: bool = False) -> str:
    """A chat template, as tokenizer.apply_chat_template(tokenize=False) renders it."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def openrlhf_preprocess(data: dict, prompt_key: str | None, chosen_key: str, rejected_key: str, is_dpo: bool):
    """The key handling of OpenRLHF's reward / DPO dataset with --apply_chat_template,
    as in OpenRLHF/OpenRLHF openrlhf/datasets/reward_dataset.py (preprocess_data,
    commit 365daa76d2b5520991cb31ef751b9149acf499f8; the CLI defaults of
    openrlhf/cli/train_rm.py: --prompt_key None, --chosen_key chosen,
    --rejected_key rejected; `margin` read when present and not None)."""
    apply_chat_template = chatml
    if prompt_key:
        prompt = apply_chat_template(data[prompt_key], tokenize=False, add_generation_prompt=True)
        chosen = apply_chat_template(data[prompt_key] + data[chosen_key], tokenize=False)[len(prompt) :]
        rejected = apply_chat_template(data[prompt_key] + data[rejected_key], tokenize=False)[len(prompt) :]
    else:
        prompt = ""
        chosen = apply_chat_template(data[chosen_key], tokenize=False)
        rejected = apply_chat_template(data[rejected_key], tokenize=False)
        if is_dpo:
            prompt = apply_chat_template(data[chosen_key][:-1], tokenize=False, add_generation_prompt=True)
            chosen = chosen[len(prompt) :]
            rejected = rejected[len(prompt) :]
    margin = data["margin"] if data.get("margin") is not None else 0
    return prompt, chosen, rejected, margin


@pytest.mark.parametrize("is_dpo", [False, True])
def test_openrlhf_reads_the_openrlhf_layout_with_its_default_keys(tmp_path, pairs, is_dpo):
    scored = pairs.append_column("margin", pa.array(np.linspace(0.1, 1.0, pairs.num_rows)))
    for margin in (False, True):
        path = write_pairs(scored, tmp_path / f"o{margin}.jsonl", layout="openrlhf", margin=margin)
        for data, want in zip(rows(path), scored.to_pylist()):
            prompt, chosen, rejected, m = openrlhf_preprocess(data, None, "chosen", "rejected", is_dpo)
            full_c, full_r = chatml(want["chosen"]), chatml(want["rejected"])
            assert prompt + chosen == full_c and prompt + rejected == full_r
            if is_dpo:
                assert prompt == chatml(want["chosen"][:-1], add_generation_prompt=True)
                assert chosen == f"{want['chosen'][-1]['content']}<|im_end|>\n"
            assert m == (want["margin"] if margin else 0)  # no margin column unless asked


def llamafactory_convert(example: dict, attr: dict) -> dict[str, Any]:
    """LLaMA-Factory's SharegptDatasetConverter for a ranking example, with the
    columns and tags of a dataset_info.json entry, as in hiyouga/LLaMA-Factory
    src/llamafactory/data/converter.py (and src/llamafactory/data/parser.py for
    the entry's defaults; data/README.md for the format)."""
    cols, tags = attr.get("columns", {}), attr.get("tags", {})
    role_tag, content_tag = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user_tag, assistant_tag = tags.get("user_tag", "human"), tags.get("assistant_tag", "gpt")
    observation_tag, function_tag = (
        tags.get("observation_tag", "observation"),
        tags.get("function_tag", "function_call"),
    )
    system_tag = tags.get("system_tag", "system")
    tag_mapping = {user_tag: "user", assistant_tag: "assistant", system_tag: "system"}
    accept_tags = ((user_tag, observation_tag), (assistant_tag, function_tag))
    messages = example[cols.get("messages", "conversations")]
    system = ""
    if system_tag and len(messages) != 0 and messages[0][role_tag] == system_tag:
        system = messages[0][content_tag]
        messages = messages[1:]
    elif cols.get("system"):
        system = example[cols["system"]]
    broken = False
    aligned = []
    for turn_idx, message in enumerate(messages):
        if message[role_tag] not in accept_tags[turn_idx % 2]:
            broken = True
            break
        aligned.append({"role": tag_mapping[message[role_tag]], "content": message[content_tag]})
    if attr.get("ranking") and len(aligned) % 2 == 0:
        broken = True
    chosen, rejected = example[cols["chosen"]], example[cols["rejected"]]
    assert isinstance(chosen, dict) and isinstance(rejected, dict)  # a pairwise example
    if chosen[role_tag] not in accept_tags[-1] or rejected[role_tag] not in accept_tags[-1]:
        broken = True
    return {
        "broken": broken,
        "_prompt": aligned,
        "_response": [
            {"role": tag_mapping[chosen[role_tag]], "content": chosen[content_tag]},
            {"role": tag_mapping[rejected[role_tag]], "content": rejected[content_tag]},
        ],
        "_system": system,
    }


@pytest.mark.parametrize("name", ["lf.json", "lf.jsonl", "lf.parquet"])
def test_llamafactory_reads_the_llamafactory_layout(tmp_path, pairs, name):
    import datasets

    write_pairs(pairs, tmp_path / name, layout="llamafactory")
    # LLaMA-Factory: dataset_info.json in dataset_dir names the file; the file
    # is loaded with datasets' json / parquet builder
    attr = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))["lf"]
    kind = {"json": "json", "jsonl": "json", "parquet": "parquet"}[attr["file_name"].split(".")[-1]]
    ds = datasets.load_dataset(kind, data_files=str(tmp_path / attr["file_name"]), split="train")
    assert attr["ranking"] is True and attr["formatting"] == "sharegpt"
    for example, want in zip(ds, pairs.to_pylist()):
        out = llamafactory_convert(example, attr)
        assert not out["broken"]
        sys_msgs = [m for m in want["chosen"] if m["role"] == "system"]
        assert out["_system"] == (sys_msgs[0]["content"] if sys_msgs else "")
        assert out["_prompt"] == [m for m in want["chosen"][:-1] if m["role"] != "system"]
        assert out["_response"] == [want["chosen"][-1], want["rejected"][-1]]


# ---------------------------------------------------------------- TRL trains on what write_pairs writes


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def trl_setup():
    """A real tokenizer (the toy BPE of ../shared/data) with a chat template,
    and a tiny Llama config."""
    pytest.importorskip("trl")
    if not TOKENIZER.exists():
        pytest.skip(f"tokenizer not found at {TOKENIZER} (set PREFCURATE_SHARED_DATA)")
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER), eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.chat_template = CHATML
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    return tok, config


def train_one_step(kind: str, path: Path, tok: Any, config: Any, out: Path) -> dict:
    import datasets
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    torch.manual_seed(0)
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    common = dict(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        max_length=256,
    )
    if kind == "reward":
        config = copy.deepcopy(config)
        config.num_labels = 1
        trainer: Any = RewardTrainer(
            model=LlamaForSequenceClassification(config),
            args=RewardConfig(**common),
            train_dataset=ds,
            processing_class=tok,
        )
    else:
        policy = LlamaForCausalLM(config)
        trainer = DPOTrainer(
            model=policy,
            ref_model=copy.deepcopy(policy),
            args=DPOConfig(**common),
            train_dataset=ds,
            processing_class=tok,
        )
    result = trainer.train()
    assert result.global_step == 1 and np.isfinite(result.training_loss)
    return trainer.state.log_history[0]


@pytest.mark.parametrize("kind", ["reward", "dpo"])
@pytest.mark.parametrize("layout", ["trl", "trl-explicit"])
def test_trl_trainers_train_on_written_pairs(tmp_path, trl_setup, pairs, kind, layout):
    tok, config = trl_setup
    path = write_pairs(pairs, tmp_path / "train.jsonl", **({} if layout == "trl" else {"layout": layout}))
    logs = train_one_step(kind, path, tok, config, tmp_path / "out")
    assert "loss" in logs


def test_trl_reward_trainer_reads_the_margin_column(tmp_path, trl_setup, pairs):
    tok, config = trl_setup
    scored = pairs.append_column("margin", pa.array(np.full(pairs.num_rows, 1000.0)))
    plain = train_one_step("reward", write_pairs(scored, tmp_path / "a.jsonl"), tok, config, tmp_path / "a")
    with_margin = train_one_step(
        "reward", write_pairs(scored, tmp_path / "b.jsonl", margin=True), tok, config, tmp_path / "b"
    )
    # -logsigmoid(r_c - r_r - 1000) is about 1000: TRL used the margin
    assert plain["loss"] < 5 < 900 < with_margin["loss"]


def test_trl_real_pairs_from_shared_data(tmp_path, trl_setup, shared):
    tok, config = trl_setup
    real = read_pairs(shared / "pairs" / "stack_exchange_paired_tiny.json")
    path = write_pairs(real.slice(0, 4), tmp_path / "se.jsonl")
    assert "loss" in train_one_step("dpo", path, tok, config, tmp_path / "out")
