"""Finished tiny runs of every method, trained once per test session and shared by the tests of
stored predictions, ``fewtune.predict`` and ensembles (each run has its .hydra/config.yaml, as
Hydra leaves it)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from conftest import (
    NEGATIVE,
    POSITIVE,
    SHARED_DATA,
    compose_cfg,
    tiny_overrides,
    write_sst2_split,
)

MOVE = "optimizer.lr=5e-3"  # the tiny models' weights move: their predictions differ by example
TWO_PATTERNS = 'task.pet_templates.masked=["{sentence} It was {mask} .","Just {mask} ! {sentence}"]'
SEARCHED = {"0": "bad", "1": "good"}
# A short SetFit (as tests/test_setfit.py runs it): 2 pair iterations, 2 head epochs.
SETFIT_FAST = [
    "method.num_iterations=2",
    "method.body_batch_size=8",
    "method.body_lr=1e-3",
    "method.head_epochs=2",
]

# name: (backbone fixture, method, overrides)
RUNS = {
    "prompt": ("tiny_masked", "prompt", [MOVE]),
    "prompt-causal": ("tiny_causal", "prompt", [MOVE]),
    "finetune": ("tiny_masked", "finetune", [MOVE]),
    "zeroshot": ("tiny_causal", "zeroshot", []),
    "zeroshot-calibrated": ("tiny_masked", "zeroshot", ["method.calibrate=true"]),
    "prompt-demo": ("tiny_masked", "prompt-demo", [MOVE, "method.demonstrations.eval_sets=2"]),
    "icl": ("tiny_causal", "icl", ["method.demonstrations.eval_sets=2"]),
    "icl-calibrated": (
        "tiny_causal",
        "icl",
        ["method.calibrate=true", "method.demonstrations.eval_sets=2"],
    ),
    "prompt-autowords": ("tiny_causal", "prompt-autowords", [MOVE]),
    "prompt-lora": ("tiny_causal", "prompt", ["peft=lora", "peft.lr=5e-3"]),
    "finetune-exit": (
        "tiny_masked",
        "finetune",
        [MOVE, "exit=all", "exit.rule=patience", "exit.patience=1"],
    ),
    "pet": ("tiny_masked", "pet", [MOVE, TWO_PATTERNS]),
    "finetune-houlsby": ("tiny_masked", "finetune", ["peft=houlsby", "peft.lr=5e-3"]),
    "setfit": ("tiny_masked", "setfit", SETFIT_FAST),  # logistic head
    "setfit-diff": ("tiny_causal", "setfit-diff", SETFIT_FAST),  # differentiable head
    "stsb": ("tiny_masked", "prompt", [MOVE]),  # regression; needs ../shared/data
}
NEEDS_SHARED_DATA = {"stsb"}
_finished: dict[str, Path] = {}


def write_data(root: Path) -> Path:
    """The tiny SST-2 split plus the original pool PET draws its unlabeled examples from."""
    data = write_sst2_split(root, test_size=24)
    folder = data / "original" / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    others = [f"new film number {i} was {'great' if i % 2 else 'terrible'}" for i in range(12)]
    rows = (
        [f"{s}\t0" for s in NEGATIVE]
        + [f"{s}\t1" for s in POSITIVE]
        + [f"{s}\t{i % 2}" for i, s in enumerate(others)]
    )
    (folder / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\na fine film\t1\n")
    return data


def overrides_of(name: str, model_dir: Path, data_dir: Path, root: Path) -> list[str]:
    _, method, extra = RUNS[name]
    if name == "prompt-autowords":  # the words a search chose, as fewtune.search_words leaves them
        searched = root / "search"
        (searched / "sst2-4-13").mkdir(parents=True, exist_ok=True)
        result = {
            "task": "sst2",
            "model": model_dir.name,
            "k": 4,
            "seed": 13,
            "verbalizer": SEARCHED,
        }
        (searched / "sst2-4-13" / "metrics.json").write_text(json.dumps(result))
        extra = [*extra, f"method.searched_words={searched}"]
    if name == "stsb":
        mine = [
            "task=stsb",
            "k=16",
            "seed=42",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=2",
        ]
        base = [
            o
            for o in tiny_overrides(model_dir, SHARED_DATA, method)
            if o.split("=")[0] not in ("task", "k", "seed")
        ]
        return [*base, *mine, *extra]
    return tiny_overrides(model_dir, data_dir, method, *extra)


def finished_run(name: str, request, tmp_path_factory) -> Path:
    """The run folder of ``name``, trained on first use."""
    from fewtune.train import train

    if name not in _finished:
        root = tmp_path_factory.mktemp(f"run-{name}")
        model_dir = request.getfixturevalue(RUNS[name][0])
        cfg = compose_cfg(
            overrides_of(name, model_dir, write_data(root / "data"), root), root / name
        )
        train(cfg)
        (root / name / ".hydra").mkdir(exist_ok=True)
        OmegaConf.save(cfg, root / name / ".hydra" / "config.yaml")
        _finished[name] = root / name
    return _finished[name]
