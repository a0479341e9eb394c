"""Simulated GPU nodes that look like an EKS managed node group of g4dn.12xlarge.

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


def gpu_node(index: int, cluster: str, region: str) -> dict:
    zone = f"{region}{'abc'[index % 3]}"
    name = f"ip-192-168-{index // 250}-{index % 250 + 10}.ec2.internal"
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
            },
        },
        "spec": {"providerID": f"aws:///{zone}/i-0{index:016x}", "taints": [GPU_TAINT]},
        "status": {
            "capacity": CAPACITY,
            "allocatable": ALLOCATABLE,
        },
    }


def gpu_nodes_manifest(count: int, cluster: str, region: str) -> str:
    """A kubectl-applicable List of COUNT simulated GPU nodes."""
    return json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [gpu_node(i, cluster, region) for i in range(count)]}
    )
