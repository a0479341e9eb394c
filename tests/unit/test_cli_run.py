"""`tritonfil deploy|verify|teardown|plan`: argument parsing, progress, summary and exit status."""

from __future__ import annotations

import json
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


# -- summary (the progress itself: tests/unit/test_progress.py) -------------------------------------
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


# -- --json, --timeout, exit status, help -------------------------------------------------------------
def test_timeout_reaches_the_api_and_a_timed_out_run_exits_124(monkeypatch, capsys):
    calls: list[dict] = []

    def fake_deploy(**kw: object) -> RunResult:
        calls.append(kw)
        return run_result("timeout", rc=254)

    monkeypatch.setattr(api, "deploy", fake_deploy)
    assert cli.main(["deploy", "-i", "aws", "--timeout", "600"]) == cli.EXIT_TIMEOUT == 124
    assert calls[0]["timeout"] == 600
    assert "tritonfil: deploy (site.yml) timeout (rc=254)" in capsys.readouterr().err
    monkeypatch.setattr(api, "plan", fake_deploy)
    cli.main(["plan", "-i", "aws"])
    assert calls[1]["timeout"] is None  # no --timeout: none


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_timeout_must_be_positive_whole_seconds(value, capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["deploy", "--timeout", value])
    assert info.value.code == cli.EXIT_USAGE == 2
    assert "argument --timeout: expected" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("status", "code"), [("successful", 0), ("failed", 1), ("timeout", 124), ("canceled", 130)]
)  # fmt: skip
def test_exit_status_of_each_outcome(monkeypatch, capsys, status, code):
    monkeypatch.setattr(api, "verify", lambda **kw: run_result(status, action="verify"))
    assert cli.main(["verify", "-i", "aws"]) == code
    assert code in cli.EXIT_CODES


def test_json_prints_one_document_and_nothing_else_on_stdout(monkeypatch, capsys):
    def fake_deploy(on_event: object, **kw: object) -> RunResult:
        on_event(
            ev("playbook_on_task_start", task="Validating arguments against arg spec 'main' - x", role="ecr_image")
        )
        on_event(ev("runner_on_ok", task="Mirror the image", role="ecr_image", changed=True))
        on_event(ev("playbook_on_stats"))
        change = PlannedChange("localhost", "Mirror the image", "ecr_image", "Deploy")
        return run_result(changed_tasks=[change])

    monkeypatch.setattr(api, "deploy", fake_deploy)
    assert cli.main(["deploy", "-i", "aws", "--tags", "ecr_image", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # the whole of stdout is the document
    assert (doc["action"], doc["status"], doc["rc"], doc["ok"]) == ("deploy", "successful", 0, True)
    assert [(s["name"], s["ran"], s["changed"]) for s in doc["stages"]][:2] == [
        ("ecr_image", True, 1), ("s3_models", False, 0),
    ]  # fmt: skip
    assert len(doc["stages"]) == 9
    assert doc["changes"] == [{"host": "localhost", "task": "Mirror the image", "stage": "ecr_image"}]
    assert doc["artifact_dir"] == "/runs/artifacts/deploy-1"
    assert "stage 1/9 ecr_image ..." in err  # the progress still goes to stderr


def test_json_of_a_run_that_could_not_start(capsys):
    assert cli.main(["deploy", "-i", "no/such/inventory", "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert (doc["status"], doc["ok"], doc["rc"]) == ("error", False, None)
    assert doc["error"].startswith("inventory no/such/inventory not found")
    assert err.startswith("tritonfil: inventory no/such/inventory not found")


def test_a_bad_heartbeat_setting_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("TRITONFIL_HEARTBEAT", "often")
    monkeypatch.setattr(api, "deploy", lambda **kw: pytest.fail("must not run"))
    assert cli.main(["deploy", "-i", "aws"]) == 1
    assert capsys.readouterr().err == "tritonfil: TRITONFIL_HEARTBEAT='often': expected a number of seconds\n"


def test_plain_summary_with_stages_when_stdout_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(api, "verify", lambda on_event, **kw: run_result(action="verify"))
    assert cli.main(["verify", "-i", "aws"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert out.splitlines()[:3] == [
        "verify: successful (rc=0) in 12.3s",
        "    #  stage   time  ok  changed  failed  skipped  result",
        "  1/1  verify     -                                not run",
    ]


def test_help_lists_examples_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["deploy", "--help"])
    text = capsys.readouterr().out
    assert "examples:\n  tritonfil deploy " in text
    assert "tritonfil deploy -i aws --timeout 3600 --json > deploy.json" in text
    assert (
        "stages (9, each a tag): ecr_image, s3_models, eks_gpu_cluster, karpenter, "
        "metrics_server, keda, istio, triton_release" in text
    )
    for code, meaning in cli.EXIT_CODES.items():
        assert re.search(rf"^  {code}\s+{re.escape(meaning)}$", text, re.M), (code, text)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "tritonfil doctor -i aws" in text and "124  --timeout passed" in text


def test_models_history_is_the_history_command(monkeypatch, capsys):
    calls = []

    def fake_history(on_event: object, **kw: object) -> RunResult:
        calls.append(kw)
        return run_result(action="history")

    monkeypatch.setattr(api, "history", fake_history)
    monkeypatch.setattr(api, "model_history", lambda result: [])
    assert cli.main(["models", "history", "-i", "aws", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["action"] == "history" and doc["model_history"] == []
    assert calls and calls[0]["inventory"] == "aws"
    with pytest.raises(SystemExit):
        cli.main(["models", "--help"])
    assert "history" in capsys.readouterr().out
