# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Options shared by the modules that run eksctl (plugins/module_utils/eksctl.py EKSCTL_COMMON_ARGS)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  eksctl_path:
    description:
      - The eksctl executable, as a path or a name looked up on E(PATH).
      - The local environment points this at C(tritonfil-eksctl-sim), a simulator backed by moto's EKS API.
    type: str
    default: eksctl
  region:
    description:
      - AWS region of the cluster.
    type: str
    required: true
  endpoint_url:
    description:
      - AWS API endpoint override, passed to eksctl as E(AWS_ENDPOINT_URL) (the local environment's moto).
      - Without it, eksctl uses the AWS endpoints (and any E(AWS_ENDPOINT_URL) already in the environment).
    type: str
notes:
  - eksctl runs with E(LC_ALL=C); credentials come from the usual AWS chain in the environment.
    Error output is returned with AWS credential values redacted.
requirements:
  - eksctl (0.215 tested)
"""
