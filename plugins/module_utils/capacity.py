# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""GPU capacity: which EC2 instance families carry NVIDIA GPUs, how many GPUs an instance type has, and
whether a Triton release's replica bounds fit the GPUs the cluster can ever provide (no Ansible imports).

The one home of these facts: the eks_gpu_cluster and karpenter preflights (the family lists), the
triton_release capacity preflight and the Python package read them through the filters in
plugins/filter/capacity.py. GPU counts are the published EC2 specifications
(docs.aws.amazon.com/ec2/latest/instancetypes/ac.html).
"""

from __future__ import annotations

__all__ = ["GPU_FAMILIES", "check_capacity", "check_gpu_families", "gpu_capacity", "gpus_of"]

# Families the EKS AL2023 NVIDIA AMI supports, and their GPU.
GPU_FAMILIES = {
    "g4dn": "T4", "g5": "A10G", "g5g": "T4G", "g6": "L4", "g6e": "L40S", "gr6": "L4", "p3": "V100",
    "p3dn": "V100", "p4d": "A100", "p4de": "A100", "p5": "H100", "p5e": "H200", "p5en": "H200", "p6-b200": "B200",
}  # fmt: skip
# GPUs per instance type where a family has sizes with more than one GPU; every other size of a family has one.
_MULTI = {
    "g4dn.12xlarge": 4, "g4dn.metal": 8,
    "g5.12xlarge": 4, "g5.24xlarge": 4, "g5.48xlarge": 8, "g5g.16xlarge": 2, "g5g.metal": 2,
    "g6.12xlarge": 4, "g6.24xlarge": 4, "g6.48xlarge": 8,
    "g6e.12xlarge": 4, "g6e.24xlarge": 4, "g6e.48xlarge": 8,
    "p3.8xlarge": 4, "p3.16xlarge": 8, "p3dn.24xlarge": 8, "p4d.24xlarge": 8, "p4de.24xlarge": 8,
    "p5.4xlarge": 1, "p5.48xlarge": 8, "p5e.48xlarge": 8, "p5en.48xlarge": 8, "p6-b200.48xlarge": 8,
}  # fmt: skip


def gpus_of(instance_type: str) -> int | None:
    """NVIDIA GPUs of INSTANCE_TYPE (e.g. 1 for g4dn.xlarge, 4 for g5.12xlarge); None for a type of no GPU family."""
    family = str(instance_type).split(".", 1)[0]
    if family not in GPU_FAMILIES or "." not in str(instance_type):
        return None
    return _MULTI.get(str(instance_type), 1)


def check_gpu_families(families: object) -> str | None:
    """None when FAMILIES is a non-empty list of GPU families, else what is wrong."""
    if not isinstance(families, (list, tuple)) or not families:
        return "must be a non-empty list of GPU instance families (e.g. [g4dn, g5, g6])"
    unknown = [str(f) for f in families if str(f) not in GPU_FAMILIES]
    if unknown:
        return f"{', '.join(unknown)}: not a GPU family of the EKS NVIDIA AMI (one of {', '.join(GPU_FAMILIES)})"
    return None


def gpu_capacity(
    karpenter_gpu_limit: int | None = None,
    nodegroup_max: int | None = None,
    nodegroup_instance_type: str = "",
) -> dict:
    """The most GPUs the cluster can hold: the Karpenter NodePool's GPU limit (None: no Karpenter) plus the
    managed GPU node group's max size x its instance type's GPUs (None: no GPU node group). Returns
    {"gpus": TOTAL, "sources": [(VARIABLE-SENTENCE, GPUS), ...]}."""
    sources = []
    if karpenter_gpu_limit is not None:
        sources.append((f"karpenter_gpu_limit {int(karpenter_gpu_limit)}", int(karpenter_gpu_limit)))
    if nodegroup_max is not None:
        per = gpus_of(nodegroup_instance_type) or 0
        sources.append(
            (
                f"eks_gpu_cluster_nodes_max {int(nodegroup_max)} x {per} GPU(s) of {nodegroup_instance_type}",
                int(nodegroup_max) * per,
            )
        )
    return {"gpus": sum(gpus for _source, gpus in sources), "sources": sources}


def check_capacity(replicas_max: int, gpus_per_pod: int, capacity: dict | None) -> str | None:
    """None when REPLICAS_MAX pods of GPUS_PER_POD GPUs fit CAPACITY (gpu_capacity's result; None: not known,
    nothing is checked), else a sentence naming the variables."""
    if capacity is None or int(gpus_per_pod) == 0:
        return None
    need = int(replicas_max) * int(gpus_per_pod)
    if need <= int(capacity["gpus"]):
        return None
    have = " + ".join(source for source, _gpus in capacity["sources"]) or "no GPU node group and no Karpenter NodePool"
    return (
        f"triton_release_replicas_max {int(replicas_max)} x triton_release_gpus_per_pod {int(gpus_per_pod)} = "
        f"{need} GPUs, but the cluster can hold at most {int(capacity['gpus'])} ({have}): the replicas beyond "
        f"would stay Pending; lower triton_release_replicas_max or raise the GPU limit"
    )
