# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja filters over the collection's naming rules (plugins/module_utils/rules.py holds the rules)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: rule_problem
short_description: Filters for the naming rules of tritonfil.eks (ARNs, image references, S3 URIs)
description:
  - C(rule_problem(RULE)) returns the sentence saying why the input breaks RULE (C(aws_region),
    C(s3_bucket_name), C(s3_prefix), C(endpoint_url), C(dns_label), C(image_reference), C(image_tag),
    C(ecr_repository_name)), or an empty string when it follows it.
  - C(aws_partition) gives a region's partition; C(arn) builds a partition-aware ARN;
    C(image_split)/C(image_join) split and join image references; C(s3_uri)/C(s3_uri_split) build and split
    s3:// URIs.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers
options:
  _input:
    description: The value to filter.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: The Triton role ARN, in the caller's partition
  ansible.builtin.set_fact:
    role_arn: "{{ 'role/' ~ name | tritonfil.eks.arn('iam', region=tritonfil_region, account=account) }}"
"""

RETURN = r"""
_value:
  description: The filtered value.
  type: raw
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.tritonfil.eks.plugins.module_utils import rules

_CHECKS = {
    "aws_region": rules.check_aws_region,
    "s3_bucket_name": rules.check_s3_bucket_name,
    "s3_prefix": rules.check_s3_prefix,
    "endpoint_url": rules.check_endpoint_url,
    "dns_label": rules.check_dns_label,
    "image_reference": rules.check_image_reference,
    "image_tag": rules.check_image_tag,
    "ecr_repository_name": rules.check_ecr_repository_name,
}


def rule_problem(value, rule):
    try:
        check = _CHECKS[rule]
    except KeyError:
        raise AnsibleFilterError(f"rule_problem: unknown rule {rule!r} (one of {', '.join(sorted(_CHECKS))})") from None
    return check(value) or ""


def arn(resource, service, region="", account="", partition=""):
    return rules.arn(service, resource, region=region, account=account, partition=partition)


def _wrap(func):
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(str(exc)) from None

    return call


class FilterModule:
    def filters(self):
        return {
            "rule_problem": rule_problem,
            "aws_partition": rules.aws_partition,
            "arn": arn,
            "image_split": _wrap(rules.image_split),
            "image_join": _wrap(rules.image_join),
            "s3_uri": _wrap(rules.s3_uri),
            "s3_uri_split": _wrap(rules.s3_uri_split),
        }
