# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja filters over GPU capacity (plugins/module_utils/capacity.py holds the facts and the rule).

Each filter is documented in its own file next to this one (plugins/filter/<name>.yml).
"""

from __future__ import annotations

from ansible_collections.tritonfil.eks.plugins.module_utils import capacity


def gpus_of(instance_type):
    return capacity.gpus_of(instance_type) or 0


def gpu_families_problem(families):
    return capacity.check_gpu_families(families) or ""


def gpu_capacity(karpenter_gpu_limit=None, nodegroup_max=None, nodegroup_instance_type=""):
    return capacity.gpu_capacity(karpenter_gpu_limit, nodegroup_max, nodegroup_instance_type)


def capacity_problem(capacity_info, replicas_max, gpus_per_pod):
    return capacity.check_capacity(replicas_max, gpus_per_pod, capacity_info or None) or ""


class FilterModule:
    def filters(self):
        return {
            "gpus_of": gpus_of,
            "gpu_families_problem": gpu_families_problem,
            "gpu_capacity": gpu_capacity,
            "capacity_problem": capacity_problem,
        }
