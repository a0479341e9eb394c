"""The Triton chart against a real kube-apiserver v1.36 (the local environment's kwok cluster).

- Server-side dry runs (`kubectl apply --dry-run=server --validate=strict`) of the chart rendered
  with its defaults and with every toggle: admission, defaulting and strict field validation of
  every object, including the Istio and Prometheus-operator objects, validated against minimal
  CRDs declared below (the real CRDs are not available offline; these declare exactly the fields
  the chart uses, with the types, required fields and validations of the upstream APIs, and prune
  nothing: an unknown field is an error).
- A real `helm install` into namespace `triton`: the pods land on the simulated GPU nodes and
  become Ready (kwok simulates the containers), the HPA scales the Deployment to its minimum,
  then `helm uninstall` removes everything.

Runs inside the loopback-only network namespace (scripts/run-pytest.sh); starts only the cluster (and moto,
see the fixture).
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration import faults
from tritonfil.localenv.env import LocalEnv, Tools
from tritonfil.localenv.nodes import GPU_SELECTOR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "triton"
CI_VALUES = CHART / "ci" / "default-values.yaml"
NAMESPACE = "triton"
ROLE_ARN = "arn:aws:iam::123456789012:role/tritonfil-triton"
DIGEST = "sha256:" + "0123456789abcdef" * 4

# -- minimal CRDs ---------------------------------------------------------------------------------

STRING = {"type": "string"}
STRINGS = {"type": "array", "items": STRING}
STRING_MAP = {"type": "object", "additionalProperties": STRING}
# Istio declares durations as strings checked with CEL.
ISTIO_DURATION = {
    "type": "string",
    "x-kubernetes-validations": [
        {"rule": "duration(self) >= duration('1ms')", "message": "must be a valid duration greater than 1ms"}
    ],
}
# prometheus-operator's monitoringv1.Duration.
PROM_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {"key": STRING, "operator": STRING, "values": STRINGS},
            },
        },
    },
}
STRING_MATCH = {
    "type": "object",
    "maxProperties": 1,
    "properties": {"exact": STRING, "prefix": STRING, "regex": STRING},
}

GATEWAY_SPEC = {
    "type": "object",
    "properties": {
        "selector": STRING_MAP,
        "servers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["port", "hosts"],
                "properties": {
                    "port": {
                        "type": "object",
                        "required": ["number", "protocol", "name"],
                        "properties": {
                            "number": {"type": "integer", "minimum": 1, "maximum": 4294967295},
                            "protocol": STRING,
                            "name": STRING,
                            "targetPort": {"type": "integer"},
                        },
                    },
                    "hosts": {"type": "array", "minItems": 1, "items": STRING},
                    "bind": STRING,
                    "name": STRING,
                    "defaultEndpoint": STRING,
                    "tls": {
                        "type": "object",
                        "properties": {
                            "httpsRedirect": {"type": "boolean"},
                            "mode": {
                                "type": "string",
                                "enum": [
                                    "PASSTHROUGH",
                                    "SIMPLE",
                                    "MUTUAL",
                                    "AUTO_PASSTHROUGH",
                                    "ISTIO_MUTUAL",
                                    "OPTIONAL_MUTUAL",
                                ],
                            },
                            "credentialName": STRING,
                            "minProtocolVersion": STRING,
                        },
                    },
                },
            },
        },
    },
}
HTTP_ROUTE = {
    "type": "object",
    "properties": {
        "name": STRING,
        "match": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": STRING,
                    "uri": STRING_MATCH,
                    "scheme": STRING_MATCH,
                    "method": STRING_MATCH,
                    "authority": STRING_MATCH,
                    "headers": {"type": "object", "additionalProperties": STRING_MATCH},
                    "port": {"type": "integer", "minimum": 0, "maximum": 4294967295},
                    "gateways": STRINGS,
                    "ignoreUriCase": {"type": "boolean"},
                },
            },
        },
        "route": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["destination"],
                "properties": {
                    "destination": {
                        "type": "object",
                        "required": ["host"],
                        "properties": {
                            "host": STRING,
                            "subset": STRING,
                            "port": {
                                "type": "object",
                                "properties": {"number": {"type": "integer", "minimum": 0, "maximum": 4294967295}},
                            },
                        },
                    },
                    "weight": {"type": "integer"},
                },
            },
        },
        "timeout": ISTIO_DURATION,
        "retries": {
            "type": "object",
            "properties": {
                "attempts": {"type": "integer", "format": "int32"},
                "perTryTimeout": ISTIO_DURATION,
                "retryOn": STRING,
                "retryRemoteLocalities": {"type": "boolean"},
            },
        },
    },
}
VIRTUAL_SERVICE_SPEC = {
    "type": "object",
    "properties": {
        "hosts": STRINGS,
        "gateways": STRINGS,
        "exportTo": STRINGS,
        "http": {"type": "array", "items": HTTP_ROUTE},
    },
}
POD_MONITOR_SPEC = {
    "type": "object",
    "required": ["selector"],
    "properties": {
        "jobLabel": STRING,
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {"type": "object", "properties": {"any": {"type": "boolean"}, "matchNames": STRINGS}},
        "podMetricsEndpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "port": STRING,
                    "path": STRING,
                    "scheme": {"type": "string", "enum": ["http", "https"]},
                    "interval": PROM_DURATION,
                    "scrapeTimeout": PROM_DURATION,
                    "honorLabels": {"type": "boolean"},
                    # prometheus-operator's RelabelConfig (monitoring.coreos.com/v1): the chart adds the release label
                    "relabelings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "sourceLabels": STRINGS,
                                "separator": STRING,
                                "targetLabel": STRING,
                                "regex": STRING,
                                "modulus": {"type": "integer", "format": "int64"},
                                "replacement": STRING,
                                "action": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
SERVICE_MONITOR_SPEC = {
    "type": "object",
    "required": ["selector"],
    "properties": {
        "jobLabel": STRING,
        "selector": LABEL_SELECTOR,
        "namespaceSelector": POD_MONITOR_SPEC["properties"]["namespaceSelector"],
        "endpoints": POD_MONITOR_SPEC["properties"]["podMetricsEndpoints"],
    },
}


def crd(group: str, kind: str, plural: str, spec_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "spec": spec_schema,
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


CRDS = [
    crd("networking.istio.io", "Gateway", "gateways", GATEWAY_SPEC),
    crd("networking.istio.io", "VirtualService", "virtualservices", VIRTUAL_SERVICE_SPEC),
    crd("monitoring.coreos.com", "PodMonitor", "podmonitors", POD_MONITOR_SPEC),
    crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", SERVICE_MONITOR_SPEC),
]

# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[LocalEnv]:
    """Only the local kube-apiserver with 2 simulated GPU nodes, the CRDs and the namespace."""
    env = LocalEnv(state_dir=tmp_path_factory.mktemp("chart-env"), nodes=2)
    env.up(components=("cluster",))
    try:
        env.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": CRDS}))
        env.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{c['metadata']['name']}" for c in CRDS))  # fmt: skip
        env.kubectl("create", "namespace", NAMESPACE)
        env.kubectl("create", "priorityclass", "triton-inference", "--value=1000")
        yield env
    finally:
        env.down()


def helm(env: LocalEnv, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Tools().path("helm")), f"--kubeconfig={env.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def render(env: LocalEnv, *sets: str) -> str:
    proc = helm(env, "template", "triton", str(CHART), "-n", NAMESPACE, "-f", str(CI_VALUES), *sets)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def server_dry_run(env: LocalEnv, manifest: str) -> list[str]:
    """Apply MANIFEST with a server-side dry run and strict field validation; return the lines kubectl printed."""
    proc = env.kubectl("apply", "-n", NAMESPACE, "--dry-run=server", "--validate=strict", "-f", "-",
                       input_text=manifest, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # no warnings (deprecated APIs, unknown fields) either
    return proc.stdout.strip().splitlines()


def kinds_of(manifest: str) -> list[str]:
    return sorted(f"{d['kind'].lower()}/{d['metadata']['name']}" for d in yaml.safe_load_all(manifest) if d)


def applied(lines: list[str]) -> list[str]:
    """`kind.group/name created (server dry run)` -> `kind/name`, sorted."""
    out = []
    for line in lines:
        ref, verb = line.split(" ", 1)
        assert verb == "created (server dry run)", line
        kind, name = ref.split("/", 1)
        out.append(f"{kind.split('.')[0]}/{name}")
    return sorted(out)


# The fault drills' polling loop, at this module's interval.
wait_until = functools.partial(faults.wait_until, interval=1.0)


def ready_server_pods(env: LocalEnv, count: int) -> list[dict] | None:
    """The release's Ready server pods when there are exactly COUNT of them, else None."""
    selector = "app.kubernetes.io/instance=triton,app.kubernetes.io/name=triton"
    pods = json.loads(env.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json").stdout)["items"]
    ready = [p for p in pods if {"type": "Ready", "status": "True"}.items() <= _ready_condition(p).items()]
    return ready if len(ready) == count else None


def _ready_condition(pod: dict) -> dict:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"), {})


ALL_TOGGLES = (
    "--set", "istio.enabled=true",
    "--set", "istio.gateway.https.credentialName=triton-cert",
    "--set", "istio.gateway.http.enabled=true",
    "--set", "istio.gateway.http.httpsRedirect=true",
    "--set", "metrics.podMonitor.enabled=true",
    "--set", f"serviceAccount.irsaRoleArn={ROLE_ARN}",
    "--set", "models={xgb_classifier,xgb_regressor,lgb_multiclass,sklearn_rf}",
    "--set", f"image.digest={DIGEST}",
    "--set", "instanceType=g4dn.12xlarge",
    "--set", "server.exitOnError=false",
    "--set", "priorityClassName=triton-inference",
)  # fmt: skip
OTHER_TOGGLES = (
    "--set", "aws.staticCredentials.enabled=true",
    "--set", "aws.staticCredentials.accessKeyId=AKIAIOSFODNN7EXAMPLE",
    "--set", "aws.staticCredentials.secretAccessKey=not-a-real-key",
    "--set", "aws.staticCredentials.sessionToken=not-a-real-token",
    "--set", "metrics.serviceMonitor.enabled=true",
    "--set", "autoscaling.enabled=false",
    "--set", "replicaCount=2",
    "--set", "podDisruptionBudget.minAvailable=50%",
    "--set", "podDisruptionBudget.maxUnavailable=null",
    "--set", "istio.enabled=true",
    "--set", "istio.gateway.create=false",
    "--set", "istio.gateway.existing=istio-system/shared-gateway",
    "--set", "istio.virtualService.restrictApi=false",
    "--set", "istio.virtualService.retries.attempts=0",
    "--set", "networkPolicy.enabled=false",
    "--set", "gpu.count=2",
    "--set", "resources.limits.cpu=null",
)  # fmt: skip

# The pass-through blocks with fields the chart never modelled, a second probe handler replacing the
# default one, and spread constraints with and without their own selector: the real API server must
# accept what toYaml renders (and what the chart fills in).
PASS_THROUGH_VALUES = {
    "livenessProbe": {"httpGet": None, "tcpSocket": {"port": "grpc"}, "terminationGracePeriodSeconds": 30},
    "readinessProbe": {"periodSeconds": 2},
    "resources": {"requests": {"ephemeral-storage": "20Gi"}, "limits": {"ephemeral-storage": "40Gi"}},
    "topologySpreadConstraints": [
        {"topologyKey": "kubernetes.io/hostname", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule",
         "nodeTaintsPolicy": "Honor"},
        {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "triton"}}, "matchLabelKeys": []},
    ],
    "autoscaling": {
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 15, "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
            "scaleDown": {"selectPolicy": "Disabled"},
        }
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def pass_through_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chart-values") / "pass-through.yaml"
    path.write_text(yaml.safe_dump(PASS_THROUGH_VALUES))
    return path


# -- tests ----------------------------------------------------------------------------------------


def test_defaults_pass_server_side_validation(cluster: LocalEnv):
    manifest = render(cluster)
    lines = server_dry_run(cluster, manifest)
    assert (
        applied(lines)
        == kinds_of(manifest)
        == [
            "deployment/triton",
            "horizontalpodautoscaler/triton",
            "networkpolicy/triton",
            "networkpolicy/triton-test",
            "pod/triton-test-health",
            "poddisruptionbudget/triton",
            "service/triton",
            "serviceaccount/triton",
        ]
    )


def test_every_toggle_passes_server_side_validation(cluster: LocalEnv, pass_through_values: Path):
    manifest = render(cluster, *ALL_TOGGLES, "-f", str(pass_through_values))
    assert (
        applied(server_dry_run(cluster, manifest))
        == kinds_of(manifest)
        == [
            "deployment/triton",
            "gateway/triton",
            "horizontalpodautoscaler/triton",
            "networkpolicy/triton",
            "networkpolicy/triton-test",
            "pod/triton-test-health",
            "poddisruptionbudget/triton",
            "podmonitor/triton",
            "service/triton",
            "serviceaccount/triton",
            "virtualservice/triton",
        ]
    )
    manifest = render(cluster, *OTHER_TOGGLES, "-f", str(pass_through_values))
    assert (
        applied(server_dry_run(cluster, manifest))
        == kinds_of(manifest)
        == [
            "deployment/triton",
            "pod/triton-test-health",
            "poddisruptionbudget/triton",
            "secret/triton-aws",
            "service/triton",
            "serviceaccount/triton",
            "servicemonitor/triton",
            "virtualservice/triton",
        ]
    )


def test_helm_server_dry_run_with_istio_prints_gateway_instructions(cluster: LocalEnv):
    proc = helm(
        cluster, "install", "triton", str(CHART), "-n", NAMESPACE, "-f", str(CI_VALUES), *ALL_TOGGLES,
        "--set", "podDisruptionBudget.minAvailable=1", "--set", "podDisruptionBudget.maxUnavailable=null",
        "--dry-run=server",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout[proc.stdout.index("NOTES:") :]
    assert "Models loaded at startup: xgb_classifier, xgb_regressor, lgb_multiclass, sklearn_rf" in notes
    assert "Through the Istio ingress gateway (triton/triton), with a JWT the gateway accepts" in notes
    assert (
        "curl -sf --cacert CA.pem -H \"Authorization: Bearer $TOKEN\" -o /dev/null -w '%{http_code}\\n' "
        "https://$GATEWAY/v2/health/ready" in notes
    ), notes
    assert "(TLS is terminated by the gateway with Secret triton-cert.)" in notes
    assert "WARNING: plain HTTP" not in notes  # plain HTTP only redirects to HTTPS here
    assert "Only the inference API is routed" in notes
    assert "WARNING: podDisruptionBudget.minAvailable (1) >= the replica floor (1)" in notes
    assert helm(cluster, "status", "triton", "-n", NAMESPACE).returncode != 0  # a dry run installs nothing


def test_the_crds_reject_what_istio_and_prometheus_operator_reject(cluster: LocalEnv):
    """The CRD validation has teeth: a typo'd field, a bad duration and a missing required field fail."""
    docs = [d for d in yaml.safe_load_all(render(cluster, *ALL_TOGGLES)) if d]
    vs = next(d for d in docs if d["kind"] == "VirtualService")
    pm = next(d for d in docs if d["kind"] == "PodMonitor")
    gw = next(d for d in docs if d["kind"] == "Gateway")
    typo = json.loads(json.dumps(vs))
    typo["spec"]["http"][0]["retries"]["attempt"] = 3
    bad_timeout = json.loads(json.dumps(vs))
    bad_timeout["spec"]["http"][1]["timeout"] = "30 seconds"
    bad_interval = json.loads(json.dumps(pm))
    bad_interval["spec"]["podMetricsEndpoints"][0]["interval"] = "15 s"
    no_hosts = json.loads(json.dumps(gw))
    del no_hosts["spec"]["servers"][0]["hosts"]
    expected = {
        'unknown field "spec.http[0].retries.attempt"': typo,
        "must be a valid duration greater than 1ms": bad_timeout,
        "spec.podMetricsEndpoints[0].interval": bad_interval,
        "spec.servers[0].hosts: Required value": no_hosts,
    }
    for message, obj in expected.items():
        proc = cluster.kubectl("apply", "-n", NAMESPACE, "--dry-run=server", "--validate=strict", "-f", "-",
                               input_text=json.dumps(obj), check=False)  # fmt: skip
        assert proc.returncode != 0 and message in proc.stderr, (message, proc.stderr)


def test_install_lands_ready_pods_on_the_gpu_nodes_then_uninstall_removes_everything(cluster: LocalEnv):
    t0 = time.monotonic()
    proc = helm(
        cluster, "install", "triton", str(CHART), "-n", NAMESPACE, "-f", str(CI_VALUES),
        "--set", "autoscaling.minReplicas=2",
        "--set", f"serviceAccount.irsaRoleArn={ROLE_ARN}",
        "--set", "image.repository=127.0.0.1:5000/tritonserver",
        "--set", f"image.digest={DIGEST}",
        "--wait", "--timeout=60s",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # NOTES: how to reach the endpoint and check health.
    assert f"kubectl -n {NAMESPACE} port-forward svc/triton 8000:8000 8001:8001" in proc.stdout
    assert "curl -sf -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8000/v2/health/ready" in proc.stdout
    assert f"helm test triton -n {NAMESPACE}" in proc.stdout
    assert "model download from S3 and load: up to 610s before a restart" in proc.stdout  # startupProbe budget

    gpu_nodes = {
        n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for n in json.loads(cluster.kubectl("get", "nodes", "-l", GPU_SELECTOR, "-o", "json").stdout)["items"]
    }
    assert len(gpu_nodes) == 2

    # The Deployment has no replica count: the HPA raises it to minReplicas.
    pods = wait_until("2 Ready Triton pods (HPA minReplicas)", lambda: ready_server_pods(cluster, 2), timeout=45)
    t_min = time.monotonic() - t0
    nodes = sorted(p["spec"]["nodeName"] for p in pods)
    assert set(nodes) <= set(gpu_nodes), nodes
    # Spread across hosts and zones (the two simulated nodes are in different zones).
    assert len(set(nodes)) == 2 and len({gpu_nodes[n] for n in nodes}) == 2, nodes
    for pod in pods:
        container = pod["spec"]["containers"][0]
        assert container["image"] == f"127.0.0.1:5000/tritonserver@{DIGEST}"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000
        assert pod["spec"]["serviceAccountName"] == "triton"
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["spec"][
            "tolerations"
        ]
    sa = json.loads(cluster.kubectl("get", "serviceaccount", "triton", "-n", NAMESPACE, "-o", "json").stdout)
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN

    endpoints = json.loads(
        cluster.kubectl(
            "get", "endpointslices", "-n", NAMESPACE, "-l", "kubernetes.io/service-name=triton", "-o", "json"
        ).stdout  # fmt: skip
    )["items"]
    ready_endpoints = [e for s in endpoints for e in s.get("endpoints") or [] if e["conditions"].get("ready")]
    assert len(ready_endpoints) == 2
    print(f"helm install -> 2 Ready pods (HPA minReplicas) on {nodes}: {t_min:.1f}s")

    proc = helm(cluster, "uninstall", "triton", "-n", NAMESPACE, "--wait", "--timeout=60s")
    assert proc.returncode == 0, proc.stderr

    def gone() -> bool:
        left = cluster.kubectl(
            "get", "deployment,service,serviceaccount,hpa,pdb,pods", "-n", NAMESPACE,
            "-l", "app.kubernetes.io/instance=triton", "-o", "name",
        ).stdout.split()  # fmt: skip
        return not left

    wait_until("every object of the release deleted", gone, timeout=30)
    assert helm(cluster, "status", "triton", "-n", NAMESPACE).returncode != 0


RESTRICTED = "triton-restricted"


def test_the_chart_installs_into_a_namespace_enforcing_pod_security_restricted(cluster: LocalEnv):
    """The namespace labelled as triton_release labels it (enforce, audit and warn `restricted`): the API server's
    Pod Security admission refuses a pod that breaks the profile, and admits every pod of the chart (server and test
    pod), with no warning, into Ready pods; the NetworkPolicies are there by default."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RESTRICTED, "labels": labels}}
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(namespace))
    # Enforcement has teeth: a root pod without a seccomp profile is refused.
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": RESTRICTED},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(bad), check=False)
    assert proc.returncode != 0 and 'violates PodSecurity "restricted:latest"' in proc.stderr, proc.stderr
    # Every object of the chart, the helm test pod included, passes admission in it, without a warning.
    manifest = helm(cluster, "template", "triton", str(CHART), "-n", RESTRICTED, "-f", str(CI_VALUES)).stdout
    proc = cluster.kubectl("apply", "-n", RESTRICTED, "--dry-run=server", "-f", "-", input_text=manifest, check=False)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    assert {"networkpolicy/triton", "networkpolicy/triton-test", "pod/triton-test-health"} <= set(kinds_of(manifest))
    proc = helm(
        cluster, "install", "triton", str(CHART), "-n", RESTRICTED, "-f", str(CI_VALUES),
        "--set", "image.repository=127.0.0.1:5000/tritonserver", "--set", f"image.digest={DIGEST}",
        "--set", f"serviceAccount.irsaRoleArn={ROLE_ARN}", "--wait", "--timeout=60s",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        assert "violates PodSecurity" not in proc.stderr, proc.stderr

        def ready() -> list[dict] | None:
            selector = "app.kubernetes.io/instance=triton"
            out = cluster.kubectl("get", "pods", "-n", RESTRICTED, "-l", selector, "-o", "json").stdout
            pods = json.loads(out)["items"]
            ok = [p for p in pods if _ready_condition(p).get("status") == "True"]
            return ok if ok and len(ok) == len(pods) else None

        pods = wait_until("the release's pods Ready in the restricted namespace", ready, timeout=45)
        policies = cluster.kubectl("get", "networkpolicy", "-n", RESTRICTED, "-o", "name").stdout.split()
        assert sorted(policies) == [
            "networkpolicy.networking.k8s.io/triton",
            "networkpolicy.networking.k8s.io/triton-test",
        ]
        policy = json.loads(cluster.kubectl("get", "networkpolicy", "-n", RESTRICTED, "triton", "-o", "json").stdout)
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        print(f"restricted namespace: {len(pods)} pods Ready, NetworkPolicies {policies}")
    finally:
        helm(cluster, "uninstall", "triton", "-n", RESTRICTED, "--wait", "--timeout=60s")
