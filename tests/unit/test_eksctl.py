"""plugins/module_utils/eksctl.py: the exact eksctl command lines, its JSON, the plan, the error path;
and that real eksctl accepts the ClusterConfig the module renders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tritonfil.localenv.env import cache_dir
from tritonfil.models import module_utils

_eksctl = module_utils("eksctl")  # the collection's plugins/module_utils/eksctl.py, from this checkout
Eksctl = _eksctl.Eksctl
EksctlError = _eksctl.EksctlError
Refusal = _eksctl.Refusal
converge = _eksctl.converge
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
# `eksctl get iamserviceaccount --cluster c1 -o json`: api.ClusterIAMServiceAccount (json tags) built from the
# IRSA stacks (pkg/cfn/manager/iam.go GetIAMServiceAccounts; roleOnly ones have a stack too).
GET_IAMSERVICEACCOUNT_JSON = """[
    {
        "metadata": {"name": "triton", "namespace": "triton"},
        "status": {
            "roleARN": "arn:aws:iam::123456789012:role/tritonfil-c1-triton-triton",
            "stackName": "eksctl-c1-addon-iamserviceaccount-triton-triton",
            "tags": {"alpha.eksctl.io/iamserviceaccount-name": "triton/triton"},
            "capabilities": ["CAPABILITY_IAM"]
        }
    }
]"""
# `eksctl utils associate-iam-oidc-provider --cluster c1` without --approve (plan mode), on stdout.
OIDC_PRESENT = (
    '2026-11-26 05:00:01 [ℹ]  IAM Open ID Connect provider is already associated with cluster "c1" in "us-east-1"\n'
)
OIDC_MISSING = (
    '2026-11-26 05:00:01 [ℹ]  (plan) would create IAM Open ID Connect provider for cluster "c1" in "us-east-1"\n'
    "2026-11-26 05:00:01 [!]  no changes were applied, run again with '--approve' to apply the changes\n"
)
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

        self.config_files: list[dict] = []  # the --config-file each command got, as it was when it ran

    def __call__(self, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        self.calls.append((argv, env))
        if "--config-file" in argv:
            self.config_files.append(yaml.safe_load(Path(argv[argv.index("--config-file") + 1]).read_text()))
        assert self.answers, f"unexpected command {argv}"
        return self.answers.pop(0)

    def verbs(self) -> list[str]:
        return [" ".join(argv[1:3]) for argv, _ in self.calls]


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
    assert e.argv_get_iamserviceaccounts("c1") == [
        "/opt/bin/eksctl", "get", "iamserviceaccount", "--cluster", "c1", "--region", "us-east-1", "--output", "json",
    ]  # fmt: skip
    # With --config-file eksctl refuses --region and --cluster ("cannot use --region when --config-file/-f is set").
    assert e.argv_create_nodegroups("/tmp/c1.yaml", ["gpu", "system"], 2400) == [
        "/opt/bin/eksctl", "create", "nodegroup", "--config-file", "/tmp/c1.yaml", "--include=gpu,system",
        "--timeout", "2400s",
    ]  # fmt: skip
    assert e.argv_create_iamserviceaccounts("/tmp/c1.yaml", ["triton/triton"], 2400) == [
        "/opt/bin/eksctl", "create", "iamserviceaccount", "--config-file", "/tmp/c1.yaml", "--include=triton/triton",
        "--override-existing-serviceaccounts", "--approve", "--timeout", "2400s",
    ]  # fmt: skip
    assert e.argv_check_oidc_provider("c1") == [
        "/opt/bin/eksctl", "utils", "associate-iam-oidc-provider", "--cluster", "c1", "--region", "us-east-1",
    ]  # fmt: skip
    assert e.argv_associate_oidc_provider("/tmp/c1.yaml") == [
        "/opt/bin/eksctl", "utils", "associate-iam-oidc-provider", "--config-file", "/tmp/c1.yaml", "--approve",
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
        # The hardening by default: both endpoints, no CIDR list (the role's rule asks for one), three log types.
        "vpc": {"clusterEndpoints": {"publicAccess": True, "privateAccess": True}},
        "cloudWatch": {"clusterLogging": {"enableTypes": ["api", "audit", "authenticator"]}},
        "managedNodeGroups": [
            {
                "name": "gpu",
                "instanceType": "g4dn.xlarge",
                "amiFamily": "AmazonLinux2023",
                "minSize": 1,
                "desiredCapacity": 1,
                "maxSize": 2,
                "volumeSize": 100,
                "volumeEncrypted": True,
                "disablePodIMDS": True,
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


HARDENED = {
    "cluster_logging": ["api", "audit", "authenticator", "controllerManager"],
    "endpoint_public_access": True,
    "endpoint_private_access": True,
    "public_access_cidrs": ["203.0.113.0/24", "198.51.100.7/32"],
    "secrets_kms_key_arn": "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


def test_rendered_cluster_config_carries_each_hardening_setting():
    ng = {**NODEGROUP, "volume_kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/ebs"}
    config = render_cluster_config("c1", "us-east-1", "1.33", [ng, {**SYSTEM, "disable_pod_imds": False,
                                   "volume_encrypted": False}], True, [], security=HARDENED)  # fmt: skip
    assert config["vpc"] == {
        "clusterEndpoints": {"publicAccess": True, "privateAccess": True},
        "publicAccessCIDRs": ["203.0.113.0/24", "198.51.100.7/32"],
    }
    assert config["cloudWatch"] == {"clusterLogging": {"enableTypes": ["api", "audit", "authenticator",
                                                                       "controllerManager"]}}  # fmt: skip
    assert config["secretsEncryption"] == {"keyARN": HARDENED["secrets_kms_key_arn"]}
    gpu, system = config["managedNodeGroups"]
    assert (gpu["volumeEncrypted"], gpu["volumeKmsKeyID"], gpu["disablePodIMDS"]) == (
        True, "arn:aws:kms:us-east-1:123456789012:key/ebs", True)  # fmt: skip
    # A node group's own opt-outs (a workload that must read instance metadata).
    assert (system["volumeEncrypted"], system["disablePodIMDS"]) == (False, False) and "volumeKmsKeyID" not in system
    assert validate_config(config, "c1", "us-east-1") == []
    private = render_cluster_config("c1", "us-east-1", "1.33", [NODEGROUP], security={
        "endpoint_public_access": False, "public_access_cidrs": ["203.0.113.0/24"], "cluster_logging": []})  # fmt: skip
    assert private["vpc"] == {"clusterEndpoints": {"publicAccess": False, "privateAccess": True}}
    assert "cloudWatch" not in private and "secretsEncryption" not in private
    nowhere = render_cluster_config(
        "c1",
        "us-east-1",
        "1.33",
        [],
        security={
            "endpoint_public_access": False,
            "endpoint_private_access": False,
            "cluster_logging": ["api", "kubelet"],
        },
    )
    assert validate_config(nowhere, "c1", "us-east-1") == [
        "vpc.clusterEndpoints: publicAccess and privateAccess cannot both be false",
        "cloudWatch.clusterLogging.enableTypes: unknown kubelet "
        "(one of api, audit, authenticator, controllerManager, scheduler, all, *)",
    ]


def test_real_eksctl_loads_the_hardened_config_offline(tmp_path):
    """Every hardening field has eksctl's own name and place: strict loading gets past them to the STS call."""
    ng = {**NODEGROUP, "volume_kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/ebs"}
    security = {**HARDENED, "secrets_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k"}
    config = render_cluster_config("c1", "us-east-1", "1.33", [ng], True, [SERVICE_ACCOUNT], security=security)
    proc = dry_run(config, tmp_path)
    assert proc.returncode == 1
    assert "loading config file" not in proc.stderr and "unknown field" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("Error: checking AWS STS access"), proc.stderr


def test_drift_of_the_control_plane_hardening_is_reported_with_the_eksctl_command():
    cluster = json.loads(GET_CLUSTER_JSON)[0]  # public endpoint open to all, no logging, no encryption
    config = render_cluster_config("c1", "us-east-1", "1.33", [NODEGROUP], security=HARDENED)
    assert _eksctl.control_plane_drift(cluster, config) == [
        "cluster c1: control-plane logging is [], the config asks for [api, audit, authenticator, controllerManager]: "
        "`eksctl utils update-cluster-logging --config-file FILE --approve`",
        "cluster c1: API endpoint private access False (config: True); public access CIDRs 0.0.0.0/0 "
        "(config: 198.51.100.7/32, 203.0.113.0/24): "
        "`eksctl utils update-cluster-vpc-config --config-file FILE --approve`",
        f"cluster c1: Secrets are not envelope-encrypted with {HARDENED['secrets_kms_key_arn']}: "
        "`eksctl utils enable-secrets-encryption --config-file FILE --approve`",
    ]
    hardened = {
        **cluster,
        "Logging": {"ClusterLogging": [{"Types": ["api", "audit", "authenticator", "controllerManager"],
                                        "Enabled": True}, {"Types": ["scheduler"], "Enabled": False}]},
        "ResourcesVpcConfig": {**cluster["ResourcesVpcConfig"], "EndpointPrivateAccess": True,
                               "PublicAccessCidrs": ["198.51.100.7/32", "203.0.113.0/24"]},
        "EncryptionConfig": [{"Resources": ["secrets"], "Provider": {"KeyArn": HARDENED["secrets_kms_key_arn"]}}],
    }  # fmt: skip
    assert _eksctl.control_plane_drift(hardened, config) == []


def existing(**ng: object) -> dict:
    cluster = json.loads(GET_CLUSTER_JSON)[0]
    nodegroups = [{**json.loads(GET_NODEGROUP_JSON)[0], **ng}]
    return current_state(cluster, nodegroups)


def wanted(version: str = "1.33", **ng: object) -> dict:
    return desired_state(render_cluster_config("c1", "us-east-1", version, [{**NODEGROUP, **ng}]))


NOTHING = {"associate_oidc": False, "create_nodegroups": [], "create_service_accounts": [], "scale": [],
           "refusals": []}  # fmt: skip


def test_plan_no_change_when_equal():
    assert plan(existing(), wanted()) == NOTHING


def test_plan_scales_only_the_sizes_that_differ():
    assert plan(existing(), wanted(desired_capacity=2, max_size=3)) == {
        **NOTHING,
        "scale": [{"name": "gpu", "min_size": 1, "desired_capacity": 2, "max_size": 3}],
    }


def test_plan_refuses_immutable_changes_and_creates_missing_nodegroups():
    todo = plan(existing(), wanted("1.34", instance_type="g5.xlarge"))
    assert todo["scale"] == []
    assert todo["refusals"] == [
        "Cannot modify version of existing cluster c1 (it is 1.33, asked for 1.34): upgrade it with "
        "`eksctl upgrade cluster`",
        "Cannot modify instance type of node group gpu of existing cluster c1 (it is g4dn.xlarge, asked for g5.xlarge)",
    ]
    # A node group the cluster lacks (an interrupted `eksctl create cluster`) is created, not refused.
    assert plan(existing(), wanted(name="gpu2")) == {**NOTHING, "create_nodegroups": ["gpu2"]}


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


# -- converge: what an interrupted `eksctl create cluster` leaves behind -------------------------------------

SYSTEM = {**NODEGROUP, "name": "system", "instance_type": "m6i.large", "labels": {}, "taints": [], "max_size": 3}
ROLE_ONLY_SA = {**SERVICE_ACCOUNT, "role_only": True, "role_name": "tritonfil-c1-triton-triton"}
CONFIG = render_cluster_config("c1", "us-east-1", "1.33", [NODEGROUP, SYSTEM], True, [ROLE_ONLY_SA])
OK = (0, "", "")


def cluster_json(status: str = "ACTIVE") -> str:
    return json.dumps([{**json.loads(GET_CLUSTER_JSON)[0], "Status": status}])


def nodegroups_json(*names: str) -> str:
    gpu = json.loads(GET_NODEGROUP_JSON)[0]
    system = {
        **gpu,
        "Name": "system",
        "InstanceType": "m6i.large",
        "MaxSize": 3,
        "StackName": "eksctl-c1-nodegroup-system",
    }
    return json.dumps([ng for ng in (gpu, system) if ng["Name"] in names])


def test_converge_does_nothing_when_the_cluster_is_complete():
    e, rec = make((0, cluster_json(), ""), (0, nodegroups_json("gpu", "system"), ""),
                  (0, GET_IAMSERVICEACCOUNT_JSON, ""), (0, OIDC_PRESENT, ""))  # fmt: skip
    out = converge(e, CONFIG, check_mode=False, wait_timeout=600)
    assert out["changed"] is False and out["actions"] == [] and out["commands"] == [] and out["diff"] is None
    assert rec.verbs() == ["get cluster", "get nodegroup", "get iamserviceaccount", "utils associate-iam-oidc-provider"]
    assert rec.calls[3][0] == e.argv_check_oidc_provider("c1")  # plan mode: no --approve
    assert [ng["Name"] for ng in out["nodegroups"]] == ["gpu", "system"]


class KeyedRunner:
    """A thread-safe runner answering by verb; each read of the existing cluster waits at a barrier for the other
    two, so the reads only finish when they run at the same time."""

    def __init__(self, answers: dict[str, tuple[int, str, str]], parties: int) -> None:
        self.answers = answers
        self.barrier = threading.Barrier(parties, timeout=10)
        self.lock = threading.Lock()
        self.verbs: list[str] = []

    def __call__(self, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        verb = " ".join(argv[1:3])
        with self.lock:
            self.verbs.append(verb)
        if verb != "get cluster":
            self.barrier.wait()
        return self.answers[verb]


COMPLETE = {"get cluster": (0, cluster_json(), ""), "get nodegroup": (0, nodegroups_json("gpu", "system"), ""),
            "get iamserviceaccount": (0, GET_IAMSERVICEACCOUNT_JSON, ""),
            "utils associate-iam-oidc-provider": (0, OIDC_PRESENT, "")}  # fmt: skip


def test_converge_reads_node_groups_irsa_and_oidc_at_the_same_time():
    runner = KeyedRunner(COMPLETE, parties=3)
    e = Eksctl("/opt/bin/eksctl", "us-east-1", environ={"PATH": "/usr/bin"}, runner=runner, parallel_reads=True)
    out = converge(e, CONFIG, check_mode=False, wait_timeout=600)
    assert out["changed"] is False and out["actions"] == [] and out["commands"] == []
    assert runner.verbs[0] == "get cluster"
    assert sorted(runner.verbs[1:]) == ["get iamserviceaccount", "get nodegroup", "utils associate-iam-oidc-provider"]
    assert [ng["Name"] for ng in out["nodegroups"]] == ["gpu", "system"]
    # sequential (a fake runner's default) the first read waits alone at the barrier: the reads did overlap above
    lone = KeyedRunner(COMPLETE, parties=3)
    lone.barrier = threading.Barrier(3, timeout=0.2)
    with pytest.raises(threading.BrokenBarrierError):
        converge(Eksctl("/opt/bin/eksctl", "us-east-1", environ={"PATH": "/usr/bin"}, runner=lone), CONFIG,
                 check_mode=False, wait_timeout=600)  # fmt: skip
    assert Eksctl().parallel_reads is True  # the real subprocess runner reads in parallel


def test_parallel_reads_finish_all_then_raise_the_first_error_in_order():
    failing = {**COMPLETE, "get nodegroup": (1, "", "Error: AccessDeniedException: eks:ListNodegroups")}
    runner = KeyedRunner(failing, parties=3)
    e = Eksctl("/opt/bin/eksctl", "us-east-1", environ={"PATH": "/usr/bin"}, runner=runner, parallel_reads=True)
    with pytest.raises(EksctlError, match="get nodegroups of c1 failed .*AccessDeniedException"):
        converge(e, CONFIG, check_mode=False, wait_timeout=600)
    assert len(runner.verbs) == 4  # the other two reads ran to the end


def test_converge_creates_the_missing_nodegroups_of_a_bare_cluster(tmp_path):
    """SIGINT during `eksctl create cluster` after the control plane: no node groups. Both are created with the
    same ClusterConfig, one `eksctl create nodegroup --include`, instead of `Cannot add managed node group`."""
    e, rec = make(
        (0, cluster_json(), ""), (0, "[]", ""), (0, GET_IAMSERVICEACCOUNT_JSON, ""), (0, OIDC_PRESENT, ""),
        OK,  # create nodegroup
        (0, cluster_json(), ""), (0, nodegroups_json("gpu", "system"), ""),
    )  # fmt: skip
    out = converge(e, CONFIG, check_mode=False, wait_timeout=600)
    assert out["changed"] is True
    assert out["actions"] == [
        "create node group gpu (g4dn.xlarge, min 1, desired 1, max 2)",
        "create node group system (m6i.large, min 1, desired 1, max 3)",
    ]
    [argv] = out["commands"]
    config_file = argv[4]
    assert argv == e.argv_create_nodegroups(config_file, ["gpu", "system"], 600)
    assert rec.config_files == [CONFIG]  # the very ClusterConfig `create cluster` got
    assert not Path(config_file).exists()  # removed afterwards
    assert out["diff"]["before"]["nodegroups"] == {}
    assert out["diff"]["after"] == desired_state(CONFIG)
    assert [ng["Name"] for ng in out["nodegroups"]] == ["gpu", "system"]


def test_converge_creates_the_missing_oidc_provider_and_irsa_role_then_checks_them():
    e, rec = make(
        (0, cluster_json(), ""), (0, nodegroups_json("gpu", "system"), ""), (0, "[]", ""), (0, OIDC_MISSING, ""),
        OK, OK,  # associate-iam-oidc-provider --approve, create iamserviceaccount
        (0, cluster_json(), ""), (0, nodegroups_json("gpu", "system"), ""), (0, GET_IAMSERVICEACCOUNT_JSON, ""),
    )  # fmt: skip
    out = converge(e, CONFIG, check_mode=False, wait_timeout=600)
    assert out["actions"] == [
        "associate IAM OIDC provider with cluster c1",
        "create IRSA service account triton/triton (IAM role tritonfil-c1-triton-triton)",
    ]
    associate, create_sa = out["commands"]
    assert associate == e.argv_associate_oidc_provider(associate[4])
    assert create_sa == e.argv_create_iamserviceaccounts(create_sa[4], ["triton/triton"], 600)
    assert rec.config_files == [CONFIG, CONFIG]
    assert out["diff"]["before"]["iam_oidc_provider"] is False and out["diff"]["before"]["service_accounts"] == []
    assert out["diff"]["after"]["iam_oidc_provider"] is True
    assert out["diff"]["after"]["service_accounts"] == ["triton/triton"]
    assert rec.verbs()[-1] == "get iamserviceaccount"  # checked after creation


def test_converge_fails_when_the_irsa_role_is_still_missing_after_eksctl():
    e, _ = make(
        (0, cluster_json(), ""), (0, nodegroups_json("gpu", "system"), ""), (0, "[]", ""), (0, OIDC_PRESENT, ""),
        OK, (0, cluster_json(), ""), (0, nodegroups_json("gpu", "system"), ""), (0, "[]", ""),
    )  # fmt: skip
    with pytest.raises(EksctlError, match=r"IRSA service accounts triton/triton still missing"):
        converge(e, CONFIG, check_mode=False, wait_timeout=600)


def test_converge_check_mode_plans_nodegroups_irsa_and_oidc_without_running_them():
    e, rec = make((0, cluster_json(), ""), (0, nodegroups_json("gpu"), ""), (0, "[]", ""), (0, OIDC_MISSING, ""))
    out = converge(e, CONFIG, check_mode=True, wait_timeout=600)
    assert out["changed"] is True and out["commands"] == []
    assert out["actions"] == [
        "associate IAM OIDC provider with cluster c1",
        "create IRSA service account triton/triton (IAM role tritonfil-c1-triton-triton)",
        "create node group system (m6i.large, min 1, desired 1, max 3)",
    ]
    assert rec.verbs() == ["get cluster", "get nodegroup", "get iamserviceaccount", "utils associate-iam-oidc-provider"]
    assert rec.config_files == []
    assert out["diff"]["before"] == {
        "name": "c1", "version": "1.33", "iam_oidc_provider": False, "service_accounts": [],
        "nodegroups": {"gpu": {"instance_type": "g4dn.xlarge", "min_size": 1, "desired_capacity": 1, "max_size": 2}},
    }  # fmt: skip
    assert out["diff"]["after"] == desired_state(CONFIG)


def test_converge_still_refuses_version_and_instance_type_changes():
    config = render_cluster_config("c1", "us-east-1", "1.34", [{**NODEGROUP, "instance_type": "g5.xlarge"}], True,
                                   [ROLE_ONLY_SA])  # fmt: skip
    e, rec = make((0, cluster_json(), ""), (0, nodegroups_json("gpu"), ""), (0, "[]", ""), (0, OIDC_MISSING, ""))
    with pytest.raises(Refusal, match=r"^Cannot modify version of existing cluster c1 .*; Cannot modify instance type"):
        converge(e, config, check_mode=False, wait_timeout=600)
    assert len(rec.calls) == 4  # nothing was created


def test_converge_waits_for_a_creating_cluster_then_completes_it():
    sleeps: list[float] = []
    e, rec = make(
        (0, cluster_json("CREATING"), ""), (0, cluster_json("CREATING"), ""), (0, cluster_json(), ""),
        (0, nodegroups_json("gpu", "system"), ""), (0, GET_IAMSERVICEACCOUNT_JSON, ""), (0, OIDC_PRESENT, ""),
    )  # fmt: skip
    out = converge(e, CONFIG, check_mode=False, wait_timeout=600, sleep=sleeps.append, clock=lambda: 0.0)
    assert sleeps == [10.0, 10.0] and out["changed"] is False
    assert rec.verbs()[:3] == ["get cluster"] * 3


def test_converge_check_mode_does_not_wait_for_a_creating_cluster():
    e, rec = make((0, cluster_json("CREATING"), ""))
    out = converge(e, CONFIG, check_mode=True, wait_timeout=600, sleep=pytest.fail)
    assert out["changed"] is True and out["commands"] == []
    assert out["actions"] == ["wait for cluster c1 to become ACTIVE (it is CREATING), then create what it lacks"]
    assert out["warnings"] and "CREATING" in out["warnings"][0]


def test_converge_times_out_waiting_and_refuses_deleting_or_failed_clusters():
    now = iter([0.0, 5.0, 11.0])
    e, _ = make((0, cluster_json("CREATING"), ""), (0, cluster_json("CREATING"), ""))
    with pytest.raises(EksctlError, match=r"^cluster c1 is still CREATING after 10s$"):
        converge(e, CONFIG, check_mode=False, wait_timeout=10, sleep=lambda _s: None, clock=lambda: next(now))
    e, _ = make((0, cluster_json("DELETING"), ""))
    with pytest.raises(Refusal, match=r"^cluster c1 is being deleted \(status DELETING\): run again once"):
        converge(e, CONFIG, check_mode=False, wait_timeout=600)
    e, _ = make((0, cluster_json("FAILED"), ""))
    with pytest.raises(Refusal, match=r"^cluster c1 is in status FAILED: delete it"):
        converge(e, CONFIG, check_mode=True, wait_timeout=600)


def test_oidc_check_fails_on_unexpected_output():
    e, _ = make((0, "something else\n", ""))
    with pytest.raises(EksctlError, match=r"neither that the provider exists nor that it would create it"):
        e.oidc_provider_associated("c1")
