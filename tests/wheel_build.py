"""Building the tritonfil wheel, and installing it into a fresh venv, for the packaging tests.

pip needs packages (the build requirements, the wheel's dependencies). As root the tests run in a
loopback-only network namespace where PyPI is unreachable, so they come from the wheelhouse that
`make wheelhouse` downloads into the cache (`make test` does it first); without one, pip uses PyPI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tritonfil.localenv import netns
from tritonfil.localenv.env import cache_dir

COLLECTION_IN_WHEEL = "ansible_collections/tritonfil/eks/"


def wheelhouse() -> Path:
    return Path(os.environ.get("TRITONFIL_WHEELHOUSE") or cache_dir() / "wheelhouse")


def pip_sources() -> list[str]:
    """pip's index options: the wheelhouse when there is one, else PyPI (which needs a network)."""
    house = wheelhouse()
    if house.is_dir() and any(house.glob("*.whl")):
        return ["--no-index", "--find-links", str(house)]
    if netns.loopback_only():
        pytest.fail(f"no wheelhouse at {house} and no network here (loopback only): run `make wheelhouse` first")
    return []


def pip(python: Path | str, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    argv = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        hint = " (a stale wheelhouse? rerun `make wheelhouse`)" if "--no-index" in args else ""
        output = proc.stdout[-3000:] + proc.stderr[-3000:]
        pytest.fail(f"{' '.join(argv)} failed (rc={proc.returncode}){hint}:\n{output}")
    return proc


def build_wheel(out: Path) -> Path:
    """`pip wheel --no-deps` of this checkout into OUT; the wheel's path."""
    pip(sys.executable, "wheel", "-q", "--no-deps", *pip_sources(), "-w", str(out), str(ROOT), timeout=900)
    (wheel,) = out.glob("tritonfil-*.whl")
    return wheel


def collection_files_in(wheel: Path) -> set[str]:
    """The files the wheel installs under site-packages/ansible_collections/tritonfil/eks/, relative to it."""
    with zipfile.ZipFile(wheel) as z:
        return {n.removeprefix(COLLECTION_IN_WHEEL) for n in z.namelist() if n.startswith(COLLECTION_IN_WHEEL)}
