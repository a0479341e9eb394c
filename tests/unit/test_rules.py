"""The naming rules (plugins/module_utils/rules.py): each rule's verdicts, and that it has one home.

The second part greps the repository: a rule's pattern or a pin written a second time would drift (the
first round had the region check in eight places in three variants, admitting GovCloud while the IRSA
policy hard-coded the aws partition), so a second copy fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tritonfil.collection import module_utils, pins

rules = module_utils("rules")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "region, ok",
    [
        ("us-east-1", True), ("eu-west-3", True), ("ap-southeast-5", True), ("us-gov-west-1", True),
        ("cn-north-1", True), ("us-iso-east-1", True), ("us-isob-east-1", True), ("eusc-de-east-1", True),
        ("us-east", False), ("useast1", False), ("US-EAST-1", False), ("us-east-1a", False), ("", False), (None, False),
    ],
)  # fmt: skip
def test_region(region, ok):
    assert rules.is_aws_region(region) is ok
    if not ok:
        assert rules.check_aws_region(region).startswith(f"'{region}' is not an AWS region name")


@pytest.mark.parametrize(
    "region, partition",
    [("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov"), ("cn-northwest-1", "aws-cn"), ("us-iso-east-1", "aws-iso")],
)
def test_partition_follows_the_region(region, partition):
    assert rules.aws_partition(region) == partition
    assert (
        rules.arn("iam", "role/x", region=region, account="123456789012") == f"arn:{partition}:iam::123456789012:role/x"
    )
    assert rules.arn("s3", "bucket", region=region) == f"arn:{partition}:s3:::bucket"
    assert rules.arn("sqs", "q", region=region, account="1") == f"arn:{partition}:sqs:{region}:1:q"


@pytest.mark.parametrize(
    "name, reason",
    [
        ("tritonfil-models", None), ("a.b-c", None), ("abc", None),
        ("Tritonfil-Models", "3-63 characters"), ("tf", "3-63 characters"), ("-abc", "3-63 characters"),
        ("models..bucket", "adjacent periods"), ("192.168.10.1", "IP address"), ("xn--abc", "prefix 'xn--'"),
        ("abc-s3alias", "suffix '-s3alias'"), ("a" * 64, "3-63 characters"),
    ],
)  # fmt: skip
def test_bucket_name(name, reason):
    problem = rules.check_s3_bucket_name(name)
    assert (problem is None) if reason is None else (reason in problem and problem.startswith(f"'{name}'"))


def test_s3_uris_build_and_split():
    assert rules.s3_uri("b1c", "models", "revisions", "abc") == "s3://b1c/models/revisions/abc"
    assert rules.s3_uri("b1c", "") == "s3://b1c"
    assert rules.s3_uri_split("s3://b1c/models/x") == {"bucket": "b1c", "prefix": "models/x"}
    assert rules.s3_uri_split("s3://b1c") == {"bucket": "b1c", "prefix": ""}
    for bad in ("b1c/models", "s3://B1C/m", "s3://b1c//m"):
        assert rules.check_s3_uri(bad)


@pytest.mark.parametrize(
    "ref, parts",
    [
        ("nvcr.io/nvidia/tritonserver:26.02-py3", {"repository": "nvcr.io/nvidia/tritonserver", "tag": "26.02-py3"}),
        ("127.0.0.1:5000/tritonserver", {"repository": "127.0.0.1:5000/tritonserver"}),
        ("127.0.0.1:5000/t:1@sha256:" + "a" * 64, {"repository": "127.0.0.1:5000/t", "digest": "sha256:" + "a" * 64}),
        ("1.dkr.ecr.us-east-1.amazonaws.com/t@sha256:" + "b" * 64,
         {"repository": "1.dkr.ecr.us-east-1.amazonaws.com/t", "digest": "sha256:" + "b" * 64}),
    ],
)  # fmt: skip
def test_image_split_and_join(ref, parts):
    assert rules.image_split(ref) == parts
    assert rules.image_split(rules.image_join(parts)) == parts


@pytest.mark.parametrize("bad", ["", "repo@sha256:abc", "repo:.tag", "re po", "repo/"])
def test_bad_image_references(bad):
    assert rules.check_image_reference(bad)
    with pytest.raises(ValueError):
        rules.image_split(bad)


def test_endpoint_urls():
    assert rules.is_endpoint_url("") and rules.is_endpoint_url("http://127.0.0.1:5000")
    assert not rules.is_endpoint_url("127.0.0.1:5000") and not rules.is_endpoint_url("http://h/path")


def tracked_text_files() -> dict[str, str]:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    out = {}
    for name in files.stdout.split():
        path = ROOT / name
        if path.suffix in (".py", ".yml", ".yaml", ".json", ".tpl", ".sh", ".env", ".j2", ".cfg", ".toml") or name in (
            "Makefile",
        ):
            try:
                out[name] = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
                continue
    return out


# Code and configuration, not prose or tests: documentation may quote a rule or a pin, tests name values.
FILES = {n: t for n, t in tracked_text_files().items() if not n.startswith(("bench/results/", "docs/", "tests/"))}


def where(pattern: str) -> list[str]:
    return sorted(n for n, text in FILES.items() if re.search(pattern, text))


def test_the_region_rule_has_one_home():
    # Any regex spelling of "two letters, dash, word, dash, digit" (the first round's region checks).
    assert where(r"\[a-z\]\{2\}[^'\"\n]{0,40}-\[a-z\]\+-\[0-9\]") == ["plugins/module_utils/rules.py"]


def test_the_bucket_rule_has_one_home():
    assert where(r"\[a-z0-9\]\[a-z0-9\.-\]\{1,61\}\[a-z0-9\]") == ["plugins/module_utils/rules.py"]


def test_the_triton_tag_is_pinned_once():
    tag = pins()["TRITON_IMAGE_TAG"]
    release = pins()["TRITON_RELEASE"]
    assert tag.startswith(release)
    # The pin file builds the tag from TRITON_RELEASE; the one copy is the AWX survey's default, which cannot
    # read the pin (test_awx.py checks it against the pin).
    assert where(re.escape(tag)) == ["awx/surveys/deploy.yml"]
    # The release itself: the pin file and the chart's appVersion (Helm cannot read the pin; test_chart checks it).
    assert where(rf"(?<![\d.]){re.escape(release)}(?![\d]|-py3)") == ["helm/triton/Chart.yaml", "scripts/versions.env"]
