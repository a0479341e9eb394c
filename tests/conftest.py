"""Shared pytest fixtures: paths and an ansible-playbook runner bound to this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCAL_TEMP=str(ROOT / ".ansible" / "tmp"),
        # Modules run with this venv's Python (tritonclient, boto3...). Interpreter discovery
        # would pick whatever `python3` shim comes first on this machine.
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def run_playbook(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Write PLAY (YAML text) to a file and run it with ansible-playbook (inventory: localhost only)."""

    def run(play: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        book = tmp_path / "play.yml"
        book.write_text(play)
        return subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(book), *args],
            cwd=ROOT,
            env=ansible_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
