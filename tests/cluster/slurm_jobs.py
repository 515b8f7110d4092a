"""What the cluster tests share: whether a SLURM node is there to run them, the sweep command
with the slurm launcher sized for a 2-CPU node, and what squeue and submitit's folder say about
a sweep's job array. No accounting (sacct) is needed: squeue, sinfo and the run folders only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

PARTITION = os.environ.get("FEWTUNE_SLURM_PARTITION", "local")
HERE = Path(__file__).resolve().parent
START_SCRIPT = "bash tests/cluster/start-slurm.sh"
# Each job one CPU and a little memory: the node has 2 CPUs and the jobs run tiny models.
LAUNCHER = [
    "hydra/launcher=slurm",
    f"hydra.launcher.partition={PARTITION}",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=30",
]


def skip_reason(wait_s: float = 90) -> str | None:
    """Why the cluster tests cannot run here (one line), or None. Waits a while for a node that
    is still busy (the jobs of an earlier test completing) to become idle."""
    if shutil.which("sinfo") is None:
        return f"no SLURM here (sinfo not found); start one with {START_SCRIPT}"
    deadline = time.monotonic() + wait_s
    while True:
        result = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--partition", PARTITION, "--format", "%t"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        states = result.stdout.split()
        if result.returncode == 0 and "idle" in states:
            return None
        busy = {"alloc", "mix", "comp"}.intersection(states)
        if not busy or time.monotonic() > deadline:
            said = (
                " ".join(states) or " ".join(result.stderr.strip().splitlines()[-1:]) or "no node"
            )
            where = f"partition '{PARTITION}' (sinfo: {said})"
            return f"no idle SLURM node in {where}; start one with {START_SCRIPT}"
        time.sleep(1)


@pytest.fixture(scope="session")
def slurm():
    if (reason := skip_reason()) is not None:
        pytest.skip(reason)


def node_cpus() -> int:
    """The CPUs of the partition's node (the jobs take one each)."""
    result = subprocess.run(
        ["sinfo", "--noheader", "--partition", PARTITION, "--format", "%c"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(result.stdout.split()[0])


def job_env() -> dict[str, str]:
    """The driver's environment, which sbatch hands to the jobs: offline, one thread per job, and
    this folder importable (the Pace callback)."""
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def sweep_command(sweep: Path, *overrides: str, slurm_launcher: bool = True) -> list[str]:
    launcher = LAUNCHER if slurm_launcher else []
    return [
        sys.executable,
        "-m",
        "fewtune.train",
        "-m",
        *launcher,
        *overrides,
        f"hydra.sweep.dir={sweep}",
    ]


def run_sweep(sweep: Path, *overrides: str, slurm_launcher: bool = True, timeout: float = 900):
    command = sweep_command(sweep, *overrides, slurm_launcher=slurm_launcher)
    return subprocess.run(
        command, capture_output=True, text=True, env=job_env(), timeout=timeout, check=False
    )


def start_sweep(sweep: Path, *overrides: str, slurm_launcher: bool = True) -> subprocess.Popen:
    """The sweep's command in the background, its output in ``<sweep>.log`` (not a pipe that
    would fill up and stop it)."""
    command = sweep_command(sweep, *overrides, slurm_launcher=slurm_launcher)
    sweep.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{sweep}.log", "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=job_env())


def array_ids(sweep: Path) -> list[str]:
    """The SLURM job ids of the arrays submitted for ``sweep`` (submitit's folder per sbatch)."""
    folder = sweep / ".submitit"
    return (
        sorted((p.name for p in folder.iterdir() if p.name.isdigit()), key=int)
        if folder.is_dir()
        else []
    )


def submitit_log(sweep: Path, job: str) -> str:
    """All of a SLURM job's (or array task's) submitit logs, every task and attempt."""
    return "".join(
        p.read_text(errors="replace") for p in sorted((sweep / ".submitit").glob(f"{job}/*_log.*"))
    )


def squeue(*fields: str) -> list[list[str]]:
    """squeue's lines as fields (e.g. %F array job id, %K array task id, %T state, %r reason)."""
    result = subprocess.run(
        ["squeue", "--noheader", "--format", "|".join(fields)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.split("|") for line in result.stdout.splitlines() if line.strip()]


def in_queue(array: str) -> list[list[str]]:
    """The lines of squeue for an array: [array task id, state, reason]."""
    return [rest for array_id, *rest in squeue("%F", "%K", "%T", "%r") if array_id == array]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 600, every: float = 0.2):
    """``condition()``'s first true value, polled; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


class QueueWatch:
    """Polls squeue while a sweep runs: which array tasks ran, and how many at once."""

    def __init__(self, every: float = 0.5):
        self.running: set[tuple[str, str]] = set()  # (array job id, array task id)
        self.most_at_once = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(every,), daemon=True)

    def _poll(self, every: float) -> None:
        while not self._stop.is_set():
            now = {(f, k) for f, k, state in squeue("%F", "%K", "%T") if state == "RUNNING"}
            self.running |= now
            self.most_at_once = max(self.most_at_once, len(now))
            self._stop.wait(every)

    def __enter__(self) -> QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def cancel_leftovers(tmp_path):
    """Sweeps under tmp_path leave no job in the queue, whatever the test's outcome."""
    yield
    ids = [job for folder in tmp_path.rglob(".submitit") for job in array_ids(folder.parent)]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)
        # the next test finds the node idle
        wait_for(
            lambda: not any(in_queue(job) for job in ids), "cancelled jobs to leave", timeout=120
        )
