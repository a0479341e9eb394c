"""tritonfil.api through a real ansible-runner on a tiny project (each run takes ~1-2 s)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tritonfil import api
from tritonfil.api import PlaybookCanceled, PlaybookFailed, PlaybookTimedOut, RunEvent, RunHandle, RunResult

SECRET = "unit-secret-Hq3vR8"
SITE = """---
- name: Tiny deploy
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the marker
      ansible.builtin.copy:
        content: "{{ marker_content | default('v1') }}\\n"
        dest: "{{ marker_path }}"
        mode: "0600"

    - name: Fail but ignored
      ansible.builtin.fail:
        msg: ignored failure
      ignore_errors: true  # noqa: ignore-errors

    - name: Fail and rescued
      block:
        - name: Fail inside the block
          ansible.builtin.fail:
            msg: rescued failure
      rescue:
        - name: Rescue it
          ansible.builtin.debug:
            msg: rescued

    - name: Wait a while
      ansible.builtin.command: sleep {{ sleep_seconds | default(0) }}
      changed_when: false
      when: (sleep_seconds | default(0) | int) > 0

    - name: Fail on request
      ansible.builtin.fail:
        msg: "asked to fail ({{ marker_path | basename }})"
      when: fail | default(false) | bool
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "project"
    (proj / "playbooks").mkdir(parents=True)
    (proj / "site.yml").write_text(SITE)
    (proj / "hosts").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    return proj


def run(project: Path, **kw: object) -> RunResult | RunHandle:
    extravars = {"marker_path": str(project.parent / "marker.txt"), **dict(kw.pop("extravars", {}))}  # type: ignore[call-overload]
    kwargs: dict = {
        "project_dir": project,
        "inventory": "hosts",
        "private_data_dir": project.parent / "runs",
        "extravars": extravars,
    }
    kwargs.update(kw)
    return api.run_playbook("site.yml", action="deploy", **kwargs)


def test_successful_run_result_and_callbacks(project):
    events: list[RunEvent] = []
    statuses: list[str] = []
    result = run(project, on_event=events.append, on_status=statuses.append)
    assert isinstance(result, RunResult)
    assert (result.status, result.rc, result.ok, result.changed) == ("successful", 0, True, True)
    stats = result.stats["localhost"]
    assert (stats.changed, stats.failed, stats.ignored, stats.rescued, stats.skipped) == (1, 0, 1, 1, 2)
    assert result.failed_tasks == []
    assert [(c.task, c.stage) for c in result.changed_tasks] == [("Write the marker", "Tiny deploy")]
    assert result.artifact_dir == project.parent / "runs" / "artifacts" / result.ident
    assert result.ident.startswith("deploy-") and (result.artifact_dir / "job_events").is_dir()
    assert statuses == ["starting", "running", "successful"]
    assert [e.task for e in events if e.kind == "playbook_on_task_start"] == [
        "Write the marker", "Fail but ignored", "Fail inside the block", "Rescue it", "Wait a while", "Fail on request",
    ]  # fmt: skip
    assert [e.kind for e in events][-1] == "playbook_on_stats"
    assert set(result.stage_times) == {"Tiny deploy"}


def test_failure_raises_naming_the_task_that_ended_the_host(project):
    with pytest.raises(PlaybookFailed) as info:
        run(project, extravars={"fail": True})
    err = info.value
    assert type(err) is PlaybookFailed
    assert [(f.task, f.message, f.host) for f in err.failed_tasks] == [
        ("Fail on request", "asked to fail (marker.txt)", "localhost")
    ]
    assert str(err) == (
        f"deploy (site.yml) failed (rc=2): task 'Fail on request' failed on localhost: asked to fail (marker.txt); "
        f"artifacts: {err.artifact_dir}"
    )
    # the same run without raising
    result = run(project, extravars={"fail": True}, raise_on_failure=False)
    assert isinstance(result, RunResult) and result.status == "failed" and not result.ok


def test_cancel_stops_a_running_playbook(project):
    started = threading.Event()

    def on_event(e: RunEvent) -> None:
        if e.kind == "playbook_on_task_start" and e.task == "Wait a while":
            started.set()

    t0 = time.monotonic()
    handle = run(project, extravars={"sleep_seconds": 60}, on_event=on_event, wait=False)
    assert isinstance(handle, RunHandle)
    assert started.wait(30), "the sleep task never started"
    assert not handle.done
    handle.cancel()
    with pytest.raises(PlaybookCanceled) as info:
        handle.wait(30)
    assert time.monotonic() - t0 < 30
    assert info.value.result.status == "canceled" and handle.done


def test_cancel_event_and_timeout(project):
    cancel = threading.Event()
    cancel.set()  # canceled before it starts: stops at the first poll
    with pytest.raises(PlaybookCanceled):
        run(project, extravars={"sleep_seconds": 60}, cancel_event=cancel)
    t0 = time.monotonic()
    with pytest.raises(PlaybookTimedOut) as info:
        run(project, extravars={"sleep_seconds": 60}, timeout=3)
    assert time.monotonic() - t0 < 30 and info.value.result.status == "timeout"


def test_no_secret_reaches_the_artifacts(project, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    result = run(project, extravars={"registry_password": SECRET})
    assert isinstance(result, RunResult) and result.ok
    runs = project.parent / "runs"
    leaked = [str(p) for p in runs.rglob("*") if p.is_file() and SECRET in p.read_text(errors="ignore")]
    assert leaked == []
    command = json.loads((result.artifact_dir / "command").read_text())
    assert command["env"]["AWS_PROFILE"] == "tritonfil" and "AWS_SECRET_ACCESS_KEY" not in command["env"]
    # the credentials and extra-vars files lived outside the private data dir and are gone
    extravars_arg = command["command"][command["command"].index("-e") + 1]
    assert extravars_arg.startswith("@") and not Path(extravars_arg[1:]).exists()
    assert not Path(command["env"]["AWS_SHARED_CREDENTIALS_FILE"]).exists()


def test_plan_lists_what_would_change_then_nothing_after_converging(project):
    marker = project.parent / "marker.txt"
    options = {"project_dir": project, "inventory": "hosts", "private_data_dir": project.parent / "runs"}
    first = api.plan(extravars={"marker_path": str(marker)}, **options)
    assert isinstance(first, RunResult) and first.check
    assert [c.task for c in first.plan] == ["Write the marker"]
    assert first.plan[0].diff and first.plan[0].diff[0]["after"] == "v1\n"
    assert not marker.exists(), "a plan must not change anything"
    run(project)
    again = api.plan(extravars={"marker_path": str(marker)}, **options)
    assert isinstance(again, RunResult) and again.ok and again.plan == []


def test_host_list_inventory(project):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    result = run(project, inventory="localhost,", extravars=local)
    assert isinstance(result, RunResult) and list(result.stats) == ["localhost"]


def test_sigint_during_a_blocking_run_cancels_it_and_restores_the_handler(project):
    """Ctrl-C in the CLI: the run ends canceled (ansible-playbook is stopped), no KeyboardInterrupt."""
    before = signal.getsignal(signal.SIGINT)

    def on_event(e: RunEvent) -> None:
        if e.kind == "playbook_on_task_start" and e.task == "Wait a while":
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

    t0 = time.monotonic()
    with pytest.raises(PlaybookCanceled):
        run(project, extravars={"sleep_seconds": 60}, on_event=on_event)
    assert time.monotonic() - t0 < 30
    assert signal.getsignal(signal.SIGINT) is before
