#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: triton_rollout
short_description: Wait for a Triton release's rollout; on failure say why, pod by pod, and roll the release back
description:
  - Waits until the Deployment selected by O(label_selectors) has rolled out - every replica of its newest
    ReplicaSet updated, ready and available, the old ones gone - for at most O(timeout) seconds.
  - Fails early when it cannot complete - the Deployment's progress deadline was exceeded, or a new pod restarted
    O(restart_limit) times or reports a model that failed to load - and says why for every pod that is not ready
    (the scheduler's reason for a pod that cannot be placed, the local pod runner's reason, and the error lines
    of the container's log, where Triton names the model that failed to load).
  - With O(rollback), a failed rollout of a Helm release is rolled back to its previous good revision
    (C(helm rollback)), or a first install that never worked is uninstalled - what C(helm --atomic) does, done
    after the failure has been read (C(--atomic) would delete the failed pods, and with them their logs, first).
    The failure then names the revision that was restored. The previous pods keep serving throughout a rolling
    update with C(maxUnavailable 0).
  - With O(recover_pending), it does something else, before an upgrade - recover a release that a killed run left
    C(pending-install), C(pending-upgrade) or C(pending-rollback) (helm was killed mid-operation; every later
    C(helm upgrade) then fails with "another operation (install/upgrade/rollback) is in progress"). A pending
    upgrade or rollback is rolled back to the newest good revision (C(helm rollback), without C(--wait)) - what
    served before keeps serving and whatever part of the interrupted change reached the cluster is reverted, where
    an uninstall would take the serving pods down; a pending first install, which has no good revision and never
    served, is uninstalled (C(helm uninstall)), so the install starts clean. A pending revision younger than
    O(pending_grace) seconds may be another run's helm at work, so it is watched until it is that old first. No
    rollout is waited for.
  - The Kubernetes API server not answering (restarting, unreachable) is waited out until O(timeout); the failure
    then names its address, how long it has been silent and the last state it showed, and nothing is rolled back.
  - Read-only unless a rollback or a recovery happens; in check mode it only reads the current state (and predicts a
    recovery).
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
options:
  kubeconfig:
    description:
      - Kubeconfig of the cluster (module_defaults group C(tritonfil.eks.k8s)); else E(KUBECONFIG) or C(~/.kube/config).
    type: path
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  label_selectors:
    description: Label selectors of the release's Deployment and its server pods.
    type: list
    elements: str
    required: true
  release:
    description: Helm release to roll back with O(rollback), or to recover with O(recover_pending).
    type: str
  rollback:
    description: Roll a failed rollout back (requires O(release)).
    type: bool
    default: false
  timeout:
    description: How long to wait for the rollout, as seconds or a Helm duration (C(15m), C(1h30m), C(90s)).
    type: str
    default: "900"
  recover_pending:
    description:
      - Only recover a release left pending by an interrupted helm (see the description), then return without
        waiting for a rollout (requires O(release)). Run it before the upgrade.
    type: bool
    default: false
  pending_grace:
    description: Age in seconds a pending revision must reach before O(recover_pending) takes it for abandoned.
    type: int
    default: 30
  restart_limit:
    description: Restarts of a new pod after which the rollout counts as failed.
    type: int
    default: 3
  helm_path:
    description: The helm executable (for the rollback).
    type: str
    default: helm
attributes:
  check_mode:
    support: full
    description: Reads the rollout state; never rolls back.
  diff_mode:
    support: none
    description: Nothing to diff.
requirements:
  - kubernetes (the Python client)
  - helm (for O(rollback))
"""

EXAMPLES = r"""
- name: Recover a release an interrupted run left pending (before helm upgrade)
  tritonfil.eks.triton_rollout:
    namespace: triton
    label_selectors:
      - app.kubernetes.io/instance=triton
    release: triton
    recover_pending: true

- name: Wait for the Triton rollout, rolling back a failed one
  tritonfil.eks.triton_rollout:
    namespace: triton
    label_selectors:
      - app.kubernetes.io/instance=triton
      - app.kubernetes.io/component=inference-server
    release: triton
    rollback: true
    timeout: 600
"""

RETURN = r"""
deployment:
  description: The Deployment's name.
  returned: always
  type: str
replicas:
  description: Desired, updated, ready and available replica counts.
  returned: always
  type: dict
not_ready:
  description: "C(pod: why) for every pod that is not ready (on failure)."
  returned: always
  type: list
  elements: str
pending:
  description:
    - "C(pod: why) for every replica the scheduler cannot place once the rollout is otherwise complete (every pod of
      the current template, the old ones gone) - e.g. the autoscaler asked for more replicas than the NodePool's GPU
      limit holds. Reported, not waited for; the task succeeds."
  returned: success
  type: list
  elements: str
rolled_back_to:
  description: The Helm revision restored after a failed rollout (0 for an uninstalled first install), or null.
  returned: always
  type: int
recovered:
  description:
    - With O(recover_pending), what was found pending and done (in check mode - would be done), else null -
      C(status) (pending-install, pending-upgrade, pending-rollback), C(revision) (the pending one),
      C(action) (C(rollback) or C(uninstall)) and C(to) (the revision rolled back to, 0 for an uninstall).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.rollout import (
    Helm,
    RolloutError,
    assess,
    parse_duration,
    previous_good,
    recover_pending,
    wait_rollout,
)

try:
    from kubernetes import client, config

    HAS_KUBERNETES = True
except ImportError:  # pragma: no cover
    HAS_KUBERNETES = False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kubeconfig=dict(type="path"),
            namespace=dict(type="str", required=True),
            label_selectors=dict(type="list", elements="str", required=True),
            release=dict(type="str"),
            rollback=dict(type="bool", default=False),
            timeout=dict(type="str", default="900"),
            recover_pending=dict(type="bool", default=False),
            pending_grace=dict(type="int", default=30),
            restart_limit=dict(type="int", default=3),
            helm_path=dict(type="str", default="helm"),
        ),
        required_if=[("rollback", True, ("release",)), ("recover_pending", True, ("release",))],
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    p = module.params
    try:
        timeout = parse_duration(p["timeout"])
    except ValueError as exc:
        module.fail_json(msg=f"timeout: {exc}")
    if p["recover_pending"]:
        recover(module, timeout)
    try:
        config.load_kube_config(config_file=p["kubeconfig"])
    except Exception as exc:
        module.fail_json(msg=f"cannot load the kubeconfig {p['kubeconfig'] or '(default)'}: {exc}")
    api = client.ApiClient()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    selector = ",".join(p["label_selectors"])

    def listed(call):
        return [api.sanitize_for_serialization(x) for x in call(p["namespace"], label_selector=selector).items]

    def read():
        deployments = listed(apps.list_namespaced_deployment)
        if len(deployments) > 1:
            module.fail_json(msg=f"{len(deployments)} Deployments match {selector} in {p['namespace']}: expected one")
        deployment = deployments[0] if deployments else None
        return deployment, listed(core.list_namespaced_pod), listed(apps.list_namespaced_replica_set)

    def read_log(pod, previous):
        return core.read_namespaced_pod_log(pod, p["namespace"], tail_lines=200, previous=previous)

    if module.check_mode:
        deployment, pods, _replica_sets = read()
        rollout = assess(deployment, pods)
        module.exit_json(changed=False, **done(rollout))
    try:
        rollout = wait_rollout(read, read_log, timeout, restart_limit=p["restart_limit"],
                               api=f"the Kubernetes API server {api.configuration.host}")  # fmt: skip
    except RolloutError as exc:
        rollout = exc.details.get("rollout")
        result = dict(
            deployment=rollout.deployment if rollout else "",
            replicas=counts(rollout) if rollout else {},
            not_ready=[s.describe() for s in (rollout.pods if rollout else []) if not s.ready],
            rolled_back_to=None,
            recovered=None,
        )
        msg = exc.msg
        if exc.details.get("unreachable"):
            msg += "; not rolled back (helm cannot reach it either): run again once it answers"
        elif p["rollback"]:
            helm = Helm(lambda argv: module.run_command(list(argv), environ_update={"LC_ALL": "C"}),
                        module.get_bin_path(p["helm_path"], required=True), p["kubeconfig"])  # fmt: skip
            try:
                history = helm.history(p["release"], p["namespace"])
                current = max((int(h["revision"]) for h in history), default=0)
                good = previous_good(history, current)
                if good is not None:
                    helm.rollback(p["release"], p["namespace"], good, f"{timeout:.0f}s")
                    msg += f"; rolled back release {p['release']} from revision {current} to revision {good}"
                    result["rolled_back_to"] = good
                elif current:
                    helm.uninstall(p["release"], p["namespace"], f"{timeout:.0f}s")
                    msg += f"; release {p['release']} had no good revision: uninstalled"
                    result["rolled_back_to"] = 0
            except RolloutError as rb:
                msg += f"; the rollback failed too: {rb.msg}"
        module.fail_json(msg=msg, changed=result["rolled_back_to"] is not None, **result)
    module.exit_json(changed=False, **done(rollout))


def recover(module, timeout):
    p = module.params
    helm = Helm(lambda argv: module.run_command(list(argv), environ_update={"LC_ALL": "C"}),
                module.get_bin_path(p["helm_path"], required=True), p["kubeconfig"])  # fmt: skip
    result = dict(deployment="", replicas={}, not_ready=[], rolled_back_to=None)
    try:
        found = recover_pending(helm, p["release"], p["namespace"], f"{timeout:.0f}s", grace=p["pending_grace"],
                                check=module.check_mode)  # fmt: skip
    except RolloutError as exc:
        module.fail_json(
            msg=f"checking release {p['namespace']}/{p['release']} for a revision an interrupted helm left pending"
            f" (and recovering it) failed: {exc.msg}",
            recovered=None,
            **result,
            **{k: v for k, v in exc.details.items() if k in ("command", "stdout", "stderr")},
        )
    if found is not None and found["action"] == "rollback":
        result["rolled_back_to"] = found["to"]
    module.exit_json(changed=found is not None, recovered=found, **result)


def done(rollout):
    return dict(
        deployment=rollout.deployment, replicas=counts(rollout), not_ready=[], rolled_back_to=None, recovered=None,
        pending=[p.describe() for p in rollout.pending],
    )  # fmt: skip


def counts(rollout):
    return dict(desired=rollout.replicas, updated=rollout.updated, ready=rollout.ready, available=rollout.available)


if __name__ == "__main__":
    main()
