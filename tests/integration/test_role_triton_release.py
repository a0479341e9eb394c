"""Role tritonfil.eks.triton_release through ansible-playbook against the local kwok cluster.

One module-scoped cluster (2 simulated g4dn.12xlarge GPU nodes, metrics-server reading kwok's emulated
usage). In order: a values error (min > max) fails in preflight before anything is applied, and one that
only the chart can judge (through triton_release_extra_values) fails in helm's render, again with nothing
applied; check mode on a new release predicts changed and installs nothing; the first run installs
(changed), the second reports changed=0; the pods sit Ready on the GPU nodes; raising the simulated CPU
usage of the Triton pods (only the pod template annotation is patched) makes the HPA scale out, lowering
it scales in. Istio is off: the local cluster has no Istio CRDs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.playbook_run import Run, run_role
from tritonfil.localenv.env import LocalEnv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NAMESPACE = "triton-it"
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"127.0.0.1:5000/tritonserver@{DIGEST}"
ROLE_ARN = "arn:aws:iam::123456789012:role/tritonfil-triton"
HELM_TASK = "Install or upgrade the Triton release"
# The helm task runs with no_log (its result holds the values): its command line and error come from this one.
REPORT_TASK = "Report the helm result (values masked)"
USAGE = "kwok.x-k8s.io/usage-cpu"
# Fast HPA behavior for the test only (the chart's defaults wait 5 minutes before scaling in).
BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
}  # fmt: skip


@dataclass
class Env:
    local: LocalEnv
    work: Path
    count: int = 0

    def variables(self, **extra: Any) -> dict[str, Any]:
        return {
            "triton_release_namespace": NAMESPACE,
            "triton_release_image": IMAGE,
            "triton_release_model_repository": "s3://tritonfil-it-models/models",
            "triton_release_models": ["xgb_classifier"],
            "triton_release_replicas_min": 1,
            "triton_release_replicas_max": 4,
            "triton_release_target_cpu_utilization": 60,
            # The CPU HPA with metrics-server (KEDA on the queue time: tests/integration/test_autoscale.py).
            "triton_release_autoscaler": "hpa",
            "triton_release_irsa_role_arn": ROLE_ARN,
            "triton_release_aws_region": "eu-west-1",
            "triton_release_istio_enabled": False,
            "triton_release_timeout": "3m",
            "triton_release_extra_values": {
                "autoscaling": {"behavior": BEHAVIOR},
                "podAnnotations": {USAGE: "100m"},
            },
            **extra,
        }

    def run(self, variables: dict[str, Any], *args: str, tasks_from: str = "main") -> Run:
        self.count += 1
        work = self.work / f"run{self.count}"
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env.update(
            HELM_CACHE_HOME=str(work / "helm-cache"),
            HELM_CONFIG_HOME=str(work / "helm-config"),
            HELM_DATA_HOME=str(work / "helm-data"),
        )
        return run_role(
            "triton_release", work, variables, env, *args, path=[str(self.local.tools.bin_dir)],
            kubeconfig=str(self.local.kubeconfig), tasks_from=tasks_from,
        )  # fmt: skip

    def get(self, *args: str) -> dict:
        return json.loads(self.local.kubectl("get", "-n", NAMESPACE, *args, "-o", "json").stdout)

    def releases(self) -> str:
        return self.local.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "name").stdout.strip()


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 2.0) -> float:
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        last = check()
        if last:
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last})")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[Env]:
    local = LocalEnv(state_dir=tmp_path_factory.mktemp("tr-env"), nodes=2)
    local.up(components=("cluster",))
    try:
        yield Env(local, tmp_path_factory.mktemp("tr-runs"))
    finally:
        local.down()


def test_min_above_max_fails_in_preflight_before_anything_is_applied(env: Env):
    run = env.run(env.variables(triton_release_replicas_min=5, triton_release_replicas_max=2))
    assert run.rc != 0
    assert (
        run.failure == "triton_release: triton_release_replicas_min (5) must not exceed triton_release_replicas_max (2)"
    )
    assert not run.ran(HELM_TASK) and not run.ran("Ensure the release namespace (Pod Security labels)")
    assert env.local.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0
    assert env.releases() == ""


def test_chart_guard_fails_in_render_before_anything_is_applied(env: Env):
    extra = {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}
    run = env.run(env.variables(triton_release_extra_values=extra))
    assert run.rc != 0
    assert "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (2)" in run.failure, run.tail()
    assert "(command: " in run.result(REPORT_TASK)["msg"] and " upgrade -i " in run.result(REPORT_TASK)["msg"]
    print(f"chart guard failure: {run.failure}")
    assert env.releases() == ""
    assert env.get("all")["items"] == []


def test_check_mode_predicts_an_install_and_installs_nothing(env: Env):
    run = env.run(env.variables(), "--check")
    assert_ok(run)
    helm = run.result(HELM_TASK)
    assert helm["changed"] is True
    command = run.result(REPORT_TASK)["msg"].split("(command: ", 1)[1]
    # No --atomic/--wait: tritonfil.eks.triton_rollout watches the rollout and rolls a failed one back itself.
    assert command.split()[1:3] == ["upgrade", "-i"] and "--atomic" not in command, command
    assert env.releases() == ""
    # The endpoint is read from the release's Service (by its labels): before the install there is none.
    assert run.facts["triton_release_endpoint"]["service"] == "" and run.facts["triton_release_endpoint"]["host"] == ""


@pytest.fixture(scope="module")
def installed(env: Env) -> dict[str, Run]:
    first = env.run(env.variables())
    second = env.run(env.variables())
    check = env.run(env.variables(), "--check")
    return {"first": first, "second": second, "check": check}


def test_first_run_installs_second_changes_nothing(env: Env, installed: dict[str, Run]):
    first, second = installed["first"], installed["second"]
    assert_ok(first)
    assert first.result(HELM_TASK)["changed"] is True
    assert_ok(second)
    assert second.recap.get("changed") == 0, second.tail()
    check = installed["check"]  # check mode on the installed release: nothing to change either
    assert_ok(check)
    assert check.recap.get("changed") == 0, check.tail()
    print(f"triton_release: install {first.seconds:.0f}s, idempotent rerun {second.seconds:.0f}s")
    endpoint = {
        "release": "triton",
        "selector": "app.kubernetes.io/instance=triton,app.kubernetes.io/component=inference-server",
        "service": "triton",
        "namespace": NAMESPACE,
        "host": f"triton.{NAMESPACE}.svc.cluster.local",
        "http_port": 8000,
        "grpc_port": 8001,
        "metrics_port": 8002,
        "http_url": f"http://triton.{NAMESPACE}.svc.cluster.local:8000",
        "grpc_url": f"triton.{NAMESPACE}.svc.cluster.local:8001",
        "gateway_scheme": "",  # no Gateway (istio off): verify goes to the replicas
    }
    assert first.facts["triton_release_endpoint"] == endpoint
    # What verify reads when the stage is not in the run (playbooks/verify.yml alone).
    facts = env.run(env.variables(), tasks_from="facts")
    assert_ok(facts)
    assert facts.recap.get("changed") == 0 and facts.facts["triton_release_endpoint"] == endpoint


def test_missing_inputs_from_earlier_stages_name_the_stage(env: Env):
    run = env.run(env.variables(triton_release_image="", triton_release_model_repository=""))
    assert run.rc != 0
    assert run.failure == (
        "triton_release: triton_release_image is empty: run the ecr_image stage (it publishes ecr_image_uri) or pass"
        " -e triton_release_image=REPO@sha256:DIGEST; triton_release_model_repository is empty: run the s3_models"
        " stage (it publishes s3_models_uri)"
    )
    assert not run.ran("Ensure the release namespace")


def test_release_values_and_pods_on_gpu_nodes(env: Env, installed: dict[str, Run]):
    assert_ok(installed["first"])
    dep = env.get("deployment", "triton")
    spec = dep["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "triton")
    assert container["image"] == IMAGE
    assert "--model-repository=s3://tritonfil-it-models/models" in container["args"]
    assert "--load-model=xgb_classifier" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in container["env"]
    sa = env.get("serviceaccount", "triton")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    hpa = env.get("hpa", "triton")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["containerResource"]["target"]["averageUtilization"] == 60
    pods = env.get("pods", "-l", "app.kubernetes.io/instance=triton")["items"]
    assert len(pods) == 1
    nodes = {n["metadata"]["name"]: n for n in env.get("nodes")["items"]}
    for pod in pods:
        node = nodes[pod["spec"]["nodeName"]]
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4", pod["spec"]["nodeName"]
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    kinds = {i["kind"] for i in env.get("all,serviceaccount,pdb")["items"]}
    assert "Gateway" not in kinds and "VirtualService" not in kinds


def test_hpa_scales_out_and_in_with_simulated_cpu(env: Env, installed: dict[str, Run]):
    assert_ok(installed["first"])

    def set_usage(cpu: str) -> None:
        patch = {"spec": {"template": {"metadata": {"annotations": {USAGE: cpu}}}}}
        env.local.kubectl("patch", "-n", NAMESPACE, "deployment", "triton", "--type=merge", "-p", json.dumps(patch))

    def replicas() -> tuple[int, int]:
        d = env.get("deployment", "triton")
        return d["spec"]["replicas"], d["status"].get("readyReplicas", 0)

    # The patch rolls out new pods; the HPA acts once metrics-server has scraped them (about 45 s here),
    # so the scale-out time below includes that rollout and the metrics warm-up.
    # 1900m of a 2-CPU request is 95% against the 60% target.
    set_usage("1900m")
    # ~95 s on an idle machine; the bound is generous for a loaded CI box (no timing is asserted).
    scale_out = wait_until("scale out to >= 3 ready replicas", lambda: min(replicas()) >= 3, 300)
    set_usage("100m")  # 5%
    scale_in = wait_until("scale in to 1 replica", lambda: replicas() == (1, 1), 300)
    print(f"HPA scale out 1->3+: {scale_out:.0f}s, scale in ->1: {scale_in:.0f}s")
    for pod in env.get("pods", "-l", "app.kubernetes.io/instance=triton")["items"]:
        assert pod["spec"]["nodeName"].endswith(".ec2.internal")
