"""Autoscaling to the workload: GPU nodes follow the pods (Karpenter), pods follow Triton's queue (KEDA).

A local environment of its own with no GPU node at all (``LocalEnv(nodes=0)``: the inventories' default, no managed
GPU node group), real engines as processes - Karpenter's kwok provider, KEDA's operator and metrics API server,
Prometheus scraping the process-backed tritonserver pods - and site.yml with inventory/local. In order:

1. replica bounds beyond the GPUs the NodePool can hold are refused before anything is applied, naming the
   variables (no bucket, no repository, no cluster, no NodePool);
2. the deploy: Karpenter makes the first GPU node (an allowed type) for the first replica;
3. load (closed-loop clients, a queue forms in Triton's scheduler): the queue time the ScaledObject's own query
   reads from Prometheus rises above the target, KEDA scales the Deployment out, Karpenter creates a GPU node per
   new replica, and each new pod loads its models and serves its references;
4. the bound raised by hand beyond the NodePool's GPU limit: the extra replica stays Pending and verify reports it
   with Karpenter's reason, and passes;
5. no load: KEDA scales in to the minimum and Karpenter removes the empty nodes;
6. the release paused at 0 replicas: no Triton pod, no GPU node.

Short timings for a test (they are chart values and role variables, the same on EKS): KEDA polls every 5 s over a
20 s window, the HPA scales up at once and down after 20 s, a node joins 5 s after its creation
(TRITONFIL_LOCAL_NODE_JOIN_SECONDS; the default 90 s models EKS) and an empty one is consolidated after 10 s.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from tests.integration.playbook_run import run_playbook
from tests.integration.test_pods import CONFIRM, NS, assert_ok, wait_until
from tritonfil.localenv.env import LocalEnv
from tritonfil.localenv.load import Load

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"g4dn", "g5", "g6"}
LIMIT = 3
VALUES: dict[str, Any] = {
    "triton_release_replicas_min": 1,
    "triton_release_replicas_max": LIMIT,
    "karpenter_gpu_limit": LIMIT,
    "karpenter_instance_families": sorted(ALLOWED),
    "karpenter_consolidate_after": "10s",
    "karpenter_disruption_budget": "100%",
    "triton_release_queue_time_target_ms": 2,
    "triton_release_extra_values": {
        "autoscaling": {
            "keda": {"pollingInterval": 5, "window": "20s", "cooldownPeriod": 30},
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}]},
                "scaleDown": {"stabilizationWindowSeconds": 20, "selectPolicy": "Max",
                              "policies": [{"type": "Percent", "value": 100, "periodSeconds": 10}]},
            },
        }
    },
    "tritonfil_verify_requests": 5,
}  # fmt: skip


class Env:
    def __init__(self, local: LocalEnv, work: Path) -> None:
        self.local, self.work, self.count = local, work, 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(local.environ())
        for name in ("AWS_ENDPOINT_URL", "AWS_URL"):
            env.pop(name)
        env.update(TRITONFIL_LOCAL_NODE_JOIN_SECONDS="5", HELM_CACHE_HOME=str(work / "helm-cache"),
                   HELM_CONFIG_HOME=str(work / "helm-config"), HELM_DATA_HOME=str(work / "helm-data"))  # fmt: skip
        self.env = env

    def run(self, label: str, playbook: str, *args: str, **extra: Any):
        self.count += 1
        work = self.work / f"{self.count:02d}-{label}"
        values = self.work / f"{self.count:02d}-values.json"
        values.write_text(json.dumps({**VALUES, **extra}))
        return run_playbook(playbook, work, self.env, "-e", f"@{values}", *args, timeout=1200)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.local.kubectl(*args, "-o", "json").stdout)

    def triton_pods(self) -> list[dict]:
        return self.kubectl_json("get", "pods", "-n", NS, "-l", "app.kubernetes.io/component=inference-server")["items"]

    def gpu_nodes(self) -> list[dict]:
        return self.kubectl_json("get", "nodes", "-l", "karpenter.sh/nodepool")["items"]

    def deployment(self) -> dict:
        return self.kubectl_json("get", "deployment", "-n", NS, "triton")

    def ready_replicas(self) -> int:
        return int(self.deployment()["status"].get("readyReplicas") or 0)

    def prometheus(self, query: str) -> float | None:
        url = self.local.endpoints()["prometheus"] + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback)
            result = json.loads(resp.read())["data"]["result"]
        return float(result[0]["value"][1]) if result else None


def infer(address: str, model: str, rows: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "input__0", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}  # fmt: skip
    req = urllib.request.Request(f"http://{address}/v2/models/{model}/infer", data=json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
        out = json.loads(resp.read())["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Any:
    work = tmp_path_factory.mktemp("autoscale")
    local = LocalEnv(state_dir=work / "env", nodes=0)
    local.up()
    env = Env(local, work)
    out: dict[str, Any] = {"env": env}
    try:
        # 1. bounds beyond capacity, refused up front
        out["refused"] = env.run("beyond-capacity", "site.yml", triton_release_replicas_max=LIMIT + 2)
        keys = local.environ()

        def client(service: str) -> Any:
            return boto3.client(
                service, endpoint_url=keys["AWS_ENDPOINT_URL"], region_name="us-east-1",
                aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            )  # fmt: skip

        s3, ecr, eks = client("s3"), client("ecr"), client("eks")
        out["after_refusal"] = {
            "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]],
            "repositories": [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]],
            "clusters": eks.list_clusters()["clusters"],
            "nodepools": env.kubectl_json("get", "nodepools")["items"],
        }
        # 2. deploy from no GPU node
        out["gpu_nodes_before"] = env.gpu_nodes()
        out["deploy"] = env.run("deploy", "site.yml")
        assert_ok(out["deploy"])
        out["after_deploy"] = {"nodes": env.gpu_nodes(), "pods": env.triton_pods()}
        scaled = env.kubectl_json("get", "scaledobject", "-n", NS, "triton")
        out["query"] = scaled["spec"]["triggers"][0]["metadata"]["query"]
        # 3. load: scale out
        reference = json.loads((ROOT / "model_repository" / "xgb_regressor" / "reference.json").read_text())
        rows = np.asarray(reference["input"], dtype=np.float32)
        load = Load(env.triton_pods, "xgb_regressor", rows[:1], concurrency=16).start()
        out["load"] = load
        try:
            start = time.monotonic()
            out["queue_us_under_load"] = wait_until(
                "the queue time above the target", lambda: (v := env.prometheus(out["query"])) and v > 2000 and v, 120
            )
            wait_until(f"{LIMIT} ready replicas", lambda: env.ready_replicas() == LIMIT, 600, interval=2)
            out["scale_out_seconds"] = time.monotonic() - start
            out["after_scale_out"] = {"nodes": env.gpu_nodes(), "pods": env.triton_pods()}
            expected = np.asarray(reference["expected"], dtype=np.float32)[:4]
            out["served"] = {
                pod["metadata"]["name"]: infer(pod["metadata"]["annotations"]["tritonfil.io/http-address"],
                                               "xgb_regressor", rows[:4])
                for pod in out["after_scale_out"]["pods"]
            }  # fmt: skip
            out["expected"] = expected
            # 4. the bound raised by hand beyond the NodePool's limit
            env.local.kubectl("patch", "scaledobject", "-n", NS, "triton", "--type=merge",
                              "-p", json.dumps({"spec": {"maxReplicaCount": LIMIT + 1}}))  # fmt: skip
            out["pending_pod"] = wait_until(
                "a replica the NodePool's GPU limit cannot hold",
                lambda: [p for p in env.triton_pods() if (p.get("status") or {}).get("phase") == "Pending"],
                180, interval=2,
            )  # fmt: skip
            time.sleep(10)  # Karpenter's provisioning batch: its event on the pod
            out["verify_pending"] = env.run("verify-pending", "playbooks/verify.yml")
            out["nodeclaims_at_limit"] = env.kubectl_json("get", "nodeclaims")["items"]
        finally:
            load.stop()
        # 5. no load: scale in
        stop = time.monotonic()
        wait_until("1 replica", lambda: len(env.triton_pods()) == 1, 420, interval=2)
        wait_until("1 GPU node", lambda: len(env.gpu_nodes()) == 1, 420, interval=2)
        out["scale_in_seconds"] = time.monotonic() - stop
        # 6. paused at 0
        paused = json.loads(json.dumps(VALUES["triton_release_extra_values"]))
        paused["autoscaling"]["keda"]["pausedReplicas"] = 0
        out["paused"] = env.run("paused", "site.yml", "--tags", "triton_release", triton_release_extra_values=paused)
        wait_until("no Triton pod", lambda: len(env.triton_pods()) == 0, 300, interval=2)
        wait_until("no GPU node", lambda: len(env.gpu_nodes()) == 0, 300, interval=2)
        out["after_pause"] = {"nodes": env.gpu_nodes(), "nodeclaims": env.kubectl_json("get", "nodeclaims")["items"]}
        yield out
    finally:
        env.run("teardown", "playbooks/teardown.yml", *CONFIRM)
        local.down()
        shutil.rmtree(work / "env", ignore_errors=True)


def instance_types(nodes: list[dict]) -> list[str]:
    return sorted(n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in nodes)


def test_replica_bounds_beyond_the_gpu_limit_are_refused_before_anything_is_applied(scenario):
    run = scenario["refused"]
    assert run.rc != 0
    msg = run.failure
    assert "triton_release_replicas_max 5 x triton_release_gpus_per_pod 1 = 5 GPUs" in msg, msg
    assert "karpenter_gpu_limit 3" in msg, msg
    assert scenario["after_refusal"] == {"buckets": [], "repositories": [], "clusters": [], "nodepools": []}


def test_the_first_replica_gets_a_gpu_node_of_an_allowed_type(scenario):
    assert scenario["gpu_nodes_before"] == []
    nodes = scenario["after_deploy"]["nodes"]
    assert len(nodes) == 1, instance_types(nodes)
    assert instance_types(nodes)[0].split(".")[0] in ALLOWED
    (pod,) = scenario["after_deploy"]["pods"]
    assert pod["spec"]["nodeName"] == nodes[0]["metadata"]["name"]


def test_load_scales_the_release_out_on_the_queue_time_and_karpenter_brings_gpu_nodes(scenario):
    # The test asks Prometheus with the ScaledObject's own query: one string, from the chart.
    chart_query = (ROOT / "helm" / "triton" / "files" / "queue-time.promql").read_text().strip()
    assert scenario["query"] == (
        chart_query.replace("{{ .Release.Namespace }}", NS).replace("{{ .Release.Name }}", "triton")
        .replace("{{ .Values.autoscaling.keda.window }}", "20s")
    )  # fmt: skip
    assert scenario["queue_us_under_load"] > 2000
    pods = scenario["after_scale_out"]["pods"]
    nodes = scenario["after_scale_out"]["nodes"]
    assert len(pods) == LIMIT and len(nodes) == LIMIT, (len(pods), instance_types(nodes))
    assert {t.split(".")[0] for t in instance_types(nodes)} <= ALLOWED
    assert len({p["spec"]["nodeName"] for p in pods}) == LIMIT  # one GPU each
    for name, outputs in scenario["served"].items():  # every new pod loaded its models and serves them
        np.testing.assert_allclose(outputs, scenario["expected"], atol=1e-3, rtol=1e-5, err_msg=name)
    summary = scenario["load"].summary()
    print(f"scale out to {LIMIT} ready in {scenario['scale_out_seconds']:.0f}s; load {summary}")
    assert summary["failures"] == 0, summary["failure_examples"]


def test_the_gpu_limit_reached_leaves_the_extra_replica_pending_reported_and_nothing_fails(scenario):
    run = scenario["verify_pending"]
    assert_ok(run)
    msg = run.result("Report the replicas that cannot be placed (Pending)")["msg"]
    pending = scenario["pending_pod"][0]["metadata"]["name"]
    assert msg.startswith("PENDING 1 replica(s): ") and pending in msg, msg
    assert "unschedulable" in msg and "karpenter" in msg and "limit" in msg, msg
    assert len(scenario["nodeclaims_at_limit"]) == LIMIT  # no node beyond the limit


def test_no_load_scales_in_and_karpenter_removes_the_empty_nodes(scenario):
    print(f"scale in to 1 replica on 1 node in {scenario['scale_in_seconds']:.0f}s")
    assert scenario["scale_in_seconds"] < 420


def test_the_release_paused_at_zero_leaves_no_gpu_node(scenario):
    assert_ok(scenario["paused"])
    assert scenario["after_pause"] == {"nodes": [], "nodeclaims": []}
