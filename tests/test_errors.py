"""Bad input gives one clear line, from the Python API and from the command line."""

import os
import subprocess
import sys

import pytest

from conftest import compose_cfg, tiny_overrides
from fewtune.errors import FewtuneError
from fewtune.models.backbones import detect_family
from fewtune.run.build import build


def run_cli(*args, cwd=None, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "fewtune.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_minilm_cannot_do_prompting(data_dir, tmp_path):
    cfg = compose_cfg(
        ["model=minilm-l6", "method=prompt", f"paths.data_dir={data_dir}", "k=4", "seed=13"],
        tmp_path,
    )
    with pytest.raises(
        FewtuneError, match="model 'minilm-l6' has no trained LM head.*use it with method=finetune"
    ):
        build(cfg)


def test_unreachable_hub_names_the_offline_backbones(data_dir, tmp_path):
    cfg = compose_cfg(
        ["model=roberta-large", f"paths.data_dir={data_dir}", "k=4", "seed=13"], tmp_path
    )
    with pytest.raises(
        FewtuneError,
        match="could not load 'roberta-large' from the Hugging Face hub.*model=smollm2-135m",
    ):
        build(cfg)


def test_label_word_that_splits_fails_before_training(data_dir, tiny_causal, tmp_path):
    # Early exit reads one logit per word at an inner layer: a word of several tokens is refused.
    overrides = tiny_overrides(
        tiny_causal, data_dir, "prompt", "task.verbalizer.1=supercalifragilistic", "exit=all"
    )
    with pytest.raises(
        FewtuneError, match="label word 'supercalifragilistic' is not a single token.*early exit"
    ):
        build(compose_cfg(overrides, tmp_path))


def test_causal_template_with_text_after_slot(data_dir, tiny_causal, tmp_path):
    overrides = tiny_overrides(
        tiny_causal, data_dir, "prompt", "task.template.causal='{sentence} It was {mask} .'"
    )
    with pytest.raises(FewtuneError, match="has text after {mask}"):
        build(compose_cfg(overrides, tmp_path))


def test_family_detection_from_the_config():
    from transformers import BertConfig, GPT2Config, LlamaConfig

    assert detect_family(BertConfig(architectures=["BertForMaskedLM"])) == "masked"
    assert detect_family(BertConfig()) == "masked"  # a bare encoder checkpoint (BertModel)
    assert detect_family(GPT2Config(architectures=["GPT2LMHeadModel"])) == "causal"
    assert detect_family(LlamaConfig()) == "causal"


def test_detected_family_of_a_local_folder(data_dir, tiny_masked, tiny_causal, tmp_path):
    from fewtune.models.backbones import resolve

    assert resolve({"path": str(tiny_masked), "family": "auto"}, tmp_path).family == "masked"
    assert resolve({"path": str(tiny_causal), "family": "auto"}, tmp_path).family == "causal"


@pytest.mark.parametrize("group", ["task", "model", "method"])
def test_cli_unknown_task_model_or_method_is_hydras_clear_message(group, tmp_path):
    result = run_cli(f"{group}=nope", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert f"Could not find '{group}/nope'" in result.stderr
    assert f"Available options in '{group}'" in result.stderr


def test_cli_user_error_is_one_line_without_traceback(tmp_path):
    result = run_cli(
        f"paths.data_dir={tmp_path}/missing", "logger=none", f"hydra.run.dir={tmp_path}/run"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data folder ") and "FEWTUNE_DATA_DIR" in last
    assert (tmp_path / "run" / "failed.json").is_file()
