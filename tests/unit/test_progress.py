"""tritonfil.progress: the stage counter, the heartbeat, plain and terminal output, the summary and its JSON.

Events are built the way ansible-runner reports them (event, event_data with role, task, task_path, play)
and go through `RunEvent.from_runner`, as in a run; the clock, the wall clock and the timer are fakes.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.conftest import ROOT
from tritonfil.api import HostStats, PlannedChange, RunEvent, RunResult, TaskFailure
from tritonfil.progress import (
    PREFLIGHT,
    STAGES,
    VALIDATION_TASK,
    Progress,
    format_duration,
    format_summary,
    heartbeat_interval,
    render_summary,
    summary_document,
)

PB = "/c/playbooks"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def runner_event(
    kind: str, task: str = "", role: str = "", path: str = f"{PB}/deploy.yml:10", **data: object
) -> RunEvent:
    event_data: dict = {"task": task, "task_path": path, "play": "Deploy Triton + FIL on EKS", "host": "localhost"}
    if role:
        event_data["role"] = role
    event_data.update(data)
    return RunEvent.from_runner({"event": kind, "event_data": event_data})


def start(task: str, role: str = "", path: str = f"{PB}/deploy.yml:10") -> RunEvent:
    return runner_event("playbook_on_task_start", task, role, path)


def validation(role: str, entry: str, book: str = "deploy.yml") -> RunEvent:
    """The task Ansible puts first in a role's entry point (as ansible-runner reports it: the role's short name,
    the including playbook's path)."""
    return runner_event(
        "playbook_on_task_start", f"{VALIDATION_TASK}{entry}' - what {entry} does", role, f"{PB}/{book}:11",
        resolved_role=f"tritonfil.eks.{role}",
    )  # fmt: skip


def ok(task: str, role: str = "", changed: bool = False) -> RunEvent:
    return runner_event("runner_on_ok", task, role, res={"changed": changed})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def plain(
    action: str = "deploy", heartbeat: float = 10.0, verbose: bool = False
) -> tuple[Progress, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    wall = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
    p = Progress(
        out, action, tty=False, heartbeat=heartbeat, verbose=verbose, clock=clock, wallclock=lambda: wall + clock.now
    )
    return p, out, clock


def feed(p: Progress, clock: Clock, steps: list[tuple[float, RunEvent]]) -> None:
    for t, e in steps:
        clock.now = t
        p(e)


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


# -- the stage counter --------------------------------------------------------------------------------
DEPLOY_RUN = [
    # site.yml: validation and every stage's preflight up front (roles through their preflight entry point)
    (0.0, start("Validate the site variables (playbooks/argument_specs.yml, entry point site)")),
    (0.5, ok("Validate the site variables (playbooks/argument_specs.yml, entry point site)")),
    (0.5, start("Preflight of ecr_image")),
    (0.6, validation("ecr_image", "preflight")),
    (0.7, start("Look up skopeo", "tritonfil.eks.ecr_image", "/c/roles/ecr_image/tasks/preflight.yml:29")),
    (1.0, ok("Look up skopeo", "tritonfil.eks.ecr_image")),
    (1.0, validation("s3_models", "preflight")),
    (2.0, start("Stage ecr_image")),
    # the stages: the role's main entry point
    (2.0, validation("ecr_image", "main")),
    (2.5, start("Mirror the image", "tritonfil.eks.ecr_image", "/c/roles/ecr_image/tasks/mirror.yml:3")),
    (6.0, ok("Mirror the image", "tritonfil.eks.ecr_image", changed=True)),
    (6.0, validation("s3_models", "main")),
    (9.0, runner_event("runner_on_skipped", "Create the bucket", "tritonfil.eks.s3_models")),
    # a published-facts entry point belongs to the stage in progress
    (9.0, validation("ecr_image", "facts")),
    (9.5, start("Read the image digest", "tritonfil.eks.ecr_image", "/c/roles/ecr_image/tasks/facts.yml:3")),
    (10.0, validation("eks_gpu_cluster", "main")),
    (10.5, start("Ensure the EKS cluster", "tritonfil.eks.eks_gpu_cluster")),
    (260.5, ok("Ensure the EKS cluster", "tritonfil.eks.eks_gpu_cluster")),
    (261.0, start("Check the cluster's kubeconfig exists")),  # a play task: the stage in progress
    # verify: the tasks of playbooks/verify.yml, a role's facts entry point among them
    (262.0, start("Validate the verify variables", path=f"{PB}/verify.yml:20")),
    (262.5, validation("triton_release", "facts", "verify.yml")),
    (263.0, start("Wait until ready", path=f"{PB}/verify.yml:60")),
    (265.0, runner_event("runner_on_failed", "Wait until ready", res={"msg": "not READY after 3s\nmore"})),
    (266.0, runner_event("playbook_on_stats")),
]


def test_stages_are_numbered_against_the_actions_stage_list(utc):
    p, out, clock = plain()
    feed(p, clock, DEPLOY_RUN)
    p.finish("failed")
    assert lines(out) == [
        "2027-01-15 08:00:00 [    0.0s] preflight (the inputs and every stage's checks) ...",
        "2027-01-15 08:00:02 [    2.0s] preflight: done in 2.0s (ok 2)",
        "2027-01-15 08:00:02 [    2.0s] stage 1/9 ecr_image ...",
        "2027-01-15 08:00:06 [    6.0s]   changed: Mirror the image (localhost)",
        "2027-01-15 08:00:06 [    6.0s] stage 1/9 ecr_image: done in 4.0s (changed 1)",
        "2027-01-15 08:00:06 [    6.0s] stage 2/9 s3_models ...",
        "2027-01-15 08:00:10 [     10s] stage 2/9 s3_models: done in 4.0s (skipped 1)",
        "2027-01-15 08:00:10 [     10s] stage 3/9 eks_gpu_cluster ...",
        "2027-01-15 08:04:22 [   4m22s] stage 3/9 eks_gpu_cluster: done in 4m12s (ok 1)",
        "2027-01-15 08:04:22 [   4m22s] stage 9/9 verify ...",
        "2027-01-15 08:04:25 [   4m25s]   FAILED Wait until ready on localhost: not READY after 3s",
        "2027-01-15 08:04:26 [   4m26s] stage 9/9 verify: done in 4.0s (failed 1)",
        "2027-01-15 08:04:26 [   4m26s] total 4m26s (failed)",
    ]
    reports = {s.name: s for s in p.stages()}
    assert [s.name for s in p.stages()] == [PREFLIGHT, *STAGES["deploy"]]
    assert (reports["ecr_image"].status, reports["ecr_image"].changed, reports["ecr_image"].elapsed) == ("ok", 1, 4.0)
    assert (reports["verify"].status, reports["verify"].failed) == ("failed", 1)
    assert [s.name for s in p.stages() if not s.ran] == [
        "karpenter",
        "metrics_server",
        "keda",
        "istio",
        "triton_release",
    ]


def test_teardown_counts_its_stages_in_reverse_order(utc):
    p, out, clock = plain("teardown")
    feed(
        p, clock,
        [
            (0.0, start("Validate the teardown variables", path=f"{PB}/teardown.yml:15")),
            (1.0, start("Look up the EKS cluster", path=f"{PB}/teardown.yml:40")),
            (2.0, validation("triton_release", "teardown", "teardown.yml")),
            (5.0, validation("eks_gpu_cluster", "teardown", "teardown.yml")),
            (9.0, validation("ecr_image", "teardown", "teardown.yml")),
            (10.0, start("Report what was kept", path=f"{PB}/teardown.yml:120")),
            (11.0, runner_event("playbook_on_stats")),
        ],
    )  # fmt: skip
    assert [line.split("] ", 1)[1] for line in lines(out) if line.endswith("...")] == [
        "preflight (the inputs and every stage's checks) ...",
        "stage 1/8 triton_release ...",
        "stage 6/8 eks_gpu_cluster ...",
        "stage 8/8 ecr_image ...",
    ]
    assert {s.name: s.elapsed for s in p.stages() if s.ran} == {
        PREFLIGHT: 2.0, "triton_release": 3.0, "eks_gpu_cluster": 4.0, "ecr_image": 2.0,
    }  # fmt: skip


def test_a_rescued_failure_leaves_its_stage_ok_when_the_run_succeeds():
    p, out, clock = plain()
    feed(
        p, clock,
        [
            (0.0, validation("s3_models", "main")),
            (1.0, runner_event("runner_on_failed", "Read the index", "s3_models", res={"msg": "NoSuchKey"})),
            (2.0, runner_event("playbook_on_stats")),
        ],
    )  # fmt: skip
    assert p.reports["s3_models"].status == "failed"
    p.finish("successful")
    assert (p.reports["s3_models"].status, p.reports["s3_models"].failed) == ("ok", 1)
    assert "FAILED Read the index on localhost: NoSuchKey" in out.getvalue()


def test_verify_alone_is_stage_1_of_1(utc):
    p, out, clock = plain("verify")
    feed(p, clock, [(0.0, start("Validate the verify variables", path=f"{PB}/verify.yml:20"))])
    assert lines(out) == ["2027-01-15 08:00:00 [    0.0s] stage 1/1 verify ..."]


def test_stage_lists_match_the_playbooks():
    """The stages of each action are the include_role stages of the playbooks, in their order."""

    def stages_of(book: str, tasks_from: str | None) -> list[str]:
        out = []
        for play in yaml.safe_load((ROOT / "playbooks" / book).read_text()):
            for task in play.get("tasks", []):
                inc = task.get("ansible.builtin.include_role")
                if inc and inc.get("tasks_from") == tasks_from:
                    out.append(inc["name"].removeprefix("tritonfil.eks."))
        return out

    site = [Path(p["ansible.builtin.import_playbook"]).stem for p in yaml.safe_load((ROOT / "site.yml").read_text())]
    assert site == ["deploy", "verify"]
    fix = "a stage was added, removed or moved: update tritonfil.progress.STAGES (and docs/operator.md)"
    assert list(STAGES["deploy"]) == [*stages_of("deploy.yml", None), "verify"], fix
    assert STAGES["plan"] == STAGES["deploy"]
    assert list(STAGES["teardown"]) == stages_of("teardown.yml", "teardown"), fix
    assert list(STAGES["teardown"]) == list(reversed(STAGES["deploy"][:-1]))
    assert STAGES["verify"] == ("verify",)
    # The stage of a role's task is told by the argument validation task Ansible puts first in its entry
    # point: every stage role has one for main and teardown.
    for role in STAGES["teardown"]:
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        assert {"main", "teardown", "preflight"} <= set(specs), role


# -- the heartbeat ----------------------------------------------------------------------------------
def test_heartbeat_lines_while_a_task_runs(utc):
    p, out, clock = plain(heartbeat=10.0)
    feed(p, clock, [(0.0, validation("eks_gpu_cluster", "main")), (0.0, start("Ensure the EKS cluster", "x"))])
    beats = []
    for t in (5.0, 9.9, 10.0, 10.5, 19.0, 250.0, 251.0):
        clock.now = t
        p.tick()
        beats.append(len(lines(out)))
    assert lines(out)[1:] == [
        "2027-01-15 08:00:10 [     10s]   still waiting: Ensure the EKS cluster (10s)",
        "2027-01-15 08:04:10 [   4m10s]   still waiting: Ensure the EKS cluster (4m10s)",
    ]
    assert beats == [1, 1, 2, 2, 2, 3, 3]  # one line per interval passed, none in between
    clock.now = 300.0
    p(ok("Ensure the EKS cluster", "tritonfil.eks.eks_gpu_cluster"))
    clock.now = 400.0
    p.tick()  # no task open: no heartbeat
    assert len(lines(out)) == 3


def test_heartbeat_counts_retries():
    p, out, clock = plain(heartbeat=5.0)
    feed(
        p, clock,
        [
            (0.0, start("Wait for the gateway address", "tritonfil.eks.istio")),
            (4.0, runner_event("runner_retry", "Wait for the gateway address", res={"attempts": 3, "retries": 60})),
        ],
    )  # fmt: skip
    clock.now = 5.0
    p.tick()
    assert lines(out)[-1].endswith("still waiting: Wait for the gateway address (5.0s, attempt 3 of 60)")


def test_the_timer_thread_prints_heartbeats_on_its_own():
    out = io.StringIO()
    p = Progress(out, "deploy", tty=False, heartbeat=0.05)
    with p:
        p(start("Ensure the EKS cluster", "tritonfil.eks.eks_gpu_cluster"))
        deadline = time.monotonic() + 5
        while out.getvalue().count("still waiting: Ensure the EKS cluster") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert out.getvalue().count("still waiting: Ensure the EKS cluster") >= 2
    assert not any(t.name == "tritonfil-heartbeat" and t.is_alive() for t in threading.enumerate())


def test_terminal_mode_survives_events_heartbeats_and_refreshes_at_once():
    """Events (the runner's thread), heartbeats (the timer thread) and rich's refresh thread print and render
    concurrently; none may wait on another forever (rendering the status line under our lock, as a first version
    did, deadlocked here about one round in four)."""
    for _ in range(6):
        out = io.StringIO()
        p = Progress(out, "deploy", tty=True, heartbeat=0.01)
        p.start()

        def run(p: Progress = p) -> None:
            for i in range(300):
                p(validation("ecr_image" if i % 2 else "s3_models", "main"))
                p(start(f"Task {i}", "tritonfil.eks.ecr_image"))
                time.sleep(0.001)
                p(ok(f"Task {i}", "tritonfil.eks.ecr_image", changed=i % 3 == 0))

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "progress deadlocked"
        p.finish("successful")
        assert "changed: Task 0 (localhost)" in ANSI.sub("", out.getvalue())


def test_heartbeat_interval_from_the_environment():
    assert (heartbeat_interval(True, {}), heartbeat_interval(False, {})) == (15.0, 30.0)
    assert heartbeat_interval(False, {"TRITONFIL_HEARTBEAT": "1"}) == 1.0
    with pytest.raises(ValueError, match=r"^TRITONFIL_HEARTBEAT='soon': expected a number of seconds$"):
        heartbeat_interval(False, {"TRITONFIL_HEARTBEAT": "soon"})
    with pytest.raises(ValueError, match="positive"):
        heartbeat_interval(False, {"TRITONFIL_HEARTBEAT": "0"})


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.04, "0.0s"), (9.96, "10.0s"), (41, "41s"), (250, "4m10s"), (3725, "1h02m05s")]
)
def test_durations(seconds, text):
    assert format_duration(seconds) == text


# -- terminal and plain modes -------------------------------------------------------------------------
def test_terminal_mode_prints_through_rich_without_timestamps():
    out, clock = io.StringIO(), Clock()
    p = Progress(out, "deploy", tty=True, heartbeat=10.0, clock=clock)
    feed(p, clock, [(0.0, validation("ecr_image", "main")), (3.0, ok("Mirror the image", "x", changed=True))])
    text = out.getvalue()
    assert "\x1b[" in text  # styled
    assert ANSI.sub("", text).splitlines() == [
        "[    0.0s] stage 1/9 ecr_image ...",
        "[    3.0s]   changed: Mirror the image (localhost)",
    ]


def test_plain_mode_is_chosen_when_the_stream_is_not_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    assert Progress(Tty()).tty and not Progress(io.StringIO()).tty
    monkeypatch.setenv("TERM", "dumb")
    assert not Progress(Tty()).tty


def test_status_line_fits_the_terminal_shortening_the_task():
    clock = Clock()
    p = Progress(io.StringIO(), "deploy", tty=True, heartbeat=10.0, clock=clock)
    feed(
        p, clock,
        [
            (0.0, validation("eks_gpu_cluster", "main")),
            (10.0, start("Ensure the EKS cluster exists with its GPU and system node groups", "x")),
        ],
    )  # fmt: skip
    clock.now = 250.0
    p.start()  # the spinner
    try:
        console = Console(file=io.StringIO(), width=72, force_terminal=False, color_system=None)
        with console.capture() as cap:
            console.print(p)
    finally:
        p.close()
    (line,) = cap.get().splitlines()
    assert len(line) <= 72
    assert line[1:].startswith(" stage 3/9 eks_gpu_cluster 4m10s · total 4m10s · Ensure the E"), line
    assert line.endswith("… (4m00s)"), line


# -- the summary ----------------------------------------------------------------------------------------
def result(status: str = "failed", **kw: object) -> RunResult:
    values: dict = {
        "action": "deploy", "playbook": "site.yml", "status": status, "rc": 2 if status != "successful" else 0,
        "stats": {"localhost": HostStats(ok=5, changed=1, failed=1)},
        "failed_tasks": [TaskFailure("localhost", "Wait until ready", "", "Verify the Triton release", "not READY")],
        "changed_tasks": [PlannedChange("localhost", "Mirror the image", "tritonfil.eks.ecr_image", "Deploy")],
        "artifact_dir": Path("/runs/artifacts/deploy-1"), "ident": "deploy-1", "elapsed": 266.04,
    }  # fmt: skip
    values.update(kw)
    return RunResult(**values)


def test_plain_summary_has_a_stage_table(utc):
    p, _, clock = plain()
    feed(p, clock, DEPLOY_RUN)
    p.finish("failed")
    assert format_summary(result(), p.stages()).splitlines() == [
        "deploy: failed (rc=2) in 266.0s",
        "    #  stage             time  ok  changed  failed  skipped  result",
        "       preflight         2.0s   2        0       0        0  ok",
        "  1/9  ecr_image         4.0s   0        1       0        0  ok",
        "  2/9  s3_models         4.0s   0        0       0        1  ok",
        "  3/9  eks_gpu_cluster  4m12s   1        0       0        0  ok",
        "  4/9  karpenter            -                                not run",
        "  5/9  metrics_server       -                                not run",
        "  6/9  keda                 -                                not run",
        "  7/9  istio                -                                not run",
        "  8/9  triton_release       -                                not run",
        "  9/9  verify            4.0s   0        0       1        0  failed",
        "  localhost  ok=5 changed=1 failed=1 unreachable=0 skipped=0 rescued=0 ignored=0",
        "  failed: task 'Wait until ready' failed on localhost: not READY",
        "  artifacts: /runs/artifacts/deploy-1",
    ]


def test_terminal_summary_is_a_rich_table(utc):
    p, _, clock = plain()
    feed(p, clock, DEPLOY_RUN)
    out = io.StringIO()
    render_summary(result(), p.stages(), out, tty=True)
    text = ANSI.sub("", out.getvalue())
    assert "deploy: failed (rc=2) in 4m26s" in text
    assert re.search(r"│\s+3/9\s+│\s+eks_gpu_cluster\s+│\s+4m12s\s+│", text), text
    assert re.search(r"│\s+5/9\s+│\s+metrics_server\s+│\s+-\s+│.*not run", text), text
    assert "failed: task 'Wait until ready' failed on localhost: not READY" in text
    plain_out = io.StringIO()
    render_summary(result(), p.stages(), plain_out, tty=False)
    assert plain_out.getvalue() == format_summary(result(), p.stages()) + "\n"


def test_summary_document_is_json(utc):
    p, _, clock = plain()
    feed(p, clock, DEPLOY_RUN)
    doc = json.loads(json.dumps(summary_document(result(), p.stages(), p.task_stages)))
    assert (doc["status"], doc["rc"], doc["ok"], doc["elapsed"]) == ("failed", 2, False, 266.04)
    assert [s["name"] for s in doc["stages"]] == list(STAGES["deploy"])
    assert doc["stages"][2] == {
        "index": 3, "name": "eks_gpu_cluster", "status": "ok", "ran": True, "elapsed": 252.0,
        "ok": 1, "changed": 0, "failed": 0, "skipped": 0,
    }  # fmt: skip
    assert doc["stages"][3]["ran"] is False and doc["preflight"]["elapsed"] == 2.0
    assert doc["failed_tasks"] == [
        {"host": "localhost", "task": "Wait until ready", "stage": "verify", "role": "",
         "play": "Verify the Triton release", "action": "", "message": "not READY", "unreachable": False}
    ]  # fmt: skip
    # without the progress's record: the role, else the play
    assert summary_document(result(), p.stages())["failed_tasks"][0]["stage"] == "Verify the Triton release"
    assert doc["changes"] == [{"host": "localhost", "task": "Mirror the image", "stage": "ecr_image"}]
    assert doc["hosts"]["localhost"]["failed"] == 1
    assert (doc["artifact_dir"], doc["ident"]) == ("/runs/artifacts/deploy-1", "deploy-1")
