"""LM-BFF's label-word search with its fine-tuning step (search.finetune=N), and training with the
searched words (method=prompt-autowords), on the tiny causal backbone."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_cfg, tiny_overrides
from fewtune.errors import FewtuneError
from fewtune.run.build import build
from fewtune.search_words import main
from fewtune.train import train
from fewtune.words.finetune import best_on_dev
from fewtune.words.search import ranked_assignments

pytestmark = pytest.mark.usefixtures("one_thread")


def search_args(model, data_dir, out, *extra):
    return ["model=hf", f"model.path={model}", "k=4", "seed=13", f"paths.data_dir={data_dir}",
            "search.top_k=3", "search.top_n=2", f"search.out={out}", *extra]  # fmt: skip


def test_assignments_are_ranked_by_zero_shot_dev_accuracy():
    # dev log-probs over a 5-token vocabulary; tokens 3 (class 0) and 1 (class 1) separate the classes
    log_probs = torch.tensor(
        [[0.0, 0.1, 0.9, 0.5, 0.0], [0.0, 0.9, 0.95, 0.1, 0.0], [0.0, 0.2, 0.7, 0.6, 0.0]]
    ).log()
    ranked = ranked_assignments(log_probs, [0, 1, 0], [[2, 3], [2, 1]], top_n=2, keep=3)
    assert ranked == [([3, 1], 1.0), ([2, 1], pytest.approx(2 / 3)), ([3, 2], pytest.approx(1 / 3))]


def test_the_best_fine_tuned_dev_wins_and_a_tie_keeps_the_zero_shot_order():
    assert best_on_dev([{"best_dev": 0.5}, {"best_dev": 0.75}, {"best_dev": 0.75}]) == 1
    assert best_on_dev([{"best_dev": None}, {"best_dev": 0.25}]) == 1
    assert best_on_dev([{"best_dev": 0.5}, {"best_dev": 0.5}]) == 0


def test_finetune_trains_each_candidate_and_keeps_the_best_on_dev(
    data_dir, tiny_causal, tmp_path, monkeypatch
):
    import fewtune.run.methods

    trained, real_train = [], fewtune.run.methods.train
    monkeypatch.setattr(
        fewtune.run.methods,
        "train",
        lambda cfg: trained.append(dict(cfg.task.verbalizer)) or real_train(cfg),
    )
    steps = [
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ]
    main(search_args(tiny_causal, data_dir, tmp_path, "search.finetune=2", *steps))

    folder = tmp_path / "sst2-4-13"
    saved = json.loads((folder / "metrics.json").read_text())
    candidates = saved["assignments"]
    assert (
        [c["verbalizer"] for c in candidates] == trained
        and len(trained) == 2
        and trained[0] != trained[1]
    )
    for rank, candidate in enumerate(candidates):
        run = json.loads((folder / candidate["folder"] / "metrics.json").read_text())
        assert candidate["folder"] == f"finetune/candidate-{rank}" and run["steps"] == 2
        assert candidate["best_dev"] == run["best_dev"] and candidate["test"] == run["test"]
    assert candidates[0]["zeroshot_dev_acc"] >= candidates[1]["zeroshot_dev_acc"]
    chosen = candidates[best_on_dev(candidates)]
    assert saved["verbalizer"] == chosen["verbalizer"] and saved["best_dev"] == chosen["best_dev"]
    assert saved["chosen_by"] == "fine-tuned dev acc" and saved["test"] == chosen["test"]


def test_the_best_candidate_on_dev_becomes_the_verbalizer(
    data_dir, tiny_causal, tmp_path, monkeypatch
):
    import fewtune.run.methods

    runs = iter([0.25, 0.75])  # the second candidate is better on dev after fine-tuning
    monkeypatch.setattr(
        fewtune.run.methods, "train", lambda cfg: {"best_dev": next(runs), "test": {"acc": 0.5}}
    )
    main(search_args(tiny_causal, data_dir, tmp_path, "search.finetune=2"))
    saved = json.loads((tmp_path / "sst2-4-13" / "metrics.json").read_text())
    assert (
        saved["verbalizer"]
        == saved["assignments"][1]["verbalizer"]
        != saved["assignments"][0]["verbalizer"]
    )
    assert (
        saved["best_dev"] == 0.75
        and saved["dev_acc"] == saved["assignments"][1]["zeroshot_dev_acc"]
    )


def test_finetune_refuses_an_untrained_method(data_dir, tiny_causal, tmp_path):
    with pytest.raises(SystemExit, match=r"method 'zeroshot' does not; use method=prompt"):
        main(search_args(tiny_causal, data_dir, tmp_path, "search.finetune=1", "method=zeroshot"))


def write_search(folder, model_name, verbalizer):
    (folder / "sst2-4-13").mkdir(parents=True, exist_ok=True)
    results = {"task": "sst2", "model": model_name, "k": 4, "seed": 13, "verbalizer": verbalizer}
    (folder / "sst2-4-13" / "metrics.json").write_text(json.dumps(results))


def test_prompt_autowords_trains_with_the_searched_words(data_dir, tiny_causal, tmp_path):
    from fewtune.report.runs import collect_runs
    from fewtune.report.summary import summarize

    searched = tmp_path / "search"
    write_search(searched, tiny_causal.name, {"0": "bad", "1": "good"})
    overrides = tiny_overrides(
        tiny_causal,
        data_dir,
        "prompt-autowords",
        f"method.searched_words={searched}",
        "trainer.max_steps=2",
    )
    cfg = compose_cfg(overrides, tmp_path / "run")
    dm, _ = build(cfg)
    tokenizer = dm.encoder.tokenizer
    assert dm.task.verbalizer == {"0": "bad", "1": "good"}
    assert dm.encoder.label_words.first_ids == [
        tokenizer.convert_tokens_to_ids(w) for w in ("Ġbad", "Ġgood")
    ]

    results = train(cfg)
    assert results["method"] == "prompt-autowords" and results["steps"] == 2
    assert results["provenance"]["data"]["label_words"]["file"] == str(
        searched / "sst2-4-13" / "metrics.json"
    )
    (tmp_path / "run" / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")  # as Hydra leaves a run folder
    (row,) = summarize(collect_runs([tmp_path / "run"])).rows
    assert row.title == "Prompt-based FT (auto label words)"


def test_new_searched_words_change_the_config_hash(data_dir, tiny_causal, tmp_path):
    from fewtune.jobs.resume import Job

    searched = tmp_path / "search"
    cfg = compose_cfg(
        tiny_overrides(
            tiny_causal, data_dir, "prompt-autowords", f"method.searched_words={searched}"
        ),
        tmp_path,
    )
    write_search(searched, tiny_causal.name, {"0": "bad", "1": "good"})
    first = Job(cfg).hash
    write_search(searched, tiny_causal.name, {"0": "awful", "1": "good"})
    assert Job(cfg).hash != first


def test_missing_or_foreign_searched_words_are_one_line(data_dir, tiny_causal, tmp_path):
    searched = tmp_path / "search"
    cfg = compose_cfg(
        tiny_overrides(
            tiny_causal, data_dir, "prompt-autowords", f"method.searched_words={searched}"
        ),
        tmp_path,
    )
    command = r"`python -m fewtune.search_words task=sst2 model=tiny-llama\S* k=4 seed=13`"
    with pytest.raises(
        FewtuneError, match=rf"no searched label words at .*sst2-4-13/metrics.json; run {command}"
    ):
        build(cfg)
    write_search(searched, "smollm2-135m", {"0": "bad", "1": "good"})
    with pytest.raises(
        FewtuneError,
        match=r"searched with model 'smollm2-135m', but this run uses 'tiny-llama\S*'; search with model=",
    ) as err:
        build(cfg)
    assert "\n" not in str(err.value)
