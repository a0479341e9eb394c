#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: triton_replicas
short_description: List the Triton replicas of a release, with their state and the address each serves on
description:
  - Reads the pods selected by O(label_selectors) in O(namespace) and returns one entry per replica - its name,
    node, phase, readiness, restart count, whether it is being deleted, and why it is not ready.
  - A replica that publishes its own address (the annotations C(tritonfil.io/http-address),
    C(tritonfil.io/grpc-address), C(tritonfil.io/metrics-address), which the local environment's pod runner sets
    on every process-backed pod) gets C(http_url)/C(grpc_url)/C(metrics_url), so each replica can be checked on
    its own. On EKS pods publish no such address (their IPs are reachable only inside the cluster) and the
    URLs are null; checks go through the gateway there.
  - With O(wait_for), waits until that many replicas are ready (or O(timeout) passes, then fails listing the
    replicas that are not ready and why).
  - Read-only; never reports a change; runs in check mode.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
options:
  kubeconfig:
    description:
      - Kubeconfig of the cluster (the playbooks set it through module_defaults, group C(tritonfil.eks.k8s)).
      - Without it, E(KUBECONFIG) or C(~/.kube/config).
    type: path
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  label_selectors:
    description: Label selectors of the release's server pods (C(key=value) each, all must match).
    type: list
    elements: str
    required: true
  wait_for:
    description: Wait until at least this many replicas are ready; C(0) does not wait.
    type: int
    default: 0
  timeout:
    description: Seconds to wait for O(wait_for) ready replicas.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Nothing is changed.
requirements:
  - kubernetes (the Python client)
"""

EXAMPLES = r"""
- name: The release's replicas
  tritonfil.eks.triton_replicas:
    namespace: triton
    label_selectors:
      - app.kubernetes.io/instance=triton
      - app.kubernetes.io/component=inference-server
    wait_for: 1
  register: replicas
"""

RETURN = r"""
replicas:
  description:
    - One entry per pod - name, node, phase, ready, restarts, deleting, pending (the scheduler cannot place it),
      reason, http_url, grpc_url, metrics_url,
      model_repository (the repository its tritonserver serves, the model revision).
  returned: success
  type: list
  elements: dict
ready:
  description: Names of the ready replicas (not being deleted).
  returned: success
  type: list
  elements: str
not_ready:
  description:
    - "Names of the replicas that are not ready, with why (C(name: reason)); those the scheduler cannot place are in
      RV(pending) instead."
  returned: success
  type: list
  elements: str
pending:
  description:
    - "The replicas the scheduler cannot place (PodScheduled False), C(name: reason), with the newest warning event
      about the pod (the scheduler's, or Karpenter's - e.g. all instance types exceed the NodePool's limits)."
  returned: success
  type: list
  elements: str
endpoints:
  description: 'The ready replicas that publish an address, as C({name: "replica POD", url: HTTP_URL}).'
  returned: success
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from kubernetes import client, config

    HAS_KUBERNETES = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False

HTTP = "tritonfil.io/http-address"
GRPC = "tritonfil.io/grpc-address"
METRICS = "tritonfil.io/metrics-address"
REASON = "tritonfil.io/process-reason"


def replica(pod):
    meta, status, spec = pod.metadata, pod.status, pod.spec
    annotations = meta.annotations or {}
    conditions = {c.type: c for c in (status.conditions or [])}
    ready = bool(conditions.get("Ready") and conditions["Ready"].status == "True") and not meta.deletion_timestamp
    restarts = sum(cs.restart_count or 0 for cs in (status.container_statuses or []))
    reason = annotations.get(REASON, "")
    unscheduled = conditions.get("PodScheduled")
    if not ready and not reason:
        waiting = [
            f"{cs.name}: {cs.state.waiting.reason}" for cs in (status.container_statuses or [])
            if cs.state and cs.state.waiting and cs.state.waiting.reason
        ]  # fmt: skip
        if unscheduled and unscheduled.status == "False":
            reason = f"unschedulable: {unscheduled.message or unscheduled.reason}"
        elif waiting:
            reason = "; ".join(waiting)
        elif conditions.get("Ready") is not None:
            reason = conditions["Ready"].reason or "not ready"
        else:
            reason = status.phase or "pending"
    return {
        "name": meta.name,
        "node": spec.node_name,
        "phase": status.phase,
        "ready": ready,
        "restarts": restarts,
        "deleting": meta.deletion_timestamp is not None,
        "pending": bool(unscheduled and unscheduled.status == "False"),
        "reason": "" if ready else reason,
        "http_url": f"http://{annotations[HTTP]}" if HTTP in annotations else None,
        "grpc_url": annotations.get(GRPC),
        "metrics_url": f"http://{annotations[METRICS]}/metrics" if METRICS in annotations else None,
        "model_repository": model_repository(spec),
    }


def last_warning(core, namespace, pod):
    """ "; EVENT" for the newest Warning event about POD (the scheduler's or Karpenter's), else ""."""
    try:
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
    except Exception:  # events are a courtesy: the PodScheduled condition already says why
        return ""
    warnings = [e for e in events if e.type == "Warning" and e.message]
    if not warnings:
        return ""

    def when(e):
        return str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or "")

    newest = max(warnings, key=when)
    source = (newest.source.component if newest.source else None) or newest.reporting_component or "event"
    return f"; {source}: {newest.message.strip()[:300]}"


def model_repository(spec):
    """The --model-repository the pod's tritonserver container is started with (None without one)."""
    for container in spec.containers or []:
        argv = list(container.command or []) + list(container.args or [])
        for i, arg in enumerate(argv):
            if arg.startswith("--model-repository="):
                return arg.split("=", 1)[1]
            if arg == "--model-repository" and i + 1 < len(argv):
                return argv[i + 1]
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kubeconfig=dict(type="path"),
            namespace=dict(type="str", required=True),
            label_selectors=dict(type="list", elements="str", required=True),
            wait_for=dict(type="int", default=0),
            timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    p = module.params
    try:
        config.load_kube_config(config_file=p["kubeconfig"])
    except Exception as exc:
        module.fail_json(msg=f"cannot load the kubeconfig {p['kubeconfig'] or '(default)'}: {exc}")
    core = client.CoreV1Api()
    selector = ",".join(p["label_selectors"])
    deadline = time.monotonic() + p["timeout"]
    while True:
        try:
            pods = core.list_namespaced_pod(p["namespace"], label_selector=selector).items
        except Exception as exc:
            module.fail_json(msg=f"listing pods {selector} in namespace {p['namespace']} failed: {exc}")
        replicas = sorted((replica(pod) for pod in pods), key=lambda r: r["name"])
        ready = [r["name"] for r in replicas if r["ready"]]
        if len(ready) >= p["wait_for"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    not_ready = [
        f"{r['name']}: {r['reason']}" for r in replicas if not r["ready"] and not r["deleting"] and not r["pending"]
    ]
    pending = [f"{r['name']}: {r['reason']}{last_warning(core, p['namespace'], r['name'])}" for r in replicas
               if r["pending"] and not r["deleting"]]  # fmt: skip
    endpoints = [
        {"name": f"replica {r['name']}", "url": r["http_url"]} for r in replicas if r["ready"] and r["http_url"]
    ]
    result = dict(
        changed=False, replicas=replicas, ready=ready, not_ready=not_ready, pending=pending, endpoints=endpoints
    )
    if len(ready) < p["wait_for"]:
        module.fail_json(
            msg=(
                f"{len(ready)} of the {p['wait_for']} replicas wanted ({selector} in {p['namespace']}) ready after"
                f" {p['timeout']}s; not ready: {'; '.join(not_ready) or 'no pod at all'}"
            ),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
