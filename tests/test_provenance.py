"""Provenance in metrics.json: package versions, the git commit, the data files' checksums."""

import hashlib
import re
import shutil
import subprocess

import pytest
import torch

from conftest import compose_cfg, tiny_overrides
from fewtune.config import PROJECT_ROOT
from fewtune.jobs import provenance


def test_versions_name_every_package():
    found = provenance.versions()
    assert set(found) == {"python", *provenance.PACKAGES}
    assert found["torch"] == torch.__version__
    assert found["fewtune"] is not None and re.fullmatch(r"\d+\.\d+\.\d+", found["python"])


def test_git_state_is_null_without_a_checkout_or_without_git(tmp_path, monkeypatch):
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}
    if (PROJECT_ROOT / ".git").exists():
        state = provenance.git_state()
        assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) and isinstance(state["dirty"], bool)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    (tmp_path / ".git").mkdir()
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_dirty_means_the_code_or_config_differs_from_the_commit(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text("{}")  # an archived result: not the code
    (tmp_path / "README.md").write_text("notes")
    assert provenance.git_state(tmp_path)["dirty"] is False
    (tmp_path / "src" / "model.py").write_text("x = 2\n")
    assert provenance.git_state(tmp_path)["dirty"] is True


def test_data_checksums_are_those_of_the_files_read(data_dir, tiny_masked, tmp_path):
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt", "test_split=dev"), tmp_path)
    files = provenance.data_files(cfg)
    assert [f["file"] for f in files.values()] == [
        "k-shot/SST-2/4-13/train.tsv",
        "k-shot/SST-2/4-13/dev.tsv",
        "k-shot/SST-2/4-13/dev.tsv",
    ]
    for entry in files.values():
        assert entry["md5"] == hashlib.md5((data_dir / entry["file"]).read_bytes()).hexdigest()
    assert provenance.collect(files, {"commit": None, "dirty": None})["data"] == files


def test_every_job_records_the_code_its_process_started_with(
    data_dir, tiny_masked, tmp_path, monkeypatch
):
    from fewtune.jobs.resume import Job

    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt"), tmp_path)
    start, later = {"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}
    provenance.code_state.cache_clear()
    monkeypatch.setattr(provenance, "git_state", lambda: start)
    try:
        first = Job(cfg)
        monkeypatch.setattr(
            provenance, "git_state", lambda: later
        )  # the checkout moves on mid-multirun
        assert first.record()["provenance"]["git"] == start
        assert Job(cfg).record()["provenance"]["git"] == start
    finally:
        provenance.code_state.cache_clear()
