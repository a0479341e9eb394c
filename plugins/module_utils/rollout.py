# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Wait for a Triton release's rollout and explain a failed one (no Ansible imports).

``wait_rollout`` polls the Deployment (through an injected reader: the module passes the Kubernetes client)
until its rollout is complete - the new ReplicaSet's pods all updated, ready and available, the old ones gone -
or it cannot complete: the timeout passed, the Deployment's progress deadline was exceeded, or a new pod keeps
failing (restarted RESTART_LIMIT times, or its process reports a model that failed to load). A failure is
explained pod by pod: the scheduler's reason for a pod that cannot be placed, the reason the local pod runner
publishes (annotation tritonfil.io/process-reason), and the error lines of the container's log (Triton names
the model that failed to load there, on EKS as locally).

``Helm`` wraps the helm CLI for what kubernetes.core.helm does not do: ``rollback`` to the previous revision
(and ``uninstall`` of a first install that never worked), the explicit form of ``helm --atomic`` - which would
delete the failed pods, and with them the evidence, before anyone could read it.

``recover_pending`` repairs what a helm killed mid-operation leaves: its newest revision stays ``pending-install``,
``pending-upgrade`` or ``pending-rollback`` forever, and every later ``helm upgrade`` fails with "another operation
(install/upgrade/rollback) is in progress". A pending upgrade or rollback is rolled back to the newest good
revision (what served before keeps serving, and what part of the interrupted change reached the cluster is
reverted); a pending first install, with no good revision to return to, is uninstalled (it never served).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RESTART_LIMIT = 3
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
REASON_ANNOTATION = "tritonfil.io/process-reason"
# Triton's log lines that say why a model or the server failed.
ERROR_LINE = re.compile(r"(failed to load|UNAVAILABLE|error:|Error|E\d{4} )", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds of a Helm/Go duration (``15m``, ``1h30m``, ``90s``, ``2m30s``) or a plain number of seconds."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"'{value}' is not a duration (e.g. 900, 15m, 1h30m, 90s)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


class RolloutError(Exception):
    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


@dataclass
class PodState:
    name: str
    ready: bool
    restarts: int
    deleting: bool
    template_hash: str
    reason: str = ""
    log_errors: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [p for p in (self.reason, "; ".join(self.log_errors)) if p]
        text = " - ".join(parts) or "not ready"
        if self.restarts:
            text += f" ({self.restarts} restarts)"
        return f"{self.name}: {text}"


def pod_state(pod: dict) -> PodState:
    meta, status = pod["metadata"], pod.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    ready = conditions.get("Ready", {}).get("status") == "True" and not meta.get("deletionTimestamp")
    restarts = sum(int(cs.get("restartCount") or 0) for cs in status.get("containerStatuses") or [])
    reason = (meta.get("annotations") or {}).get(REASON_ANNOTATION, "")
    scheduled = conditions.get("PodScheduled")
    if not reason and scheduled and scheduled.get("status") == "False":
        reason = f"unschedulable: {scheduled.get('message') or scheduled.get('reason')}"
    if not reason:
        waiting = []
        for cs in status.get("containerStatuses") or []:
            wait = (cs.get("state") or {}).get("waiting")
            if wait:
                waiting.append(f"{cs['name']}: {wait.get('reason')}: {wait.get('message', '')}".rstrip(": "))
        reason = "; ".join(waiting)
    return PodState(
        name=meta["name"],
        ready=ready,
        restarts=restarts,
        deleting=bool(meta.get("deletionTimestamp")),
        template_hash=(meta.get("labels") or {}).get("pod-template-hash", ""),
        reason=reason,
    )


def error_lines(log: str, limit: int = 3) -> list[str]:
    lines = [line.strip() for line in log.splitlines() if ERROR_LINE.search(line)]
    # The runner's own notes ("[tritonfil pod runner] failed to load ...") and Triton's E lines; the last ones.
    return [line[:400] for line in lines[-limit:]]


@dataclass
class Rollout:
    deployment: str
    replicas: int
    updated: int
    ready: int
    available: int
    pods: list[PodState]
    complete: bool
    failed: str = ""  # why it cannot complete
    # Complete up to capacity: the replicas the scheduler cannot place (e.g. the NodePool's GPU limit reached),
    # reported, not waited for.
    pending: list[PodState] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.ready}/{self.replicas} ready, {self.updated} updated, {self.available} available"


Reader = Callable[[], "tuple[dict | None, list[dict]]"]


def assess(deployment: dict | None, pods: Sequence[dict]) -> Rollout:
    if deployment is None:
        return Rollout("", 0, 0, 0, 0, [], False, failed="no Deployment")
    spec, status, meta = deployment.get("spec") or {}, deployment.get("status") or {}, deployment["metadata"]
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    current = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    states = [pod_state(p) for p in pods]
    complete = current and updated == want and ready == want and available == want and total == want
    # Every pod is of the current template and the old ones are gone, but some cannot be placed (an autoscaler asked
    # for more replicas than the cluster's GPUs can hold): the rollout is as complete as the cluster allows. Not so
    # during a change of template - the old pods then stay (maxUnavailable 0) and this never holds.
    unplaced = [p for p in states if not p.ready and not p.deleting and p.reason.startswith("unschedulable")]
    pending: list[PodState] = []
    if not complete and current and updated == want and total == want and ready >= 1 and ready + len(unplaced) >= want:
        complete, pending = True, unplaced
    failed = ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            failed = f"progress deadline exceeded: {cond.get('message', '')}"
    return Rollout(meta["name"], want, updated, ready, available, states, complete, failed, pending)


def new_pods(rollout: Rollout, deployment: dict | None, replicasets: Sequence[dict]) -> list[PodState]:
    """The pods of the Deployment's newest ReplicaSet (the one being rolled out)."""
    if deployment is None:
        return []
    revision = (deployment["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    hashes = {
        (rs["metadata"].get("labels") or {}).get("pod-template-hash")
        for rs in replicasets
        if (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision
    }
    return [p for p in rollout.pods if p.template_hash in hashes and not p.deleting]


def wait_rollout(
    read: Callable[[], tuple[dict | None, list[dict], list[dict]]],
    read_log: Callable[[str, bool], str],
    timeout: float,
    *,
    interval: float = 2.0,
    restart_limit: int = RESTART_LIMIT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    api: str = "the Kubernetes API server",
) -> Rollout:
    """Poll until the rollout completes; raise RolloutError explaining why it cannot.

    A read that fails for want of an answer (API, at its address: connection refused, a timeout, a 5xx while it
    restarts) is not the rollout's failure: polling goes on until the deadline, and only then does the error say
    that API has not answered, since when, and the last state it showed (details: unreachable=True). A refusal
    (HTTP 4xx but 429: credentials, RBAC) is raised at once.
    """
    deadline = clock() + timeout
    seen: Rollout | None = None
    silent_since: float | None = None
    while True:
        try:
            deployment, pods, replicasets = read()
        except Exception as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int) and 400 <= status < 500 and status != 429:
                raise
            now = clock()
            silent_since = now if silent_since is None else silent_since
            if now > deadline:
                error = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                last = f"{seen.summary()} when last seen" if seen else "no state read yet"
                raise RolloutError(
                    f"Deployment {seen.deployment if seen else '?'} rollout not confirmed after {timeout:.0f}s: {api}"
                    f" has not answered for {now - silent_since:.0f}s ({error}); {last}",
                    rollout=seen,
                    unreachable=True,
                ) from exc
            sleep(interval)
            continue
        silent_since = None
        rollout = seen = assess(deployment, pods)
        if rollout.complete:
            return rollout
        fresh = new_pods(rollout, deployment, replicasets)
        hopeless = [p for p in fresh if not p.ready and (p.restarts >= restart_limit or "failed to load" in p.reason)]
        if rollout.failed or hopeless or clock() > deadline:
            failing = f"pods keep failing ({', '.join(p.name for p in hopeless)})"
            why = rollout.failed or (failing if hopeless else f"not complete after {timeout:.0f}s")
            for p in [q for q in fresh if not q.ready]:
                try:
                    p.log_errors = error_lines(read_log(p.name, p.restarts > 0))
                except Exception as exc:  # logs may be unavailable (kwok without Logs, a pod just gone)
                    p.log_errors = [] if p.reason else [f"(log unavailable: {str(exc).splitlines()[0][:200]})"]
            stuck = [p.describe() for p in fresh if not p.ready] or [p.describe() for p in rollout.pods if not p.ready]
            raise RolloutError(
                f"Deployment {rollout.deployment or '?'} not rolled out: {why}; {rollout.summary()}"
                + (f"; not ready: {' | '.join(stuck)}" if stuck else ""),
                rollout=rollout,
            )
        sleep(interval)


class Helm:
    """The helm CLI, for rollback and uninstall (kubernetes.core.helm installs and upgrades)."""

    def __init__(self, run: Callable[[Sequence[str]], tuple[int, str, str]], binary: str, kubeconfig: str | None):
        self.run = run
        self.binary = binary
        self.kubeconfig = kubeconfig

    def _argv(self, *args: str) -> list[str]:
        argv = [self.binary, *args]
        if self.kubeconfig:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        return argv

    def _check(self, argv: list[str], what: str) -> str:
        rc, out, err = self.run(argv)
        if rc != 0:
            raise RolloutError(f"{what} failed (rc={rc}): {(err or out).strip()}", command=argv, stdout=out, stderr=err)
        return out

    def history(self, release: str, namespace: str) -> list[dict]:
        argv = self._argv("history", release, f"--namespace={namespace}", "--output=json", "--max=20")
        rc, out, err = self.run(argv)
        if rc != 0:
            if "not found" in (err + out):
                return []
            raise RolloutError(f"helm history {release} failed (rc={rc}): {(err or out).strip()}", command=argv)
        return json.loads(out or "[]")

    def rollback(self, release: str, namespace: str, revision: int, timeout: str, wait: bool = True) -> list[str]:
        argv = self._argv(
            "rollback", release, str(revision), f"--namespace={namespace}", *(["--wait"] if wait else []),
            f"--timeout={timeout}",
        )  # fmt: skip
        self._check(argv, f"helm rollback {release} {revision}")
        return argv

    def uninstall(self, release: str, namespace: str, timeout: str) -> list[str]:
        argv = self._argv("uninstall", release, f"--namespace={namespace}", "--wait", f"--timeout={timeout}")
        self._check(argv, f"helm uninstall {release}")
        return argv


def previous_good(history: Sequence[dict], current: int) -> int | None:
    """The newest revision before CURRENT that was deployed or superseded (helm marks a good one so)."""
    good = [
        int(h["revision"])
        for h in history
        if int(h["revision"]) < current and h.get("status") in ("superseded", "deployed")
    ]
    return max(good) if good else None


def helm_time(text: str) -> float | None:
    """Seconds since the epoch of a time helm prints (Go RFC 3339, nanoseconds: ``2026-12-01T22:45:47.98595Z``)."""
    found = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", str(text).strip())
    if not found:
        return None
    base, fraction, zone = found.groups()
    stamp = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return stamp.timestamp() + float(f"0.{fraction}" if fraction else 0)


def pending_revision(history: Sequence[dict]) -> dict | None:
    """The newest revision of HISTORY when helm left it pending (an interrupted operation), else None."""
    if not history:
        return None
    newest = max(history, key=lambda h: int(h["revision"]))
    return newest if newest.get("status") in PENDING else None


def recover_pending(
    helm: Helm,
    release: str,
    namespace: str,
    timeout: str,
    *,
    grace: float = 30.0,
    check: bool = False,
    interval: float = 2.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict | None:
    """Recover RELEASE when its newest revision was left pending; None when it is not pending.

    A pending revision younger than GRACE seconds may be another run's helm at work: it is watched until it is
    GRACE old (or no longer pending) before anything is done. With CHECK, nothing is done or waited for: the
    result says what would be. Returns {status, revision, action: rollback|uninstall, to (0 for uninstall)}.
    """
    history = helm.history(release, namespace)
    pending = pending_revision(history)
    while not check and pending is not None:
        started = helm_time(pending.get("updated", ""))
        if started is None or clock() - started >= grace:
            break
        sleep(interval)
        history = helm.history(release, namespace)
        pending = pending_revision(history)
    if pending is None:
        return None
    revision = int(pending["revision"])
    good = previous_good(history, revision)
    action = "rollback" if good is not None else "uninstall"
    out = {"status": pending["status"], "revision": revision, "action": action, "to": good or 0}
    if check:
        return out
    if good is not None:
        # No --wait: the upgrade that follows, and the rollout wait after it, judge the pods.
        helm.rollback(release, namespace, good, timeout, wait=False)
    else:
        helm.uninstall(release, namespace, timeout)
    return out
