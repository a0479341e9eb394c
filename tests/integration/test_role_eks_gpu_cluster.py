"""Role tritonfil.eks.eks_gpu_cluster through ansible-playbook against moto + the local kwok cluster.

eksctl is tritonfil-eksctl-sim (real eksctl cannot create clusters against moto), backed by moto's EKS and
IAM APIs; its write-kubeconfig writes the kwok cluster's kubeconfig, whose 2 simulated g4dn.12xlarge
nodes carry eks.amazonaws.com/nodegroup=gpu and allocatable nvidia.com/gpu. One module-scoped
environment; the lifecycle scenario runs in order (plan -> create -> idempotent -> a cluster stripped of its
node groups, IRSA role and OIDC provider, as an interrupted `eksctl create cluster` leaves it: plan, complete,
idempotent -> scale -> refused version change -> GPU check failure -> delete -> delete again) and each test
asserts on one step.
AWS_ENDPOINT_URL is not set for the playbooks: only the play's module_defaults (group/tritonfil.eks.aws, as the
playbooks set them) lead to moto.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.playbook_run import Run, run_role
from tritonfil.localenv.env import LocalEnv
from tritonfil.localenv.nodes import gpu_node

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
FAKE_KEY_ID = "AKIATRITONFILFAKE0002"
FAKE_SECRET = "tritonfil-fake-secret-eks-4Hq8"
CLUSTER = "tritonfil-it"
CLUSTER_TASK = "Ensure the EKS cluster and its GPU and system node groups (eksctl)"
SIM = "tritonfil-eksctl-sim"
PUBLISH = "Publish the kubeconfig path and the IRSA role ARNs (Triton; Karpenter's controller)"
GPU_TASK = "Check every node exposes allocatable nvidia.com/gpu"
NO_GPU_NODE = "ip-192-168-9-99.ec2.internal"


@dataclass
class Env:
    local: LocalEnv
    endpoint: str
    work: Path
    count: int = 0

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET)  # fmt: skip

    def variables(self, **extra: Any) -> dict[str, Any]:
        """What inventory/local and the wiring (playbooks/vars/wiring.yml) set for the role, with a per-test
        kubeconfig path."""
        return {
            "eks_gpu_cluster_name": CLUSTER,
            "eks_gpu_cluster_kubernetes_version": "1.36",
            # The managed GPU node group (optional since Karpenter, off by default): this test is about it.
            "eks_gpu_cluster_gpu_nodegroup_enabled": True,
            "eks_gpu_cluster_instance_type": "g4dn.12xlarge",
            "eks_gpu_cluster_nodes_min": 2,
            "eks_gpu_cluster_nodes_desired": 2,
            "eks_gpu_cluster_nodes_max": 4,
            "eks_gpu_cluster_system_instance_type": "m6i.xlarge",
            "eks_gpu_cluster_system_nodes_min": 1,
            "eks_gpu_cluster_system_nodes_desired": 1,
            "eks_gpu_cluster_system_nodes_max": 2,
            "eks_gpu_cluster_model_repository_uri": "s3://tritonfil-it-models/models",
            "eks_gpu_cluster_kubeconfig": str(self.work / "kube" / "config"),
            "eks_gpu_cluster_eksctl_path": SIM,
            "eks_gpu_cluster_public_access_cidrs": ["203.0.113.0/24"],
            **extra,
        }

    def run(self, variables: dict[str, Any], *args: str, tasks_from: str = "main") -> Run:
        self.count += 1
        work = self.work / f"run{self.count}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
            AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
            AWS_REGION=REGION,
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
            AWS_CONFIG_FILE="/nonexistent/config",
            AWS_EC2_METADATA_DISABLED="true",
            TRITONFIL_LOCAL_STATE=str(self.local.state),
        )
        run = run_role(
            "eks_gpu_cluster",
            work,
            variables,
            env,
            *args,
            aws={"region": REGION, "endpoint_url": self.endpoint},
            tasks_from=tasks_from,
        )
        assert FAKE_SECRET not in run.output, "the AWS secret key appears in the ansible output"
        return run

    def clusters(self) -> list[str]:
        return self.client("eks").list_clusters()["clusters"]

    def scaling(self) -> dict[str, int]:
        return self.client("eks").describe_nodegroup(clusterName=CLUSTER, nodegroupName="gpu")["nodegroup"][
            "scalingConfig"
        ]


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[Env]:
    local = LocalEnv(state_dir=tmp_path_factory.mktemp("eks-env"), nodes=2)
    endpoint = local.up(components=("moto", "cluster"))["aws_endpoint_url"]
    try:
        yield Env(local, endpoint, tmp_path_factory.mktemp("eks-runs"))
    finally:
        local.down()


@pytest.fixture(scope="module")
def scenario(env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {}
    variables = env.variables()
    out["plan"] = env.run(variables, "--check", "--diff")
    out["clusters_after_plan"] = env.clusters()
    out["kubeconfig_after_plan"] = Path(variables["eks_gpu_cluster_kubeconfig"]).exists()
    out["first"] = env.run(variables)
    out["clusters_first"] = env.clusters()
    out["scaling_first"] = env.scaling()
    iam = env.client("iam")
    role = f"tritonfil-{CLUSTER}-triton-triton"  # role_only + role_name: the chart owns the ServiceAccount
    out["irsa_policy"] = iam.get_role_policy(RoleName=role, PolicyName="Policy1")["PolicyDocument"]
    out["irsa_trust"] = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    kubeconfig = Path(variables["eks_gpu_cluster_kubeconfig"])
    out["kubeconfig_mode"] = stat.S_IMODE(kubeconfig.stat().st_mode)
    out["second"] = env.run(variables)
    # The live control plane no longer matches (another CIDR list): reported with the eksctl command, not changed.
    out["drift"] = env.run({**variables, "eks_gpu_cluster_public_access_cidrs": ["198.51.100.0/24"]})
    out["facts"] = env.run(variables, tasks_from="facts")
    # What SIGINT during `eksctl create cluster` leaves: the control plane without what eksctl adds after it.
    eks = env.client("eks")
    for ng in eks.list_nodegroups(clusterName=CLUSTER)["nodegroups"]:
        eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=ng)
    iam.delete_role_policy(RoleName=role, PolicyName="Policy1")
    iam.delete_role(RoleName=role)
    for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])
    out["bare_plan"] = env.run(variables, "--check", "--diff")
    out["bare_nodegroups_after_plan"] = eks.list_nodegroups(clusterName=CLUSTER)["nodegroups"]
    out["bare"] = env.run(variables)
    out["bare_nodegroups"] = sorted(eks.list_nodegroups(clusterName=CLUSTER)["nodegroups"])
    out["bare_scaling"] = env.scaling()
    out["bare_irsa_policy"] = iam.get_role_policy(RoleName=role, PolicyName="Policy1")["PolicyDocument"]
    out["bare_oidc_providers"] = len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"])
    out["bare_again"] = env.run(variables)
    out["scale_plan"] = env.run({**variables, "eks_gpu_cluster_nodes_desired": 3}, "--check", "--diff")
    out["scaling_after_scale_plan"] = env.scaling()
    out["scale"] = env.run({**variables, "eks_gpu_cluster_nodes_desired": 3})
    out["scaling_scaled"] = env.scaling()
    out["version"] = env.run(
        {**variables, "eks_gpu_cluster_nodes_desired": 3, "eks_gpu_cluster_kubernetes_version": "1.35"}
    )
    # A node of the GPU node group without GPUs (as when the NVIDIA device plugin is missing).
    node = copy.deepcopy(gpu_node(99, CLUSTER, REGION))
    node["metadata"]["name"] = NO_GPU_NODE
    node["metadata"]["labels"]["kubernetes.io/hostname"] = NO_GPU_NODE
    for key in ("capacity", "allocatable"):
        node["status"][key].pop("nvidia.com/gpu")
    env.local.kubectl("apply", "-f", "-", input_text=json.dumps(node))
    out["no_gpu"] = env.run({**variables, "eks_gpu_cluster_nodes_desired": 3})
    env.local.kubectl("delete", "node", NO_GPU_NODE)
    out["absent"] = env.run({**variables, "eks_gpu_cluster_state": "absent"})
    out["clusters_absent"] = env.clusters()
    out["roles_absent"] = [r["RoleName"] for r in iam.list_roles()["Roles"] if CLUSTER in r["RoleName"]]
    out["absent_again"] = env.run({**variables, "eks_gpu_cluster_state": "absent"})
    print(
        f"eks_gpu_cluster role: first run {out['first'].seconds:.1f}s, second run {out['second'].seconds:.1f}s, "
        f"bare cluster plan {out['bare_plan'].seconds:.1f}s, completed {out['bare'].seconds:.1f}s, "
        f"again {out['bare_again'].seconds:.1f}s"
    )
    return out


def test_check_mode_plans_the_cluster_without_creating_it(scenario, env):
    run = scenario["plan"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    result = run.result(CLUSTER_TASK)
    assert result["changed"] and result["actions"] == [
        f"create cluster {CLUSTER} (Kubernetes 1.36) with node groups gpu, system",
        f"write kubeconfig {env.work / 'kube' / 'config'}",
    ]
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == {
        "name": CLUSTER,
        "version": "1.36",
        "nodegroups": {
            "gpu": {"instance_type": "g4dn.12xlarge", "min_size": 2, "desired_capacity": 2, "max_size": 4},
            "system": {"instance_type": "m6i.xlarge", "min_size": 1, "desired_capacity": 1, "max_size": 2},
        },
        "iam_oidc_provider": True,
        "service_accounts": ["triton/triton"],
    }
    assert result["commands"] == []
    assert not run.ran(GPU_TASK)  # nothing to check yet
    assert scenario["clusters_after_plan"] == []
    assert scenario["kubeconfig_after_plan"] is False


def test_first_run_creates_cluster_nodegroup_irsa_and_kubeconfig(scenario, env):
    run = scenario["first"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    result = run.result(CLUSTER_TASK)
    sim = os.path.realpath(VENV_BIN / SIM)
    assert [[os.path.realpath(c[0]), *c[1:3]] for c in result["commands"]] == [[sim, "create", "cluster"]]
    assert result["actions"][0] == f"create cluster {CLUSTER} (Kubernetes 1.36) with node groups gpu, system"
    assert result["actions"][1] == f"write kubeconfig {env.work / 'kube' / 'config'}"
    assert result["cluster"]["Name"] == CLUSTER and result["cluster"]["Version"] == "1.36"
    assert result["cluster"]["Status"] == "ACTIVE"
    gpu, system = sorted(result["nodegroups"], key=lambda ng: ng["Name"])
    assert (gpu["Name"], gpu["InstanceType"], gpu["ImageID"], gpu["Type"]) == (
        "gpu", "g4dn.12xlarge", "AL2023_x86_64_NVIDIA", "managed"
    )  # fmt: skip
    # The untainted CPU node group for istiod, the gateway and metrics-server.
    assert (system["Name"], system["InstanceType"], system["ImageID"]) == (
        "system", "m6i.xlarge", "AL2023_x86_64_STANDARD"
    )  # fmt: skip
    assert "taints" not in result["config"]["managedNodeGroups"][1]
    assert result["config"]["managedNodeGroups"][1]["labels"] == {"tritonfil.io/node-role": "system"}
    assert scenario["clusters_first"] == [CLUSTER]
    assert scenario["scaling_first"] == {"minSize": 2, "desiredSize": 2, "maxSize": 4}
    assert scenario["kubeconfig_mode"] == 0o600
    config = result["config"]
    assert config["iam"]["withOIDC"] is True
    # The hardening, in eksctl's own fields (tests/unit/test_eksctl.py: real eksctl loads them strictly).
    assert config["cloudWatch"] == {"clusterLogging": {"enableTypes": ["api", "audit", "authenticator"]}}
    assert config["vpc"] == {"clusterEndpoints": {"publicAccess": True, "privateAccess": True},
                             "publicAccessCIDRs": ["203.0.113.0/24"]}  # fmt: skip
    assert "secretsEncryption" not in config  # no KMS key given
    for ng in config["managedNodeGroups"]:
        assert (ng["volumeEncrypted"], ng["disablePodIMDS"]) == (True, True), ng  # IMDSv2 required, hop limit 1
    # ... and the control plane the simulator made from it (EKS DescribeCluster through `eksctl get cluster`).
    cluster = result["cluster"]
    assert cluster["ResourcesVpcConfig"]["PublicAccessCidrs"] == ["203.0.113.0/24"]
    vpc = cluster["ResourcesVpcConfig"]
    assert (vpc["EndpointPublicAccess"], vpc["EndpointPrivateAccess"]) == (True, True)
    logged = [e["Types"] for e in cluster["Logging"]["ClusterLogging"] if e["Enabled"]]
    assert logged == [["api", "audit", "authenticator"]]
    assert config["managedNodeGroups"][0]["ssh"] == {"allow": False}
    assert config["managedNodeGroups"][0]["amiFamily"] == "AmazonLinux2023"
    assert config["managedNodeGroups"][0]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]
    # Read access to the model revisions only (not the index or manifests), ARNs in the caller's partition.
    assert scenario["irsa_policy"]["Statement"] == [
        {"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": ["arn:aws:s3:::tritonfil-it-models/models/revisions/*"]},
        {"Sid": "ListModelRevisions", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": ["arn:aws:s3:::tritonfil-it-models"],
         "Condition": {"StringLike": {"s3:prefix": ["models/revisions", "models/revisions/*"]}}},
    ]  # fmt: skip
    condition = scenario["irsa_trust"]["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:triton:triton" in condition.values()
    assert run.result(GPU_TASK)["msg"] == "2 GPU nodes in node group gpu"
    facts = run.result(PUBLISH)["ansible_facts"]
    assert facts["eks_gpu_cluster_kubeconfig_path"] == str(env.work / "kube" / "config")
    # eksctl makes the IAM role only (the chart owns the ServiceAccount), under a known name.
    sa = config["iam"]["serviceAccounts"][0]
    assert sa["roleOnly"] is True and sa["roleName"] == f"tritonfil-{CLUSTER}-triton-triton"
    assert (
        facts["eks_gpu_cluster_triton_role_arn"] == f"arn:aws:iam::123456789012:role/tritonfil-{CLUSTER}-triton-triton"
    )


def test_facts_entry_point_reads_the_role_from_iam(scenario):
    """What triton_release gets when the eks_gpu_cluster stage is not in the run (`--tags triton_release`)."""
    run = scenario["facts"]
    assert_ok(run)
    assert run.recap["changed"] == 0
    created = scenario["first"].result(PUBLISH)["ansible_facts"]
    assert {k: run.facts[k] for k in created} == created


def test_second_run_changes_nothing(scenario):
    run = scenario["second"]
    assert_ok(run)
    assert run.recap["changed"] == 0, run.tail()
    assert run.result(CLUSTER_TASK)["commands"] == []
    assert not run.result(CLUSTER_TASK).get("warnings")  # the control plane matches its hardening


def test_control_plane_drift_is_reported_naming_the_eksctl_command(scenario):
    run = scenario["drift"]
    assert_ok(run)
    assert run.recap["changed"] == 0, run.tail()
    result = run.result(CLUSTER_TASK)
    assert result["commands"] == []
    assert result["warnings"] == [
        f"cluster {CLUSTER}: API endpoint public access CIDRs 203.0.113.0/24 (config: 198.51.100.0/24): "
        "`eksctl utils update-cluster-vpc-config --config-file FILE --approve`"
    ]
    assert run.result(GPU_TASK)["msg"] == "2 GPU nodes in node group gpu"


BARE_ACTIONS = [
    f"associate IAM OIDC provider with cluster {CLUSTER}",
    f"create IRSA service account triton/triton (IAM role tritonfil-{CLUSTER}-triton-triton)",
    "create node group gpu (g4dn.12xlarge, min 2, desired 2, max 4)",
    "create node group system (m6i.xlarge, min 1, desired 1, max 2)",
]


def test_check_mode_plans_completing_a_cluster_left_bare(scenario):
    run = scenario["bare_plan"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    result = run.result(CLUSTER_TASK)
    assert result["actions"] == BARE_ACTIONS and result["commands"] == []
    assert result["diff"]["before"]["nodegroups"] == {}
    assert result["diff"]["before"]["iam_oidc_provider"] is False
    assert result["diff"]["before"]["service_accounts"] == []
    assert result["diff"]["after"]["service_accounts"] == ["triton/triton"]
    assert sorted(result["diff"]["after"]["nodegroups"]) == ["gpu", "system"]
    assert scenario["bare_nodegroups_after_plan"] == []


def test_a_cluster_left_bare_is_completed_then_unchanged(scenario, env):
    """An interrupted `eksctl create cluster` leaves the control plane only; the rerun adds the OIDC provider, the
    IRSA role and both node groups with the same ClusterConfig instead of failing `Cannot add managed node group`."""
    run = scenario["bare"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    result = run.result(CLUSTER_TASK)
    assert result["actions"] == BARE_ACTIONS
    sim = os.path.realpath(VENV_BIN / SIM)
    assert [[os.path.realpath(c[0]), *c[1:3]] for c in result["commands"]] == [
        [sim, "utils", "associate-iam-oidc-provider"],
        [sim, "create", "iamserviceaccount"],
        [sim, "create", "nodegroup"],
    ]
    assert result["commands"][1][5:7] == ["--include=triton/triton", "--override-existing-serviceaccounts"]
    assert result["commands"][2][5] == "--include=gpu,system"
    assert sorted(ng["Name"] for ng in result["nodegroups"]) == ["gpu", "system"]
    assert scenario["bare_nodegroups"] == ["gpu", "system"]
    assert scenario["bare_scaling"] == {"minSize": 2, "desiredSize": 2, "maxSize": 4}
    assert scenario["bare_irsa_policy"] == scenario["irsa_policy"]
    assert scenario["bare_oidc_providers"] == 1
    assert run.result(GPU_TASK)["msg"] == "2 GPU nodes in node group gpu"
    again = scenario["bare_again"]
    assert_ok(again)
    assert again.recap["changed"] == 0, again.tail()
    assert again.result(CLUSTER_TASK)["commands"] == []


def test_check_mode_plans_the_scale_without_doing_it(scenario):
    run = scenario["scale_plan"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    result = run.result(CLUSTER_TASK)
    assert result["actions"] == ["scale node group gpu to min 2, desired 3, max 4"]
    assert result["diff"]["before"]["nodegroups"]["gpu"]["desired_capacity"] == 2
    assert result["diff"]["after"]["nodegroups"]["gpu"]["desired_capacity"] == 3
    assert scenario["scaling_after_scale_plan"] == {"minSize": 2, "desiredSize": 2, "maxSize": 4}
    assert run.result(GPU_TASK)["msg"] == "2 GPU nodes in node group gpu"  # read-only: runs in check mode too


def test_size_change_scales_only_the_nodegroup(scenario):
    run = scenario["scale"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    result = run.result(CLUSTER_TASK)
    assert [[os.path.realpath(c[0]), *c[1:]] for c in result["commands"]] == [
        [os.path.realpath(VENV_BIN / SIM), "scale", "nodegroup", "--cluster", CLUSTER, "--name", "gpu",
         "--region", REGION, "--nodes", "3", "--nodes-min", "2", "--nodes-max", "4", "--wait", "--timeout", "2400s"]
    ]  # fmt: skip
    assert result["actions"] == ["scale node group gpu to min 2, desired 3, max 4"]
    assert scenario["scaling_scaled"] == {"minSize": 2, "desiredSize": 3, "maxSize": 4}


def test_version_change_is_refused(scenario):
    run = scenario["version"]
    assert run.rc != 0
    assert run.result(CLUSTER_TASK)["msg"] == (
        f"Cannot modify version of existing cluster {CLUSTER} (it is 1.36, asked for 1.35): "
        "upgrade it with `eksctl upgrade cluster`"
    )


def test_nodes_without_gpu_fail_the_check_naming_them(scenario):
    run = scenario["no_gpu"]
    assert run.rc != 0
    assert run.result(CLUSTER_TASK)["changed"] is False
    assert run.result(GPU_TASK)["msg"] == (
        f"cluster {CLUSTER}: nodes without allocatable nvidia.com/gpu: {NO_GPU_NODE} "
        "(is the NVIDIA device plugin running? eksctl installs it for GPU node groups)"
    )


def test_absent_deletes_then_is_a_noop(scenario):
    run = scenario["absent"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    assert [[os.path.realpath(c[0]), *c[1:]] for c in run.result(CLUSTER_TASK)["commands"]] == [
        [os.path.realpath(VENV_BIN / SIM), "delete", "cluster", "--name", CLUSTER, "--region", REGION,
         "--wait", "--timeout", "2400s"]
    ]  # fmt: skip
    assert not run.ran(GPU_TASK)
    assert scenario["clusters_absent"] == [] and scenario["roles_absent"] == []
    again = scenario["absent_again"]
    assert_ok(again)
    assert again.recap["changed"] == 0, again.tail()
    assert again.result(CLUSTER_TASK)["commands"] == []


@pytest.mark.parametrize(
    ("extra", "task", "message"),
    [
        (
            {"eks_gpu_cluster_nodes_min": 3, "eks_gpu_cluster_nodes_desired": 3, "eks_gpu_cluster_nodes_max": 2},
            "Check the node group bounds",
            "eks_gpu_cluster_nodes_min/desired/max 3/3/2: need 0 <= min <= desired <= max",
        ),
        (
            {"eks_gpu_cluster_instance_type": "m5.xlarge"},
            "Check the instance type is a GPU instance",
            "eks_gpu_cluster_instance_type: 'm5.xlarge' is not an NVIDIA GPU instance type",
        ),
        (
            {"eks_gpu_cluster_public_access_cidrs": []},
            "Check the API endpoint access and the control-plane settings",
            "eks_gpu_cluster_public_access_cidrs is empty while eks_gpu_cluster_endpoint_public_access is true: the "
            "Kubernetes API would be open to any address. List the networks that administer the cluster (e.g. "
            "['203.0.113.0/24']), set eks_gpu_cluster_endpoint_public_access: false (private endpoint only: run "
            "from inside the VPC), or open it on purpose with ['0.0.0.0/0']",
        ),
        (
            {
                "eks_gpu_cluster_public_access_cidrs": ["203.0.113.7/24"],
                "eks_gpu_cluster_secrets_kms_key_arn": "alias/x",
            },
            "Check the API endpoint access and the control-plane settings",
            "eks_gpu_cluster_public_access_cidrs: '203.0.113.7/24' has host bits set: write the network, "
            "'203.0.113.0/24'; eks_gpu_cluster_secrets_kms_key_arn: 'alias/x' is not a KMS key ARN",
        ),
        (
            {"eks_gpu_cluster_endpoint_public_access": False, "eks_gpu_cluster_endpoint_private_access": False},
            "Check the API endpoint access and the control-plane settings",
            "eks_gpu_cluster_endpoint_public_access and eks_gpu_cluster_endpoint_private_access are both false",
        ),
    ],
    ids=["min-above-max", "not-a-gpu-type", "public-endpoint-without-cidrs", "bad-cidr-and-key", "no-endpoint"],
)
def test_invalid_input_fails_in_preflight_before_anything_is_created(env, scenario, extra, task, message):
    run = env.run(env.variables(eks_gpu_cluster_name="tritonfil-it-invalid", **extra))
    assert run.rc != 0
    assert run.result(task)["msg"].startswith(message), run.tail()
    assert not run.ran(CLUSTER_TASK)
    assert "tritonfil-it-invalid" not in env.clusters()


KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b6f2c1e-models"
SECRETS_KEY = "arn:aws:kms:us-east-1:123456789012:key/3c1d9a7e-secrets"


def test_kms_keys_reach_the_irsa_policy_and_the_secrets_encryption(env, scenario):
    """A KMS-encrypted model bucket: the IRSA role may kms:Decrypt with that key (and no other); Secrets are
    envelope-encrypted with the given key. Then deleted again."""
    name = "tritonfil-it-kms"
    variables = env.variables(eks_gpu_cluster_name=name, eks_gpu_cluster_model_kms_key_arn=KMS_KEY,
                              eks_gpu_cluster_secrets_kms_key_arn=SECRETS_KEY)  # fmt: skip
    run = env.run(variables)
    try:
        assert_ok(run)
        config = run.result(CLUSTER_TASK)["config"]
        assert config["secretsEncryption"] == {"keyARN": SECRETS_KEY}
        policy = env.client("iam").get_role_policy(RoleName=f"tritonfil-{name}-triton-triton", PolicyName="Policy1")
        statements = policy["PolicyDocument"]["Statement"]
        assert [st["Sid"] for st in statements] == ["ReadModels", "ListModelRevisions", "DecryptModels"]
        assert statements[2] == {"Sid": "DecryptModels", "Effect": "Allow", "Action": ["kms:Decrypt"],
                                 "Resource": [KMS_KEY]}  # fmt: skip
        described = env.client("eks").describe_cluster(name=name)["cluster"]
        assert described["encryptionConfig"] == [{"resources": ["secrets"], "provider": {"keyArn": SECRETS_KEY}}]
    finally:
        assert_ok(env.run({**variables, "eks_gpu_cluster_state": "absent"}))
