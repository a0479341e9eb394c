"""Session-scoped local environment for the integration tests.

scripts/run-pytest.sh runs pytest, as root, inside a fresh loopback-only network namespace, so the
environment started here and every client in the tests can only reach 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tritonfil.localenv import netns
from tritonfil.localenv.env import LocalEnv


@pytest.fixture(scope="session")
def isolated() -> bool:
    """As root the tests must run in a loopback-only namespace (scripts/run-pytest.sh does that)."""
    if netns.is_root():
        assert netns.loopback_only(), (
            f"running as root with interfaces {netns.interfaces()}: run the tests through scripts/run-pytest.sh "
            "(make test), which isolates them in a loopback-only network namespace"
        )
    return netns.loopback_only()


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[LocalEnv]:
    env = LocalEnv(state_dir=tmp_path_factory.mktemp("local-env"), nodes=2)
    env.up()
    try:
        yield env
    finally:
        env.down()


@pytest.fixture
def local_environ(local_env: LocalEnv, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The session environment's variables (KUBECONFIG, AWS endpoint, fake keys) for one test only."""
    variables = local_env.environ()
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables
