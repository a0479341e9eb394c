"""plugins/module_utils/rollout.py: durations, the rollout read from Kubernetes objects, the wait loop (fake
reader, clock and sleep) and the explanation of a failed rollout, helm history/rollback/uninstall."""

from __future__ import annotations

import copy
import json

import pytest

from tritonfil.collection import module_utils

rollout = module_utils("rollout")
RolloutError = rollout.RolloutError

NS = "triton"
NEW_HASH = "7d9f8c6b5"
OLD_HASH = "5c4b3a291"
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available."


# -- parse_duration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("900", 900.0), ("15m", 900.0), ("1h30m", 5400.0), ("90s", 90.0), ("2m30s", 150.0), (600, 600.0)],
)
def test_parse_duration(text, seconds):
    assert rollout.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["15 minutes", "", "15x", "m15", "1h 30m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError) as caught:
        rollout.parse_duration(text)
    assert str(caught.value) == f"'{text}' is not a duration (e.g. 900, 15m, 1h30m, 90s)"


# -- Kubernetes objects (the JSON the API server returns) -----------------------------------------------------
def deployment(
    *, replicas=2, updated=2, ready=2, available=2, total=2, generation=3, observed=3, revision="3", conditions=()
):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "triton",
            "namespace": NS,
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": revision, "meta.helm.sh/release-name": "triton"},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": list(conditions)
            or [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": f'ReplicaSet "triton-{NEW_HASH}" is progressing.',
                },
            ],
        },
    }


def replicaset(template_hash, revision):
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"triton-{template_hash}",
            "namespace": NS,
            "labels": {"app.kubernetes.io/name": "triton", "pod-template-hash": template_hash},
            "annotations": {"deployment.kubernetes.io/revision": revision},
        },
    }


REPLICASETS = [replicaset(OLD_HASH, "2"), replicaset(NEW_HASH, "3")]


def pod(name, template_hash=NEW_HASH, *, ready=True, restarts=0, annotations=None, scheduled=None, waiting=None):
    conditions = []
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduled})
    else:
        conditions.append({"type": "PodScheduled", "status": "True"})
        conditions.append({"type": "Initialized", "status": "True"})
        conditions.append({"type": "ContainersReady", "status": "True" if ready else "False"})
        conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    status = {"phase": "Pending" if scheduled is not None else "Running", "conditions": conditions}
    if scheduled is None:
        state = {"waiting": waiting} if waiting else {"running": {"startedAt": "2026-12-01T10:00:00Z"}}
        status["containerStatuses"] = [
            {"name": "tritonserver", "ready": ready, "restartCount": restarts, "state": state}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"app.kubernetes.io/name": "triton", "pod-template-hash": template_hash},
            "annotations": dict(annotations or {}),
        },
        "spec": {"containers": [{"name": "tritonserver", "image": "nvcr.io/nvidia/tritonserver:26.02-py3"}]},
        "status": status,
    }


# -- pod_state / assess / new_pods ----------------------------------------------------------------------------
def test_complete_rollout():
    pods = [pod(f"triton-{NEW_HASH}-a"), pod(f"triton-{NEW_HASH}-b")]
    r = rollout.assess(deployment(), pods)
    assert r.complete is True
    assert r.failed == ""
    assert (r.deployment, r.replicas, r.updated, r.ready, r.available) == ("triton", 2, 2, 2, 2)
    assert r.summary() == "2/2 ready, 2 updated, 2 available"
    assert [(p.name, p.ready, p.restarts, p.reason) for p in r.pods] == [
        (f"triton-{NEW_HASH}-a", True, 0, ""),
        (f"triton-{NEW_HASH}-b", True, 0, ""),
    ]
    assert [p.name for p in rollout.new_pods(r, deployment(), REPLICASETS)] == [
        f"triton-{NEW_HASH}-a",
        f"triton-{NEW_HASH}-b",
    ]


def test_not_complete_while_old_pods_remain_or_generation_unobserved():
    pods = [pod(f"triton-{NEW_HASH}-a"), pod(f"triton-{NEW_HASH}-b"), pod(f"triton-{OLD_HASH}-a", OLD_HASH)]
    assert rollout.assess(deployment(total=3), pods).complete is False
    assert rollout.assess(deployment(generation=4, observed=3), pods[:2]).complete is False
    assert rollout.assess(deployment(ready=1, available=1), pods[:2]).complete is False


def test_complete_up_to_capacity_reports_the_replicas_that_cannot_be_placed():
    """An autoscaler asked for 3 and the cluster's GPUs hold 2: every pod is of the current template and the old
    ones are gone, so the rollout is as complete as it can be - the third is reported, not waited for."""
    pods = [
        pod(f"triton-{NEW_HASH}-a"),
        pod(f"triton-{NEW_HASH}-b"),
        pod(f"triton-{NEW_HASH}-c", scheduled=UNSCHEDULABLE),
    ]
    r = rollout.assess(deployment(replicas=3, updated=3, ready=2, available=2, total=3), pods)
    assert r.complete is True
    assert [p.describe() for p in r.pending] == [f"triton-{NEW_HASH}-c: unschedulable: {UNSCHEDULABLE}"]
    # Not during a change of template: the old pods stay (maxUnavailable 0) and the rollout is not complete.
    old = [pod(f"triton-{OLD_HASH}-a", OLD_HASH), pod(f"triton-{OLD_HASH}-b", OLD_HASH), pods[2]]
    r = rollout.assess(deployment(replicas=2, updated=1, ready=2, available=2, total=3), old)
    assert (r.complete, r.pending) == (False, [])
    # Nor when nothing serves, nor for a pod that is scheduled but not ready.
    nothing = [pod(f"triton-{NEW_HASH}-a", scheduled=UNSCHEDULABLE)]
    assert rollout.assess(deployment(replicas=1, updated=1, ready=0, available=0, total=1), nothing).complete is False
    unready = [pod(f"triton-{NEW_HASH}-a"), pod(f"triton-{NEW_HASH}-b", ready=False)]
    assert rollout.assess(deployment(replicas=2, updated=2, ready=1, available=1, total=2), unready).complete is False


def test_no_deployment():
    r = rollout.assess(None, [])
    assert (r.complete, r.failed) == (False, "no Deployment")
    assert rollout.new_pods(r, None, REPLICASETS) == []


def test_unschedulable_new_pod():
    p = rollout.pod_state(pod(f"triton-{NEW_HASH}-c", scheduled=UNSCHEDULABLE))
    assert p.ready is False
    assert p.reason == f"unschedulable: {UNSCHEDULABLE}"
    assert p.reason.startswith("unschedulable: 0/3 nodes are available: ")
    assert p.describe() == f"triton-{NEW_HASH}-c: unschedulable: {UNSCHEDULABLE}"


def test_process_reason_annotation():
    p = rollout.pod_state(
        pod(
            f"triton-{NEW_HASH}-a",
            ready=False,
            restarts=2,
            annotations={"tritonfil.io/process-reason": "failed to load xgb: unexpected end of JSON"},
        )
    )
    assert (p.ready, p.restarts, p.template_hash) == (False, 2, NEW_HASH)
    assert p.reason == "failed to load xgb: unexpected end of JSON"
    assert p.describe() == f"triton-{NEW_HASH}-a: failed to load xgb: unexpected end of JSON (2 restarts)"


def test_waiting_container_reason():
    p = rollout.pod_state(
        pod(
            "triton-x",
            ready=False,
            restarts=4,
            waiting={"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"},
        )
    )
    assert p.reason == "tritonserver: CrashLoopBackOff: back-off 40s restarting failed container"


def test_deleting_pod_is_not_ready_and_not_new():
    terminating = pod(f"triton-{NEW_HASH}-z")
    terminating["metadata"]["deletionTimestamp"] = "2026-12-01T10:05:00Z"
    r = rollout.assess(deployment(), [terminating, pod(f"triton-{NEW_HASH}-a")])
    assert [(p.name, p.ready, p.deleting) for p in r.pods] == [
        (f"triton-{NEW_HASH}-z", False, True),
        (f"triton-{NEW_HASH}-a", True, False),
    ]
    assert [p.name for p in rollout.new_pods(r, deployment(), REPLICASETS)] == [f"triton-{NEW_HASH}-a"]


def test_new_pods_are_those_of_the_current_revision():
    pods = [pod(f"triton-{OLD_HASH}-a", OLD_HASH), pod(f"triton-{NEW_HASH}-a", ready=False)]
    d = deployment(updated=1, ready=1, available=1, total=2)
    r = rollout.assess(d, pods)
    assert [p.name for p in rollout.new_pods(r, d, REPLICASETS)] == [f"triton-{NEW_HASH}-a"]
    # After a rollback to revision 2 (the Deployment annotation follows), the old ReplicaSet's pods are new.
    d2 = deployment(revision="2")
    assert [p.name for p in rollout.new_pods(rollout.assess(d2, pods), d2, REPLICASETS)] == [f"triton-{OLD_HASH}-a"]


PROGRESS_DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": f'ReplicaSet "triton-{NEW_HASH}" has timed out progressing.',
}


def test_progress_deadline_exceeded():
    d = deployment(updated=1, ready=1, available=1, total=3, conditions=[PROGRESS_DEADLINE])
    r = rollout.assess(d, [])
    assert r.complete is False
    assert r.failed == f'progress deadline exceeded: ReplicaSet "triton-{NEW_HASH}" has timed out progressing.'


def test_error_lines():
    log = "\n".join(
        [
            "I1201 10:00:00.000 1 server.cc:674] +-------+",
            "E1201 10:00:01.000 1 model_lifecycle.cc:654] failed to load 'xgb_classifier' version 1: Internal",
            "I1201 10:00:01.500 1 server.cc:674] xgb_regressor | 1 | READY",
            "  error: creating server: Internal - failed to load all models  ",
        ]
    )
    assert rollout.error_lines(log) == [
        "E1201 10:00:01.000 1 model_lifecycle.cc:654] failed to load 'xgb_classifier' version 1: Internal",
        "error: creating server: Internal - failed to load all models",
    ]
    assert rollout.error_lines("\n".join(f"error {i}" for i in range(10))) == ["error 7", "error 8", "error 9"]


# -- wait_rollout ---------------------------------------------------------------------------------------------
class Clock:
    """A clock that only sleep() advances."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Reader:
    """Answers the queued (deployment, pods, replicasets) reads; the last one repeats."""

    def __init__(self, *states) -> None:
        self.states = list(states)
        self.reads = 0

    def __call__(self):
        self.reads += 1
        state = self.states[min(self.reads, len(self.states)) - 1]
        return copy.deepcopy(state)


class Logs:
    def __init__(self, logs: dict[str, str]) -> None:
        self.logs = logs
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, name: str, previous: bool) -> str:
        self.calls.append((name, previous))
        if name not in self.logs:
            raise RuntimeError(f'pods "{name}" not found\nHTTP response body: ...')
        return self.logs[name]


def test_wait_rollout_completes():
    progressing = (
        deployment(updated=1, ready=1, available=1, total=3),
        [pod(f"triton-{OLD_HASH}-a", OLD_HASH), pod(f"triton-{NEW_HASH}-a"), pod(f"triton-{NEW_HASH}-b", ready=False)],
        REPLICASETS,
    )
    done = (deployment(), [pod(f"triton-{NEW_HASH}-a"), pod(f"triton-{NEW_HASH}-b")], REPLICASETS)
    read, clock, logs = Reader(progressing, progressing, done), Clock(), Logs({})
    r = rollout.wait_rollout(read, logs, 600, interval=5, clock=clock, sleep=clock.sleep)
    assert r.complete is True
    assert r.summary() == "2/2 ready, 2 updated, 2 available"
    assert read.reads == 3
    assert clock.sleeps == [5, 5]
    assert logs.calls == []


class Outage(Reader):
    """A Reader whose reads DOWN (1-based read numbers) raise what an unreachable API server raises."""

    def __init__(self, down, *states, error=None) -> None:
        super().__init__(*states)
        self.down = set(down)
        self.error = error or ConnectionRefusedError(
            "HTTPSConnectionPool(host='127.0.0.1', port=6443): Max retries"
            " exceeded with url: /apis/apps/v1/namespaces/triton/deployments"
        )

    def __call__(self):
        if self.reads + 1 in self.down:
            self.reads += 1
            raise self.error
        return super().__call__()


def test_wait_rollout_rides_out_an_api_server_restart():
    progressing = (deployment(updated=1, ready=1, available=1, total=3), [pod(f"triton-{NEW_HASH}-a")], REPLICASETS)
    done = (deployment(), [pod(f"triton-{NEW_HASH}-a"), pod(f"triton-{NEW_HASH}-b")], REPLICASETS)
    read, clock = Outage({2, 3, 4}, progressing, progressing, done), Clock()
    r = rollout.wait_rollout(read, Logs({}), 600, interval=5, clock=clock, sleep=clock.sleep)
    assert r.complete is True and read.reads == 5 and clock.sleeps == [5] * 4


def test_wait_rollout_api_server_silent_past_the_deadline_names_it_and_the_last_state():
    progressing = (deployment(updated=1, ready=1, available=1, total=3), [pod(f"triton-{NEW_HASH}-a")], REPLICASETS)
    read, clock = Outage(set(range(2, 100)), progressing), Clock()
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, Logs({}), 30, interval=10, clock=clock, sleep=clock.sleep,
                             api="the Kubernetes API server https://127.0.0.1:6443")  # fmt: skip
    assert caught.value.msg == (
        "Deployment triton rollout not confirmed after 30s: the Kubernetes API server https://127.0.0.1:6443 has not"
        " answered for 30s (HTTPSConnectionPool(host='127.0.0.1', port=6443): Max retries exceeded with url:"
        " /apis/apps/v1/namespaces/triton/deployments); 1/2 ready, 1 updated, 1 available when last seen"
    )
    assert caught.value.details["unreachable"] is True
    assert caught.value.details["rollout"].deployment == "triton"


def test_wait_rollout_api_server_never_answered():
    read, clock = Outage(set(range(1, 100)), None), Clock()
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, Logs({}), 4, interval=2, clock=clock, sleep=clock.sleep)
    assert caught.value.msg.startswith(
        "Deployment ? rollout not confirmed after 4s: the Kubernetes API server has not answered for 6s ("
    )
    assert caught.value.msg.endswith("); no state read yet")


def test_wait_rollout_a_refusal_is_not_waited_out():
    class Forbidden(Exception):
        status = 403

    read, clock = Outage({1}, None, error=Forbidden('deployments.apps is forbidden: User "ci" cannot list')), Clock()
    with pytest.raises(Forbidden):
        rollout.wait_rollout(read, Logs({}), 600, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


CRASHING = f"triton-{NEW_HASH}-a"
PENDING = f"triton-{NEW_HASH}-b"
CRASH_LOG = "\n".join(
    [
        "I1201 10:00:00.100 1 server.cc:674] Started",
        "E1201 10:00:01.000 1 model_lifecycle.cc:654] failed to load 'xgb_classifier' version 1: Invalid argument:"
        " unable to parse xgboost.json",
        "I1201 10:00:01.200 1 server.cc:307] Waiting for in-flight requests to complete.",
        "error: creating server: Internal - failed to load all models",
    ]
)


def hopeless_state(restarts=3, annotations=None):
    return (
        deployment(updated=2, ready=1, available=1, total=3),
        [
            pod(f"triton-{OLD_HASH}-a", OLD_HASH),
            pod(CRASHING, ready=False, restarts=restarts, annotations=annotations),
            pod(PENDING, scheduled=UNSCHEDULABLE),
        ],
        REPLICASETS,
    )


def test_wait_rollout_fails_early_for_a_restarting_new_pod():
    progressing = (
        deployment(updated=1, ready=1, available=1, total=2),
        [pod(f"triton-{OLD_HASH}-a", OLD_HASH)],
        REPLICASETS,
    )
    read, clock = Reader(progressing, hopeless_state()), Clock()
    logs = Logs({CRASHING: CRASH_LOG, PENDING: ""})
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, logs, 900, interval=2, clock=clock, sleep=clock.sleep)
    assert clock.now - 1000.0 == 2  # one poll interval, far before the 900 s timeout
    assert read.reads == 2
    # The restarted pod's log is its previous container's; the pending pod has never restarted.
    assert logs.calls == [(CRASHING, True), (PENDING, False)]
    assert caught.value.msg == (
        f"Deployment triton not rolled out: pods keep failing ({CRASHING}); 1/2 ready, 2 updated, 1 available;"
        f" not ready: {CRASHING}: E1201 10:00:01.000 1 model_lifecycle.cc:654] failed to load 'xgb_classifier'"
        " version 1: Invalid argument: unable to parse xgboost.json; error: creating server: Internal - failed to"
        f" load all models (3 restarts) | {PENDING}: unschedulable: {UNSCHEDULABLE}"
    )
    r = caught.value.details["rollout"]
    assert [p.name for p in r.pods if not p.ready] == [CRASHING, PENDING]


def test_wait_rollout_fails_early_for_a_model_that_failed_to_load():
    reason = "failed to load xgb: unexpected end of JSON input at xgboost.json"
    read, clock = Reader(hopeless_state(restarts=1, annotations={"tritonfil.io/process-reason": reason})), Clock()
    logs = Logs({CRASHING: CRASH_LOG})  # the pending pod has no log: its reason stands alone
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, logs, 900, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []
    assert logs.calls == [(CRASHING, True), (PENDING, False)]
    assert caught.value.msg == (
        f"Deployment triton not rolled out: pods keep failing ({CRASHING}); 1/2 ready, 2 updated, 1 available;"
        f" not ready: {CRASHING}: {reason} - E1201 10:00:01.000 1 model_lifecycle.cc:654] failed to load"
        " 'xgb_classifier' version 1: Invalid argument: unable to parse xgboost.json; error: creating server:"
        f" Internal - failed to load all models (1 restarts) | {PENDING}: unschedulable: {UNSCHEDULABLE}"
    )


def test_wait_rollout_times_out():
    stuck = (
        deployment(updated=1, ready=0, available=0, total=1, replicas=1),
        [pod(PENDING, scheduled=UNSCHEDULABLE)],
        REPLICASETS,
    )
    read, clock, logs = Reader(stuck), Clock(), Logs({})
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, logs, 60, interval=10, clock=clock, sleep=clock.sleep)
    # An unschedulable pod may still be placed (the autoscaler adds a node): waited for until the timeout.
    assert clock.sleeps == [10] * 7
    assert clock.now - 1000.0 == 70
    assert read.reads == 8
    assert caught.value.msg == (
        "Deployment triton not rolled out: not complete after 60s; 0/1 ready, 1 updated, 0 available;"
        f" not ready: {PENDING}: unschedulable: {UNSCHEDULABLE}"
    )


def test_wait_rollout_log_unavailable_is_said():
    stuck = (
        deployment(updated=1, ready=0, available=0, total=1, replicas=1),
        [pod(CRASHING, ready=False)],
        REPLICASETS,
    )
    read, clock = Reader(stuck), Clock()
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, Logs({}), 5, interval=10, clock=clock, sleep=clock.sleep)
    assert caught.value.msg == (
        "Deployment triton not rolled out: not complete after 5s; 0/1 ready, 1 updated, 0 available;"
        f' not ready: {CRASHING}: (log unavailable: pods "{CRASHING}" not found)'
    )


def test_wait_rollout_progress_deadline():
    d = deployment(updated=1, ready=1, available=1, total=3, conditions=[PROGRESS_DEADLINE])
    read, clock = (
        Reader((d, [pod(f"triton-{OLD_HASH}-a", OLD_HASH), pod(PENDING, scheduled=UNSCHEDULABLE)], REPLICASETS)),
        Clock(),
    )
    with pytest.raises(RolloutError) as caught:
        rollout.wait_rollout(read, Logs({PENDING: ""}), 900, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []
    assert caught.value.msg == (
        f'Deployment triton not rolled out: progress deadline exceeded: ReplicaSet "triton-{NEW_HASH}" has timed out'
        f" progressing.; 1/2 ready, 1 updated, 1 available; not ready: {PENDING}: unschedulable: {UNSCHEDULABLE}"
    )


# -- Helm -----------------------------------------------------------------------------------------------------
class FakeRun:
    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.answers.pop(0)


# `helm history triton -o json`: helm's releaseInfo (pkg/cmd/history.go).
HISTORY = [
    {"revision": 1, "updated": "2026-11-30T10:00:00Z", "status": "superseded", "chart": "triton-0.3.0",
     "app_version": "26.02", "description": "Install complete"},
    {"revision": 2, "updated": "2026-11-30T11:00:00Z", "status": "superseded", "chart": "triton-0.3.1",
     "app_version": "26.02", "description": "Upgrade complete"},
    {"revision": 3, "updated": "2026-11-30T12:00:00Z", "status": "failed", "chart": "triton-0.3.2",
     "app_version": "26.02", "description": "Upgrade \"triton\" failed: context deadline exceeded"},
    {"revision": 4, "updated": "2026-12-01T10:00:00Z", "status": "deployed", "chart": "triton-0.3.3",
     "app_version": "26.02", "description": "Upgrade complete"},
]  # fmt: skip


def test_helm_history_argv_and_json():
    run = FakeRun((0, json.dumps(HISTORY), ""))
    helm = rollout.Helm(run, "/usr/local/bin/helm", "/tmp/kubeconfig")
    assert helm.history("triton", NS) == HISTORY
    assert run.calls == [
        ["/usr/local/bin/helm", "history", "triton", "--namespace=triton", "--output=json", "--max=20",
         "--kubeconfig=/tmp/kubeconfig"],
    ]  # fmt: skip


def test_helm_history_without_kubeconfig():
    run = FakeRun((0, "[]", ""))
    assert rollout.Helm(run, "helm", None).history("triton", NS) == []
    assert run.calls == [["helm", "history", "triton", "--namespace=triton", "--output=json", "--max=20"]]


def test_helm_history_of_a_missing_release_is_empty():
    run = FakeRun((1, "", "Error: release: not found\n"))
    assert rollout.Helm(run, "helm", "/tmp/kubeconfig").history("triton", NS) == []


def test_helm_history_error_raises():
    run = FakeRun((1, "", "Error: Kubernetes cluster unreachable: connection refused\n"))
    with pytest.raises(RolloutError) as caught:
        rollout.Helm(run, "helm", "/tmp/kubeconfig").history("triton", NS)
    assert caught.value.msg == (
        "helm history triton failed (rc=1): Error: Kubernetes cluster unreachable: connection refused"
    )
    assert caught.value.details["command"] == run.calls[0]


def test_helm_rollback_argv():
    run = FakeRun((0, "Rollback was a success! Happy Helming!\n", ""))
    argv = rollout.Helm(run, "helm", "/tmp/kubeconfig").rollback("triton", NS, 2, "5m0s")
    expected = [
        "helm", "rollback", "triton", "2", "--namespace=triton", "--wait", "--timeout=5m0s",
        "--kubeconfig=/tmp/kubeconfig",
    ]  # fmt: skip
    assert run.calls == [expected]
    assert argv == expected


def test_helm_rollback_failure():
    run = FakeRun((1, "", "Error: release has no 7 version\n"))
    with pytest.raises(RolloutError) as caught:
        rollout.Helm(run, "helm", None).rollback("triton", NS, 7, "5m")
    assert caught.value.msg == "helm rollback triton 7 failed (rc=1): Error: release has no 7 version"
    assert caught.value.details == {
        "command": ["helm", "rollback", "triton", "7", "--namespace=triton", "--wait", "--timeout=5m"],
        "stdout": "",
        "stderr": "Error: release has no 7 version\n",
    }


def test_helm_uninstall_argv():
    run = FakeRun((0, 'release "triton" uninstalled\n', ""))
    argv = rollout.Helm(run, "helm", "/tmp/kubeconfig").uninstall("triton", NS, "10m")
    assert run.calls == [
        ["helm", "uninstall", "triton", "--namespace=triton", "--wait", "--timeout=10m", "--kubeconfig=/tmp/kubeconfig"]
    ]
    assert argv == run.calls[0]


def test_helm_uninstall_failure():
    run = FakeRun((1, "Error: uninstall: Release not loaded: triton: release: not found\n", ""))
    with pytest.raises(RolloutError) as caught:
        rollout.Helm(run, "helm", None).uninstall("triton", NS, "10m")
    assert caught.value.msg == (
        "helm uninstall triton failed (rc=1): Error: uninstall: Release not loaded: triton: release: not found"
    )


def test_previous_good():
    assert rollout.previous_good(HISTORY, 5) == 4
    assert rollout.previous_good(HISTORY, 4) == 2  # revision 3 failed
    assert rollout.previous_good(HISTORY, 3) == 2
    assert rollout.previous_good(HISTORY, 2) == 1
    assert rollout.previous_good(HISTORY, 1) is None
    assert rollout.previous_good([], 1) is None
    assert rollout.previous_good([dict(HISTORY[0], status="failed"), dict(HISTORY[1], revision=2)], 2) is None
    assert rollout.previous_good([{"revision": "3", "status": "deployed"}], 4) == 3


# -- a release an interrupted helm left pending -----------------------------------------------------------------
PENDING_UPGRADE = {"revision": 5, "updated": "2026-12-01T10:30:00.123456789Z", "status": "pending-upgrade",
                   "chart": "triton-0.3.4", "app_version": "26.02", "description": "Preparing upgrade"}  # fmt: skip
PENDING_INSTALL = {"revision": 1, "updated": "2026-12-01T10:30:00+01:00", "status": "pending-install",
                   "chart": "triton-0.3.4", "description": "Initial install underway"}  # fmt: skip
T_PENDING = 1796121000.123456  # 2026-12-01T10:30:00.123456Z


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_helm_time():
    assert rollout.helm_time("2026-12-01T10:30:00.123456789Z") == pytest.approx(T_PENDING, abs=1e-6)
    assert rollout.helm_time("2026-12-01T10:30:00+01:00") == T_PENDING - 0.123456 - 3600
    assert rollout.helm_time("2026-12-01T10:30:00Z") == T_PENDING - 0.123456
    assert rollout.helm_time("Tue Dec  1 10:30:00 2026") is None


def test_pending_revision_is_the_newest_only():
    assert rollout.pending_revision([*HISTORY, PENDING_UPGRADE]) == PENDING_UPGRADE
    assert rollout.pending_revision([PENDING_INSTALL]) == PENDING_INSTALL
    assert rollout.pending_revision(HISTORY) is None
    assert rollout.pending_revision([]) is None
    # A pending revision an earlier recovery rolled back past stays in the history, marked pending.
    assert rollout.pending_revision([*HISTORY, PENDING_UPGRADE, dict(HISTORY[3], revision=6)]) is None


def test_recover_pending_upgrade_rolls_back_to_the_newest_good_revision_without_wait():
    run = FakeRun((0, json.dumps([*HISTORY, PENDING_UPGRADE]), ""), (0, "Rollback was a success!\n", ""))
    clock = WallClock(T_PENDING + 31)
    found = rollout.recover_pending(rollout.Helm(run, "helm", "/k"), "triton", NS, "900s", clock=clock,
                                    sleep=clock.sleep)  # fmt: skip
    assert found == {"status": "pending-upgrade", "revision": 5, "action": "rollback", "to": 4}
    assert run.calls[1] == ["helm", "rollback", "triton", "4", "--namespace=triton", "--timeout=900s",
                            "--kubeconfig=/k"]  # fmt: skip
    assert clock.sleeps == []


def test_recover_pending_install_uninstalls():
    run = FakeRun((0, json.dumps([PENDING_INSTALL]), ""), (0, 'release "triton" uninstalled\n', ""))
    clock = WallClock(T_PENDING)
    found = rollout.recover_pending(rollout.Helm(run, "helm", None), "triton", NS, "900s", clock=clock,
                                    sleep=clock.sleep)  # fmt: skip
    assert found == {"status": "pending-install", "revision": 1, "action": "uninstall", "to": 0}
    assert run.calls[1] == ["helm", "uninstall", "triton", "--namespace=triton", "--wait", "--timeout=900s"]


def test_recover_pending_waits_out_the_grace_of_a_young_pending_revision():
    """Pending for 10.5 s: maybe another run's helm at work. Watched until 30 s old, then recovered."""
    history = json.dumps([*HISTORY, PENDING_UPGRADE])
    run = FakeRun(*[(0, history, "")] * 11, (0, "Rollback was a success!\n", ""))
    clock = WallClock(T_PENDING + 10.5)
    found = rollout.recover_pending(rollout.Helm(run, "helm", None), "triton", NS, "5m", clock=clock,
                                    sleep=clock.sleep)  # fmt: skip
    assert found == {"status": "pending-upgrade", "revision": 5, "action": "rollback", "to": 4}
    assert clock.sleeps == [2.0] * 10 and len(run.calls) == 12


def test_recover_pending_leaves_an_operation_that_completes_within_the_grace():
    done = dict(PENDING_UPGRADE, status="deployed", description="Upgrade complete")
    run = FakeRun((0, json.dumps([*HISTORY, PENDING_UPGRADE]), ""), (0, json.dumps([*HISTORY, done]), ""))
    clock = WallClock(T_PENDING + 1)
    assert rollout.recover_pending(rollout.Helm(run, "helm", None), "triton", NS, "5m", clock=clock,
                                   sleep=clock.sleep) is None  # fmt: skip
    assert len(run.calls) == 2  # history twice, nothing else


def test_recover_pending_check_mode_predicts_and_does_nothing():
    run = FakeRun((0, json.dumps([*HISTORY, PENDING_UPGRADE]), ""))
    clock = WallClock(T_PENDING + 1)
    found = rollout.recover_pending(rollout.Helm(run, "helm", None), "triton", NS, "5m", check=True, clock=clock,
                                    sleep=clock.sleep)  # fmt: skip
    assert found == {"status": "pending-upgrade", "revision": 5, "action": "rollback", "to": 4}
    assert len(run.calls) == 1 and clock.sleeps == []


def test_recover_pending_nothing_pending_or_no_release():
    run = FakeRun((0, json.dumps(HISTORY), ""), (1, "", "Error: release: not found\n"))
    helm = rollout.Helm(run, "helm", None)
    assert rollout.recover_pending(helm, "triton", NS, "5m") is None
    assert rollout.recover_pending(helm, "triton", NS, "5m") is None
    assert len(run.calls) == 2
