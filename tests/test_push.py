"""``prefcurate push OUT_DIR org/name``: everything up to the upload on a real
run's folder, the upload itself with HfApi's methods mocked (the Hub is not
reachable here), and user errors as one ``error:`` line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("huggingface_hub")

import huggingface_hub as hub
from huggingface_hub.utils import filter_repo_objects

from prefcurate import cli
from prefcurate.cli.push import PushError, push_files
from prefcurate.pipeline import Pipeline, Recipe

SOURCES = cli.demo_dir() / "sources"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished run: two sources, a filter, decontamination (JSON Lines pairs)."""
    out = tmp_path_factory.mktemp("run") / "out"
    recipe = Recipe.from_dict(
        {
            "name": "small",
            "sources": [
                {
                    "name": "magpie_ultra",
                    "path": str(SOURCES / "magpie_ultra.jsonl"),
                    "format": "magpie_ultra",
                },
                {
                    "name": "wildguard",
                    "path": str(SOURCES / "wildguard.jsonl"),
                    "format": "wildguardmix",
                    "where": {"adversarial": True},
                },
            ],
            "decontaminate": {"benchmark": str(cli.demo_dir() / "benchmark.jsonl")},
            "output": {"format": "jsonl"},
        }
    )
    Pipeline(recipe, out).run()
    return out


@pytest.fixture
def folder(run_dir, tmp_path) -> Path:
    """A copy of the run's folder that a test may damage."""
    return Path(shutil.copytree(run_dir, tmp_path / "out"))


EXPECTED = {
    "README.md",
    "small.jsonl",
    "summary.json",
    "report.md",
    "report.html",
    "removed/read-wildguard.parquet",
    "removed/filter-wildguard.parquet",
    "removed/decontaminate.parquet",
}


def test_push_files_are_the_run_s_outputs(run_dir):
    files = push_files(run_dir)
    plots = {f for f in files if f.startswith("plots/")}
    assert set(files) - plots == EXPECTED
    assert plots and all(f.endswith(".png") for f in plots)
    assert not any(f.startswith(".cache") for f in files)  # the stage cache stays home
    assert (run_dir / ".cache").is_dir()


class FakeHub:
    """Records HfApi.create_repo / upload_folder calls (monkeypatched onto HfApi)."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tokens: list[Any] = []
        fake = self
        init = hub.HfApi.__init__

        def __init__(api, *args, **kwargs):
            fake.tokens.append(kwargs.get("token"))
            init(api, *args, **kwargs)

        def create_repo(api, repo_id, **kwargs):
            fake.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/datasets/{repo_id}"

        def upload_folder(api, **kwargs):
            fake.calls.append(("upload_folder", kwargs))
            return "commit"

        monkeypatch.setattr(hub.HfApi, "__init__", __init__)
        monkeypatch.setattr(hub.HfApi, "create_repo", create_repo)
        monkeypatch.setattr(hub.HfApi, "upload_folder", upload_folder)

    def uploaded(self) -> set[str]:
        """The files upload_folder would send: its allow_patterns over the folder."""
        ((_, kw),) = [c for c in self.calls if c[0] == "upload_folder"]
        root = Path(kw["folder_path"])
        every = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        return set(filter_repo_objects(every, allow_patterns=kw["allow_patterns"]))


def test_push_creates_the_dataset_repo_and_uploads_the_folder(run_dir, monkeypatch, capsys):
    fake = FakeHub(monkeypatch)
    assert cli.main(["push", str(run_dir), "org/curated", "--private", "--token", "hf_test"]) == 0
    assert [c[0] for c in fake.calls] == ["create_repo", "upload_folder"]
    create, upload = fake.calls[0][1], fake.calls[1][1]
    assert create == {"repo_id": "org/curated", "repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["repo_id"] == "org/curated" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == run_dir
    assert upload["delete_patterns"] == ["removed/*", "plots/*"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (
        upload["commit_message"]
        == f"prefcurate {summary['prefcurate']}: small, {summary['output_rows']} pairs"
    )
    assert fake.uploaded() == set(push_files(run_dir)) >= EXPECTED
    assert fake.tokens == ["hf_test"]
    assert "https://huggingface.co/datasets/org/curated" in capsys.readouterr().err


def test_push_takes_the_token_from_the_environment(run_dir, monkeypatch):
    fake = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert cli.main(["push", str(run_dir), "org/curated"]) == 0
    assert fake.tokens == ["hf_env"] and fake.calls[0][1]["private"] is False


def test_dry_run_lists_the_files_and_uploads_nothing(run_dir, monkeypatch, capsys):
    fake = FakeHub(monkeypatch)
    assert cli.main(["push", str(run_dir), "org/curated", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert fake.calls == [] and all(f"  {f}\n" in err for f in EXPECTED)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_folder_that_is_not_a_finished_run_says_what_to_run_first(folder, tmp_path, monkeypatch, capsys):
    fake = FakeHub(monkeypatch)
    run = ["push", "", "org/curated", "--token", "hf_test"]
    run[1] = str(tmp_path / "nope")
    assert cli.main(run) == 2
    assert "no such folder; run `prefcurate run RECIPE --out" in error_line(capsys)
    # the card is the run's last file: without it the run did not finish
    (folder / "README.md").rename(folder / "README.bak")
    run[1] = str(folder)
    assert cli.main(run) == 2
    assert "no dataset card (README.md); run `prefcurate run RECIPE" in error_line(capsys)
    (folder / "README.md").write_text("# my notes\n")
    assert cli.main(run) == 2
    assert "no YAML front matter: not a card written by prefcurate" in error_line(capsys)
    (folder / "README.bak").rename(folder / "README.md")
    (folder / "small.jsonl").unlink()
    assert cli.main(run) == 2
    line = error_line(capsys)
    assert (
        "small.jsonl: missing (config 'default' of README.md names it)" in line and "prefcurate run" in line
    )
    assert fake.calls == []


def test_a_missing_removed_file_or_summary_is_an_error(folder, monkeypatch, capsys):
    FakeHub(monkeypatch)
    (folder / "removed" / "decontaminate.parquet").unlink()
    assert cli.main(["push", str(folder), "org/curated", "--token", "t"]) == 2
    assert "decontaminate.parquet: missing (summary.json counts its rows)" in error_line(capsys)
    (folder / "summary.json").unlink()
    with pytest.raises(PushError, match="summary.json: missing or unreadable"):
        push_files(folder)


@pytest.mark.parametrize("repo", ["curated", "org/", "a/b/c", "org/bad name"])
def test_a_bad_repository_name_is_an_error(run_dir, monkeypatch, capsys, repo):
    fake = FakeHub(monkeypatch)
    assert cli.main(["push", str(run_dir), repo, "--token", "t"]) == 2
    assert repr(repo) in error_line(capsys) and fake.calls == []


def test_no_token_is_an_error(run_dir, monkeypatch, capsys, tmp_path):
    fake = FakeHub(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    assert cli.main(["push", str(run_dir), "org/curated"]) == 2
    assert "no Hugging Face token: pass --token, set HF_TOKEN" in error_line(capsys)
    assert fake.calls == []


def test_the_hub_s_refusal_is_one_error_line(run_dir, monkeypatch, capsys):
    FakeHub(monkeypatch)

    def refuse(api, repo_id, **kwargs):
        response = SimpleNamespace(headers={}, request=None)  # what the error reads of an HTTP response
        raise hub.errors.HfHubHTTPError(
            "403 Forbidden: you cannot write to org\n(Request ID: abc)", response=response
        )

    monkeypatch.setattr(hub.HfApi, "create_repo", refuse)
    assert cli.main(["push", str(run_dir), "org/curated", "--token", "t"]) == 2
    line = error_line(capsys)
    assert line == (
        "error: push to org/curated: creating the dataset repository failed: "
        "403 Forbidden: you cannot write to org (Request ID: abc)"
    )

    def offline(api, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(hub.HfApi, "create_repo", lambda api, repo_id, **kw: repo_id)
    monkeypatch.setattr(hub.HfApi, "upload_folder", offline)
    assert cli.main(["push", str(run_dir), "org/curated", "--token", "t"]) == 2
    assert "uploading failed: Name or service not known" in error_line(capsys)


def test_a_bug_is_not_hidden_as_a_hub_error(run_dir, monkeypatch):
    FakeHub(monkeypatch)

    def bug(api, repo_id, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(hub.HfApi, "create_repo", bug)
    with pytest.raises(KeyError):
        cli.main(["push", str(run_dir), "org/curated", "--token", "t"])
