"""Role tritonfil.eks.ecr_image through ansible-playbook against moto (ECR API) and the local registry.

moto has no registry behind ECR, so the role pushes to the local docker-registry through
ecr_image_registry_override (plain HTTP: ecr_image_registry_tls_verify false), exactly as
inventory/local/emulator.yml does. The source is a tiny OCI image built here with umoci (no NGC offline).
AWS_ENDPOINT_URL / AWS_URL are deliberately NOT set for the playbooks: only the play's module_defaults
(group/tritonfil.eks.aws endpoint_url, as the playbooks set it) lead to moto, so a module that ignored
them would fail.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.playbook_run import Run, aws_env
from tests.integration.playbook_run import run_role as run_playbook_role
from tritonfil.localenv.env import LocalEnv
from tritonfil.localenv.images import build_oci_image

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
# Fake credentials, distinctive so that a leak into the ansible output is found by grep.
FAKE_KEY_ID = "AKIATRITONFILFAKE0002"
FAKE_SECRET = "tritonfil-fake-secret-Hn4pR8sLm2"
TAG = "t1-py3"
MIRROR_TASK = "Mirror the image into the repository"
REPOSITORY_TASK = "Ensure the ECR repository (scan on push, tag mutability, lifecycle policy, encryption)"


def skopeo_digest(ref: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "inspect", "--no-tags", *flags, "--format={{.Digest}}", ref], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ecr-image")
    env = LocalEnv(state_dir=base / "env")
    endpoints = env.up(components=("moto", "registry"))
    try:
        source = build_oci_image(base / "oci", "tiny", "tritonfil test image\n")
        digest = skopeo_digest(source).stdout.strip()
        assert digest.startswith("sha256:")
        yield {**endpoints, "source": source, "source_digest": digest, "runs": base / "runs"}
    finally:
        env.down()


@pytest.fixture(scope="module")
def ecr(local: dict[str, Any]):
    return boto3.client(
        "ecr",
        endpoint_url=local["aws_endpoint_url"],
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )


@pytest.fixture(scope="module")
def secrets(ecr) -> list[str]:
    """What must never appear in the output: the fake secret key and moto's ECR login (both forms)."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return [FAKE_SECRET, token, base64.b64decode(token).decode().split(":", 1)[1]]


def role_vars(local: dict[str, Any], repository: str, **extra: object) -> dict:
    """The variables inventory/local sets for this role, with this test's source image."""
    return {
        "ecr_image_repository_name": repository,
        "ecr_image_source_image": local["source"],
        "ecr_image_tag": TAG,
        "ecr_image_registry_override": local["registry"],
        "ecr_image_registry_tls_verify": False,
        **extra,
    }


def run_role(
    local: dict[str, Any], variables: dict, *args: str, drop: tuple[str, ...] = (), tasks_from: str = "main"
) -> Run:
    local["runs"].mkdir(exist_ok=True)
    work = Path(os.path.realpath(local["runs"])) / f"run{len(list(local['runs'].iterdir())) + 1}"
    env = aws_env(FAKE_KEY_ID, FAKE_SECRET, REGION, drop)
    aws = {"region": REGION, "endpoint_url": local["aws_endpoint_url"]}
    run = run_playbook_role("ecr_image", work, variables, env, *args, aws=aws, tasks_from=tasks_from)
    run.work = work
    assert FAKE_SECRET not in run.output, "the AWS secret key appears in the ansible output"
    return run


def assert_ok(run: Run, secrets: list[str]) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()
    for secret in secrets:
        assert secret not in run.output


def repository(ecr, name: str) -> dict | None:
    try:
        return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "RepositoryNotFoundException", exc
        return None


@pytest.fixture(scope="module")
def mirrored(local: dict[str, Any]) -> dict[str, Run]:
    """First run, second run, then a check-mode run on the mirrored repository."""
    variables = role_vars(local, "tritonserver")
    return {
        "first": run_role(local, variables),
        "second": run_role(local, variables),
        "check": run_role(local, variables, "--check", "--diff"),
    }


def no_login_left(run: Run) -> None:
    """The module's private directory that held the registry login is gone (TMPDIR of the run is empty)."""
    left = sorted(p.name for p in (run.work / "tmpdir").iterdir())
    assert not [n for n in left if n.startswith("tritonfil-ecr-")], left


def test_first_run_creates_the_repository_and_pushes_the_image(mirrored, local, ecr, secrets):
    run = mirrored["first"]
    assert_ok(run, secrets)
    assert run.result(REPOSITORY_TASK)["changed"]
    mirror = run.result(MIRROR_TASK)
    assert mirror["changed"] and mirror["copied"] and mirror["previous_digest"] is None
    repo = repository(ecr, "tritonserver")
    assert repo is not None
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName="tritonserver")["lifecyclePolicyText"])
    assert lifecycle["rules"][0]["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": 10,
    }
    assert lifecycle["rules"][0]["action"] == {"type": "expire"}
    # The pushed image keeps the source digest, and ecr_image_uri carries it.
    pushed = skopeo_digest(f"docker://{local['registry']}/tritonserver:{TAG}", "--tls-verify=false")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == local["source_digest"]
    assert run.facts["ecr_image_uri"] == f"{local['registry']}/tritonserver@{pushed.stdout.strip()}"
    no_login_left(run)


def test_second_run_changes_nothing_and_skips_the_copy(mirrored, local, secrets):
    run = mirrored["second"]
    assert_ok(run, secrets)
    assert run.recap["changed"] == 0, run.tail()
    assert not run.result(MIRROR_TASK)["copied"]
    assert run.result("Report the mirrored image")["msg"].endswith("already there, copy skipped (same digest)")
    assert run.facts["ecr_image_uri"] == f"{local['registry']}/tritonserver@{local['source_digest']}"
    no_login_left(run)


def test_check_mode_on_the_mirrored_repository_predicts_no_change(mirrored, secrets):
    run = mirrored["check"]
    assert_ok(run, secrets)
    assert run.recap["changed"] == 0, run.tail()
    assert run.result("Report the predicted repository change (check mode)")["msg"] == (
        "ECR repository tritonserver is up to date"
    )


def test_facts_entry_point_reads_what_the_registry_holds(mirrored, local, secrets):
    """What triton_release gets when the ecr_image stage is not in the run (`--tags triton_release`)."""
    run = run_role(local, role_vars(local, "tritonserver"), tasks_from="facts")
    assert_ok(run, secrets)
    assert run.recap["changed"] == 0
    assert run.facts["ecr_image_uri"] == f"{local['registry']}/tritonserver@{local['source_digest']}"
    missing = run_role(local, role_vars(local, "tritonserver-never"), tasks_from="facts")
    assert missing.rc != 0
    assert missing.failure == (
        f"ecr_image_uri: {local['registry']} holds no tritonserver-never:{TAG} yet: run the ecr_image stage first"
        " (--tags ecr_image)"
    )


def test_check_mode_predicts_without_creating(local, ecr, secrets):
    run = run_role(local, role_vars(local, "tritonserver-plan"), "--check", "--diff")
    assert_ok(run, secrets)
    assert run.recap["changed"] == 2, run.tail()  # repository + image copy predictions
    assert run.result("Report the predicted repository change (check mode)")["msg"] == (
        "would create ECR repository tritonserver-plan"
    )
    assert run.result("Report the mirrored image")["msg"].endswith(f"would be copied from {local['source']}")
    assert repository(ecr, "tritonserver-plan") is None
    absent = skopeo_digest(f"docker://{local['registry']}/tritonserver-plan:{TAG}", "--tls-verify=false")
    assert absent.returncode != 0 and "manifest unknown" in absent.stderr
    # The predicted URI already carries the digest the copy will keep.
    assert run.facts["ecr_image_uri"] == f"{local['registry']}/tritonserver-plan@{local['source_digest']}"


def test_an_immutable_tag_is_never_moved(local, tmp_path, secrets):
    first = run_role(local, role_vars(local, "tritonserver-pinned"))
    assert_ok(first, secrets)
    other = build_oci_image(tmp_path / "oci2", "tiny", "another tritonfil test image\n")
    moved = run_role(local, role_vars(local, "tritonserver-pinned", ecr_image_source_image=other))
    assert moved.rc != 0
    other_digest = skopeo_digest(other).stdout.strip()
    assert moved.failure == (
        f"ecr_image_tag: {local['registry']}/tritonserver-pinned:{TAG} holds {local['source_digest']}, the source is"
        f" now {other_digest}, and the repository's tags are immutable: mirror it under a new ecr_image_tag"
    ), moved.tail()
    still = skopeo_digest(f"docker://{local['registry']}/tritonserver-pinned:{TAG}", "--tls-verify=false")
    assert still.stdout.strip() == local["source_digest"]
    no_login_left(moved)


def test_partial_credentials_fail_in_preflight_naming_what_is_missing(local, ecr):
    run = run_role(local, role_vars(local, "tritonserver-nocreds"), drop=("AWS_SECRET_ACCESS_KEY",))
    assert run.rc != 0
    msg = run.result("Report the missing AWS credentials")["msg"]
    assert msg.startswith("AWS credentials for ecr_image: sts:GetCallerIdentity failed:"), msg
    assert "Partial credentials found in explicit, missing: aws_secret_access_key." in msg
    assert "Not set in the environment: AWS_SECRET_ACCESS_KEY, AWS_PROFILE." in msg
    assert not run.ran("Look up the ECR repository")
    assert repository(ecr, "tritonserver-nocreds") is None


# -- the build alternative (ecr_image_build_context): buildah, FROM scratch (no network needed) -----


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("build-context")
    (context / "ops").mkdir()
    (context / "model.txt").write_text("tritonfil build test\n")
    (context / "ops" / "Dockerfile").write_text("FROM scratch\nARG NOTE=none\nCOPY model.txt /model.txt\n")
    return context


def test_build_then_push_then_rerun_pushes_nothing(local, build_context, tmp_path, secrets):
    variables = role_vars(
        local,
        "tritonserver-built",
        ecr_image_build_context=str(build_context),
        ecr_image_build_args={"NOTE": "tritonfil"},
        ecr_image_build_output=str(tmp_path / "layout"),
    )
    first = run_role(local, variables)
    assert_ok(first, secrets)
    assert first.ran("Build the image") and first.result(MIRROR_TASK)["copied"], first.tail()
    built = skopeo_digest(f"oci:{tmp_path / 'layout'}:{TAG}").stdout.strip()
    assert first.facts["ecr_image_uri"] == f"{local['registry']}/tritonserver-built@{built}"
    # buildah --timestamp 0: the same context builds the same digest, so nothing is pushed again.
    second = run_role(local, variables)
    assert_ok(second, secrets)
    assert second.recap["changed"] == 0, second.tail()
    assert not second.result(MIRROR_TASK)["copied"]
    assert second.facts["ecr_image_uri"] == first.facts["ecr_image_uri"]


def test_build_without_the_build_file_fails_naming_it(local, tmp_path, secrets):
    run = run_role(local, role_vars(local, "tritonserver-nofile", ecr_image_build_context=str(tmp_path)))
    assert run.rc != 0
    assert run.failure == f"ecr_image_build_file: ops/Dockerfile not found in ecr_image_build_context {tmp_path}"
