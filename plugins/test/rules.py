# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja tests for the collection's naming rules (plugins/module_utils/rules.py holds the rules).

when: tritonfil_region is tritonfil.eks.aws_region

Each test is documented in its own file next to this one (plugins/test/<name>.yml), which ansible-doc
reads: `ansible-doc -t test tritonfil.eks.<name>`.
"""

from __future__ import annotations

from ansible_collections.tritonfil.eks.plugins.module_utils import rules


def _ok(check):
    return lambda value: check(value) is None


class TestModule:
    def tests(self):
        return {
            "aws_region": _ok(rules.check_aws_region),
            "s3_bucket_name": _ok(rules.check_s3_bucket_name),
            "s3_prefix": _ok(rules.check_s3_prefix),
            "s3_uri": _ok(rules.check_s3_uri),
            "endpoint_url": _ok(rules.check_endpoint_url),
            "dns_label": _ok(rules.check_dns_label),
            "image_reference": _ok(rules.check_image_reference),
            "image_tag": _ok(rules.check_image_tag),
            "ecr_repository_name": _ok(rules.check_ecr_repository_name),
        }
