# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja filters over the collection's naming rules (plugins/module_utils/rules.py holds the rules).

Each filter is documented in its own file next to this one (plugins/filter/<name>.yml), which ansible-doc
reads: `ansible-doc -t filter tritonfil.eks.<name>`.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tritonfil.eks.plugins.module_utils import rules

_CHECKS = {
    "aws_region": rules.check_aws_region,
    "s3_bucket_name": rules.check_s3_bucket_name,
    "s3_prefix": rules.check_s3_prefix,
    "s3_uri": rules.check_s3_uri,
    "endpoint_url": rules.check_endpoint_url,
    "dns_label": rules.check_dns_label,
    "image_reference": rules.check_image_reference,
    "image_tag": rules.check_image_tag,
    "ecr_repository_name": rules.check_ecr_repository_name,
    "cidr": rules.check_cidr,
    "kms_key_arn": rules.check_kms_key_arn,
    "api_endpoint_exposure": rules.check_api_endpoint_exposure,
    "gateway_exposure": rules.check_gateway_exposure,
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
