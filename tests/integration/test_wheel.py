"""The package works installed, not only from a checkout: a fresh venv holding only the built wheel (and its
dependencies, at requirements/lock.txt's versions) runs `tritonfil plan -i local` from a directory outside the
checkout, against the session's local environment, with the collection the wheel installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN
from tests.wheel_build import build_wheel, collection_files_in, pip, pip_sources
from tritonfil.localenv.env import LocalEnv
from tritonfil.progress import STAGE_ROLES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Variables of this checkout's setup that must not leak into the installed package's run.
CHECKOUT_VARIABLES = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "TRITONFIL_PROJECT", "TRITONFIL_RUNS")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv (in a temporary directory) with the wheel installed: nothing of the checkout in it."""
    base = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(base / "dist")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pip(python, "install", "-q", *pip_sources(), "-c", str(ROOT / "requirements" / "lock.txt"), str(wheel))
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    outside = base / "elsewhere"
    outside.mkdir()
    return {
        "base": base,
        "wheel": wheel,
        "venv": venv,
        "bin": venv / "bin",
        "collection": Path(site) / "ansible_collections" / "tritonfil" / "eks",
        "cwd": outside,
    }


def environ(local_env: LocalEnv, installed: dict[str, Path]) -> dict[str, str]:
    """The local environment's client variables, with this checkout's venv off PATH and no ANSIBLE_* settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k not in CHECKOUT_VARIABLES
    }  # fmt: skip
    env.update(local_env.environ())
    path = [p for p in env["PATH"].split(os.pathsep) if Path(p) != VENV_BIN and not p.startswith(str(ROOT))]
    env["PATH"] = os.pathsep.join([str(installed["bin"]), *path])
    env["TRITONFIL_RUNS"] = str(installed["base"] / "runs")
    return env


def test_installed_package_finds_the_collection_the_wheel_installed(installed):
    root = installed["collection"]
    assert root.is_dir() and not root.is_symlink()
    assert collection_files_in(installed["wheel"]) == {
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    proc = subprocess.run(
        [str(installed["bin"] / "python"), "-c",
         "from tritonfil import api, collection; print(collection.root()); print(api.find_project());"
         " print(collection.module_utils('pins').__file__); print(collection.pins()['KUBERNETES_VERSION'])"],
        cwd=installed["cwd"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found_root, project, pins_file, kubernetes = proc.stdout.split()
    assert Path(found_root) == root and Path(project) == root
    assert Path(pins_file) == root / "plugins" / "module_utils" / "pins.py"
    assert kubernetes.startswith("v1.")


def test_installed_wheel_runs_plan_against_the_local_environment_from_outside_the_checkout(local_env, installed):
    proc = subprocess.run(
        [str(installed["bin"] / "tritonfil"), "plan", "-i", "local"],
        cwd=installed["cwd"], env=environ(local_env, installed), capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
    assert proc.stdout.startswith("plan: successful (rc=0)"), proc.stdout

    # What ran came from the venv's copy of the collection, never from the checkout.
    (artifacts,) = (installed["base"] / "runs" / "artifacts").glob("plan-*")
    command = json.loads((artifacts / "command").read_text())
    # ansible-playbook by name, found first on PATH in the venv's bin (the checkout's .venv is not on it).
    assert command["command"][0] == "ansible-playbook", command["command"]
    assert command["env"]["PATH"].split(os.pathsep)[0] == str(installed["bin"]), command["env"]["PATH"]
    assert str(VENV_BIN) not in command["env"]["PATH"].split(os.pathsep)
    assert str(installed["collection"] / "site.yml") in command["command"], command["command"]
    assert command["cwd"] == str(installed["collection"]), command["cwd"]
    task_paths = set()
    for event_file in (artifacts / "job_events").glob("*.json"):
        data = json.loads(event_file.read_text()).get("event_data", {})
        if data.get("task_path"):
            task_paths.add(data["task_path"].rsplit(":", 1)[0])
    roles = {p for p in task_paths if "/roles/" in p}
    assert roles, sorted(task_paths)
    assert sorted(p for p in task_paths if not p.startswith(str(installed["collection"]) + "/")) == []
    assert [s for s in STAGE_ROLES if not any(f"/roles/{s}/" in p for p in roles)] == [], sorted(roles)
