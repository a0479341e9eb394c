"""GPU capacity (plugins/module_utils/capacity.py, its filters) and what the karpenter and eks_gpu_cluster roles
render for Karpenter: the NodePool, the node classes, the controller's IRSA policy, the capacity preflight, and the
wiring's defaults (the same as the roles')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tritonfil.collection import module_utils

ROOT = Path(__file__).resolve().parents[2]
capacity = module_utils("capacity")


def test_gpus_of_instance_types():
    assert capacity.gpus_of("g4dn.xlarge") == 1
    assert capacity.gpus_of("g4dn.12xlarge") == 4
    assert capacity.gpus_of("g5.48xlarge") == 8
    assert capacity.gpus_of("p5.48xlarge") == 8
    assert capacity.gpus_of("m6i.large") is None
    assert capacity.gpus_of("g5") is None


def test_gpu_families_rule():
    assert capacity.check_gpu_families(["g4dn", "g5", "g6"]) is None
    assert "m6i: not a GPU family" in capacity.check_gpu_families(["g5", "m6i"])
    assert "non-empty list" in capacity.check_gpu_families([])


def test_capacity_refuses_replicas_beyond_the_gpus_naming_the_variables():
    cap = capacity.gpu_capacity(4, None)
    assert cap["gpus"] == 4
    assert capacity.check_capacity(4, 1, cap) is None
    problem = capacity.check_capacity(5, 1, cap)
    assert problem.startswith("triton_release_replicas_max 5 x triton_release_gpus_per_pod 1 = 5 GPUs")
    assert "at most 4 (karpenter_gpu_limit 4)" in problem
    both = capacity.gpu_capacity(4, 2, "g5.12xlarge")
    assert both["gpus"] == 12
    assert "eks_gpu_cluster_nodes_max 2 x 4 GPU(s) of g5.12xlarge" in capacity.check_capacity(7, 2, both)
    none = capacity.gpu_capacity(None, None)
    assert "no GPU node group and no Karpenter NodePool" in capacity.check_capacity(1, 1, none)
    assert capacity.check_capacity(100, 0, none) is None  # CPU-only Triton needs no GPU
    assert capacity.check_capacity(100, 1, None) is None  # unknown capacity: nothing checked


RENDER = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    karpenter_aws_caller: {arn: "arn:aws-us-gov:iam::123456789012:user/ops", account: "123456789012"}
    eks_gpu_cluster_aws_caller: "{{ karpenter_aws_caller }}"
  tasks:
    - ansible.builtin.include_vars: {file: "@ROOT@/roles/karpenter/defaults/main.yml"}
    - ansible.builtin.include_vars: {file: "@ROOT@/roles/karpenter/vars/main.yml"}
    - ansible.builtin.include_vars: {file: "@ROOT@/roles/eks_gpu_cluster/defaults/main.yml"}
    - ansible.builtin.include_vars: {file: "@ROOT@/roles/eks_gpu_cluster/vars/main.yml"}
    - ansible.builtin.set_fact:
        karpenter_cluster_name: gpu-prod
        karpenter_node_role_name: tritonfil-gpu-prod-karpenter-node
        karpenter_interruption_queue_name: tritonfil-gpu-prod-karpenter
        karpenter_controller_role_arn: arn:aws-us-gov:iam::123456789012:role/tritonfil-gpu-prod-karpenter
        karpenter_provider: "@PROVIDER@"
        eks_gpu_cluster_name: gpu-prod
        eks_gpu_cluster_model_repository_uri: s3://models-bkt/m
        eks_gpu_cluster_karpenter:
          namespace: kube-system
          service_account: karpenter
          controller_role_name: tritonfil-gpu-prod-karpenter
          node_role_name: tritonfil-gpu-prod-karpenter-node
          interruption_queue_name: tritonfil-gpu-prod-karpenter
          region: us-gov-west-1
    - ansible.builtin.copy:
        dest: "@OUT@"
        content: >-
          {{ {'nodepool': __karpenter_nodepool, 'nodeclass': __karpenter_nodeclass,
               'policy': __eks_gpu_cluster_karpenter_policy, 'accounts': __eks_gpu_cluster_service_accounts,
               'tags': __eks_gpu_cluster_tags, 'nodegroups': __eks_gpu_cluster_nodegroups,
               'values': __karpenter_values} | to_json }}
"""


def render(run_playbook, tmp_path: Path, provider: str) -> dict:
    out = tmp_path / f"{provider}.json"
    proc = run_playbook(RENDER.replace("@ROOT@", str(ROOT)).replace("@PROVIDER@", provider).replace("@OUT@", str(out)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_the_nodepool_is_the_same_on_eks_and_locally_but_for_the_node_class(run_playbook, tmp_path):
    aws, kwok = render(run_playbook, tmp_path, "aws"), render(run_playbook, tmp_path, "kwok")
    pool = aws["nodepool"]
    spec = pool["spec"]
    reqs = {r["key"]: (r["operator"], r["values"]) for r in spec["template"]["spec"]["requirements"]}
    assert reqs == {
        "karpenter.k8s.aws/instance-family": ("In", ["g4dn", "g5", "g6"]),
        "karpenter.k8s.aws/instance-gpu-count": ("In", ["1"]),
        "karpenter.sh/capacity-type": ("In", ["on-demand"]),
        "kubernetes.io/arch": ("In", ["amd64"]),
    }
    assert spec["limits"] == {"nvidia.com/gpu": "4"}
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m", "budgets": [{"nodes": "10%"}]
    }  # fmt: skip
    assert spec["template"]["spec"]["expireAfter"] == "720h"
    assert spec["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert spec["template"]["metadata"]["labels"] == {"workload": "triton", "tritonfil.io/node-role": "gpu"}
    assert spec["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "gpu",
    }
    # Locally only the node class differs, and the join delay annotation the kwok stage reads.
    local = kwok["nodepool"]["spec"]
    assert local["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.kwok.sh",
        "kind": "KWOKNodeClass",
        "name": "gpu",
    }
    assert local["template"]["metadata"]["annotations"] == {"tritonfil.io/join-delay-seconds": "90"}
    for key in ("requirements", "taints", "expireAfter"):
        assert local["template"]["spec"][key] == spec["template"]["spec"][key]
    assert local["limits"] == spec["limits"] and local["disruption"] == spec["disruption"]
    ec2 = aws["nodeclass"]
    assert ec2["kind"] == "EC2NodeClass" and ec2["spec"]["role"] == "tritonfil-gpu-prod-karpenter-node"
    assert ec2["spec"]["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert ec2["spec"]["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
    }
    assert ec2["spec"]["blockDeviceMappings"][0]["ebs"]["encrypted"] is True
    assert ec2["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "gpu-prod"}}]
    assert kwok["nodeclass"]["kind"] == "KWOKNodeClass"
    # The controller: IRSA, the queue, on the system nodes.
    values = aws["values"]
    assert values["settings"] == {"clusterName": "gpu-prod", "interruptionQueue": "tritonfil-gpu-prod-karpenter"}
    assert values["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws-us-gov:iam::123456789012:role/tritonfil-gpu-prod-karpenter"
    }
    assert values["nodeSelector"] == {"tritonfil.io/node-role": "system"}


def test_the_controller_policy_is_scoped_partition_aware_and_fits_an_inline_policy(run_playbook, tmp_path):
    aws = render(run_playbook, tmp_path, "aws")
    karpenter = next(sa for sa in aws["accounts"] if sa["name"] == "karpenter")
    assert (karpenter["namespace"], karpenter["role_only"], karpenter["role_name"]) == (
        "kube-system", True, "tritonfil-gpu-prod-karpenter"
    )  # fmt: skip
    policy = karpenter["attach_policy"]
    text = json.dumps(policy, separators=(",", ":"))
    assert "arn:aws:" not in text and "arn:aws-us-gov:ec2:us-gov-west-1" in text  # the caller's partition
    assert len(text) < 10240, len(text)  # IAM's limit on a role's inline policies
    sids = {s["Sid"]: s for s in policy["Statement"]}
    assert len(sids) == 18
    assert sids["AllowPassingInstanceRole"]["Resource"] == (
        "arn:aws-us-gov:iam::123456789012:role/tritonfil-gpu-prod-karpenter-node"
    )
    assert sids["AllowInterruptionQueueActions"]["Resource"] == (
        "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:tritonfil-gpu-prod-karpenter"
    )
    assert sids["AllowScopedDeletion"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/gpu-prod": "owned"
    }
    assert sids["AllowScopedEC2InstanceActionsWithTags"]["Resource"][0] == (
        "arn:aws-us-gov:ec2:us-gov-west-1:*:fleet/*"
    )
    assert aws["tags"] == {"karpenter.sh/discovery": "gpu-prod"}
    # No managed GPU node group by default: the system node group only.
    assert [ng["name"] for ng in aws["nodegroups"]] == ["system"]


def test_the_wiring_defaults_are_the_roles_defaults():
    """playbooks/vars/wiring.yml computes the capacity preflight's input before the roles load, with defaults: they
    must be the roles' own."""
    wiring = (ROOT / "playbooks" / "vars" / "wiring.yml").read_text()
    karpenter = yaml.safe_load((ROOT / "roles" / "karpenter" / "defaults" / "main.yml").read_text())
    eks = yaml.safe_load((ROOT / "roles" / "eks_gpu_cluster" / "defaults" / "main.yml").read_text())
    assert f"karpenter_gpu_limit | default({karpenter['karpenter_gpu_limit']})" in wiring
    assert f"eks_gpu_cluster_nodes_max | default({eks['eks_gpu_cluster_nodes_max']})" in wiring
    assert f"eks_gpu_cluster_instance_type | default('{eks['eks_gpu_cluster_instance_type']}')" in wiring
    assert (
        f"eks_gpu_cluster_gpu_nodegroup_enabled | default({str(eks['eks_gpu_cluster_gpu_nodegroup_enabled']).lower()})"
        in wiring
    )


def test_the_local_instance_types_are_the_generated_ones():
    """src/tritonfil/localenv/instance-types.json is what scripts/gen_instance_types.py writes from Karpenter's AWS
    provider module (needs the module in the Go module cache, or the proxy)."""
    import os
    import re
    import subprocess
    import sys

    # The provider module is only source to read, but `go mod download` refuses it with the local toolchain (it asks
    # for a newer go) and the tests run without network: on a machine whose module cache lacks it, say so.
    version = re.search(r"^KARPENTER_CHART_VERSION=(\S+)", (ROOT / "scripts" / "versions.env").read_text(), re.M)
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    module = Path(gopath) / "pkg" / "mod" / "github.com" / "aws" / f"karpenter-provider-aws@v{version.group(1)}"
    if not module.is_dir():
        pytest.skip(f"{module} is not in the Go module cache (and the tests run offline): cannot regenerate")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_instance_types.py"), "--check"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((ROOT / "src" / "tritonfil" / "localenv" / "instance-types.json").read_text())
    names = {t["name"] for t in data["instanceTypes"]}
    assert {"g4dn.xlarge", "g5.xlarge", "g6.xlarge", "g5.12xlarge"} <= names
    g4dn = next(t for t in data["instanceTypes"] if t["name"] == "g4dn.xlarge")
    assert g4dn["resources"]["nvidia.com/gpu"] == "1" and g4dn["resources"]["pods"] == "29"
    prices = {o["Price"] for o in g4dn["offerings"]}
    assert 0.526 in prices  # the us-east-1 On-Demand price of Karpenter's list
    for t in data["instanceTypes"]:
        for offering in t["offerings"]:
            keys = {r["key"] for r in offering["Requirements"]}
            assert {"karpenter.sh/capacity-type", "topology.kubernetes.io/zone", "karpenter.k8s.aws/instance-family",
                    "karpenter.k8s.aws/instance-gpu-count"} <= keys  # fmt: skip
