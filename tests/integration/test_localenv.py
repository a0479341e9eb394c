"""The local environment is real where it can be: a control plane with GPU nodes, a metrics
pipeline that makes an HPA scale, moto, an OCI registry, tritonserver — all on loopback only."""

from __future__ import annotations

import errno
import functools
import json
import socket
import subprocess
import time

import boto3
import pytest

from tests.integration import faults
from tritonfil.localenv.env import LocalEnv
from tritonfil.localenv.nodes import GPU_SELECTOR

pytestmark = pytest.mark.integration

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{kwok.x-k8s.io/usage-cpu: "{usage}"}}
    spec:
      nodeSelector: {{node.kubernetes.io/instance-type: g4dn.12xlarge}}
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
      containers:
        - name: main
          image: example.invalid/triton:stand-in
          resources:
            requests: {{cpu: "1", memory: 1Gi, nvidia.com/gpu: 1}}
            limits: {{nvidia.com/gpu: 1}}
"""

HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: gpu-app, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: gpu-app}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 4, periodSeconds: 15}]}
    scaleDown: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 100, periodSeconds: 15}]}
"""


def kubectl_json(env: LocalEnv, *args: str) -> dict:
    return json.loads(env.kubectl(*args, "-o", "json").stdout)


def set_usage(env: LocalEnv, deployment: str, cpu: str) -> None:
    """Set the simulated CPU usage of every pod of DEPLOYMENT (kwok reads this pod annotation)."""
    patch = {"spec": {"template": {"metadata": {"annotations": {"kwok.x-k8s.io/usage-cpu": cpu}}}}}
    env.kubectl("patch", "deployment", deployment, "--type=merge", "-p", json.dumps(patch))


# The fault drills' polling loop, at this module's interval.
wait_until = functools.partial(faults.wait_until, interval=2.0)


def test_gpu_nodes_look_like_an_eks_g4dn_node_group(local_env: LocalEnv):
    nodes = kubectl_json(local_env, "get", "nodes", "-l", GPU_SELECTOR)["items"]
    assert len(nodes) == 2
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["node.kubernetes.io/instance-type"] == "g4dn.12xlarge"
        assert labels["eks.amazonaws.com/nodegroup"] == "gpu"
        assert labels["k8s.amazonaws.com/accelerator"] == "nvidia-tesla-t4"
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert node["status"]["capacity"]["cpu"] == "48"
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"
        # kwok advertises the simulated kubelet on loopback, so the metrics pipeline never leaves it.
        assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]


def test_gpu_deployment_schedules_and_hpa_scales_out_and_in(local_env: LocalEnv):
    local_env.kubectl("apply", "-f", "-", input_text=DEPLOYMENT.format(name="gpu-app", usage="100m"))
    local_env.kubectl("rollout", "status", "deployment/gpu-app", "--timeout=120s")
    pods = kubectl_json(local_env, "get", "pods", "-l", "app=gpu-app")["items"]
    assert len(pods) == 1
    node = pods[0]["spec"]["nodeName"]
    assert node.endswith(".ec2.internal"), node
    assert {c["type"]: c["status"] for c in pods[0]["status"]["conditions"]}["Ready"] == "True"

    # The metrics API serves the simulated usage (through metrics-server scraping kwok on 127.0.0.1).
    wait_until(
        "pod metrics for gpu-app",
        lambda: local_env.kubectl("top", "pod", "-l", "app=gpu-app", "--no-headers", check=False).returncode == 0,
        120,
    )

    local_env.kubectl("apply", "-f", "-", input_text=HPA)

    def replicas() -> tuple[int, int]:
        d = kubectl_json(local_env, "get", "deployment", "gpu-app")
        return d["spec"]["replicas"], d["status"].get("readyReplicas", 0)

    # Load rises: every pod uses 900m of its 1 CPU request (90% > 50% target). Patch only the pod
    # template: re-applying the manifest would reset spec.replicas under the HPA's feet.
    t0 = time.monotonic()
    set_usage(local_env, "gpu-app", "900m")
    wait_until("scale out to >= 3 ready replicas", lambda: replicas()[1] >= 3 and replicas()[0] >= 3, 240)
    scale_out = time.monotonic() - t0
    # Load falls: 50m per pod (5%).
    t1 = time.monotonic()
    set_usage(local_env, "gpu-app", "50m")
    assert replicas()[0] >= 3, "the deployment scaled in before the HPA could act"
    wait_until("scale in to 1 replica", lambda: replicas() == (1, 1), 300)
    scale_in = time.monotonic() - t1
    print(f"HPA scale out 1->3+: {scale_out:.0f}s, scale in ->1: {scale_in:.0f}s")
    for pod in kubectl_json(local_env, "get", "pods", "-l", "app=gpu-app")["items"]:
        assert pod["spec"]["nodeName"].endswith(".ec2.internal")
    local_env.kubectl("delete", "hpa/gpu-app", "deployment/gpu-app")


def test_moto_serves_s3_ecr_eks_sts_iam(local_env: LocalEnv, local_environ):
    ep = local_env.endpoints()["aws_endpoint_url"]
    s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
    s3.create_bucket(Bucket="probe-bucket")
    s3.put_object(Bucket="probe-bucket", Key="k", Body=b"v")
    assert s3.get_object(Bucket="probe-bucket", Key="k")["Body"].read() == b"v"
    ecr = boto3.client("ecr", endpoint_url=ep, region_name="us-east-1")
    ecr.create_repository(repositoryName="probe")
    assert ecr.get_authorization_token()["authorizationData"]
    assert boto3.client("sts", endpoint_url=ep, region_name="us-east-1").get_caller_identity()["Account"]
    iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1")
    assert iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")["Policy"]
    assert "clusters" in boto3.client("eks", endpoint_url=ep, region_name="us-east-1").list_clusters()


def test_aws_cli_style_endpoint_env_reaches_moto(local_env: LocalEnv, local_environ):
    """Clients that only read AWS_ENDPOINT_URL (as `aws --endpoint-url` users do) reach moto."""
    s3 = boto3.client("s3")  # endpoint, region and fake keys all from the environment
    assert s3.meta.endpoint_url == local_env.endpoints()["aws_endpoint_url"]
    assert "Buckets" in s3.list_buckets()


def test_skopeo_pushes_a_locally_built_oci_image(local_env: LocalEnv, tmp_path):
    layout = tmp_path / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:v1"], check=True)
    registry = local_env.endpoints()["registry"]
    dest = f"docker://{registry}/probe/tiny:v1"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1", dest], check=True)
    digest = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", dest],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert digest.startswith("sha256:")


def test_non_loopback_dial_fails_immediately(isolated: bool):
    assert isolated, "the test run is not in a loopback-only network namespace"
    for address in ("10.96.0.1", "10.0.0.5", "192.0.2.1"):
        s = socket.socket()
        s.settimeout(5)
        t0 = time.monotonic()
        with pytest.raises(OSError) as err:
            s.connect((address, 443))
        s.close()
        assert err.value.errno == errno.ENETUNREACH, err.value
        assert time.monotonic() - t0 < 0.5
