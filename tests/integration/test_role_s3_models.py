"""Role tritonfil.eks.s3_models through ansible-playbook against moto (the local environment's S3).

One module-scoped moto server. The revision scenario runs once (first run, second run, a check-mode
plan after one model file changed, the run that stores it, the facts entry point, runs that prune) and
each test asserts on one of its runs. AWS_ENDPOINT_URL / AWS_URL are deliberately NOT set for the
playbooks: only the play's module_defaults (group/tritonfil.eks.aws, as the playbooks set them) lead to
moto, so an AWS module that ignored them would try real AWS, unreachable in the loopback-only namespace.
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
SAMPLE_FILES = sorted(
    str(p.relative_to(ROOT / "model_repository"))
    for p in (ROOT / "model_repository").rglob("*")
    if p.is_file() and not p.name.startswith(".")
)
CHANGED_FILE = "xgb_regressor/config.pbtxt"


def revision_keys(revision: str, files: list[str] = SAMPLE_FILES) -> list[str]:
    return sorted(f"{PREFIX}/revisions/{revision}/{f}" for f in files)


def aws_env(drop: tuple[str, ...] = ()) -> dict[str, str]:
    return playbook_aws_env(FAKE_KEY_ID, FAKE_SECRET, REGION, drop)


class Run(PlaybookRun):
    @property
    def sync(self) -> dict:
        """What s3_models reports it stored (revision, uploaded/copied/skipped, keys)."""
        return self.facts["s3_models_sync"]


class Runner:
    def __init__(self, base: Path, endpoint: str) -> None:
        self.base = base
        self.endpoint = endpoint
        self.count = 0

    def __call__(self, variables: dict, *args: str, env: dict[str, str] | None = None, tasks_from: str = "main") -> Run:
        self.count += 1
        work = self.base / f"run{self.count}"
        aws = {"region": REGION, "endpoint_url": self.endpoint}
        run = run_playbook_role(
            "s3_models", work, variables, env or aws_env(), *args, parse=Run, aws=aws, tasks_from=tasks_from
        )
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
        "s3_models_bucket": bucket,
        "s3_models_prefix": PREFIX,
        "s3_models_repository_path": str(repo),
        # moto applies Deny statements but ignores their Condition (KNOWN.md): switched off locally only.
        "s3_models_tls_only_policy": False,
        **extra,
    }


BUCKET_TASK = "Ensure the bucket (default encryption, versioning, public access block, TLS-only policy)"
SYNC_TASK = "Store the model repository as a revision"
REPORT_TASK = "Report the model revision"


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, run_role: Runner, s3) -> dict[str, Any]:
    """first run -> second run -> change one file -> check-mode plan -> run -> facts entry point -> two more
    changes with s3_models_keep_revisions 2 (the oldest revision is pruned). Records the bucket after each step."""
    bucket = "tritonfil-it-models"
    repo = tmp_path_factory.mktemp("scenario") / "model_repository"
    shutil.copytree(ROOT / "model_repository", repo)
    variables = local_vars(repo, bucket)
    out: dict[str, Any] = {"first": run_role(variables)}
    assert_ok(out["first"])  # everything below builds on it
    out["keys_first"] = keys(s3, bucket)
    out["second"] = run_role(variables)
    with (repo / CHANGED_FILE).open("a") as f:
        f.write("# touched by test_role_s3_models\n")
    out["plan"] = run_role(variables, "--check", "--diff")
    out["keys_after_plan"] = keys(s3, bucket)
    out["changed"] = run_role(variables)
    out["keys_changed"] = keys(s3, bucket)
    out["bodies_changed"] = {
        rev: s3.get_object(Bucket=bucket, Key=f"{PREFIX}/revisions/{rev}/{CHANGED_FILE}")["Body"].read().decode()
        for rev in (out["first"].sync["revision"], out["changed"].sync["revision"])
    }
    out["facts"] = run_role(variables, tasks_from="facts")
    for n in (1, 2):
        with (repo / CHANGED_FILE).open("a") as f:
            f.write(f"# change {n}\n")
        out[f"keep{n}"] = run_role({**variables, "s3_models_keep_revisions": 2})
    out["keys_kept"] = keys(s3, bucket)
    return out


def test_first_run_creates_the_bucket_and_stores_every_file_as_one_revision(scenario, s3):
    run = scenario["first"]
    assert_ok(run)
    assert run.recap["changed"] == 2, run.tail()  # the bucket, the revision
    assert run.result(BUCKET_TASK)["changed"] and run.result(SYNC_TASK)["changed"]
    revision = run.sync["revision"]
    assert run.sync["uploaded"] == len(SAMPLE_FILES) == 12  # 4 models: config, model file, reference
    assert run.sync["copied"] == 0 and run.sync["skipped"] == 0 and run.sync["previous"] is None
    assert run.sync["uploaded_keys"] == revision_keys(revision)
    assert scenario["keys_first"] == sorted(
        [*revision_keys(revision), f"{PREFIX}/index.json", f"{PREFIX}/manifests/{revision}.json"]
    )
    bucket = "tritonfil-it-models"
    assert run.facts["s3_models_uri"] == f"s3://{bucket}/{PREFIX}/revisions/{revision}"
    assert run.facts["s3_models_repository_uri"] == f"s3://{bucket}/{PREFIX}"
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
        f"s3://{bucket}/{PREFIX}/revisions/{revision}: stored (previous none): uploaded {len(SAMPLE_FILES)} ("
    )


def test_second_run_is_the_same_revision_and_changes_nothing(scenario):
    run = scenario["second"]
    assert_ok(run)
    assert run.recap["changed"] == 0, run.tail()
    assert run.sync["revision"] == scenario["first"].sync["revision"]
    assert run.sync["uploaded"] == 0 and run.sync["copied"] == 0 and run.sync["uploaded_keys"] == []
    assert run.result(REPORT_TASK)["msg"].endswith("unchanged (same content)")


def test_check_mode_predicts_exactly_the_changed_file_without_touching_the_bucket(scenario):
    run = scenario["plan"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()  # the revision prediction; the bucket is up to date
    assert run.result("Report the predicted bucket changes (check mode)")["msg"].endswith("is up to date")
    assert not run.ran(BUCKET_TASK)
    new = run.sync["revision"]
    assert run.sync["check_mode"] is True and new != scenario["first"].sync["revision"]
    assert run.sync["uploaded_keys"] == [f"{PREFIX}/revisions/{new}/{CHANGED_FILE}"]
    assert run.sync["copied"] == len(SAMPLE_FILES) - 1
    assert run.sync["changed_models"] == ["xgb_regressor"]
    assert scenario["keys_after_plan"] == scenario["keys_first"]


def test_after_one_file_changed_only_it_is_uploaded_and_the_rest_copied_server_side(scenario):
    run = scenario["changed"]
    assert_ok(run)
    assert run.recap["changed"] == 1, run.tail()
    first, new = scenario["first"].sync["revision"], run.sync["revision"]
    assert run.sync["revision"] == scenario["plan"].sync["revision"] and run.sync["previous"] == first
    assert run.sync["uploaded"] == 1 and run.sync["uploaded_keys"] == [f"{PREFIX}/revisions/{new}/{CHANGED_FILE}"]
    assert run.sync["copied"] == len(SAMPLE_FILES) - 1
    assert scenario["bodies_changed"][new].endswith("# touched by test_role_s3_models\n")
    # The first revision is untouched: a pod still pointing at it loads exactly what it did.
    assert set(revision_keys(first)) <= set(scenario["keys_changed"])
    assert "touched" not in scenario["bodies_changed"][first]


def test_facts_entry_point_publishes_the_newest_revision(scenario):
    """What a later stage gets when s3_models is not in the run (`--tags triton_release`)."""
    run = scenario["facts"]
    assert_ok(run)
    assert run.recap["changed"] == 0
    assert run.facts["s3_models_uri"] == scenario["changed"].facts["s3_models_uri"]


def test_keep_revisions_prunes_the_oldest(scenario):
    first, second = scenario["first"].sync["revision"], scenario["changed"].sync["revision"]
    third, fourth = scenario["keep1"].sync["revision"], scenario["keep2"].sync["revision"]
    assert_ok(scenario["keep1"])
    assert_ok(scenario["keep2"])
    assert scenario["keep1"].sync["pruned"] == [first]
    assert scenario["keep2"].sync["pruned"] == [second]
    kept = scenario["keys_kept"]
    assert not [k for k in kept if f"/{first}/" in k or f"/{second}/" in k or f"{first}.json" in k]
    assert set(revision_keys(third)) | set(revision_keys(fourth)) <= set(kept)


def test_check_mode_on_a_fresh_bucket_predicts_without_creating_it(run_role, s3):
    run = run_role(local_vars(ROOT / "model_repository", "tritonfil-it-plan"), "--check", "--diff")
    assert_ok(run)
    assert run.recap["changed"] == 2, run.tail()  # bucket prediction + upload prediction
    assert run.result("Report the predicted bucket changes (check mode)")["msg"] == [
        "create bucket s3://tritonfil-it-plan",
        "set default encryption AES256",
        "enable versioning",
        "block public access",
    ]
    assert run.sync["check_mode"] is True and run.sync["uploaded_keys"] == revision_keys(run.sync["revision"])
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
    assert run.failure.startswith("s3_models_bucket: 'Tritonfil_Models' is not a valid S3 bucket name"), run.tail()
    assert not run.ran("Validate every model (config.pbtxt against the model files)") and not run.ran(BUCKET_TASK)


def test_missing_credentials_fail_in_preflight_naming_what_is_missing(run_role, s3):
    """No access key id (the secret key is set, and must not leak into the message)."""
    run = run_role(
        local_vars(ROOT / "model_repository", "tritonfil-it-nocreds"), env=aws_env(drop=("AWS_ACCESS_KEY_ID",))
    )
    assert run.rc != 0
    msg = run.result("Report the missing AWS credentials")["msg"]
    assert msg.startswith("AWS credentials for s3_models: sts:GetCallerIdentity failed:"), msg
    assert "Partial credentials found in explicit, missing: aws_access_key_id." in msg
    assert "Not set in the environment: AWS_ACCESS_KEY_ID, AWS_PROFILE." in msg
    assert not run.ran(BUCKET_TASK)
    assert not bucket_exists(s3, "tritonfil-it-nocreds")
