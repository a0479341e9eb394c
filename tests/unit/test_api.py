"""tritonfil.api: result parsing, error typing, secrets handling (no ansible-playbook run here)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tritonfil import api
from tritonfil.api import (
    HostStats,
    PlaybookCanceled,
    PlaybookFailed,
    PlaybookTimedOut,
    RunEvent,
    RunResult,
    TaskFailure,
)

ROOT = Path(__file__).resolve().parents[2]


def event(kind: str, task: str = "Do it", role: str = "", host: str = "localhost", **data: object) -> dict:
    res = data.pop("res", {})
    return {
        "event": kind,
        "event_data": {"host": host, "task": task, "role": role, "play": "Deploy", "res": res, **data},
    }


def result(status: str = "failed", failed: list[TaskFailure] | None = None, **kw: object) -> RunResult:
    values: dict = {
        "action": "deploy",
        "playbook": "site.yml",
        "status": status,
        "rc": 0 if status == "successful" else 2,
        "stats": {},
        "failed_tasks": failed or [],
        "changed_tasks": [],
        "artifact_dir": Path("/runs/artifacts/x"),
        "ident": "x",
        "elapsed": 1.0,
    }
    values.update(kw)
    return RunResult(**values)


# -- parsing ----------------------------------------------------------------------------------------
def test_host_stats_from_runner_stats():
    stats = {
        "ok": {"localhost": 7, "h2": 1},
        "changed": {"localhost": 2},
        "failures": {"h2": 1},
        "dark": {},
        "skipped": {"localhost": 3},
        "rescued": {"h2": 1},
        "ignored": {},
        "processed": {"localhost": 1, "h2": 1},
    }
    assert HostStats.from_runner(stats) == {
        "h2": HostStats(ok=1, failed=1, rescued=1),
        "localhost": HostStats(ok=7, changed=2, skipped=3),
    }
    assert HostStats.from_runner(None) == {}


def test_run_event_strips_the_collection_prefix_and_the_role_from_the_task():
    ev = RunEvent.from_runner(
        event("runner_on_failed", task="tritonfil.eks.s3_models : Report it", role="tritonfil.eks.s3_models",
              res={"msg": "bad model"})
    )  # fmt: skip
    assert (ev.task, ev.role, ev.stage, ev.failed, ev.ignored, ev.message) == (
        "Report it", "tritonfil.eks.s3_models", "s3_models", True, False, "bad model"
    )  # fmt: skip


def test_run_event_without_a_role_belongs_to_its_play():
    ev = RunEvent.from_runner(event("runner_on_ok", res={"changed": True}))
    assert (ev.stage, ev.changed, ev.failed) == ("Deploy", True, False)
    assert RunEvent.from_runner(event("runner_on_skipped")).skipped


@pytest.mark.parametrize(
    ("res", "message"),
    [
        ({"msg": "  the reason \n"}, "the reason"),
        ({"stderr": "no such file", "rc": 1}, "no such file"),
        ({"results": [{"failed": True, "msg": "a"}, {"failed": False}, {"failed": True, "msg": "b"}]}, "a | b"),
        ({"rc": 3, "_ansible_no_log": False}, '{"rc": 3}'),
    ],
)
def test_failure_message_from_a_task_result(res, message):
    assert RunEvent.from_runner(event("runner_on_failed", res=res)).message == message


def test_collector_keeps_the_failure_that_ended_each_host_only():
    c = api._Collector(None)
    c(event("runner_on_failed", task="Ignored", ignore_errors=True, res={"msg": "x"}))
    c(event("runner_on_failed", task="Validate", role="tritonfil.eks.s3_models", res={"msg": "rescued"}))
    c(event("runner_on_failed", task="Report", role="tritonfil.eks.s3_models", res={"msg": "final"}))
    c(event("runner_on_failed", task="Rescued on h2", host="h2", res={"msg": "y"}))
    c(event("runner_on_unreachable", task="Connect", host="h3", res={"msg": "ssh: no route"}))
    stats = {
        "localhost": HostStats(failed=1, rescued=1),
        "h2": HostStats(ok=3, rescued=1),
        "h3": HostStats(unreachable=1),
    }
    final = c.final_failures(stats)
    assert [(f.host, f.task, f.message, f.unreachable) for f in final] == [
        ("localhost", "Report", "final", False),
        ("h3", "Connect", "ssh: no route", True),
    ]
    assert final[1].describe() == "task 'Connect' unreachable on h3: ssh: no route"


def test_collector_records_changes_with_their_diff_and_forwards_events():
    seen: list[RunEvent] = []
    c = api._Collector(seen.append)
    assert c(event("runner_on_ok", task="Write", res={"changed": True, "diff": {"before": "a", "after": "b"}})) is True
    c(event("runner_on_ok", task="Read", res={"changed": False}))
    assert [(p.task, p.diff) for p in c.changes] == [("Write", [{"before": "a", "after": "b"}])]
    assert [e.task for e in seen] == ["Write", "Read"]


# -- errors -----------------------------------------------------------------------------------------
def test_failed_result_raises_a_typed_error_naming_the_task():
    failure = TaskFailure("localhost", "Validate", "tritonfil.eks.s3_models", "Deploy", "config.pbtxt: bad")
    with pytest.raises(PlaybookFailed) as info:
        result("failed", [failure]).raise_for_status()
    assert str(info.value) == (
        "deploy (site.yml) failed (rc=2): task 'Validate' (role s3_models) failed on localhost: config.pbtxt: bad; "
        "artifacts: /runs/artifacts/x"
    )
    assert info.value.failed_task is failure and info.value.artifact_dir == Path("/runs/artifacts/x")


def test_failure_without_a_task_reports_the_last_output_line():
    err = PlaybookFailed(result("failed", output_tail="PLAY\nERROR! the playbook: site.yml could not be found"))
    assert str(err) == (
        "deploy (site.yml) failed (rc=2): ERROR! the playbook: site.yml could not be found; "
        "artifacts: /runs/artifacts/x"
    )
    assert err.failed_task is None


@pytest.mark.parametrize(("status", "error"), [("canceled", PlaybookCanceled), ("timeout", PlaybookTimedOut)])
def test_canceled_and_timed_out_runs_have_their_own_error(status, error):
    with pytest.raises(error):
        result(status).raise_for_status()
    assert issubclass(error, PlaybookFailed)


def test_successful_result_is_returned():
    r = result("successful", stats={"localhost": HostStats(ok=2, changed=1)})
    assert r.raise_for_status() is r and r.ok and r.changed


# -- project, inventory, secrets --------------------------------------------------------------------
def test_project_is_this_checkout_or_the_environment_override(tmp_path, monkeypatch):
    monkeypatch.delenv(api.PROJECT_ENV, raising=False)
    assert api.find_project() == ROOT
    monkeypatch.setenv(api.PROJECT_ENV, str(tmp_path))
    with pytest.raises(api.ProjectNotFound, match="no project directory with site.yml"):
        api.find_project()
    (tmp_path / "site.yml").write_text("---\n")
    assert api.find_project() == tmp_path.resolve()
    assert api.find_project(ROOT) == ROOT


def test_inventory_names_and_paths():
    assert api.resolve_inventory(None, ROOT) == ROOT / "inventory" / "local"
    assert api.resolve_inventory("aws", ROOT) == ROOT / "inventory" / "aws"
    assert api.resolve_inventory("inventory/aws/hosts.yml", ROOT) == ROOT / "inventory" / "aws" / "hosts.yml"
    assert api.resolve_inventory("localhost,", ROOT) == "localhost,"
    assert api.is_local_inventory(api.resolve_inventory("local", ROOT), ROOT)
    assert not api.is_local_inventory(api.resolve_inventory("aws", ROOT), ROOT)
    with pytest.raises(api.ProjectNotFound, match="inventory nowhere/hosts not found"):
        api.resolve_inventory("nowhere/hosts", ROOT)


def test_aws_keys_move_into_a_private_credentials_file(tmp_path):
    env = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "tok",
           "AWS_DEFAULT_PROFILE": "old", "AWS_REGION": "us-east-1"}  # fmt: skip
    path = api.move_aws_keys(env, tmp_path)
    assert env == {"AWS_REGION": "us-east-1", "AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "tritonfil"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == (
        "[tritonfil]\naws_access_key_id = AKIA1\naws_secret_access_key = s3cr3t\naws_session_token = tok\n"
    )


def test_partial_or_absent_aws_keys_are_dropped_without_a_file(tmp_path):
    env = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_PROFILE": "mine"}
    assert api.move_aws_keys(env, tmp_path) is None
    assert env == {"AWS_PROFILE": "mine"} and not (tmp_path / "credentials").exists()


def test_secret_looking_variables_move_into_a_private_file(tmp_path):
    env = {
        "K8S_AUTH_API_KEY": "k8s-key", "CONTROLLER_OAUTH_TOKEN": "awx-token", "TOWER_PASSWORD": "pw",
        "GITHUB_TOKEN": "gh", "MY_SERVICE_SECRET": "s", "DB_PASSPHRASE": "p", "VAULT_TOKEN": "v",
        "TRITONFIL_VERIFY_TOKEN": "jwt", "SOME_API_KEY": "a", "x_private_key": "pk",
        # not secrets: files named, ordinary settings
        "AWS_SHARED_CREDENTIALS_FILE": "/run/credentials", "ANSIBLE_VAULT_PASSWORD_FILE": "/run/vault",
        "AWS_PROFILE": "tritonfil", "KUBECONFIG": "/k", "PATH": "/usr/bin", "K8S_AUTH_HOST": "https://k8s",
    }  # fmt: skip
    secret = {k: v for k, v in env.items() if k not in (
        "AWS_SHARED_CREDENTIALS_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "AWS_PROFILE", "KUBECONFIG", "PATH",
        "K8S_AUTH_HOST")}  # fmt: skip
    path = api.move_secret_variables(env, tmp_path)
    assert json.loads(path.read_text()) == secret
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(env) == ["ANSIBLE_VAULT_PASSWORD_FILE", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "K8S_AUTH_HOST",
                           "KUBECONFIG", "PATH"]  # fmt: skip
    assert all(api.is_secret_name(k) for k in api.SECRET_VARIABLES)
    assert api.move_secret_variables({"PATH": "/usr/bin"}, tmp_path / "none") is None


def test_the_launcher_hands_the_variables_to_the_command(tmp_path):
    path = tmp_path / "secret-env.json"
    path.write_text(json.dumps({"K8S_AUTH_API_KEY": "k8s-key", "CONTROLLER_OAUTH_TOKEN": "awx-token"}))
    code = "import os; print(os.environ['K8S_AUTH_API_KEY'], os.environ['CONTROLLER_OAUTH_TOKEN'], os.environ['KEEP'])"
    proc = subprocess.run(
        [sys.executable, "-m", "tritonfil.secretenv", str(path), "--", sys.executable, "-c", code],
        capture_output=True, text=True, env={"PATH": os.environ["PATH"], "KEEP": "kept"}, check=False,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "k8s-key awx-token kept\n"), proc.stderr
    bad = subprocess.run([sys.executable, "-m", "tritonfil.secretenv", str(tmp_path / "missing"), "--", "true"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("tritonfil.secretenv: cannot read"), bad.stderr


def test_verify_and_deploy_carry_the_token_and_the_ca_bundle(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(api, "run_playbook", lambda playbook, **kw: calls.append((playbook, kw)))
    api.verify(token="eyJhbGciOi.x.y", ca_bundle=tmp_path / "ca.pem", extravars={"a": 1})
    api.deploy(token="t2")
    api.verify()
    assert calls[0][1]["extravars"] == {"a": 1, "tritonfil_verify_token": "eyJhbGciOi.x.y",
                                        "tritonfil_verify_ca_bundle": str(tmp_path / "ca.pem")}  # fmt: skip
    assert calls[1] == ("site.yml", {"action": "deploy", "extravars": {"tritonfil_verify_token": "t2"}})
    assert calls[2] == ("playbooks/verify.yml", {"action": "verify"})


def test_cmdline_for_check_diff_and_extravars_file():
    assert api.build_cmdline(None, False, False) == ""
    assert api.build_cmdline(Path("/tmp/a b/x.json"), True, True) == "--check --diff -e '@/tmp/a b/x.json'"


def test_teardown_passes_the_delete_confirmations(monkeypatch):
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(api, "run_playbook", lambda book, **kw: calls.append((book, kw)))
    api.teardown(delete_bucket=True, extravars={"x": 1}, inventory="aws")
    api.teardown()
    assert calls == [
        ("playbooks/teardown.yml", {"action": "teardown", "inventory": "aws", "extravars": {
            "x": 1, "tritonfil_teardown_confirm_delete_bucket": True,
            "tritonfil_teardown_confirm_delete_repository": False}}),
        ("playbooks/teardown.yml", {"action": "teardown", "extravars": {
            "tritonfil_teardown_confirm_delete_bucket": False,
            "tritonfil_teardown_confirm_delete_repository": False}}),
    ]  # fmt: skip


def test_plan_is_site_yml_in_check_and_diff_mode(monkeypatch):
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(api, "run_playbook", lambda book, **kw: calls.append((book, kw)))
    api.plan(tags=["s3_models"])
    api.deploy()
    api.verify()
    assert calls == [
        ("site.yml", {"action": "plan", "tags": ["s3_models"], "check": True, "diff": True}),
        ("site.yml", {"action": "deploy"}),
        ("playbooks/verify.yml", {"action": "verify"}),
    ]


def test_rollback_and_history_run_their_playbooks(monkeypatch):
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(api, "run_playbook", lambda book, **kw: calls.append((book, kw)))
    api.rollback("3f2a9c0d1e2b4a56", inventory="aws", token="t")
    api.rollback()
    api.history(inventory="aws")
    assert calls == [
        ("playbooks/rollback.yml", {"action": "rollback", "inventory": "aws", "extravars": {
            "tritonfil_verify_token": "t", "tritonfil_rollback_revision": "3f2a9c0d1e2b4a56"}}),
        ("playbooks/rollback.yml", {"action": "rollback", "extravars": {"tritonfil_rollback_revision": ""}}),
        ("playbooks/history.yml", {"action": "history", "inventory": "aws"}),
    ]  # fmt: skip


def test_model_history_reads_the_fact_the_history_playbook_sets(tmp_path):
    history = [{"revision": "a" * 16, "deployed": "2026-12-01T10:00:00Z", "models": ["m"], "live": True,
                "serving": True}]  # fmt: skip
    result = api.RunResult("history", "playbooks/history.yml", "successful", 0, {}, [], [], tmp_path, "x", 1.0,
                           facts={"localhost": {"tritonfil_model_history": history}})  # fmt: skip
    assert api.model_history(result) == history
    empty = api.RunResult("history", "playbooks/history.yml", "failed", 2, {}, [], [], tmp_path, "x", 1.0)
    assert api.model_history(empty) == []


def test_top_level_exports():
    import tritonfil

    assert tritonfil.deploy is api.deploy and tritonfil.PlaybookFailed is PlaybookFailed
    with pytest.raises(AttributeError):
        _ = tritonfil.nothing_here


def test_local_runs_enter_the_namespace_only_as_root_outside_isolation(monkeypatch):
    from tritonfil.localenv import netns

    state = {"root": False, "lo_only": False, "inside": False, "exists": True}
    monkeypatch.setattr(netns, "is_root", lambda: state["root"])
    monkeypatch.setattr(netns, "loopback_only", lambda: state["lo_only"])
    monkeypatch.setattr(netns, "current_netns_is", lambda _n: state["inside"])
    monkeypatch.setattr(netns, "netns_exists", lambda _n: state["exists"])
    monkeypatch.setattr(netns.shutil, "which", lambda _n: "/usr/sbin/ip")
    assert api.local_netns_wrapper() == []  # not root
    state["root"] = True
    assert api.local_netns_wrapper() == ["/usr/sbin/ip", "netns", "exec", "tritonfil"]
    state["inside"] = True
    assert api.local_netns_wrapper() == []
    state.update(inside=False, lo_only=True)
    assert api.local_netns_wrapper() == []  # already isolated (scripts/run-pytest.sh)
    state.update(lo_only=False, exists=False)
    with pytest.raises(api.TritonfilError, match=r"local environment is not up .*run `tritonfil local up`"):
        api.local_netns_wrapper()
