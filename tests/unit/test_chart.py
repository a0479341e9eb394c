"""The Triton chart (helm/triton): lint, what it renders for the defaults and for every toggle, and
what it refuses (schema and guards) before anything is rendered.

Each case renders with `helm template` (the pinned helm v3) and asserts concrete fields of the
objects, or the exact error text.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tritonfil.collection import pins
from tritonfil.localenv.env import Tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "triton"
CI_VALUES = CHART / "ci" / "default-values.yaml"
REPO = "s3://tritonfil-models/models"
ROLE_ARN = "arn:aws:iam::123456789012:role/tritonfil-triton"
DIGEST = "sha256:" + "ab" * 32
SELECTOR = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "triton"}
# Kubernetes objects written in values as in the pod spec / HPA and rendered with toYaml: documented as
# one row each, typed loosely in the schema (their fields are the API server's business).
PASS_THROUGH = {
    "startupProbe",
    "livenessProbe",
    "readinessProbe",
    "resources",
    "topologySpreadConstraints",
    "autoscaling.behavior",
}


@pytest.fixture(scope="module")
def helm() -> str:
    return str(Tools().path("helm"))


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)


def write_values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def render(helm: str, tmp_path: Path):
    """Render the chart (release `triton`, namespace `triton`) with VALUES over the CI values;
    return the objects as a dict keyed by kind (lists of objects)."""

    def _render(values: dict[str, Any] | None = None, *extra: str) -> dict[str, list[dict]]:
        args = ["template", "triton", str(CHART), "--namespace", "triton", "-f", str(CI_VALUES)]
        if values:
            args += ["-f", str(write_values(tmp_path, values))]
        proc = run_helm(helm, *args, *extra)
        assert proc.returncode == 0, proc.stderr
        objects: dict[str, list[dict]] = {}
        for doc in yaml.safe_load_all(proc.stdout):
            if doc:
                objects.setdefault(doc["kind"], []).append(doc)
        return objects

    return _render


@pytest.fixture
def refuse(helm: str, tmp_path: Path):
    """Render expecting failure; return helm's stderr (and assert nothing was rendered)."""

    def _refuse(values: dict[str, Any] | None = None, *extra: str, ci_values: bool = True) -> str:
        args = ["template", "triton", str(CHART), "--namespace", "triton"]
        if ci_values:
            args += ["-f", str(CI_VALUES)]
        if values:
            args += ["-f", str(write_values(tmp_path, values))]
        proc = run_helm(helm, *args, *extra)
        assert proc.returncode != 0, proc.stdout
        assert proc.stdout == "", "helm rendered objects before failing"
        return proc.stderr

    return _refuse


def one(objects: dict[str, list[dict]], kind: str) -> dict:
    assert len(objects.get(kind, [])) == 1, f"expected one {kind}, got {sorted(objects)}"
    return objects[kind][0]


def server(objects: dict[str, list[dict]]) -> dict:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- lint and metadata --------------------------------------------------------------------------


def test_lint_strict_passes_with_ci_values(helm):
    proc = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(CI_VALUES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_lint_strict_of_the_bare_chart_passes_and_names_the_missing_model_repository(helm):
    # `make lint` runs `helm lint --strict helm/triton` without values: helm's lint mode reports a
    # `fail` guard as INFO and keeps linting the rest, so this passes but says what is missing.
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "modelRepository is required" in proc.stdout + proc.stderr


def test_chart_app_version_is_the_pinned_triton_release():
    """Helm cannot read scripts/versions.env: the appVersion is the one copy of TRITON_RELEASE, checked here."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "triton"
    assert chart["appVersion"] == pins()["TRITON_RELEASE"]
    assert f"{chart['appVersion']}-py3" == pins()["TRITON_IMAGE_TAG"]  # the chart's default tag is the pinned one
    assert chart["type"] == "application"


def test_values_schema_is_draft_07_and_closed_at_every_object_level():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}/{i}")

    walk(schema, "#")
    assert open_objects == []


def test_every_value_is_in_the_schema_and_documented_in_place_and_in_docs():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    text = (CHART / "values.yaml").read_text()
    docs = (ROOT / "docs" / "chart.md").read_text()

    def leaves(node: Any, schema_node: dict, prefix: str) -> list[str]:
        props = schema_node.get("properties")
        if isinstance(node, dict) and node and props and prefix.rstrip(".") not in PASS_THROUGH:
            out = []
            for key, child in node.items():
                assert key in props, f"{prefix}{key} is not in values.schema.json"
                out += leaves(child, props[key], f"{prefix}{key}.")
            return out
        return [prefix.rstrip(".")]

    keys = leaves(values, schema, "")
    assert len(keys) > 60
    assert set(keys) >= PASS_THROUGH
    undocumented = [k for k in keys if f"`{k}`" not in docs]
    assert undocumented == [], "values missing from the docs/chart.md table"
    # Every top-level key carries a `# --` comment (on itself or on its first child).
    assert text.count("# --") >= len(values)


# -- defaults -------------------------------------------------------------------------------------


def test_defaults_render_the_core_objects_only(render):
    objects = render()
    assert sorted(objects) == sorted(
        ["ServiceAccount", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Pod",
         "NetworkPolicy"]
    )  # fmt: skip
    for kinds in objects.values():
        for obj in kinds:
            assert obj["metadata"]["namespace"] == "triton"
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "triton"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/version"] == "26.02"
            assert labels["helm.sh/chart"] == "triton-0.3.0"


def test_default_args_use_explicit_model_control_and_load_every_model(render):
    container = server(render())
    assert container["image"] == "nvcr.io/nvidia/tritonserver:26.02-py3"
    assert container["args"] == [
        "tritonserver",
        f"--model-repository={REPO}",
        "--model-control-mode=explicit",
        "--load-model=*",
        "--strict-readiness=true",
        "--exit-timeout-secs=30",
        "--log-format=default",
        "--log-verbose=0",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
    ]


def test_listed_models_get_one_load_model_each_and_no_wildcard(render):
    args = server(render({"models": ["xgb_classifier", "lgb_multiclass", "sklearn_rf"]}))["args"]
    assert [a for a in args if a.startswith("--load-model")] == [
        "--load-model=xgb_classifier",
        "--load-model=lgb_multiclass",
        "--load-model=sklearn_rf",
    ]
    assert "--model-control-mode=explicit" in args


def test_exit_on_error_false_only_when_set_and_logging_and_extra_args(render):
    assert not any(a.startswith("--exit-on-error") for a in server(render())["args"])
    args = server(
        render(
            {
                "server": {
                    "exitOnError": False,
                    "exitTimeoutSeconds": 20,
                    "log": {"format": "ISO8601", "verbose": 1},
                    "extraArgs": ["--backend-config=fil,cpu_nthread=4"],
                }
            }
        )
    )["args"]
    assert "--exit-on-error=false" in args
    assert "--exit-timeout-secs=20" in args
    assert "--log-format=ISO8601" in args and "--log-verbose=1" in args
    assert args[-1] == "--backend-config=fil,cpu_nthread=4"


def test_probes_hit_triton_health_endpoints_with_a_startup_budget_for_the_s3_download(render):
    container = server(render())
    assert container["startupProbe"] == {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 60,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/v2/health/live", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
        "successThreshold": 1,
    }


def test_a_user_probe_block_replaces_the_default_and_keeps_fields_the_chart_never_modelled(render):
    liveness = {
        "tcpSocket": {"port": "grpc"},
        "initialDelaySeconds": 30,
        "periodSeconds": 20,
        "timeoutSeconds": 2,
        "failureThreshold": 6,
        "terminationGracePeriodSeconds": 45,
    }
    # httpGet: null deletes the default handler (helm merges the block over the default).
    container = server(render({"livenessProbe": {**liveness, "httpGet": None}}))
    assert container["livenessProbe"] == liveness
    # A partial block changes only what it names.
    readiness = server(render({"readinessProbe": {"periodSeconds": 2}}))["readinessProbe"]
    assert readiness == {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 2,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
        "successThreshold": 1,
    }
    # null removes a probe.
    assert "startupProbe" not in server(render({"startupProbe": None}))


def test_ports_env_and_graceful_drain(render):
    objects = render()
    container = server(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http", 8000),
        ("grpc", 8001),
        ("metrics", 8002),
    ]
    assert env_of(container) == {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    assert pod["terminationGracePeriodSeconds"] == 60


def test_gpu_and_cpu_memory_resources(render):
    assert server(render())["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "3", "memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    resources = server(render({"gpu": {"count": 2}, "resources": {"limits": {"cpu": None}}}))["resources"]
    assert resources == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": "2"},
    }


def test_a_resources_block_without_gpu_gets_nvidia_gpu_from_gpu_count(render):
    resources = {"requests": {"cpu": "500m", "memory": "2Gi", "ephemeral-storage": "20Gi"}, "limits": None}
    assert server(render({"resources": resources, "gpu": {"count": 4}}))["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi", "ephemeral-storage": "20Gi", "nvidia.com/gpu": "4"},
        "limits": {"nvidia.com/gpu": "4"},
    }
    # The same count written in resources is accepted (and not doubled).
    assert server(render({"resources": {"limits": {"nvidia.com/gpu": 1}}}))["resources"]["limits"] == {
        "cpu": "3",
        "memory": "8Gi",
        "nvidia.com/gpu": "1",
    }


def test_cpu_only_needs_no_gpu_toleration(render):
    objects = render({"gpu": {"count": 0}, "tolerations": []})
    resources = server(objects)["resources"]
    assert "nvidia.com/gpu" not in resources["requests"] and "nvidia.com/gpu" not in resources["limits"]
    assert "tolerations" not in one(objects, "Deployment")["spec"]["template"]["spec"]


def test_scheduling_defaults_tolerate_the_gpu_taint_and_spread_over_zones_and_hosts(render):
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    assert "nodeSelector" not in pod
    assert pod["topologySpreadConstraints"] == [
        {
            "topologyKey": key,
            "maxSkew": 1,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def test_a_topology_constraint_without_label_selector_gets_the_selector_labels(render):
    own = {
        "topologyKey": "topology.kubernetes.io/zone",
        "maxSkew": 1,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tritonfil"}},
        "matchLabelKeys": [],
    }
    bare = {
        "topologyKey": "kubernetes.io/hostname",
        "maxSkew": 2,
        "whenUnsatisfiable": "DoNotSchedule",
        "minDomains": 2,
    }
    pod = one(render({"topologySpreadConstraints": [bare, own]}), "Deployment")["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"] == [
        {**bare, "labelSelector": {"matchLabels": SELECTOR}, "matchLabelKeys": ["pod-template-hash"]},
        own,
    ]
    pod = one(render({"topologySpreadConstraints": []}), "Deployment")["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in pod


def test_instance_type_and_node_selector_merge(render):
    pod = one(render({"instanceType": "g4dn.xlarge", "nodeSelector": {"workload": "triton"}}), "Deployment")
    assert pod["spec"]["template"]["spec"]["nodeSelector"] == {
        "workload": "triton",
        "node.kubernetes.io/instance-type": "g4dn.xlarge",
    }


def test_hardened_security_context_and_writable_volumes(render):
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = server(objects)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {"tmp": "/tmp", "shm": "/dev/shm"}
    volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"]}
    assert volumes == {"tmp": {"sizeLimit": "10Gi"}, "shm": {"medium": "Memory", "sizeLimit": "1Gi"}}


def test_image_by_digest_ignores_the_tag(render):
    container = server(
        render(
            {
                "image": {
                    "repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tritonserver",
                    "tag": "26.02-py3",
                    "digest": DIGEST,
                }
            }
        )
    )
    assert container["image"] == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/tritonserver@{DIGEST}"


def test_service_ports_are_named_for_istio_protocol_selection(render):
    service = one(render(), "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"], p["appProtocol"]) for p in service["spec"]["ports"]] == [
        ("http", 8000, "http", "http"),
        ("grpc", 8001, "grpc", "grpc"),
        ("http-metrics", 8002, "metrics", "http"),
    ]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "triton"}


# -- credentials ----------------------------------------------------------------------------------


def test_irsa_annotation_from_values_and_no_secret(render):
    assert "annotations" not in one(render(), "ServiceAccount")["metadata"]
    objects = render({"serviceAccount": {"irsaRoleArn": ROLE_ARN}})
    sa = one(objects, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert sa["automountServiceAccountToken"] is False
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "triton"
    assert "Secret" not in objects
    assert not any(k.startswith("AWS_ACCESS") for k in env_of(server(objects)))


def test_static_credentials_create_a_secret_and_reference_it(render):
    creds = {"enabled": True, "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMIexample"}
    objects = render({"aws": {"staticCredentials": creds}})
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == "triton-aws"
    assert secret["data"] == {
        "AWS_ACCESS_KEY_ID": "QUtJQUlPU0ZPRE5ON0VYQU1QTEU=",
        "AWS_SECRET_ACCESS_KEY": "d0phbHJYVXRuRkVNSWV4YW1wbGU=",
    }
    env = env_of(server(objects))
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "triton-aws", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "triton-aws", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert env["AWS_SESSION_TOKEN"]["secretKeyRef"]["optional"] is True
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/aws-credentials"])


def test_static_credentials_from_an_existing_secret_create_none(render):
    objects = render({"aws": {"staticCredentials": {"enabled": True, "existingSecret": "s3-keys"}}})
    assert "Secret" not in objects
    assert env_of(server(objects))["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "s3-keys"


# -- autoscaling and disruption -------------------------------------------------------------------


def test_hpa_is_autoscaling_v2_with_behavior_and_cpu_and_the_deployment_leaves_replicas_to_it(render):
    objects = render()
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    assert spec["metrics"] == [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": "triton",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        }
    ]
    assert spec["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 2, "periodSeconds": 60},
            {"type": "Percent", "value": 100, "periodSeconds": 60},
        ],
    }
    assert spec["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
    }
    assert "replicas" not in one(objects, "Deployment")["spec"]


def test_hpa_behavior_passes_through_unchanged(render):
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 30,
            "selectPolicy": "Min",
            "tolerance": "0.05",
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 30}],
        },
        "scaleDown": {"stabilizationWindowSeconds": 600, "selectPolicy": "Disabled", "policies": []},
    }
    assert (
        one(render({"autoscaling": {"behavior": behavior}}), "HorizontalPodAutoscaler")["spec"]["behavior"] == behavior
    )
    # null leaves the Kubernetes defaults.
    assert "behavior" not in one(render({"autoscaling": {"behavior": None}}), "HorizontalPodAutoscaler")["spec"]


KEDA = {"autoscaling": {"engine": "keda", "keda": {"serverAddress": "http://prometheus.monitoring.svc:9090"}}}


def test_keda_renders_a_scaled_object_on_the_queue_time_and_no_hpa(render, tmp_path):
    objects = render(KEDA)
    assert "HorizontalPodAutoscaler" not in objects  # KEDA owns the HPA; two on one Deployment stop each other
    so = one(objects, "ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicasIfHigher"}
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus.monitoring.svc:9090"
    assert meta["threshold"] == "5000" and meta["ignoreNullValues"] == "true"
    # The query is the chart's file, rendered for the release (one source: tests read it from the ScaledObject).
    template = (CHART / "files" / "queue-time.promql").read_text().strip()
    expected = (
        template.replace("{{ .Release.Namespace }}", "triton").replace("{{ .Release.Name }}", "triton")
        .replace("{{ .Values.autoscaling.keda.window }}", "1m")
    )  # fmt: skip
    assert meta["query"] == expected
    assert meta["query"] == (
        'sum(rate(nv_inference_queue_duration_us{namespace="triton",release="triton"}[1m])) / '
        'sum(rate(nv_inference_request_success{namespace="triton",release="triton"}[1m]))'
    )
    # The Deployment sets no replica count (the autoscaler's choice survives upgrades).
    assert "replicas" not in one(objects, "Deployment")["spec"]


def test_keda_options_pausing_authentication_and_a_query_of_ones_own(render):
    so = one(
        render({"autoscaling": {"engine": "keda", "keda": {
            "serverAddress": "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1",
            "authenticationRef": "amp", "awsRegion": "us-east-1", "pausedReplicas": 0,
            "queueTimeTargetMicroseconds": 2500, "window": "2m",
            "query": 'sum(rate(my_queue_us{job="{{ .Release.Name }}"}[{{ .Values.autoscaling.keda.window }}]))',
        }}}),
        "ScaledObject",
    )  # fmt: skip
    assert so["metadata"]["annotations"] == {"autoscaling.keda.sh/paused-replicas": "0"}
    (trigger,) = so["spec"]["triggers"]
    assert trigger["authenticationRef"] == {"name": "amp"}
    assert trigger["metadata"]["awsRegion"] == "us-east-1" and trigger["metadata"]["threshold"] == "2500"
    assert trigger["metadata"]["query"] == 'sum(rate(my_queue_us{job="triton"}[2m]))'


def test_without_autoscaling_the_deployment_sets_replicas(render):
    objects = render({"autoscaling": {"enabled": False}, "replicaCount": 3})
    assert "HorizontalPodAutoscaler" not in objects
    assert one(objects, "Deployment")["spec"]["replicas"] == 3


def test_pdb_max_unavailable_by_default_min_available_on_request(render):
    pdb = one(render(), "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    pdb = one(render({"podDisruptionBudget": {"minAvailable": "50%", "maxUnavailable": None}}), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    assert "PodDisruptionBudget" not in render({"podDisruptionBudget": {"enabled": False}})


# -- Istio ----------------------------------------------------------------------------------------

ALLOWED_HTTP = [
    "/v2",
    "/v2/health/ready",
    "/v2/health/live",
    "/v2/models/xgb_classifier",
    "/v2/models/xgb_classifier/ready",
    "/v2/models/xgb_classifier/versions/1/infer",
    "/v2/models/xgb_classifier/config",
    "/v2/models/stats",
    "/v2/models/lgb_multiclass/infer",
]
DENIED_HTTP = [
    "/v2/repository/index",
    "/v2/repository/models/xgb_classifier/load",
    "/v2/repository/models/xgb_classifier/unload",
    "/v2/systemsharedmemory/status",
    "/v2/cudasharedmemory/region/r/register",
    "/v2/logging",
    "/v2/trace/setting",
    "/v2/models/xgb_classifier/trace/setting",
    "/metrics",
    "/",
]
GRPC = "/inference.GRPCInferenceService/"
ALLOWED_GRPC = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "ModelStreamInfer",
    "ModelConfig",
    "ModelStatistics",
]
DENIED_GRPC = [
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "SystemSharedMemoryRegister",
    "CudaSharedMemoryRegister",
    "LogSettings",
    "TraceSetting",
]


# The Gateway by default: HTTPS only, with the certificate of a Secret the user names.
ISTIO = {"enabled": True, "gateway": {"https": {"credentialName": "triton-tls"}}}


def test_istio_objects_only_when_enabled(render):
    objects = render()
    assert "Gateway" not in objects and "VirtualService" not in objects
    objects = render({"istio": ISTIO})
    gateway, vs = one(objects, "Gateway"), one(objects, "VirtualService")
    assert gateway["apiVersion"] == vs["apiVersion"] == "networking.istio.io/v1"
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    # HTTPS on 443 only (REST and gRPC over TLS): no plain HTTP listener unless asked for.
    assert gateway["spec"]["servers"] == [
        {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
         "tls": {"mode": "SIMPLE", "credentialName": "triton-tls", "minProtocolVersion": "TLSV1_2"}}
    ]  # fmt: skip
    assert vs["spec"]["gateways"] == ["triton/triton"]
    assert vs["spec"]["hosts"] == ["*"]


def test_virtual_service_routes_grpc_to_8001_and_http_to_8000_with_timeout_and_retries(render):
    routes = {r["name"]: r for r in one(render({"istio": ISTIO}), "VirtualService")["spec"]["http"]}
    assert list(routes) == ["grpc", "http"]
    host = "triton.triton.svc.cluster.local"
    assert routes["grpc"]["route"] == [{"destination": {"host": host, "port": {"number": 8001}}}]
    assert routes["http"]["route"] == [{"destination": {"host": host, "port": {"number": 8000}}}]
    for route in routes.values():
        assert route["timeout"] == "30s"
        assert route["retries"] == {
            "attempts": 2,
            "perTryTimeout": "10s",
            "retryOn": "connect-failure,refused-stream,unavailable,reset",
        }


def test_restricted_api_routes_inference_and_health_but_not_model_control(render):
    routes = {r["name"]: r for r in one(render({"istio": ISTIO}), "VirtualService")["spec"]["http"]}
    # Envoy matches a route regex (RE2) against the whole path; these patterns use no RE2-only syntax.
    grpc_re = re.compile(routes["grpc"]["match"][0]["uri"]["regex"])
    http_re = re.compile(routes["http"]["match"][0]["uri"]["regex"])
    assert [p for p in ALLOWED_HTTP if not http_re.fullmatch(p)] == []
    assert [p for p in DENIED_HTTP if http_re.fullmatch(p)] == []
    assert [m for m in ALLOWED_GRPC if not grpc_re.fullmatch(GRPC + m)] == []
    assert [m for m in DENIED_GRPC if grpc_re.fullmatch(GRPC + m)] == []
    assert not any(grpc_re.fullmatch(p) for p in ALLOWED_HTTP) and not any(
        http_re.fullmatch(GRPC + m) for m in ALLOWED_GRPC
    )


def test_unrestricted_api_routes_by_prefix_and_retries_can_be_off(render):
    values = {"istio": {**ISTIO, "virtualService": {"restrictApi": False, "retries": {"attempts": 0}}}}
    routes = {r["name"]: r for r in one(render(values), "VirtualService")["spec"]["http"]}
    assert routes["grpc"]["match"] == [{"uri": {"prefix": "/inference.GRPCInferenceService/"}}]
    assert routes["http"]["match"] == [{"uri": {"prefix": "/"}}]
    assert routes["http"]["retries"] == {"attempts": 0}


def test_existing_gateway_plain_http_and_tls_at_the_load_balancer(render):
    objects = render({"istio": {"enabled": True, "gateway": {"create": False, "existing": "istio-system/shared"}}})
    assert "Gateway" not in objects
    assert one(objects, "VirtualService")["spec"]["gateways"] == ["istio-system/shared"]
    # Plain HTTP only when enabled: served, or redirected to HTTPS.
    gateway = {"https": {"credentialName": "triton-cert"}, "http": {"enabled": True}}
    servers = one(render({"istio": {"enabled": True, "gateway": gateway}}), "Gateway")["spec"]["servers"]
    assert [s["port"]["name"] for s in servers] == ["https", "http"] and "tls" not in servers[1]
    gateway["http"]["httpsRedirect"] = True
    servers = one(render({"istio": {"enabled": True, "gateway": gateway}}), "Gateway")["spec"]["servers"]
    assert servers[1] == {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"],
                          "tls": {"httpsRedirect": True}}  # fmt: skip
    # TLS at an NLB with an ACM certificate: the gateway gets plain HTTP on 443 from it, no Secret.
    at_lb = {"https": {"termination": "loadBalancer"}, "hosts": ["triton.example.com"]}
    servers = one(render({"istio": {"enabled": True, "gateway": at_lb}}), "Gateway")["spec"]["servers"]
    assert servers == [{"port": {"number": 443, "name": "https-terminated-at-lb", "protocol": "HTTP"},
                        "hosts": ["triton.example.com"]}]  # fmt: skip
    # The local environment's setting: plain HTTP only.
    local = {"https": {"enabled": False}, "http": {"enabled": True}}
    servers = one(render({"istio": {"enabled": True, "gateway": local}}), "Gateway")["spec"]["servers"]
    assert servers == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]


# -- monitoring, network policy, helm test ---------------------------------------------------------


def test_monitors_only_when_enabled(render):
    objects = render()
    assert "PodMonitor" not in objects and "ServiceMonitor" not in objects
    pm = one(render({"metrics": {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}}), "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["labels"]["release"] == "kps"
    # The `release` label the queue-time query (autoscaling.keda) selects on, from the pods' instance label.
    release = [{"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"], "targetLabel": "release"}]
    assert pm["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s", "relabelings": release}
    ]
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["triton"]}
    objects = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    assert "PodMonitor" not in objects
    assert one(objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert one(objects, "ServiceMonitor")["spec"]["endpoints"][0]["relabelings"] == release


def test_network_policy_by_default_admits_the_gateway_and_the_scraper_and_egresses_to_dns_and_https(render):
    assert "NetworkPolicy" not in render({"networkPolicy": {"enabled": False}})
    policies = {p["metadata"]["name"]: p["spec"] for p in render()["NetworkPolicy"]}
    assert sorted(policies) == ["triton", "triton-test"]
    server_policy = policies["triton"]
    assert server_policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "triton"}
    }
    assert server_policy["policyTypes"] == ["Ingress", "Egress"]
    inference, test_pod, metrics = server_policy["ingress"]
    assert [p["port"] for p in inference["ports"]] == ["http", "grpc"]
    # Only the ingress gateway's pods (both selectors in one peer: pods with that label in that namespace).
    assert inference["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
         "podSelector": {"matchLabels": {"istio": "ingressgateway"}}},
    ]  # fmt: skip
    assert test_pod == {
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "triton-test",
                                                  "app.kubernetes.io/instance": "triton"}}}],
        "ports": [{"port": "http", "protocol": "TCP"}],
    }  # fmt: skip
    dns, https, istiod = server_policy["egress"]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]  # fmt: skip
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    # S3 and STS over HTTPS, but not the instance metadata service (link-local).
    assert https == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}],
                     "ports": [{"port": 443, "protocol": "TCP"}]}  # fmt: skip
    assert istiod["ports"] == [{"port": 15012, "protocol": "TCP"}]
    extra = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"port": 9000, "protocol": "TCP"}]}]
    rendered = render({"networkPolicy": {"egress": {"istiod": False, "extra": extra}}})["NetworkPolicy"]
    egress = next(p for p in rendered if p["metadata"]["name"] == "triton")["spec"]["egress"]
    assert egress[2:] == extra and len(egress) == 3
    assert metrics == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"port": "metrics", "protocol": "TCP"}],
    }
    # The helm test pod admits nothing.
    assert policies["triton-test"] == {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "triton-test", "app.kubernetes.io/instance": "triton"}
        },
        "policyTypes": ["Ingress"],
        "ingress": [],
    }


def test_helm_test_pod_curls_readiness_on_the_service_and_is_not_a_server_endpoint(render):
    objects = render({"image": {"digest": DIGEST}})
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"][0] == "curl" and "--fail" in container["command"]
    assert container["command"][-1] == "http://triton.triton.svc.cluster.local:8000/v2/health/ready"
    assert container["image"] == f"nvcr.io/nvidia/tritonserver@{DIGEST}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["restartPolicy"] == "Never"
    selector = one(objects, "Service")["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()


# -- refusals: schema (before rendering) and guards -----------------------------------------------


def test_schema_rejects_a_wrong_type_naming_the_key(refuse):
    err = refuse(None, "--set", "autoscaling.minReplicas=two")
    assert "values don't meet the specifications of the schema" in err
    assert "at '/autoscaling/minReplicas': got string, want integer" in err


def test_schema_rejects_an_unknown_key_naming_it(refuse):
    err = refuse({"autoscaling": {"maxReplica": 8}})
    assert "at '/autoscaling': additional properties 'maxReplica' not allowed" in err
    err = refuse({"gpus": 1})
    assert "at '': additional properties 'gpus' not allowed" in err


def test_min_replicas_above_max_fails_naming_both_keys(refuse):
    err = refuse(None, "--set", "autoscaling.minReplicas=5", "--set", "autoscaling.maxReplicas=2")
    assert "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (2)" in err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"modelRepository": "/models"}, "at '/modelRepository': '/models' does not match pattern"),
        ({"image": {"digest": "sha256:short"}}, "at '/image/digest'"),
        ({"models": ["a", "a"]}, "at '/models'"),
        ({"models": ["*"]}, "at '/models/0'"),
        ({"serviceAccount": {"irsaRoleArn": "role/triton"}}, "at '/serviceAccount/irsaRoleArn'"),
        ({"service": {"grpcPort": 70000}}, "at '/service/grpcPort'"),
        (
            {"autoscaling": {"behavior": {"scaleup": {"selectPolicy": "Max"}}}},
            "at '/autoscaling/behavior': additional properties 'scaleup' not allowed",
        ),
        (
            {"autoscaling": {"behavior": {"scaleUp": "fast"}}},
            "at '/autoscaling/behavior/scaleUp': got string, want object",
        ),
        ({"resources": {"limits": {"memory": "8 GB"}}}, "at '/resources/limits/memory'"),
        ({"resources": {"limit": {"cpu": "1"}}}, "at '/resources': additional properties 'limit' not allowed"),
        ({"livenessProbe": "/v2/health/live"}, "at '/livenessProbe': got string, want object"),
        (
            {"topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname"}]},
            "at '/topologySpreadConstraints/0'",
        ),
        # The keys chart 0.1.0 had fail loudly rather than being ignored.
        ({"probes": {"startup": {"failureThreshold": 90}}}, "at '': additional properties 'probes' not allowed"),
        ({"topologySpread": {"enabled": False}}, "at '': additional properties 'topologySpread' not allowed"),
        ({"securityContext": {"runAsUser": "root"}}, "at '/securityContext/runAsUser': got string, want integer"),
    ],
)
def test_schema_rejects_bad_values(refuse, values, message):
    assert message in refuse(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"aws": {"staticCredentials": {"enabled": True}}},
            "aws.staticCredentials.enabled is true but aws.staticCredentials.accessKeyId and "
            "aws.staticCredentials.secretAccessKey are not both set",
        ),
        (
            {
                "aws": {
                    "staticCredentials": {
                        "enabled": True,
                        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                        "secretAccessKey": "x",
                    }
                },
                "serviceAccount": {"irsaRoleArn": ROLE_ARN},
            },
            "aws.staticCredentials.enabled together with serviceAccount.irsaRoleArn",
        ),
        (
            {"aws": {"staticCredentials": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE"}}},
            "aws.staticCredentials holds keys or existingSecret but aws.staticCredentials.enabled is false",
        ),
        (
            {"aws": {"staticCredentials": {"enabled": True, "existingSecret": "k", "secretAccessKey": "x"}}},
            "aws.staticCredentials: set either existingSecret or accessKeyId/secretAccessKey/sessionToken, not both",
        ),
        ({"gpu": {"count": 0}}, "gpu.count is 0 but tolerations tolerate the nvidia.com/gpu taint"),
        (
            {"gpu": {"count": 0}, "tolerations": [], "instanceType": "g4dn.xlarge"},
            'gpu.count is 0 but instanceType pins "g4dn.xlarge"',
        ),
        (
            {"resources": {"limits": {"nvidia.com/gpu": 2}}},
            "resources.limits sets nvidia.com/gpu to 2 but gpu.count is 1: the chart puts gpu.count into requests and "
            "limits; set the GPU count in gpu.count and remove nvidia.com/gpu from resources",
        ),
        (
            {"gpu": {"count": 0}, "tolerations": [], "resources": {"requests": {"nvidia.com/gpu": "1"}}},
            "resources.requests sets nvidia.com/gpu to 1 but gpu.count is 0",
        ),
        (
            {"livenessProbe": {"exec": {"command": ["true"]}}},
            "livenessProbe has 2 handlers (exec, httpGet) and Kubernetes allows one: helm merges your "
            "livenessProbe over the chart's default (httpGet), so set the ones you do not want to null, "
            "e.g. livenessProbe.httpGet: null",
        ),
        (
            {"readinessProbe": {"httpGet": None}},
            "readinessProbe has no handler: set one of exec, grpc, httpGet, tcpSocket, or readinessProbe: null to "
            "remove the probe",
        ),
        (
            {"preStopSleepSeconds": 40},
            "terminationGracePeriodSeconds (60) must exceed preStopSleepSeconds (40) + server.exitTimeoutSeconds (30)",
        ),
        (
            {"server": {"extraArgs": ["--model-control-mode=poll"]}},
            'server.extraArgs: "--model-control-mode=poll" is set by the chart',
        ),
        (
            {"autoscaling": {"targetCPUUtilizationPercentage": None}},
            "autoscaling.engine hpa needs autoscaling.targetCPUUtilizationPercentage",
        ),
        (
            {"autoscaling": {"engine": "keda"}},
            "autoscaling.engine keda needs autoscaling.keda.serverAddress",
        ),
        (
            {"autoscaling": {"engine": "keda", "minReplicas": 0, "keda": {"serverAddress": "http://p:9090"}}},
            "autoscaling.minReplicas must be at least 1 with autoscaling.engine keda",
        ),
        (
            {"podDisruptionBudget": {"minAvailable": 1}},
            "set only one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable",
        ),
        (
            {"podDisruptionBudget": {"maxUnavailable": None}},
            "podDisruptionBudget.enabled needs podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable",
        ),
        (
            {"istio": {"enabled": True, "gateway": {"create": False}}},
            "istio.gateway.create is false: name the gateway to attach to in istio.gateway.existing",
        ),
        (
            {"istio": {"enabled": True}},
            "istio.gateway.https.termination gateway needs istio.gateway.https.credentialName",
        ),
        (
            {"istio": {"enabled": True, "gateway": {"https": {"enabled": False}}}},
            "istio.gateway: neither istio.gateway.https.enabled nor istio.gateway.http.enabled",
        ),
        (
            {"istio": {"enabled": True, "gateway": {"https": {"termination": "loadBalancer", "credentialName": "x"}}}},
            "istio.gateway.https.credentialName is set but termination is loadBalancer",
        ),
        (
            {
                "istio": {
                    "enabled": True,
                    "gateway": {"https": {"enabled": False}, "http": {"enabled": True, "httpsRedirect": True}},
                }
            },
            "istio.gateway.http.httpsRedirect needs istio.gateway.https.enabled",
        ),
        (
            {"metrics": {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}},
            "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled: enable one",
        ),
        (
            {"serviceAccount": {"irsaRoleArn": ROLE_ARN, "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}}},
            "serviceAccount.annotations sets eks.amazonaws.com/role-arn",
        ),
    ],
)
def test_guards_refuse_impossible_combinations(refuse, values, message):
    assert message in refuse(values)


def test_no_model_repository_fails_with_the_fix(refuse):
    err = refuse(None, ci_values=False)
    assert (
        "modelRepository is required: the S3 location of the Triton model repository, "
        "e.g. --set modelRepository=s3://BUCKET/PREFIX" in err
    )
