"""Simulated nodes that look like the two EKS managed node groups eks_gpu_cluster creates.

GPU nodes: g4dn.12xlarge, tainted so only pods tolerating the taint land there. System nodes:
m6i.xlarge, untainted, for what must not need the GPU taint (istiod, the ingress gateway,
metrics-server, CoreDNS on EKS).

Labels follow what EKS (managed node groups), eksctl and the NVIDIA device plugin / GPU feature
discovery put on such nodes; the taint is the one eksctl examples and our eks_gpu_cluster role put
on GPU node groups so that only pods tolerating it land there. KWOK manages nodes carrying the
`kwok.x-k8s.io/node: fake` annotation and advertises them at the KwokConfiguration nodeIP.
"""

from __future__ import annotations

import json

INSTANCE_TYPE = "g4dn.12xlarge"
# g4dn.12xlarge: 48 vCPU, 192 GiB, 4 x NVIDIA T4; max pods with the VPC CNI: 234.
CAPACITY = {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "4", "pods": "234", "ephemeral-storage": "100Gi"}
# kubelet reservations EKS computes for this size (kube-reserved + eviction threshold).
ALLOCATABLE = {
    "cpu": "47810m",
    "memory": "186727Mi",
    "nvidia.com/gpu": "4",
    "pods": "234",
    "ephemeral-storage": "95Gi",
}
NODEGROUP = "gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


SYSTEM_INSTANCE_TYPE = "m6i.xlarge"
SYSTEM_NODEGROUP = "system"
# m6i.xlarge: 4 vCPU, 16 GiB; max pods with the VPC CNI: 58.
SYSTEM_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "58", "ephemeral-storage": "80Gi"}
SYSTEM_ALLOCATABLE = {"cpu": "3920m", "memory": "15136Mi", "pods": "58", "ephemeral-storage": "75Gi"}


def system_node(index: int, cluster: str, region: str) -> dict:
    """An untainted, GPU-less node of the `system` node group (labels as EKS puts them)."""
    node = gpu_node(index, cluster, region, subnet=200)
    labels = node["metadata"]["labels"]
    for key in [k for k in labels if k.startswith(("nvidia.com/", "k8s.amazonaws.com/accelerator"))]:
        del labels[key]
    labels.update(
        {
            "node.kubernetes.io/instance-type": SYSTEM_INSTANCE_TYPE,
            "beta.kubernetes.io/instance-type": SYSTEM_INSTANCE_TYPE,
            "eks.amazonaws.com/nodegroup": SYSTEM_NODEGROUP,
            "eks.amazonaws.com/nodegroup-image": "ami-0tritonfilal2023standard",
            "alpha.eksctl.io/nodegroup-name": SYSTEM_NODEGROUP,
            "tritonfil.io/node-role": "system",
        }
    )
    node["spec"]["taints"] = []
    node["status"] = {"capacity": SYSTEM_CAPACITY, "allocatable": SYSTEM_ALLOCATABLE}
    return node


def gpu_node(index: int, cluster: str, region: str, subnet: int = 0) -> dict:
    zone = f"{region}{'abc'[index % 3]}"
    name = f"ip-192-168-{subnet + index // 250}-{index % 250 + 10}.ec2.internal"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                # metrics-server reads this node's resource metrics from kwok's per-node path.
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": INSTANCE_TYPE,
                "beta.kubernetes.io/instance-type": INSTANCE_TYPE,
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": zone,
                "eks.amazonaws.com/nodegroup": NODEGROUP,
                "eks.amazonaws.com/nodegroup-image": "ami-0tritonfilal2023nvidia",
                "eks.amazonaws.com/capacityType": "ON_DEMAND",
                "eks.amazonaws.com/compute-type": "ec2",
                "alpha.eksctl.io/cluster-name": cluster,
                "alpha.eksctl.io/nodegroup-name": NODEGROUP,
                "k8s.amazonaws.com/accelerator": "nvidia-tesla-t4",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.count": "4",
                "nvidia.com/gpu.product": "Tesla-T4",
                "type": "kwok",
                "tritonfil.io/simulated": "true",
                "tritonfil.io/node-role": "gpu",
            },
        },
        "spec": {"providerID": f"aws:///{zone}/i-0{index:016x}", "taints": [GPU_TAINT]},
        "status": {
            "capacity": CAPACITY,
            "allocatable": ALLOCATABLE,
        },
    }


# Selects the simulated GPU nodes only (system nodes carry tritonfil.io/node-role=system).
GPU_SELECTOR = "tritonfil.io/simulated=true,tritonfil.io/node-role=gpu"


def gpu_nodes_manifest(count: int, cluster: str, region: str, system: int = 0) -> str:
    """A kubectl-applicable List of COUNT simulated GPU nodes and SYSTEM system nodes."""
    items = [gpu_node(i, cluster, region) for i in range(count)]
    items += [system_node(i, cluster, region) for i in range(system)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
