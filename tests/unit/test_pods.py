"""tritonfil.localenv.pods: which pods are process-backed, the exact tritonserver command line a pod's container
becomes (S3 endpoint, loopback ports, KIND_GPU models loaded as KIND_CPU after start), the pod's IRSA
credentials from moto's STS and its model configs from moto's S3 (both in process)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tritonfil.localenv import pods

ROOT = Path(__file__).resolve().parents[2]
BINARY = "/venv/lib/python3.11/site-packages/pytriton/tritonserver/bin/tritonserver"
BACKENDS = "/state/pods/backends"
PORTS = {"http": 41001, "grpc": 41002, "metrics": 41003}
ENDPOINT = "http://127.0.0.1:5077"


def chart_args(*, load=("*",), exit_on_error=True, extra=(), repository="s3://b/p"):
    """The container args helm/triton/templates/deployment.yaml renders."""
    return [
        "tritonserver",
        f"--model-repository={repository}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in load),
        "--strict-readiness=true",
        *([] if exit_on_error else ["--exit-on-error=false"]),
        "--exit-timeout-secs=30",
        "--log-format=default",
        "--log-verbose=0",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
        *extra,
    ]


def translate(argv, **kwargs):
    return pods.translate(argv, binary=BINARY, backend_dir=BACKENDS, ports=PORTS, s3_endpoint=ENDPOINT, **kwargs)


LOOPBACK = [
    "--http-port=41001", "--grpc-port=41002", "--metrics-port=41003",
    "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
]  # fmt: skip
KEPT = [
    "--model-control-mode=explicit", "--strict-readiness=true", "--exit-timeout-secs=30", "--log-format=default",
    "--log-verbose=0",
]  # fmt: skip
HEAD = [BINARY, "--model-repository=s3://http://127.0.0.1:5077/b/p", f"--backend-directory={BACKENDS}"]


def config(name, kind="KIND_GPU", gpus=None):
    group = {"count": 2, "kind": kind}
    if gpus is not None:
        group["gpus"] = gpus
    return {
        "name": name,
        "backend": "fil",
        "max_batch_size": 32768,
        "input": [{"name": "input__0", "data_type": "TYPE_FP32", "dims": ["16"]}],
        "output": [{"name": "output__0", "data_type": "TYPE_FP32", "dims": ["1"]}],
        "instance_group": [group],
        "dynamic_batching": {"max_queue_delay_microseconds": "100"},
        "parameters": {"model_type": {"string_value": "xgboost_json"}, "predict_proba": {"string_value": "false"}},
    }


# -- which pods ---------------------------------------------------------------------------------------------
def pod(*containers):
    return {"metadata": {"name": "p", "namespace": "triton"}, "spec": {"containers": list(containers)}}


def test_server_container_by_args():
    server = {"name": "tritonserver", "image": "nvcr.io/nvidia/tritonserver:26.02-py3", "args": chart_args()}
    sidecar = {"name": "istio-proxy", "image": "istio/proxyv2", "args": ["proxy", "sidecar"]}
    p = pod(sidecar, server)
    assert pods.server_container(p) is server
    assert pods.is_process_backed(p) is True


def test_server_container_by_command():
    server = {
        "name": "triton",
        "command": ["/opt/tritonserver/bin/tritonserver"],
        "args": ["--model-repository=s3://b/p"],
    }
    assert pods.server_container(pod(server)) is server
    assert pods.is_process_backed(pod(server)) is True


@pytest.mark.parametrize(
    "container",
    [
        {"name": "curl", "image": "curlimages/curl", "command": ["curl"], "args": ["-sf", "http://triton:8000/v2"]},
        {"name": "test", "image": "curlimages/curl", "args": ["curl", "http://tritonserver:8000/v2/health/ready"]},
        {"name": "sh", "image": "busybox", "command": ["sh", "-c", "tritonserver --model-repository=/m"]},
        {"name": "empty", "image": "busybox"},
        {"name": "lookalike", "command": ["/opt/bin/tritonserver-wrapper"]},
    ],
)
def test_not_process_backed(container):
    assert pods.server_container(pod(container)) is None
    assert pods.is_process_backed(pod(container)) is False
    assert pods.is_process_backed({"metadata": {"name": "x"}, "spec": {}}) is False


# -- translate ------------------------------------------------------------------------------------------------
def test_translate_chart_args_without_gpu_models():
    extra = ["--model-load-thread-count=2", "--grpc-port=9001", "--rate-limit=off"]
    plan = translate(chart_args(extra=extra))
    assert plan.argv == [*HEAD, "--load-model=*", *LOOPBACK, *KEPT, "--model-load-thread-count=2", "--rate-limit=off"]
    assert plan.repository == "s3://b/p"
    assert plan.local_repository == "s3://http://127.0.0.1:5077/b/p"
    assert plan.control_mode == "explicit"
    assert plan.startup_models == ["*"]
    assert plan.override_models == {}
    assert plan.exit_on_error is True


def test_translate_named_models_in_order():
    plan = translate(chart_args(load=("xgb_regressor", "lgb_multiclass")))
    assert plan.argv == [*HEAD, "--load-model=xgb_regressor", "--load-model=lgb_multiclass", *LOOPBACK, *KEPT]
    assert plan.startup_models == ["xgb_regressor", "lgb_multiclass"]


def test_translate_exit_on_error_false_is_detected_and_kept():
    plan = translate(chart_args(exit_on_error=False))
    assert plan.exit_on_error is False
    assert plan.argv == [
        *HEAD, "--load-model=*", *LOOPBACK, "--model-control-mode=explicit", "--strict-readiness=true",
        "--exit-on-error=false", "--exit-timeout-secs=30", "--log-format=default", "--log-verbose=0",
    ]  # fmt: skip


def test_translate_replaces_pod_addresses_and_backend_dir_in_both_forms():
    extra = ["--http-address", "0.0.0.0", "--backend-directory=/opt/tritonserver/backends", "--log-info=true"]
    plan = translate(chart_args(extra=extra))
    assert plan.argv == [*HEAD, "--load-model=*", *LOOPBACK, *KEPT, "--log-info=true"]


def test_translate_gpu_models_loaded_after_start_as_cpu():
    configs = {
        "lgb_multiclass": config("lgb_multiclass", "KIND_CPU"),
        "sklearn_rf": config("sklearn_rf", "KIND_CPU"),
        "xgb_classifier": config("xgb_classifier", gpus=[0]),
        "xgb_regressor": config("xgb_regressor"),
    }
    original = copy.deepcopy(configs)
    plan = translate(
        chart_args(load=("xgb_classifier", "sklearn_rf", "xgb_regressor")),
        gpu_models=["xgb_classifier", "xgb_regressor"],
        configs=configs,
    )
    assert plan.argv == [*HEAD, "--load-model=sklearn_rf", *LOOPBACK, *KEPT]
    assert plan.startup_models == ["sklearn_rf"]
    assert sorted(plan.override_models) == ["xgb_classifier", "xgb_regressor"]
    for name in ("xgb_classifier", "xgb_regressor"):
        expected = copy.deepcopy(original[name])
        expected["instance_group"] = [{"count": 2, "kind": "KIND_CPU"}]
        assert plan.override_models[name] == expected
    assert configs == original


def test_translate_load_all_is_expanded_when_gpu_models_are_left_out():
    configs = {
        "lgb_multiclass": config("lgb_multiclass", "KIND_CPU"),
        "sklearn_rf": config("sklearn_rf", "KIND_CPU"),
        "xgb_classifier": config("xgb_classifier"),
    }
    plan = translate(chart_args(), gpu_models=["xgb_classifier"], configs=configs)
    assert plan.argv == [*HEAD, "--load-model=lgb_multiclass", "--load-model=sklearn_rf", *LOOPBACK, *KEPT]
    assert plan.startup_models == ["lgb_multiclass", "sklearn_rf"]
    assert list(plan.override_models) == ["xgb_classifier"]
    assert plan.override_models["xgb_classifier"]["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]


def test_translate_every_model_gpu_starts_with_none():
    configs = pods.read_local_configs(ROOT / "model_repository")
    plan = translate(chart_args(), gpu_models=pods.gpu_models(configs), configs=configs)
    assert plan.argv == [*HEAD, *LOOPBACK, *KEPT]
    assert plan.startup_models == []
    assert sorted(plan.override_models) == ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
    assert all([g["kind"] for g in c["instance_group"]] == ["KIND_CPU"] for c in plan.override_models.values())


@pytest.mark.parametrize("mode", ["none", "poll"])
def test_translate_refuses_gpu_models_without_explicit_control(mode):
    argv = [a if not a.startswith("--model-control-mode") else f"--model-control-mode={mode}" for a in chart_args()]
    with pytest.raises(pods.RunnerError) as caught:
        translate(argv, gpu_models=["xgb_classifier", "xgb_regressor"], configs={})
    assert str(caught.value) == (
        f"models xgb_classifier, xgb_regressor have KIND_GPU instance groups and --model-control-mode is {mode}: the"
        " local environment can load them on CPU only through explicit model control (docs/local-environment.md)"
    )


def test_translate_default_control_mode_refused_too():
    argv = ["tritonserver", "--model-repository=s3://b/p"]
    with pytest.raises(pods.RunnerError, match="--model-control-mode is none:"):
        translate(argv, gpu_models=["xgb_classifier"], configs={})


def test_translate_command_form_and_not_a_server():
    plan = translate(["/opt/tritonserver/bin/tritonserver", "--model-repository=s3://b/p"])
    assert plan.argv == [*HEAD, *LOOPBACK]
    assert plan.control_mode == "none"
    with pytest.raises(pods.RunnerError) as caught:
        translate(["curl", "-sf", "http://triton:8000"])
    assert str(caught.value) == "not a tritonserver command line: ['curl']"


def test_translate_needs_one_repository():
    with pytest.raises(pods.RunnerError) as caught:
        translate(["tritonserver", "--model-repository=s3://a/x", "--model-repository=s3://b/y"])
    assert str(caught.value) == "expected one --model-repository, got ['s3://a/x', 's3://b/y']"


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("s3://b/p", "s3://http://127.0.0.1:5077/b/p"),
        ("s3://bucket", "s3://http://127.0.0.1:5077/bucket"),
        ("s3://http://127.0.0.1:9000/b/p", "s3://http://127.0.0.1:9000/b/p"),
        ("s3://https://s3.example.com:443/b/p", "s3://https://s3.example.com:443/b/p"),
        ("/models", "/models"),
    ],
)
def test_s3_repository(uri, local):
    assert pods.s3_repository(uri, ENDPOINT + "/") == local


def test_cpu_config_does_not_modify_its_input():
    original = config("xgb_classifier", gpus=[0, 1])
    original["instance_group"].append({"count": 1, "kind": "KIND_CPU"})
    before = copy.deepcopy(original)
    out = pods.cpu_config(original)
    assert original == before
    assert out["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}, {"count": 1, "kind": "KIND_CPU"}]
    assert {k: v for k, v in out.items() if k != "instance_group"} == {
        k: v for k, v in before.items() if k != "instance_group"
    }


# -- credentials ----------------------------------------------------------------------------------------------
def _b64url(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_web_identity_token():
    token = pods.web_identity_token("triton", "triton-models")
    parts = token.split(".")
    assert len(parts) == 3
    assert all(parts) and all("=" not in p for p in parts)
    assert _b64url(parts[0]) == {"alg": "RS256", "typ": "JWT"}
    claims = _b64url(parts[1])
    assert claims["sub"] == "system:serviceaccount:triton:triton-models"
    assert claims["aud"] == ["sts.amazonaws.com"]
    assert claims["exp"] - claims["iat"] == 86400


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        yield


TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.local.tritonfil"},
            "Action": "sts:AssumeRoleWithWebIdentity",
        }
    ],
}


def test_irsa_credentials(aws):
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="triton-models-read", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    sts = boto3.client("sts", region_name="us-east-1")
    creds = pods.irsa_credentials(sts, role, "triton", "triton", "triton-7d9f8c6b5-abcde")
    assert sorted(creds) == ["AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    assert creds["AWS_ROLE_ARN"] == role == "arn:aws:iam::123456789012:role/triton-models-read"
    assert creds["AWS_ACCESS_KEY_ID"] not in ("", "testing")
    assert creds["AWS_SECRET_ACCESS_KEY"] not in ("", "testing")
    assert creds["AWS_SESSION_TOKEN"]
    # The temporary keys are the role's: STS says so when asked with them.
    assumed = boto3.client(
        "sts", region_name="us-east-1", aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"], aws_session_token=creds["AWS_SESSION_TOKEN"],
    ).get_caller_identity()  # fmt: skip
    assert assumed["Arn"] == "arn:aws:sts::123456789012:assumed-role/triton-models-read/triton-7d9f8c6b5-abcde"


# -- model configs --------------------------------------------------------------------------------------------
def test_read_local_configs_of_the_model_repository():
    configs = pods.read_local_configs(ROOT / "model_repository")
    assert sorted(configs) == ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
    assert pods.gpu_models(configs) == ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
    assert configs["xgb_classifier"]["backend"] == "fil"
    assert configs["xgb_classifier"]["name"] == "xgb_classifier"
    assert configs["lgb_multiclass"]["output"][0]["dims"] == ["4"]


def test_gpu_models_only_those_with_a_gpu_group():
    assert pods.gpu_models({"a": config("a", "KIND_CPU"), "b": config("b"), "c": {"name": "c"}}) == ["b"]


def test_read_configs_from_s3(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="tritonfil-models")
    for name in ("xgb_classifier", "lgb_multiclass"):
        source = ROOT / "model_repository" / name
        s3.put_object(
            Bucket="tritonfil-models",
            Key=f"models/rev-1/{name}/config.pbtxt",
            Body=(source / "config.pbtxt").read_bytes(),
        )
        s3.put_object(Bucket="tritonfil-models", Key=f"models/rev-1/{name}/1/model.bin", Body=b"\0")
    s3.put_object(Bucket="tritonfil-models", Key="models/rev-1/no_config/1/model.bin", Body=b"\0")  # skipped
    s3.put_object(Bucket="tritonfil-models", Key="models/rev-0/sklearn_rf/config.pbtxt", Body=b'name: "sklearn_rf"')
    configs = pods.read_configs(s3, "s3://tritonfil-models/models/rev-1/")
    assert configs == {
        name: local
        for name, local in pods.read_local_configs(ROOT / "model_repository").items()
        if name in ("xgb_classifier", "lgb_multiclass")
    }
    assert configs["xgb_classifier"]["instance_group"] == [{"count": 1, "kind": "KIND_GPU"}]
    assert pods.gpu_models(configs) == ["lgb_multiclass", "xgb_classifier"]


def test_ready_nodes_are_those_whose_ready_condition_is_true():
    def node(name: str, *conditions: tuple[str, str]) -> dict:
        status = {"conditions": [{"type": t, "status": s} for t, s in conditions]} if conditions else {}
        return {"metadata": {"name": name}, "status": status}

    nodes = [
        node("joined", ("MemoryPressure", "False"), ("Ready", "True")),
        node("joining", ("Ready", "False")),
        node("just-created"),  # Karpenter's node before its kubelet (kwok's stage) reports anything
        {"metadata": {"name": "no-status"}},
        node("unknown", ("Ready", "Unknown")),
    ]
    assert pods.Runner.ready_nodes(nodes) == {"joined"}
    assert pods.condition_true(nodes[0]) and not pods.condition_true(nodes[0], "MemoryPressure")
    assert not pods.condition_true({"status": {"conditions": None}})
