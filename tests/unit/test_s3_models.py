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


def test_a_revision_uri_round_trips_and_anything_else_is_refused():
    uri = s3m.revision_uri(BUCKET, "team/models", "0123456789abcdef")
    assert uri == f"s3://{BUCKET}/team/models/revisions/0123456789abcdef"
    assert s3m.parse_revision_uri(uri) == {"bucket": BUCKET, "prefix": "team/models", "revision": "0123456789abcdef"}
    assert s3m.parse_revision_uri(f"s3://{BUCKET}/revisions/abc") == {"bucket": BUCKET, "prefix": "", "revision": "abc"}
    for bad in (f"s3://{BUCKET}/models", f"s3://{BUCKET}/models/revisions/", f"s3://{BUCKET}/models/other/abc"):
        with pytest.raises(ValueError, match="is not a model revision URI"):
            s3m.parse_revision_uri(bad)


def test_the_references_of_a_revision_are_downloaded_from_it(s3, repo, tmp_path):
    plan = sync(s3, repo)
    dest = tmp_path / "refs"
    models = s3m.download_references(s3, plan.uri, str(dest))
    assert models == sorted(p.name for p in repo.iterdir() if (p / "reference.json").exists())
    for model in models:
        assert json.loads((dest / model / "reference.json").read_text()) == json.loads(
            (repo / model / "reference.json").read_text()
        )


def test_delete_all_removes_every_version_of_ours_and_nothing_else(s3, repo):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    sync(s3, repo)
    (repo / "xgb_regressor" / "config.pbtxt").write_text(
        (repo / "xgb_regressor" / "config.pbtxt").read_text() + "\n# changed\n"
    )
    sync(s3, repo, day=2)
    s3.put_object(Bucket=BUCKET, Key="models-notes.txt", Body=b"not ours")
    s3.put_object(Bucket=BUCKET, Key="models/README", Body=b"not ours either")
    planned = s3m.delete_all(s3, BUCKET, "models", dry_run=True)
    assert planned > 0 and keys(s3, "models/revisions/")  # a dry run deletes nothing
    assert s3m.delete_all(s3, BUCKET, "models") == planned
    assert keys(s3) == ["models-notes.txt", "models/README"]
    versions = s3.list_object_versions(Bucket=BUCKET)
    left = {v["Key"] for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])}
    assert left == {"models-notes.txt", "models/README"}
    assert s3m.bucket_is_empty(s3, BUCKET) is False
    assert s3m.delete_all(s3, "no-such-bucket-here", "models") == 0
    assert s3m.bucket_is_empty(s3, "no-such-bucket-here") is None


def test_set_live_marks_a_complete_revision_only(s3, repo):
    plan = sync(s3, repo)
    assert s3m.set_live(s3, BUCKET, "models", plan.revision) is True
    assert s3m.set_live(s3, BUCKET, "models", plan.revision) is False  # idempotent
    assert s3m.read_index(s3, BUCKET, "models")["live"] == plan.revision
    with pytest.raises(s3m.S3ModelsError, match="is not in"):
        s3m.set_live(s3, BUCKET, "models", "ffffffffffffffff")
