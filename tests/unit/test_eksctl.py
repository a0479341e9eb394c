"""plugins/module_utils/eksctl.py: the exact eksctl command lines, its JSON, the plan, the error path;
and that real eksctl accepts the ClusterConfig the module renders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tritonfil.localenv.env import cache_dir
from tritonfil.models import module_utils

_eksctl = module_utils("eksctl")  # the collection's plugins/module_utils/eksctl.py, from this checkout
Eksctl = _eksctl.Eksctl
EksctlError = _eksctl.EksctlError
current_state = _eksctl.current_state
desired_state = _eksctl.desired_state
plan = _eksctl.plan
render_cluster_config = _eksctl.render_cluster_config
validate_config = _eksctl.validate_config

# `eksctl get cluster --name c1 -o json`: a list of EKS Cluster structs (aws-sdk-go-v2 types have no
# json tags, so the keys are the Go field names), printed by pkg/printers/json.go with 4-space indent.
GET_CLUSTER_JSON = """[
    {
        "AccessConfig": {"AuthenticationMode": "API_AND_CONFIG_MAP", "BootstrapClusterCreatorAdminPermissions": true},
        "Arn": "arn:aws:eks:us-east-1:123456789012:cluster/c1",
        "CertificateAuthority": {"Data": "LS0tLS1CRUdJTi"},
        "CreatedAt": "2026-11-20T10:11:12.345Z",
        "Endpoint": "https://0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
        "Identity": {"Oidc": {"Issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF"}},
        "KubernetesNetworkConfig": {"IpFamily": "ipv4", "ServiceIpv4Cidr": "10.100.0.0/16"},
        "Name": "c1",
        "PlatformVersion": "eks.9",
        "ResourcesVpcConfig": {"ClusterSecurityGroupId": "sg-0abc", "EndpointPublicAccess": true,
                               "SubnetIds": ["subnet-1", "subnet-2"], "VpcId": "vpc-0abc"},
        "RoleArn": "arn:aws:iam::123456789012:role/eksctl-c1-cluster-ServiceRole-X",
        "Status": "ACTIVE",
        "Tags": {"alpha.eksctl.io/cluster-name": "c1"},
        "Version": "1.33"
    }
]"""
# `eksctl get nodegroup --cluster c1 -o json`: pkg/actions/nodegroup/get.go Summary (NodeGroupType as "Type").
GET_NODEGROUP_JSON = """[
    {
        "StackName": "eksctl-c1-nodegroup-gpu",
        "Cluster": "c1",
        "Name": "gpu",
        "Status": "ACTIVE",
        "MaxSize": 2,
        "MinSize": 1,
        "DesiredCapacity": 1,
        "InstanceType": "g4dn.xlarge",
        "ImageID": "AL2023_x86_64_NVIDIA",
        "CreationTime": "2026-11-20T10:25:00Z",
        "NodeInstanceRoleARN": "arn:aws:iam::123456789012:role/eksctl-c1-nodegroup-gpu-NodeInstanceRole-Y",
        "AutoScalingGroupName": "eks-gpu-0ac9-asg",
        "Version": "1.33",
        "Type": "managed"
    }
]"""
# What eksctl prints (stderr, rc 1) for a cluster that does not exist (pkg/eks/eks.go GetCluster).
NOT_FOUND_STDERR = (
    'Error: unable to describe control plane "c1": operation error EKS: DescribeCluster, https response error '
    "StatusCode: 404, RequestID: 5d7c, ResourceNotFoundException: No cluster found for name: c1.\n"
)


class Recorder:
    """A runner that records argv and env and answers from a queue."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        self.calls.append((argv, env))
        return self.answers.pop(0)


def make(*answers: tuple[int, str, str], environ: dict[str, str] | None = None) -> tuple[Eksctl, Recorder]:
    rec = Recorder(*answers)
    base = {"PATH": "/usr/bin", "LANG": "de_DE.UTF-8", **(environ or {})}
    return Eksctl("/opt/bin/eksctl", "us-east-1", "http://127.0.0.1:5000", environ=base, runner=rec), rec


NODEGROUP = {
    "name": "gpu",
    "instance_type": "g4dn.xlarge",
    "min_size": 1,
    "desired_capacity": 1,
    "max_size": 2,
    "volume_size": 100,
    "ami_family": "AmazonLinux2023",
    "labels": {"workload": "triton"},
    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
    "ssh_allow": False,
}
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::models/triton/*"]}],
}
SERVICE_ACCOUNT = {"namespace": "triton", "name": "triton", "attach_policy": POLICY}


def test_command_lines_are_exact_argv_lists():
    e, _ = make()
    assert e.argv_get_cluster("c1") == [
        "/opt/bin/eksctl", "get", "cluster", "--name", "c1", "--region", "us-east-1", "--output", "json",
    ]  # fmt: skip
    assert e.argv_get_nodegroups("c1") == [
        "/opt/bin/eksctl", "get", "nodegroup", "--cluster", "c1", "--region", "us-east-1", "--output", "json",
    ]  # fmt: skip
    assert e.argv_create_cluster("/tmp/c1.yaml", 2400) == [
        "/opt/bin/eksctl", "create", "cluster", "--config-file", "/tmp/c1.yaml", "--write-kubeconfig=false",
        "--timeout", "2400s",
    ]  # fmt: skip
    assert e.argv_scale_nodegroup("c1", "gpu", 1, 3, 4, True, 600) == [
        "/opt/bin/eksctl", "scale", "nodegroup", "--cluster", "c1", "--name", "gpu", "--region", "us-east-1",
        "--nodes", "3", "--nodes-min", "1", "--nodes-max", "4", "--wait", "--timeout", "600s",
    ]  # fmt: skip
    assert e.argv_scale_nodegroup("c1", "gpu", 0, 0, 1, False, 600)[-6:] == [
        "--nodes", "0", "--nodes-min", "0", "--nodes-max", "1"
    ]  # fmt: skip
    assert e.argv_delete_cluster("c1", True, 1800) == [
        "/opt/bin/eksctl", "delete", "cluster", "--name", "c1", "--region", "us-east-1", "--wait", "--timeout", "1800s",
    ]  # fmt: skip
    assert e.argv_delete_cluster("c1", False, 1800) == [
        "/opt/bin/eksctl", "delete", "cluster", "--name", "c1", "--region", "us-east-1",
    ]  # fmt: skip
    assert e.argv_write_kubeconfig("c1", "/root/.kube/c1") == [
        "/opt/bin/eksctl", "utils", "write-kubeconfig", "--cluster", "c1", "--region", "us-east-1",
        "--kubeconfig", "/root/.kube/c1",
    ]  # fmt: skip


def test_environment_is_c_locale_with_the_endpoint_and_region():
    e, rec = make((0, GET_CLUSTER_JSON, ""), (0, GET_NODEGROUP_JSON, ""))
    e.get_cluster("c1")
    argv, env = rec.calls[0]
    assert argv == e.argv_get_cluster("c1")
    assert env["LC_ALL"] == "C" and env["LANG"] == "C"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["PATH"] == "/usr/bin"


def test_get_cluster_parses_eksctl_json_and_returns_none_when_absent():
    e, _ = make((0, GET_CLUSTER_JSON, ""), (1, "", NOT_FOUND_STDERR))
    cluster = e.get_cluster("c1")
    assert cluster["Name"] == "c1" and cluster["Version"] == "1.33" and cluster["Status"] == "ACTIVE"
    assert e.get_cluster("c1") is None


def test_get_nodegroups_parses_summaries_and_empty_output():
    e, _ = make((0, GET_NODEGROUP_JSON, ""), (0, "[]", ""))
    [ng] = e.get_nodegroups("c1")
    assert (ng["Name"], ng["MinSize"], ng["DesiredCapacity"], ng["MaxSize"], ng["Type"]) == ("gpu", 1, 1, 2, "managed")
    assert e.get_nodegroups("c1") == []


def test_failure_carries_command_rc_output_with_credentials_redacted():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    stderr = f"Error: signing failed for AKIAIOSFODNN7EXAMPLE with aws_secret_access_key={secret} token {secret}\n"
    e, _ = make((255, "partial", stderr), environ={"AWS_SECRET_ACCESS_KEY": secret})
    with pytest.raises(EksctlError) as info:
        e.get_cluster("c1")
    err = info.value
    assert err.rc == 255 and err.command == e.argv_get_cluster("c1") and err.stdout == "partial"
    assert secret not in err.stderr and secret not in err.message
    assert "AKIAIOSFODNN7EXAMPLE" not in err.stderr
    assert err.message == (
        "get cluster c1 failed (rc=255): Error: signing failed for ******** with aws_secret_access_key=******** "
        "token ********"
    )
    assert err.details() == {"command": err.command, "rc": 255, "stdout": "partial", "stderr": err.stderr}


def test_invalid_json_is_an_error_naming_the_command():
    e, _ = make((0, "not json", ""))
    with pytest.raises(EksctlError, match=r"^get cluster c1: eksctl printed no valid JSON"):
        e.get_cluster("c1")


def test_missing_binary_is_named():
    e = Eksctl("/nonexistent/eksctl", "us-east-1", environ={"PATH": "/nonexistent"})
    with pytest.raises(EksctlError, match=r"^eksctl not found: '/nonexistent/eksctl' is not an executable"):
        e.find()


def test_rendered_cluster_config():
    config = render_cluster_config("c1", "us-east-1", "1.33", [NODEGROUP], True, [SERVICE_ACCOUNT])
    assert config == {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {"name": "c1", "region": "us-east-1", "version": "1.33"},
        "iam": {
            "withOIDC": True,
            "serviceAccounts": [{"metadata": {"name": "triton", "namespace": "triton"}, "attachPolicy": POLICY}],
        },
        "managedNodeGroups": [
            {
                "name": "gpu",
                "instanceType": "g4dn.xlarge",
                "amiFamily": "AmazonLinux2023",
                "minSize": 1,
                "desiredCapacity": 1,
                "maxSize": 2,
                "volumeSize": 100,
                "ssh": {"allow": False},
                "labels": {"workload": "triton"},
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
            }
        ],
    }
    assert validate_config(config, "c1", "us-east-1") == []
    bad = {**config, "managedNodeGroups": [{**config["managedNodeGroups"][0], "minSize": 3}]}
    assert validate_config(bad, "c2", "us-east-1") == [
        "config.metadata.name 'c1' differs from name 'c2'",
        "managed node group gpu: need 0 <= minSize <= desiredCapacity <= maxSize, got 3/1/2",
    ]


def existing(**ng: object) -> dict:
    cluster = json.loads(GET_CLUSTER_JSON)[0]
    nodegroups = [{**json.loads(GET_NODEGROUP_JSON)[0], **ng}]
    return current_state(cluster, nodegroups)


def wanted(version: str = "1.33", **ng: object) -> dict:
    return desired_state(render_cluster_config("c1", "us-east-1", version, [{**NODEGROUP, **ng}]))


def test_plan_no_change_when_equal():
    assert plan(existing(), wanted()) == ([], [])


def test_plan_scales_only_the_sizes_that_differ():
    assert plan(existing(), wanted(desired_capacity=2, max_size=3)) == (
        [{"name": "gpu", "min_size": 1, "desired_capacity": 2, "max_size": 3}],
        [],
    )


def test_plan_refuses_immutable_changes():
    scale, refusals = plan(existing(), wanted("1.34", instance_type="g5.xlarge"))
    assert scale == []
    assert refusals == [
        "Cannot modify version of existing cluster c1 (it is 1.33, asked for 1.34): upgrade it with "
        "`eksctl upgrade cluster`",
        "Cannot modify instance type of node group gpu of existing cluster c1 (it is g4dn.xlarge, asked for g5.xlarge)",
    ]
    _, refusals = plan(existing(), wanted(name="gpu2"))
    assert refusals == [
        "Cannot add managed node group gpu2 to existing cluster c1: it has ['gpu'] "
        "(create it with `eksctl create nodegroup`)"
    ]


def test_current_state_of_no_cluster_is_empty():
    assert current_state(None, []) == {}


def real_eksctl() -> str:
    found = shutil.which("eksctl") or str(cache_dir() / "bin" / "eksctl")
    assert os.access(found, os.X_OK), f"eksctl not found ({found}): build it with `scripts/tools.sh eksctl`"
    return found


def dry_run(config: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LC_ALL": "C",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        # A closed loopback port: eksctl's first AWS call fails at once, whatever the network.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    argv = [real_eksctl(), "create", "cluster", "--config-file", str(cfg), "--dry-run"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_real_eksctl_loads_the_rendered_config_offline(tmp_path):
    """eksctl 0.215 `create cluster --dry-run` loads the file strictly (unknown fields are errors), then needs
    AWS (sts:GetCallerIdentity, then eks:DescribeClusterVersions — which moto 5.2.5 lacks). Offline, getting
    past loading to the STS call is as far as real eksctl goes; the misspelt field proves loading is strict."""
    config = render_cluster_config("c1", "us-east-1", "1.33", [NODEGROUP], True, [SERVICE_ACCOUNT])
    proc = dry_run(config, tmp_path)
    assert proc.returncode == 1
    assert "loading config file" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("Error: checking AWS STS access"), proc.stderr

    broken = json.loads(json.dumps(config))
    broken["managedNodeGroups"][0]["volumeSizeGiB"] = 100
    proc = dry_run(broken, tmp_path)
    assert proc.returncode == 1
    assert 'json: unknown field "volumeSizeGiB"' in proc.stderr, proc.stderr
