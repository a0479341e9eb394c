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
  - Read-only unless a rollback happens; in check mode it only reads the current state.
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
    description: Helm release to roll back with O(rollback).
    type: str
  rollback:
    description: Roll a failed rollout back (requires O(release)).
    type: bool
    default: false
  timeout:
    description: How long to wait for the rollout, as seconds or a Helm duration (C(15m), C(1h30m), C(90s)).
    type: str
    default: "900"
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
  description: C(pod: why) for every pod that is not ready (on failure).
  returned: always
  type: list
  elements: str
rolled_back_to:
  description: The Helm revision restored after a failed rollout (0 for an uninstalled first install), or null.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.rollout import (
    Helm,
    RolloutError,
    assess,
    parse_duration,
    previous_good,
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
            restart_limit=dict(type="int", default=3),
            helm_path=dict(type="str", default="helm"),
        ),
        required_if=[("rollback", True, ("release",))],
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    p = module.params
    try:
        timeout = parse_duration(p["timeout"])
    except ValueError as exc:
        module.fail_json(msg=f"timeout: {exc}")
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
        deployment, pods, _ = read()
        rollout = assess(deployment, pods)
        module.exit_json(changed=False, **done(rollout))
    try:
        rollout = wait_rollout(read, read_log, timeout, restart_limit=p["restart_limit"])
    except RolloutError as exc:
        rollout = exc.details.get("rollout")
        result = dict(
            deployment=rollout.deployment if rollout else "",
            replicas=counts(rollout) if rollout else {},
            not_ready=[s.describe() for s in (rollout.pods if rollout else []) if not s.ready],
            rolled_back_to=None,
        )
        msg = exc.msg
        if p["rollback"]:
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


def done(rollout):
    return dict(deployment=rollout.deployment, replicas=counts(rollout), not_ready=[], rolled_back_to=None)


def counts(rollout):
    return dict(desired=rollout.replicas, updated=rollout.updated, ready=rollout.ready, available=rollout.available)


if __name__ == "__main__":
    main()
