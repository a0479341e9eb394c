"""`tritonfil deploy|verify|teardown|plan`: argument parsing, progress, summary and exit status."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tritonfil import api, cli
from tritonfil.api import HostStats, PlannedChange, RunEvent, RunResult, TaskFailure


def run_result(status: str = "successful", **kw: object) -> RunResult:
    values: dict = {
        "action": "deploy",
        "playbook": "site.yml",
        "status": status,
        "rc": 0 if status == "successful" else 2,
        "stats": {"localhost": HostStats(ok=5, changed=1, skipped=2)},
        "failed_tasks": [],
        "changed_tasks": [],
        "artifact_dir": Path("/runs/artifacts/deploy-1"),
        "ident": "deploy-1",
        "elapsed": 12.34,
    }
    values.update(kw)
    return RunResult(**values)


def ev(kind: str, task: str = "T", role: str = "", **kw: object) -> RunEvent:
    values: dict = {
        "kind": kind, "host": "localhost", "task": task, "role": role, "play": "Verify", "changed": False,
        "failed": False, "skipped": False, "ignored": False, "message": "", "raw": {},
    }  # fmt: skip
    values.update(kw)
    return RunEvent(**values)


# -- parsing ----------------------------------------------------------------------------------------
def test_extravars_key_value_json_and_file(tmp_path):
    f = tmp_path / "vars.yml"
    f.write_text("s3_models_bucket: from-file\nreplicas: 3\n")
    assert cli.parse_extravars(["a=1 b='two words'", '{"c": [1, 2]}', f"@{f}", "a=last"]) == {
        "a": "last", "b": "two words", "c": [1, 2], "s3_models_bucket": "from-file", "replicas": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ("novalue", "-e novalue: expected key=value, a JSON mapping or @FILE"),
        ("@/nonexistent/vars.yml", "-e @/nonexistent/vars.yml: cannot read /nonexistent/vars.yml: No such file"),
        ('{"a": [1,', '-e {"a": [1,: not a JSON mapping: '),
    ],
)
def test_bad_extravars_are_one_line_errors(item, error):
    with pytest.raises(cli.CliError, match="^" + re.escape(error)):
        cli.parse_extravars([item])


def test_run_commands_parse_their_options():
    args = cli.build_parser().parse_args(
        ["teardown", "-i", "aws", "-e", "a=1", "-e", "b=2", "--tags", "s3_models", "--yes-delete-bucket"]
    )
    assert (args.command, args.inventory, args.extra_vars, args.tags, args.skip_tags, args.limit) == (
        "teardown", "aws", ["a=1", "b=2"], "s3_models", None, None,
    )  # fmt: skip
    assert args.yes_delete_bucket and not args.yes_delete_repository and args.func is cli.cmd_run
    assert cli.build_parser().parse_args(["plan"]).inventory == "local"


def test_delete_confirmations_belong_to_teardown_only(capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["deploy", "--yes-delete-bucket"])
    assert info.value.code == 2
    assert "unrecognized arguments: --yes-delete-bucket" in capsys.readouterr().err


# -- progress and summary ---------------------------------------------------------------------------
def test_progress_prints_each_stage_with_its_time_and_the_total():
    now = [0.0]
    out = io.StringIO()
    p = cli.Progress(out, clock=lambda: now[0])
    steps = [
        (0.0, ev("playbook_on_task_start", role="tritonfil.eks.s3_models")),
        (4.0, ev("runner_on_ok", role="tritonfil.eks.s3_models", changed=True, task="Upload")),
        (4.0, ev("runner_on_skipped", role="tritonfil.eks.s3_models", skipped=True)),
        (5.0, ev("playbook_on_task_start", task="Wait")),
        (9.5, ev("runner_on_failed", task="Wait", failed=True, message="not READY after 3s\nmore")),
        (10.0, ev("playbook_on_stats")),
    ]
    for t, e in steps:
        now[0] = t
        p(e)
    p.finish("failed")
    assert out.getvalue().splitlines() == [
        "[    0.0s] s3_models ...",
        "[    4.0s]   changed: Upload (localhost)",
        "[    5.0s] s3_models: done in 5.0s (changed 1, skipped 1)",
        "[    5.0s] Verify ...",
        "[    9.5s]   FAILED Wait on localhost: not READY after 3s",
        "[   10.0s] Verify: done in 5.0s (failed 1)",
        "[   10.0s] total 10.0s (failed)",
    ]


def test_summary_of_a_failed_run():
    failure = TaskFailure("localhost", "Wait until ready", "", "Verify", "not READY after 3s")
    text = cli.format_summary(
        run_result("failed", failed_tasks=[failure], stats={"localhost": HostStats(ok=1, failed=1)})
    )
    assert text.splitlines() == [
        "deploy: failed (rc=2) in 12.3s",
        "  localhost  ok=1 changed=0 failed=1 unreachable=0 skipped=0 rescued=0 ignored=0",
        "  failed: task 'Wait until ready' failed on localhost: not READY after 3s",
        "  artifacts: /runs/artifacts/deploy-1",
    ]


def test_summary_of_a_plan():
    change = PlannedChange("localhost", "Create the bucket", "tritonfil.eks.s3_models", "Deploy")
    assert "  plan: 1 change(s)\n    ~ [s3_models] Create the bucket (localhost)" in cli.format_summary(
        run_result(check=True, changed_tasks=[change])
    )
    assert "  plan: nothing to do" in cli.format_summary(run_result(check=True))


# -- the command ------------------------------------------------------------------------------------
def test_failed_run_exits_1_with_a_one_line_reason(monkeypatch, capsys):
    calls: list[dict] = []
    failure = TaskFailure("localhost", "Validate", "tritonfil.eks.s3_models", "Deploy", "bad config.pbtxt")

    def fake_teardown(**kw: object) -> RunResult:
        calls.append(kw)
        return run_result("failed", action="teardown", failed_tasks=[failure])

    monkeypatch.setattr(api, "teardown", fake_teardown)
    rc = cli.main(["teardown", "-i", "aws", "-e", "x=1", "--yes-delete-repository", "--skip-tags", "istio"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert calls[0]["extravars"] == {"x": "1"} and calls[0]["inventory"] == "aws"
    assert (calls[0]["delete_bucket"], calls[0]["delete_repository"], calls[0]["skip_tags"]) == (False, True, "istio")
    assert "  failed: task 'Validate' (role s3_models) failed on localhost: bad config.pbtxt" in out
    assert err.splitlines()[-1] == (
        "tritonfil: teardown (site.yml) failed (rc=2): task 'Validate' (role s3_models) failed on localhost: "
        "bad config.pbtxt; artifacts: /runs/artifacts/deploy-1"
    )


def test_canceled_run_exits_130(monkeypatch, capsys):
    monkeypatch.setattr(api, "verify", lambda **kw: run_result("canceled", rc=254))
    assert cli.main(["verify", "-i", "aws"]) == 130


def test_api_errors_become_one_line(monkeypatch, capsys):
    assert cli.main(["deploy", "-i", "no/such/inventory"]) == 1
    assert capsys.readouterr().err.startswith("tritonfil: inventory no/such/inventory not found")
