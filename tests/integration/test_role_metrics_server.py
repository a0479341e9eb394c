"""Role tritonfil.eks.metrics_server through ansible-playbook against the local kwok cluster.

The local cluster serves the metrics API (kwokctl's metrics-server, scraping kwok's emulated kubelets), so
the role must leave it alone: changed=0 and no helm call. The install path is then exercised as far as it
goes offline: with the APIService deleted the role tries the pinned chart from a loopback URL where nothing
listens, and must fail naming the chart, its version and the repository (no traffic leaves loopback).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.playbook_run import Run, run_role
from tritonfil.localenv.env import LocalEnv, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
APISERVICE = "v1beta1.metrics.k8s.io"
HELM_TASK = "Install the pinned metrics-server chart"
CHECK_TASK = "Report the chart that could not be installed"


@dataclass
class Env:
    local: LocalEnv
    work: Path
    count: int = 0

    def run(self, *args: str, **variables: Any) -> Run:
        self.count += 1
        work = self.work / f"run{self.count}"
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env.update(
            HELM_CACHE_HOME=str(work / "helm-cache"),
            HELM_CONFIG_HOME=str(work / "helm-config"),
            HELM_DATA_HOME=str(work / "helm-data"),
        )
        return run_role(
            "metrics_server", work, variables, env, *args, path=[str(self.local.tools.bin_dir)],
            kubeconfig=str(self.local.kubeconfig),
        )  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[Env]:
    local = LocalEnv(state_dir=tmp_path_factory.mktemp("ms-env"), nodes=2)
    local.up(components=("cluster",))
    try:
        yield Env(local, tmp_path_factory.mktemp("ms-runs"))
    finally:
        local.down()


def available(local: LocalEnv) -> bool:
    proc = local.kubectl("get", "apiservice", APISERVICE, "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def test_served_metrics_api_is_left_alone(env: Env):
    deadline = time.monotonic() + 120
    while not available(env.local):  # kwokctl registers it at once; Available follows metrics-server's start
        assert time.monotonic() < deadline, f"{APISERVICE} never became Available in the local cluster"
        time.sleep(2)
    for args in ((), ("--check",)):
        run = env.run(*args)
        assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()
        assert run.recap.get("changed") == 0, run.tail()
        assert not run.ran(HELM_TASK), run.tail()  # no helm call at all
        assert run.result(HELM_TASK).get("skipped") is True


def test_missing_metrics_api_tries_the_pinned_chart_and_names_it(env: Env):
    env.local.kubectl("delete", "apiservice", APISERVICE)
    port = free_port()  # nothing listens there: the connection is refused on loopback
    repo = f"http://127.0.0.1:{port}/metrics-server/"
    run = env.run(metrics_server_chart_repo_url=repo)
    assert run.rc != 0, run.tail()
    assert run.ran(HELM_TASK), run.tail()
    helm = run.result(HELM_TASK)
    assert f"--repo={repo}" in helm.get("command", ""), helm
    failure = run.result(CHECK_TASK)["msg"]
    assert failure.startswith(
        f"metrics-server chart 3.13.0 from {repo} (release metrics-server in namespace kube-system) not installed:"
    ), failure
    assert "connection refused" in failure, failure
    print(f"metrics_server failure: {failure}")
    assert run.recap.get("rescued") == 1 and run.recap.get("failures") == 1, run.recap
    # Nothing was installed: helm stores a release as a Secret labelled owner=helm.
    assert env.local.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "name").stdout.strip() == ""
