"""The GPU check's luggage for an offline GPU machine (benchmarks/gpu/bundle.py, run.sh): the loads
join back into what was packed, and a missing or damaged load is named before anything runs."""

import hashlib
import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "gpu" / "run.sh"


@pytest.fixture(scope="module")
def bundle():
    spec = importlib.util.spec_from_file_location(
        "bundle", ROOT / "benchmarks" / "gpu" / "bundle.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def loads(bundle, tmp_path):
    luggage = bytes(range(256)) * 40  # 10,240 bytes: three loads of at most 4,096
    assert bundle.cut(luggage, 4096, tmp_path / "b") == 3
    return luggage, tmp_path / "b"


def run_sh(bundle_dir):
    env = {
        "PATH": "/usr/bin:/bin",
        "GPU_BUNDLE": str(bundle_dir),
        "GPU_WORK": str(bundle_dir.parent / "w"),
    }
    return subprocess.run(["bash", str(RUN)], env=env, capture_output=True, text=True)


def test_loads_join_into_the_luggage(loads):
    luggage, out = loads
    parts = [out / f"load-{k}" / f"part-{k}-of-3" for k in (1, 2, 3)]
    assert [p.stat().st_size for p in parts] == [4096, 4096, 2048]
    assert b"".join(p.read_bytes() for p in parts) == luggage
    assert (out / "load-1" / "luggage.sha256").read_text().strip() == hashlib.sha256(
        luggage
    ).hexdigest()


def test_a_load_lost_between_calls_is_named(loads):
    _, out = loads
    (out / "load-2" / "part-2-of-3").unlink()
    done = run_sh(out)
    assert done.returncode == 2
    assert "part-2-of-3 is missing" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_damaged_load_is_refused(loads):
    _, out = loads
    (out / "load-3" / "part-3-of-3").write_bytes(b"\0" * 2048)
    done = run_sh(out)
    assert done.returncode == 2 and "differ from what bundle.py packed" in done.stderr


def test_no_loads_at_all(tmp_path):
    done = run_sh(tmp_path / "nothing")
    assert done.returncode == 2 and "load-1 first" in done.stderr


def test_carried_packages_are_locked(bundle):
    pins = bundle.locked_versions(bundle.CARRIED + bundle.BUILT_HERE)
    assert all("==" in pin for pin in pins) and len(pins) == len(bundle.CARRIED) + 1
