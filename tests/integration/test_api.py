"""The Python API against the local environment: typed errors naming the failed task, a plan that is
empty after a converged stage, and no secret in any artifact file.

Runs are limited to one stage (tags) or to playbooks/verify.yml so that each takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tritonfil import PlaybookFailed, deploy, plan, verify
from tritonfil.api import RunEvent, RunResult

pytestmark = pytest.mark.integration

SECRET = "tritonfil-api-secret-Qv7pX2"
VERIFY_FAILED = "Fail naming the revision, the models and the mismatch"
ACCESS_KEY = "AKIATRITONFILAPI0001"


def files_containing(root: Path, needle: str) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_text(errors="ignore")
    )


def broken_repository(tmp_path: Path) -> Path:
    """A copy of model_repository/ whose xgb_classifier/config.pbtxt is not valid protobuf text."""
    repo = tmp_path / "broken-models"
    shutil.copytree(ROOT / "model_repository", repo)
    (repo / "xgb_classifier" / "config.pbtxt").write_text('name: "xgb_classifier"\nbackend: "fil"\ninput [ {\n')
    return repo


def test_broken_model_repository_raises_naming_the_failed_task(tmp_path, local_environ):
    events: list[RunEvent] = []
    statuses: list[str] = []
    with pytest.raises(PlaybookFailed) as info:
        deploy(
            inventory="local",
            tags=["s3_models"],
            extravars={"s3_models_repository_path": str(broken_repository(tmp_path))},
            private_data_dir=tmp_path / "runs",
            on_event=events.append,
            on_status=statuses.append,
        )
    err = info.value
    failed = err.failed_task
    assert failed is not None, err.result.output_tail
    assert (failed.task, failed.stage, failed.host) == (
        "Report the model repository problems",
        "s3_models",
        "localhost",
    )
    assert failed.message.startswith("s3_models_repository_path: ")
    assert "xgb_classifier" in failed.message and "config.pbtxt" in failed.message
    assert "task 'Report the model repository problems' (role s3_models) failed on localhost" in str(err)
    assert err.result.status == "failed" and err.result.rc == 2
    assert err.result.stats["localhost"].failed == 1 and err.result.stats["localhost"].rescued == 1
    assert err.artifact_dir.is_dir() and (err.artifact_dir / "job_events").is_dir()
    assert statuses == ["starting", "running", "failed"]
    # Tasks tagged `always` (input and argument-spec validation) run too; s3_models is the last stage.
    stages = [e.stage for e in events if e.kind == "playbook_on_task_start"]
    assert stages[-1] == "s3_models" and "triton_release" not in stages, stages


def test_unreachable_endpoint_raises_naming_the_readiness_task(tmp_path, local_environ):
    with pytest.raises(PlaybookFailed) as info:
        verify(
            inventory="local",
            extravars={"tritonfil_triton_url": "http://127.0.0.1:9", "tritonfil_verify_ready_timeout": 3},
            private_data_dir=tmp_path / "runs",
        )
    failed = info.value.failed_task
    assert failed is not None, info.value.result.output_tail
    # The readiness check fails inside verify's block; its rescue (the gate) ends the run with one message naming
    # the revision (none here: an endpoint given by URL) and each endpoint with why.
    assert failed.task == VERIFY_FAILED
    assert failed.role == "" and failed.stage == "Verify the Triton release"
    assert failed.message.startswith("verify failed on model revision "), failed.message
    assert "endpoint http://127.0.0.1:9: " in failed.message and "not live" in failed.message, failed.message
    assert VERIFY_FAILED in str(info.value)


def test_converged_stage_plans_nothing_and_no_secret_reaches_the_artifacts(tmp_path, local_environ):
    """deploy (the first two stages) with AWS keys in the environment, then plan it: the keys travel in a 0600
    credentials file, never in artifacts/; the plan after the converged stage is empty."""
    runs = tmp_path / "runs"
    common = {
        "inventory": "local",
        "tags": ["ecr_image", "s3_models"],  # triton_release's argument spec needs ecr_image_uri
        "extravars": {"s3_models_bucket": "tritonfil-api-plan"},
        "envvars": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET},
        "private_data_dir": runs,
    }
    first = deploy(**common)
    assert isinstance(first, RunResult) and first.ok and first.changed
    assert any(c.stage == "s3_models" for c in first.changed_tasks)
    second = plan(**common)
    assert isinstance(second, RunResult) and second.ok and second.check
    assert second.plan == [], [(c.task, c.diff) for c in second.plan]

    assert files_containing(runs, SECRET) == []
    command = json.loads((first.artifact_dir / "command").read_text())
    assert command["env"]["AWS_PROFILE"] == "tritonfil"
    assert "AWS_SECRET_ACCESS_KEY" not in command["env"] and "AWS_ACCESS_KEY_ID" not in command["env"]
    assert not Path(command["env"]["AWS_SHARED_CREDENTIALS_FILE"]).exists(), "credentials file left behind"
    assert "--check" not in command["command"]
    plan_command = json.loads((second.artifact_dir / "command").read_text())["command"]
    assert "--check" in plan_command and "--diff" in plan_command


def tritonfil_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tritonfil.cli", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_cli_deploy_of_one_stage_reports_stages_and_summary(tmp_path, local_environ):
    # On a pipe: plain timestamped progress on stderr, the summary on stdout (the pseudo-terminal view:
    # test_cli_terminal). The session's environment has no release yet, so the stage is the image's.
    proc = tritonfil_cli("deploy", "--tags", "ecr_image", env={"TRITONFIL_RUNS": str(tmp_path / "runs")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "] stage 1/9 ecr_image ..." in proc.stderr, proc.stderr
    assert "] stage 1/9 ecr_image: done in " in proc.stderr and "] total " in proc.stderr, proc.stderr
    assert proc.stdout.startswith("deploy: successful (rc=0) in "), proc.stdout
    assert "  localhost  ok=" in proc.stdout and " failed=0 " in proc.stdout
    assert f"  artifacts: {tmp_path / 'runs' / 'artifacts'}/deploy-" in proc.stdout


def test_cli_exits_non_zero_with_the_failed_task(tmp_path, local_environ):
    proc = tritonfil_cli(
        "verify", "-e", "tritonfil_triton_url=http://127.0.0.1:9 tritonfil_verify_ready_timeout=2",
        env={"TRITONFIL_RUNS": str(tmp_path / "runs")},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tritonfil: verify (playbooks/verify.yml) failed (rc=2): task '{VERIFY_FAILED}'"), last
    assert f"  failed: task '{VERIFY_FAILED}' failed on localhost: verify failed on model revision " in proc.stdout
