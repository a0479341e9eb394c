"""Role tritonfil.eks.s3_models through ansible-playbook against moto (the local environment's S3).

One module-scoped moto server. The sync scenario runs once (first run, second run, a check-mode
plan after one model file changed, the run that uploads it, a pruning run) and each test asserts on
one of its runs. AWS_ENDPOINT_URL / AWS_URL are deliberately NOT set for the playbooks: only the
role's s3_models_endpoint_url leads to moto, so an AWS module that dropped endpoint_url would try
real AWS, which is unreachable in the loopback-only namespace, and fail.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.playbook_run import Run as PlaybookRun
from tests.integration.playbook_run import aws_env as playbook_aws_env
from tests.integration.playbook_run import run_role as run_playbook_role
from tritonfil.localenv.env import LocalEnv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
# Fake credentials, distinctive so that a leak into the ansible output is found by grep.
FAKE_KEY_ID = "AKIATRITONFILFAKE0001"
FAKE_SECRET = "tritonfil-fake-secret-7Qz3kV9wXb"
PREFIX = "models"
SAMPLE_KEYS = sorted(
    f"{PREFIX}/{p.relative_to(ROOT / 'model_repository')}"
    for p in (ROOT / "model_repository").rglob("*")
    if p.is_file() and not p.name.startswith(".")
)
CHANGED_KEY = f"{PREFIX}/xgb_regressor/config.pbtxt"
PRUNED_MODEL = "sklearn_rf"


def aws_env(drop: tuple[str, ...] = ()) -> dict[str, str]:
    return playbook_aws_env(FAKE_KEY_ID, FAKE_SECRET, REGION, drop)


class Run(PlaybookRun):
    @property
    def sync(self) -> dict:
        """The counts s3_models reports (uploaded/skipped/deleted)."""
        return self.facts["s3_models_sync"]


class Runner:
    def __init__(self, base: Path, endpoint: str) -> None:
        self.base = base
        self.endpoint = endpoint
        self.count = 0

    def __call__(self, variables: dict, *args: str, env: dict[str, str] | None = None) -> Run:
        self.count += 1
        work = self.base / f"run{self.count}"
        variables = {"s3_models_endpoint_url": self.endpoint, **variables}
        run = run_playbook_role("s3_models", work, variables, env or aws_env(), *args, parse=Run)
        assert FAKE_SECRET not in run.output, "the AWS secret key appears in the ansible output"
        return run


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[str]:
    env = LocalEnv(state_dir=tmp_path_factory.mktemp("s3-models-env"))
    endpoint = env.up(components=("moto",))["aws_endpoint_url"]
    try:
        yield endpoint
    finally:
        env.down()


@pytest.fixture(scope="module")
def s3(moto: str):
    return boto3.client(
        "s3", endpoint_url=moto, region_name=REGION, aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET
    )


@pytest.fixture(scope="module")
def run_role(tmp_path_factory: pytest.TempPathFactory, moto: str) -> Runner:
    return Runner(tmp_path_factory.mktemp("s3-models-runs"), moto)


def bucket_exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchBucket"), exc
        return False
    return True


def local_vars(repo: Path, bucket: str, **extra: object) -> dict:
    """The variables inventory/local sets (plus the emulator switch for the TLS-only policy)."""
    return {
        "s3_models_region": REGION,
        "s3_models_bucket": bucket,
        "s3_models_prefix": PREFIX,
        "s3_models_repository_path": str(repo),
        # moto applies Deny statements but ignores their Condition (KNOWN.md): switched off locally only.
        "s3_models_tls_only_policy": False,
        **extra,
    }


BUCKET_TASK = "Ensure the bucket (default encryption, versioning, public access block, TLS-only policy)"
SYNC_TASK = "Upload the changed model files"
REPORT_TASK = "Report the model upload"


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, run_role: Runner, s3) -> dict[str, Any]:
    """first run -> second run -> change one file, remove one model -> check-mode plan (with pruning)
    -> run (default: no pruning) -> run with pruning. Records the bucket after each step."""
    bucket = "tritonfil-it-models"
    repo = tmp_path_factory.mktemp("scenario") / "model_repository"
    shutil.copytree(ROOT / "model_repository", repo)
    variables = local_vars(repo, bucket)
    out: dict[str, Any] = {"first": run_role(variables)}
    assert_ok(out["first"])  # everything below builds on it
    out["keys_first"] = keys(s3, bucket)
    out["second"] = run_role(variables)
    out["etag_before"] = s3.head_object(Bucket=bucket, Key=CHANGED_KEY)["ETag"]
    with (repo / "xgb_regressor" / "config.pbtxt").open("a") as f:
        f.write("# touched by test_role_s3_models\n")
    shutil.rmtree(repo / PRUNED_MODEL)
    out["plan"] = run_role({**variables, "s3_models_delete_removed": True}, "--check", "--diff")
    out["etag_after_plan"] = s3.head_object(Bucket=bucket, Key=CHANGED_KEY)["ETag"]
    out["keys_after_plan"] = keys(s3, bucket)
    out["changed"] = run_role(variables)
    out["body_changed"] = s3.get_object(Bucket=bucket, Key=CHANGED_KEY)["Body"].read().decode()
    out["keys_changed"] = keys(s3, bucket)
    out["pruned"] = run_role({**variables, "s3_models_delete_removed": True})
    out["keys_pruned"] = keys(s3, bucket)
    return out


PRUNED_KEYS = sorted(k for k in SAMPLE_KEYS if k.startswith(f"{PREFIX}/{PRUNED_MODEL}/"))


def test_first_run_creates_the_bucket_and_uploads_every_file(scenario, s3):
    run = scenario["first"]
    assert_ok(run)
    assert run.recap["changed"] == 2, run.tail()  # the bucket, the upload
    assert run.result(BUCKET_TASK)["changed"] and run.result(SYNC_TASK)["changed"]
    assert run.sync["uploaded"] == len(SAMPLE_KEYS) == 8
    assert run.sync["skipped"] == 0 and run.sync["deleted"] == 0
    assert run.sync["uploaded_keys"] == SAMPLE_KEYS
    assert scenario["keys_first"] == SAMPLE_KEYS
    bucket = "tritonfil-it-models"
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert run.result(REPORT_TASK)["msg"].startswith(
        f"s3://{bucket}/models/: uploaded 8, skipped 0 unchanged, deleted 0"
    )


def test_second_run_changes_nothing_and_uploads_no_file(scenario):
    run = scenario["second"]
    assert_ok(run)
    assert run.recap["changed"] == 0, run.tail()
    assert run.sync["uploaded"] == 0 and run.sync["skipped"] == 8 and run.sync["deleted"] == 0
    assert run.sync["uploaded_keys"] == []


def test_check_mode_predicts_exactly_the_changed_file_without_touching_the_bucket(scenario):
    run = scenario["plan"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()  # the upload prediction; the bucket is up to date
    assert run.result("Report the predicted bucket changes (check mode)")["msg"].endswith("is up to date")
    assert not run.ran(BUCKET_TASK) and not run.ran(SYNC_TASK)
    assert run.sync["check_mode"] is True
    assert run.sync["uploaded_keys"] == [CHANGED_KEY]
    assert run.sync["deleted_keys"] == PRUNED_KEYS
    assert run.sync["skipped"] == len(SAMPLE_KEYS) - len(PRUNED_KEYS) - 1
    assert scenario["etag_after_plan"] == scenario["etag_before"]
    assert scenario["keys_after_plan"] == SAMPLE_KEYS


def test_after_one_file_changed_exactly_that_file_is_uploaded(scenario):
    run = scenario["changed"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    assert run.sync["uploaded"] == 1 and run.sync["uploaded_keys"] == [CHANGED_KEY]
    assert run.sync["skipped"] == len(SAMPLE_KEYS) - len(PRUNED_KEYS) - 1
    assert scenario["body_changed"].endswith("# touched by test_role_s3_models\n")
    # s3_models_delete_removed is false by default: the removed model stays in the bucket.
    assert run.sync["deleted"] == 0 and scenario["keys_changed"] == SAMPLE_KEYS


def test_removed_model_is_pruned_on_request(scenario):
    run = scenario["pruned"]
    assert_ok(run)
    assert len(PRUNED_KEYS) == 2
    assert run.recap["changed"] == 1, run.tail()
    assert run.sync["deleted_keys"] == PRUNED_KEYS and run.sync["uploaded"] == 0
    assert scenario["keys_pruned"] == sorted(set(SAMPLE_KEYS) - set(PRUNED_KEYS))


def test_check_mode_on_a_fresh_bucket_predicts_without_creating_it(run_role, s3):
    run = run_role(local_vars(ROOT / "model_repository", "tritonfil-it-plan"), "--check", "--diff")
    assert_ok(run)
    assert run.recap["changed"] == 2, run.tail()  # bucket prediction + upload prediction
    assert run.result("Report the predicted bucket changes (check mode)")["msg"] == [
        "create bucket s3://tritonfil-it-plan in us-east-1",
        "set default encryption AES256",
        "enable versioning",
        "block public access",
    ]
    assert run.sync["check_mode"] is True and run.sync["uploaded_keys"] == SAMPLE_KEYS
    assert not bucket_exists(s3, "tritonfil-it-plan")


def test_tls_only_policy_is_attached_and_then_up_to_date(run_role, s3):
    """The real policy, bucket tasks only: moto would deny the uploads (it ignores Conditions)."""
    variables = local_vars(ROOT / "model_repository", "tritonfil-it-tls", s3_models_tls_only_policy=True)
    first = run_role(variables, "--tags", "preflight,s3_models_bucket")
    assert_ok(first)
    assert first.result(BUCKET_TASK)["changed"]
    statement = json.loads(s3.get_bucket_policy(Bucket="tritonfil-it-tls")["Policy"])["Statement"]
    assert statement == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::tritonfil-it-tls", "arn:aws:s3:::tritonfil-it-tls/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    plan = run_role(variables, "--tags", "preflight,s3_models_bucket", "--check")
    assert_ok(plan)
    assert plan.recap["changed"] == 0, plan.tail()
    assert (
        plan.result("Report the predicted bucket changes (check mode)")["msg"] == "s3://tritonfil-it-tls is up to date"
    )


def test_invalid_model_repository_fails_before_anything_is_created(run_role, s3, tmp_path):
    repo = tmp_path / "model_repository"
    shutil.copytree(ROOT / "model_repository", repo)
    config = repo / "xgb_classifier" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "xgboost_json"', 'string_value: "xgboost_jsn"'))
    run = run_role(local_vars(repo, "tritonfil-it-invalid"))
    assert run.rc != 0
    msg = run.result("Report the model repository problems")["msg"]
    assert msg.startswith("s3_models_repository_path: model repository "), run.tail()
    assert "xgb_classifier: xgb_classifier/config.pbtxt: parameters.model_type" in msg, msg
    assert not run.ran("Read the caller identity (sts:GetCallerIdentity)") and not run.ran(BUCKET_TASK)
    assert not bucket_exists(s3, "tritonfil-it-invalid")


def test_invalid_bucket_name_fails_in_preflight_naming_the_field(run_role):
    run = run_role(local_vars(ROOT / "model_repository", "Tritonfil_Models"))
    assert run.rc != 0
    assert run.failure.startswith("s3_models_bucket: 'Tritonfil_Models' is not a valid bucket name"), run.tail()
    assert not run.ran("Validate every model (config.pbtxt against the model files)") and not run.ran(BUCKET_TASK)


def test_missing_credentials_fail_in_preflight_naming_what_is_missing(run_role, s3):
    """No access key id (the secret key is set, and must not leak into the message)."""
    run = run_role(
        local_vars(ROOT / "model_repository", "tritonfil-it-nocreds"), env=aws_env(drop=("AWS_ACCESS_KEY_ID",))
    )
    assert run.rc != 0
    msg = run.result("Report the missing AWS credentials")["msg"]
    assert msg.startswith("AWS credentials for s3_models (region us-east-1): sts:GetCallerIdentity failed:"), msg
    assert "Partial credentials found in explicit, missing: aws_access_key_id." in msg
    assert "Not set in the environment: AWS_ACCESS_KEY_ID, AWS_PROFILE." in msg
    assert not run.ran(BUCKET_TASK)
    assert not bucket_exists(s3, "tritonfil-it-nocreds")
