"""The local environment's generated configuration, checked without starting anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tritonfil.localenv import nodes
from tritonfil.localenv.env import LocalEnv, LocalEnvError, Tools, write_private


def fake_tools(tmp_path: Path) -> Tools:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "etcd"):
        (bin_dir / name).write_text("")
    (bin_dir / "metrics-server").write_text("")
    (tmp_path / "share" / "metrics-server-v0.8.0" / "overlays" / "release").mkdir(parents=True)
    return Tools(bin_dir=bin_dir)


def test_kwokctl_config_binds_loopback_and_uses_only_local_binaries(tmp_path):
    env = LocalEnv(state_dir=tmp_path / "state", tools=fake_tools(tmp_path))
    env.state.mkdir()
    conf = json.loads(env._kwok_config().read_text())
    opts = conf["options"]
    assert opts["runtime"] == "binary"
    assert opts["bindAddress"] == "127.0.0.1"
    assert opts["kubeVersion"] == "v1.36.3"
    binaries = {k: v for k, v in opts.items() if k.endswith("Binary")}
    assert len(binaries) == 7 and all(v.startswith(str(tmp_path / "bin")) for v in binaries.values())
    # metrics-server's manifest comes from the tool cache, never from GitHub.
    assert opts["metricsServerManifests"] == [str(tmp_path / "share/metrics-server-v0.8.0/overlays/release")]
    patches = {p["name"]: {a["key"]: a["value"] for a in p["extraArgs"]} for p in conf["componentsPatches"]}
    assert patches["kube-apiserver"]["advertise-address"] == "127.0.0.1"
    assert patches["kwok-controller"] == {"node-ip": "127.0.0.1"}


def test_missing_tool_names_make_tools(tmp_path):
    env = LocalEnv(state_dir=tmp_path / "state", tools=Tools(bin_dir=tmp_path / "empty"))
    env.state.mkdir()
    with pytest.raises(LocalEnvError) as err:
        env._kwok_config()
    assert (
        str(err.value) == f"kube-apiserver not found in {tmp_path / 'empty'}: run `make tools` (scripts/tools.sh) first"
    )


def test_gpu_nodes_are_g4dn_12xlarge_with_gpu_taint_and_metrics_path():
    manifest = json.loads(nodes.gpu_nodes_manifest(3, "c1", "us-east-1"))
    assert [n["metadata"]["name"] for n in manifest["items"]] == [
        "ip-192-168-0-10.ec2.internal",
        "ip-192-168-0-11.ec2.internal",
        "ip-192-168-0-12.ec2.internal",
    ]
    node = manifest["items"][1]
    labels = node["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "g4dn.12xlarge"
    assert labels["topology.kubernetes.io/zone"] == "us-east-1b"
    assert labels["alpha.eksctl.io/cluster-name"] == "c1"
    assert node["status"]["capacity"] == {
        "cpu": "48",
        "memory": "192Gi",
        "nvidia.com/gpu": "4",
        "pods": "234",
        "ephemeral-storage": "100Gi",
    }
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    annotations = node["metadata"]["annotations"]
    assert annotations["kwok.x-k8s.io/node"] == "fake"
    assert (
        annotations["metrics.k8s.io/resource-metrics-path"]
        == "/metrics/nodes/ip-192-168-0-11.ec2.internal/metrics/resource"
    )


def test_private_files_are_0600_even_over_a_readable_file(tmp_path):
    f = tmp_path / "secret"
    f.write_text("old")
    f.chmod(0o644)
    write_private(f, "new")
    assert f.read_text() == "new" and f.stat().st_mode & 0o777 == 0o600


def test_status_of_an_environment_that_is_not_up_is_empty(tmp_path):
    assert LocalEnv(state_dir=tmp_path).status() == {}


def test_system_nodes_are_untainted_without_gpus_and_not_selected_as_gpu_nodes():
    manifest = json.loads(nodes.gpu_nodes_manifest(2, "c1", "us-east-1", system=1))
    gpu, system = manifest["items"][:2], manifest["items"][2]
    labels = system["metadata"]["labels"]
    assert system["metadata"]["name"] == "ip-192-168-200-10.ec2.internal"
    assert system["metadata"]["name"] not in {n["metadata"]["name"] for n in gpu}
    assert labels["eks.amazonaws.com/nodegroup"] == "system"
    assert labels["node.kubernetes.io/instance-type"] == "m6i.xlarge"
    assert labels["tritonfil.io/node-role"] == "system"
    assert not [k for k in labels if k.startswith("nvidia.com/")]
    assert system["spec"]["taints"] == []
    assert "nvidia.com/gpu" not in system["status"]["allocatable"]
    assert system["metadata"]["annotations"]["metrics.k8s.io/resource-metrics-path"].endswith(
        "/ip-192-168-200-10.ec2.internal/metrics/resource"
    )
    # GPU_SELECTOR picks the GPU nodes only.
    want = dict(kv.split("=") for kv in nodes.GPU_SELECTOR.split(","))
    assert all(all(n["metadata"]["labels"].get(k) == v for k, v in want.items()) for n in gpu)
    assert not all(labels.get(k) == v for k, v in want.items())
