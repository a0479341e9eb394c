# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja tests for the collection's naming rules (plugins/module_utils/rules.py holds the rules).

when: tritonfil_region is tritonfil.eks.aws_region
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: aws_region
short_description: Test and filter plugins for the naming rules of tritonfil.eks
description:
  - C(aws_region), C(s3_bucket_name), C(endpoint_url), C(dns_label), C(image_reference) and
    C(ecr_repository_name) test a value against the rule in C(plugins/module_utils/rules.py).
  - The companion filter C(tritonfil.eks.rule_problem) returns the sentence that says what is wrong.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers
options:
  _input:
    description: The value to test.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Check the region
  ansible.builtin.assert:
    that: tritonfil_region is tritonfil.eks.aws_region
    fail_msg: "tritonfil_region: {{ tritonfil_region | tritonfil.eks.rule_problem('aws_region') }}"
"""

RETURN = r"""
_value:
  description: Whether the value follows the rule.
  type: bool
"""

from ansible_collections.tritonfil.eks.plugins.module_utils import rules


def _ok(check):
    return lambda value: check(value) is None


class TestModule:
    def tests(self):
        return {
            "aws_region": _ok(rules.check_aws_region),
            "s3_bucket_name": _ok(rules.check_s3_bucket_name),
            "s3_prefix": _ok(rules.check_s3_prefix),
            "endpoint_url": _ok(rules.check_endpoint_url),
            "dns_label": _ok(rules.check_dns_label),
            "image_reference": _ok(rules.check_image_reference),
            "image_tag": _ok(rules.check_image_tag),
            "ecr_repository_name": _ok(rules.check_ecr_repository_name),
        }
