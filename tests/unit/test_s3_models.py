"""plugins/module_utils/s3_models.py against moto's S3 (in process): revisions, reuse, prune, resume."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tritonfil.collection import module_utils

s3m = module_utils("s3_models")
ROOT = Path(__file__).resolve().parents[2]
BUCKET = "tritonfil-unit-models"


@pytest.fixture
def s3(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dest = tmp_path / "model_repository"
    shutil.copytree(ROOT / "model_repository", dest)
    return dest


def clock(day: int):
    return lambda: datetime.datetime(2026, 12, day, 12, 0, tzinfo=datetime.UTC)


def sync(s3, repo: Path, keep: int = 5, day: int = 1):
    plan = s3m.plan(s3, BUCKET, "models", str(repo), keep=keep)
    if plan.changed:
        s3m.apply(s3, plan, str(repo), clock=clock(day))
    return plan


def keys(s3, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_first_sync_uploads_every_file_then_the_same_content_is_the_same_revision(s3, repo):
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and not p.name.startswith("."))
    first = sync(s3, repo)
    assert sorted(first.upload) == files and not first.copy and first.previous is None
    assert keys(s3, f"models/revisions/{first.revision}/") == [f"models/revisions/{first.revision}/{f}" for f in files]
    again = s3m.plan(s3, BUCKET, "models", str(repo))
    assert again.revision == first.revision and not again.changed
    index = json.loads(s3.get_object(Bucket=BUCKET, Key="models/index.json")["Body"].read())
    assert [e["revision"] for e in index["revisions"]] == [first.revision]
    assert index["revisions"][0]["models"] == sorted(p.name for p in repo.iterdir() if p.is_dir())


def test_a_changed_model_uploads_only_its_file_and_copies_the_rest_server_side(s3, repo):
    first = sync(s3, repo)
    (repo / "xgb_regressor" / "config.pbtxt").write_text(
        (repo / "xgb_regressor" / "config.pbtxt").read_text() + "# v2\n"
    )
    second = sync(s3, repo, day=2)
    assert second.revision != first.revision and second.previous == first.revision
    assert second.upload == ["xgb_regressor/config.pbtxt"]
    assert len(second.copy) == len(second.files) - 1
    assert second.changed_models == ["xgb_regressor"]
    body = s3.get_object(Bucket=BUCKET, Key=f"models/revisions/{second.revision}/xgb_regressor/config.pbtxt")["Body"]
    assert body.read().decode().endswith("# v2\n")
    # The first revision is untouched: a pod still pointing at it loads exactly what it did.
    old = s3.get_object(Bucket=BUCKET, Key=f"models/revisions/{first.revision}/xgb_regressor/config.pbtxt")["Body"]
    assert not old.read().decode().endswith("# v2\n")


def test_an_interrupted_sync_is_invisible_and_the_rerun_completes_it(s3, repo):
    plan = s3m.plan(s3, BUCKET, "models", str(repo))
    done = []

    def upload_then_die(path, bucket, key):
        if len(done) == 3:
            raise KeyboardInterrupt("interrupted")
        s3.upload_file(path, bucket, key)
        done.append(key)

    with pytest.raises(KeyboardInterrupt):
        s3m.apply(s3, plan, str(repo), upload_file=upload_then_die)
    # No manifest and no index: nothing lists the partial revision.
    assert keys(s3, "models/manifests/") == [] and keys(s3, "models/index.json") == []
    rerun = s3m.plan(s3, BUCKET, "models", str(repo))
    assert len(rerun.present) == 3 and len(rerun.upload) == len(plan.upload) - 3
    s3m.apply(s3, rerun, str(repo))
    assert not s3m.plan(s3, BUCKET, "models", str(repo)).changed


def test_prune_keeps_the_newest_and_the_live_revision(s3, repo):
    config = repo / "xgb_regressor" / "config.pbtxt"
    text = config.read_text()
    revisions = []
    for n in range(4):
        config.write_text(text + f"# {n}\n")
        revisions.append(sync(s3, repo, keep=2, day=n + 1).revision)
        if n == 0:
            assert s3m.set_live(s3, BUCKET, "models", revisions[0])
    index = s3m.read_index(s3, BUCKET, "models")
    assert [e["revision"] for e in index["revisions"]] == [revisions[3], revisions[2], revisions[0]]
    assert index["live"] == revisions[0]
    assert keys(s3, f"models/revisions/{revisions[1]}/") == [] and keys(s3, f"models/manifests/{revisions[1]}") == []


def test_returning_to_older_content_reuses_its_revision(s3, repo):
    config = repo / "xgb_regressor" / "config.pbtxt"
    text = config.read_text()
    a = sync(s3, repo).revision
    config.write_text(text + "# b\n")
    b = sync(s3, repo, day=2).revision
    config.write_text(text)
    back = sync(s3, repo, day=3)
    assert back.revision == a and back.exists and not back.upload and not back.copy
    assert [e["revision"] for e in s3m.read_index(s3, BUCKET, "models")["revisions"]] == [a, b]


def test_a_missing_bucket_plans_everything_as_new(s3, repo):
    plan = s3m.plan(s3, "tritonfil-unit-absent", "models", str(repo))
    assert plan.previous is None and len(plan.upload) == len(plan.files) and not plan.exists


def test_an_empty_repository_is_refused(s3, tmp_path):
    with pytest.raises(s3m.S3ModelsError, match="holds no files"):
        s3m.plan(s3, BUCKET, "models", str(tmp_path))
