"""trainer=ddp on the CPU: two processes (gloo) test with exactly the metric of one process on
the same weights, and only rank 0 writes the run's files."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import compose_cfg, tiny_overrides, write_sst2_split
from fewtune.errors import FewtuneError

# Two runs of the tiny backbones, started together: each is two processes on this 2-core machine.
RUNS = {
    "finetune": ("tiny_masked", "finetune"),
    "prompt-lora": ("tiny_causal", "prompt", "peft=lora"),
}


@pytest.fixture(scope="module")
def odd_data(tmp_path_factory):
    root = write_sst2_split(tmp_path_factory.mktemp("ddp-data"), k=4, seed=13, test_size=16)
    test = root / "k-shot" / "SST-2" / "4-13" / "test.tsv"
    # 15 test examples: Lightning's DistributedSampler would give rank 1 a repeat of one.
    test.write_text("".join(test.read_text().splitlines(keepends=True)[:-1]))
    return root


def ddp_args(model_dir, data_dir, run_dir, method, *extra) -> list[str]:
    return [
        *tiny_overrides(model_dir, data_dir, method, *extra),
        "trainer=ddp",
        "eval_batch_size=7",  # 15 test examples: 2 batches on rank 0, 1 on rank 1
        "optimizer.lr=5e-3",  # the weights move: testing the wrong ones would show
        *(
            ["peft.lr=5e-3"]
            if any(e.startswith("peft=") and e != "peft=none" for e in extra)
            else []
        ),
        f"hydra.run.dir={run_dir}",
    ]


@pytest.fixture(scope="module")
def ddp_runs(request, tmp_path_factory, odd_data):
    root = tmp_path_factory.mktemp("ddp-runs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = {}
    for name, (model, method, *extra) in RUNS.items():
        args = ddp_args(request.getfixturevalue(model), odd_data, root / name, method, *extra)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "fewtune.train", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    # The pipe stays open until rank 1 (a child of rank 0) has exited too.
    outputs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    return {name: (root / name, procs[name].returncode, outputs[name]) for name in RUNS}


@pytest.mark.parametrize("name", list(RUNS))
def test_ddp_test_metric_equals_one_process(ddp_runs, name):
    from fewtune.evaluate import evaluate

    run, returncode, output = ddp_runs[name]
    assert returncode == 0, output[-3000:]
    # Lightning's start-up lines go to the run's log file, not the console (run/console.py)
    started = (run / "train.log").read_text()
    assert "Starting with 2 processes" in started and "distributed_backend=gloo" in started
    metrics = json.loads((run / "metrics.json").read_text())
    # The same stored weights, tested again by one process.
    assert evaluate(run, ["trainer.devices=1", "trainer.strategy=auto"]) == metrics["test"]
    assert metrics["scored"]["test"] == 15 and metrics["test_complete"]  # both processes' shares
    # Rank 1 ran to the end (its own log) and wrote no results of its own.
    assert "sst2 test acc = " in (run / "train_ddp_process_1.log").read_text()
    assert "Traceback" not in output
    assert not (run / "failed.json").exists()
    assert sorted(p.name for p in run.glob("*.json")) == ["metrics.json"]


@pytest.mark.parametrize("name", list(RUNS))
def test_ddp_stores_each_examples_prediction_once_and_rescores_to_the_metric(ddp_runs, name):
    from fewtune.predictions.rescore import rescore
    from fewtune.predictions.store import read_run

    run = ddp_runs[name][0]
    predictions = read_run(run)  # gathered from both processes, written by rank 0
    assert predictions.frame["index"].tolist() == list(range(15))
    assert rescore(predictions) == json.loads((run / "metrics.json").read_text())["test"]
    assert read_run(run, "dev").frame["index"].tolist() == list(range(8))


def test_ddp_peft_run_keeps_task_weights_once(ddp_runs):
    run = ddp_runs["prompt-lora"][0]
    assert (run / "task_weights.safetensors").is_file()
    assert not (run / "checkpoints").exists()  # the best checkpoint became the task weights
    assert not list(run.glob(".task_weights*"))  # no temporary file left by a second writer


def test_eval_split_is_shared_without_repeats():
    from torch.utils.data import DistributedSampler

    from fewtune.run.distributed import eval_sampler

    data = list(range(15))
    shards = [
        list(
            eval_sampler(
                SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": r}), data
            )
        )
        for r in range(2)
    ]
    assert sorted(shards[0] + shards[1]) == data
    assert [len(s) for s in shards] == [8, 7]
    # what Lightning's default sampler would do: 16 examples, one twice
    assert len(list(DistributedSampler(data, num_replicas=2, rank=1, shuffle=False))) == 8
    assert eval_sampler(None, data) is None
    assert eval_sampler(SimpleNamespace(distributed_sampler_kwargs=None), data) is None


class FakeStrategy:
    def __init__(self, rank: int):
        self.is_global_zero = rank == 0
        self.barriers: list[str] = []

    def barrier(self, name=None):
        self.barriers.append(name)


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_zero_writes_task_weights(tmp_path, rank):
    from fewtune.peft.storage import TASK_WEIGHTS_FILE, keep_task_weights

    module = torch.nn.Linear(2, 2)
    ckpt = tmp_path / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir()
    best = {k: torch.full_like(v, 7.0) for k, v in module.state_dict().items()}
    torch.save({"state_dict": best}, ckpt)
    strategy = FakeStrategy(rank)
    path = keep_task_weights(module, str(ckpt), tmp_path, "lora", strategy)
    assert torch.equal(module.weight, best["weight"])  # every rank tests with the best weights
    assert (
        len(strategy.barriers) == 2
    )  # both ranks meet twice: nobody deletes what another still reads
    assert path == tmp_path / TASK_WEIGHTS_FILE
    assert path.is_file() == (rank == 0)
    assert ckpt.exists() == (rank == 1)


@pytest.mark.parametrize(
    "strategy, says",
    [
        ("trainer=ddp", "works from python -m fewtune.train only"),
        (
            "+trainer.strategy=ddp_spawn",
            "a spawning strategy (ddp_spawn, ddp_fork, ddp_notebook) is not supported",
        ),
    ],
)
def test_ddp_refuses_launches_that_cannot_work(tiny_masked, data_dir, tmp_path, strategy, says):
    from fewtune.train import train

    overrides = tiny_overrides(tiny_masked, data_dir, "finetune", strategy, "trainer.devices=2")
    with pytest.raises(
        FewtuneError, match=r"^[^\n]*" + says.replace("(", r"\(").replace(")", r"\)")
    ):
        train(compose_cfg(overrides, tmp_path))
    assert not (tmp_path / "metrics.json").exists()


def test_ddp_config_precision_follows_the_accelerator(tmp_path, monkeypatch):
    cpu = compose_cfg(["trainer=ddp"], tmp_path).trainer
    assert (cpu.accelerator, cpu.devices, cpu.strategy, cpu.precision) == (
        "cpu",
        2,
        "ddp",
        "32-true",
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for bf16_gpu, expected in ((True, "bf16-mixed"), (False, "32-true")):  # False: e.g. V100s
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_gpu)  # noqa: B023 (used in this iteration)
        gpu = compose_cfg(
            ["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4"], tmp_path
        ).trainer
        assert gpu.precision == expected


def test_work_before_the_trainer_runs_on_the_gpu_of_its_local_rank(monkeypatch):
    """Contextual calibration runs before Lightning moves the module: on a GPU run it goes to the
    process's own GPU (LOCAL_RANK, or SLURM_LOCALID under srun), on a CPU run it stays."""
    import torch

    from fewtune.run import hardware

    monkeypatch.setattr(hardware, "visible_gpus", lambda: 2)
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert hardware.run_device("gpu") == torch.device("cuda", 1)
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_LOCALID", "3")
    assert hardware.run_device("cuda") == torch.device("cuda", 1)  # 3 of 2 visible: wraps
    assert hardware.run_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(hardware, "visible_gpus", lambda: 0)
    assert hardware.run_device("auto") == torch.device("cpu")
