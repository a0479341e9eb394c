"""Role tritonfil.eks.istio through ansible-playbook against the local kwok cluster.

One module-scoped cluster (2 tainted GPU nodes + an untainted `system` node, loopback only). In order: the
local istioctl (a master snapshot, not a release) is refused unless allowed; check mode on the fresh cluster
plans the install and creates nothing; the install applies the manifest of `istioctl manifest generate`,
istiod and the ingress gateway become Available on the system node, the gateway fact is the Service's
in-cluster DNS name (no load balancer controller here); a second run and check mode report changed=0; the
Triton chart's Gateway and VirtualService can be created (Istio's validating webhook fails open); with
sidecar injection on, the role reports that the API server cannot reach the injector webhook and leaves the
namespace unlabelled; teardown (check mode first) removes everything and a second teardown is changed=0.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.playbook_run import Run, run_role
from tritonfil.localenv.env import LocalEnv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "triton-it"
SYSTEM = {"tritonfil.io/node-role": "system"}
GATEWAY_DNS = "istio-ingressgateway.istio-system.svc.cluster.local"
ISSUER = "https://tritonfil.test/issuer"
# A public key only (RS256; nothing signs with it here: no Envoy data plane enforces the policy locally).
JWKS = yaml.safe_load((ROOT / "inventory/local/group_vars/all/main.yml").read_text())["istio_gateway_jwt_jwks"]
TLS_SECRET = "triton-tls"


@dataclass
class Env:
    local: LocalEnv
    work: Path
    count: int = 0

    def variables(self, **extra: Any) -> dict[str, Any]:
        return {
            "istio_istioctl_allow_dev_build": True,
            "istio_node_selector": SYSTEM,
            "istio_triton_namespace": NAMESPACE,
            "istio_sidecar_injection": False,
            "istio_gateway_wait_for_address": False,
            "istio_wait_timeout": 120,
            "istio_gateway_jwt_issuer": ISSUER,
            "istio_gateway_jwt_jwks": JWKS,
            "istio_gateway_jwt_audiences": ["tritonfil"],
            **extra,
        }

    def run(self, variables: dict[str, Any], *args: str, teardown: bool = False, tasks_from: str = "") -> Run:
        self.count += 1
        work = self.work / f"run{self.count}"
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        run = run_role(
            "istio", work, variables, env, *args, path=[str(self.local.tools.bin_dir)],
            kubeconfig=str(self.local.kubeconfig), tasks_from=tasks_from or ("teardown" if teardown else "main"),
        )  # fmt: skip
        (work / "output.json").write_text(run.output)  # for a failure's post-mortem
        return run

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.local.kubectl(*args, input_text=input_text, check=check)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def exists(self, *args: str) -> bool:
        return self.kubectl("get", *args, check=False).returncode == 0

    def names(self, kind: str, *args: str) -> list[str]:
        out = self.kubectl("get", kind, *args, "-o", "name").stdout.split()
        return [n.split("/", 1)[1] for n in out]


def slowest(run: Run, count: int = 5) -> str:
    """The COUNT slowest tasks of RUN with their seconds (from the JSON callback's durations)."""
    try:
        plays = json.JSONDecoder().raw_decode(run.output)[0]["plays"]
    except (ValueError, KeyError):
        return "?"
    times = []
    for task in (t for p in plays for t in p["tasks"]):
        d = task["task"].get("duration", {})
        if d.get("start") and d.get("end"):
            start, end = (datetime.fromisoformat(d[k].replace("Z", "+00:00")) for k in ("start", "end"))
            times.append(((end - start).total_seconds(), task["task"]["name"].split(" : ", 1)[-1]))
    return ", ".join(f"{name} {secs:.1f}s" for secs, name in sorted(times, reverse=True)[:count])


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


def available(env: Env, name: str) -> bool:
    conditions = env.get("deployment", "-n", "istio-system", name)["status"].get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[Env]:
    local = LocalEnv(state_dir=tmp_path_factory.mktemp("istio-env"), nodes=2)
    local.up(components=("cluster",))
    try:
        e = Env(local, tmp_path_factory.mktemp("istio-runs"))
        if not e.names("nodes", "-l", "tritonfil.io/node-role=system"):
            from tritonfil.localenv import nodes

            node = nodes.system_node(0, "tritonfil", "us-east-1")
            e.kubectl("apply", "-f", "-", input_text=json.dumps(node))
        yield e
    finally:
        local.down()


def test_development_istioctl_is_refused_unless_allowed(env: Env):
    run = env.run(env.variables(istio_istioctl_allow_dev_build=False))
    assert run.rc != 0
    version = json.loads(
        subprocess.run(
            [str(env.local.tools.bin_dir / "istioctl"), "version", "--remote=false", "-o", "json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )["clientVersion"]["version"]  # fmt: skip
    assert run.failure == (
        f"istio_istioctl_path: 'istioctl' is istioctl {version} (a development build) but istio_version is 1.28.0: "
        "install istioctl 1.28.0, or set istio_istioctl_allow_dev_build: true to render the manifest with this build"
    ), run.tail()
    assert not run.ran("Render the manifest (istioctl manifest generate)")
    assert not env.exists("namespace", "istio-system")


def test_check_mode_on_a_fresh_cluster_plans_and_creates_nothing(env: Env):
    run = env.run(env.variables(), "--check", "--diff")
    assert_ok(run)
    assert run.result("Ensure the Istio namespace")["changed"] is True
    assert run.result("Apply the Istio CRDs")["changed"] is True
    assert run.result("Apply the cluster-scoped Istio objects")["changed"] is True
    predicted = run.result("Predict the namespaced Istio objects (check mode, new namespace)")["msg"]
    assert "Deployment/istiod" in predicted and "Deployment/istio-ingressgateway" in predicted, predicted
    assert not env.exists("namespace", "istio-system")
    assert [n for n in env.names("crd") if n.endswith(".istio.io")] == []
    assert not env.exists("mutatingwebhookconfiguration", "istio-sidecar-injector")


@pytest.fixture(scope="module")
def installed(env: Env) -> dict[str, Run]:
    first = env.run(env.variables())
    second = env.run(env.variables())
    check = env.run(env.variables(), "--check", "--diff")
    print(f"istio install, slowest tasks: {slowest(first)}")
    print(f"istio: install {first.seconds:.0f}s, idempotent rerun {second.seconds:.0f}s, check {check.seconds:.0f}s")
    return {"first": first, "second": second, "check": check}


def test_install_then_rerun_changes_nothing(env: Env, installed: dict[str, Run]):
    first, second, check = installed["first"], installed["second"], installed["check"]
    assert_ok(first)
    assert first.recap.get("changed", 0) >= 4, first.tail()
    assert_ok(second)
    assert second.recap.get("changed") == 0, second.tail()
    assert_ok(check)
    assert check.recap.get("changed") == 0, check.tail()
    crds = [n for n in env.names("crd") if n.endswith(".istio.io")]
    assert {"gateways.networking.istio.io", "virtualservices.networking.istio.io"} <= set(crds), crds
    # The validator fails open on a first install; istiod would switch it to Fail (not running here).
    vwc = env.get("validatingwebhookconfiguration", "istio-validator-istio-system")
    assert {w["failurePolicy"] for w in vwc["webhooks"]} == {"Ignore"}


def test_istiod_and_gateway_available_on_the_system_node(env: Env, installed: dict[str, Run]):
    assert_ok(installed["first"])
    nodes = {n["metadata"]["name"]: n for n in env.get("nodes")["items"]}
    for name in ("istiod", "istio-ingressgateway"):
        assert available(env, name), name
        dep = env.get("deployment", "-n", "istio-system", name)
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"docker.io/istio/{'pilot' if name == 'istiod' else 'proxyv2'}:1.28.0", image
        pods = env.get("pods", "-n", "istio-system", "-l", f"app={name}")["items"]
        assert pods, name
        for pod in pods:
            node = nodes[pod["spec"]["nodeName"]]
            assert node["metadata"]["labels"]["tritonfil.io/node-role"] == "system", pod["spec"]["nodeName"]
            assert not node["spec"].get("taints"), node["spec"]


def test_gateway_fact_is_the_in_cluster_name_without_a_load_balancer(env: Env, installed: dict[str, Run]):
    first = installed["first"]
    assert_ok(first)
    assert first.facts["istio_gateway_address"] == GATEWAY_DNS
    assert first.facts["istio_gateway"] == {
        "service": "istio-ingressgateway",
        "namespace": "istio-system",
        "address": GATEWAY_DNS,
        "external": False,
        "type": "LoadBalancer",
        "http_port": 80,
        "grpc_port": 80,
        "https_port": 443,
        "status_port": 15021,
        "http_url": f"http://{GATEWAY_DNS}",
        "grpc_url": f"{GATEWAY_DNS}:80",
        "https_url": f"https://{GATEWAY_DNS}",
        "grpcs_url": f"grpcs://{GATEWAY_DNS}:443",
        "tls_termination": "gateway",
        "internal": False,
        "source_ranges": [],
    }
    svc = env.get("service", "-n", "istio-system", "istio-ingressgateway")
    assert svc["spec"]["type"] == "LoadBalancer" and not svc["status"]["loadBalancer"].get("ingress")
    # Injection off: the namespace is not even created by this role.
    assert not env.exists("namespace", NAMESPACE)


def test_triton_chart_gateway_and_virtualservice_can_be_created(env: Env, installed: dict[str, Run]):
    assert_ok(installed["first"])
    env.kubectl("create", "namespace", NAMESPACE)
    rendered = subprocess.run(
        [str(env.local.tools.bin_dir / "helm"), "template", "triton", str(ROOT / "helm" / "triton"),
         "--namespace", NAMESPACE, "--set", "istio.enabled=true", "--set", "modelRepository=s3://b/models",
         "--set", f"istio.gateway.https.credentialName={TLS_SECRET}",
         "--show-only", "templates/istio-gateway.yaml", "--show-only", "templates/istio-virtualservice.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    start = time.monotonic()
    env.kubectl("apply", "-f", "-", input_text=rendered)
    print(f"Gateway + VirtualService created in {time.monotonic() - start:.1f}s (validator unreachable, fails open)")
    assert env.names("gateways.networking.istio.io", "-n", NAMESPACE) == ["triton"]
    assert env.names("virtualservices.networking.istio.io", "-n", NAMESPACE) == ["triton"]


def self_signed_tls_secret() -> dict:
    """A kubernetes.io/tls Secret with a fresh self-signed certificate for triton.example.test."""
    import base64
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "triton.example.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("triton.example.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": "istio-system"},
        "data": {"tls.crt": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
                 "tls.key": base64.b64encode(pem_key).decode()},
    }  # fmt: skip


def test_jwt_is_required_at_the_gateway_workload(env: Env, installed: dict[str, Run]):
    assert_ok(installed["first"])
    ra = env.get("requestauthentications.security.istio.io", "-n", "istio-system", "tritonfil-jwt")
    assert ra["spec"] == {
        "selector": {"matchLabels": {"istio": "ingressgateway"}},
        "jwtRules": [{"issuer": ISSUER, "jwks": JWKS, "audiences": ["tritonfil"]}],
    }
    ap = env.get("authorizationpolicies.security.istio.io", "-n", "istio-system", "tritonfil-require-jwt")
    assert ap["spec"] == {
        "selector": {"matchLabels": {"istio": "ingressgateway"}},
        "action": "DENY",
        "rules": [
            {"from": [{"source": {"notRequestPrincipals": ["*"]}}], "to": [{"operation": {"ports": ["8080", "8443"]}}]}
        ],
    }
    # The gateway pods are what both select; the ports are their HTTP listeners (the Service's target ports).
    assert env.get("pods", "-n", "istio-system", "-l", "istio=ingressgateway")["items"]
    svc = env.get("service", "-n", "istio-system", "istio-ingressgateway")
    assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]}["https"] == 8443
    # istiod never fetches a JWKS from the metadata service or loopback.
    istiod = env.get("deployment", "-n", "istio-system", "istiod")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "BLOCKED_CIDRS_IN_JWKS_URIS", "value": "169.254.0.0/16,127.0.0.0/8"} in istiod["env"]


def test_triton_https_gateway_and_the_auth_objects_pass_server_side_validation_and_istioctl_analyze(
    env: Env, installed: dict[str, Run]
):
    """The chart's Gateway (HTTPS with the Secret, TLS 1.2+), its VirtualService and the role's RequestAuthentication
    and AuthorizationPolicy against the real Istio CRDs (server-side dry run, strict field validation), then applied
    and analyzed by istioctl against the cluster: no message at Warning or above."""
    assert_ok(installed["first"])
    if not env.exists("namespace", NAMESPACE):
        env.kubectl("create", "namespace", NAMESPACE)
    env.kubectl("apply", "-f", "-", input_text=json.dumps(self_signed_tls_secret()))
    rendered = subprocess.run(
        [str(env.local.tools.bin_dir / "helm"), "template", "triton", str(ROOT / "helm" / "triton"),
         "--namespace", NAMESPACE, "--set", "istio.enabled=true", "--set", "modelRepository=s3://b/models",
         "--set", f"istio.gateway.https.credentialName={TLS_SECRET}",
         "--set", "istio.gateway.hosts={triton.example.test}",
         "--set", "istio.virtualService.hosts={triton.example.test}",
         "--show-only", "templates/istio-gateway.yaml", "--show-only", "templates/istio-virtualservice.yaml",
         "--show-only", "templates/service.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    dry = env.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input_text=rendered, check=False)
    assert dry.returncode == 0 and not dry.stderr.strip(), dry.stderr
    env.kubectl("apply", "-f", "-", input_text=rendered)
    gateway = env.get("gateways.networking.istio.io", "-n", NAMESPACE, "triton")
    assert [(s["port"]["number"], s["port"]["protocol"], s.get("tls")) for s in gateway["spec"]["servers"]] == [
        (443, "HTTPS", {"mode": "SIMPLE", "credentialName": TLS_SECRET, "minProtocolVersion": "TLSV1_2"})
    ]  # no plain HTTP listener by default
    start = time.monotonic()
    proc = subprocess.run(
        [str(env.local.tools.bin_dir / "istioctl"), "analyze", f"--kubeconfig={env.local.kubeconfig}",
         "--all-namespaces", "--failure-threshold=Warning", "--output-threshold=Warning"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    print(f"istioctl analyze: {time.monotonic() - start:.1f}s: {proc.stdout.strip()} {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The analyzer has teeth: a Gateway naming a Secret that does not exist is reported.
    broken = rendered.replace(f"credentialName: {TLS_SECRET}", "credentialName: no-such-secret")
    proc = subprocess.run(
        [str(env.local.tools.bin_dir / "istioctl"), "analyze", f"--kubeconfig={env.local.kubeconfig}",
         "-n", NAMESPACE, "--failure-threshold=Warning", "-"],
        input=broken, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "no-such-secret" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"istio_gateway_jwt_enabled": False},
            "istio_gateway_jwt_enabled is false, istio_gateway_internal is false (an internet-facing load balancer) "
            "and istio_gateway_source_ranges is empty: anyone on the internet could run inference on the GPUs. Turn "
            "JWT on (istio_gateway_jwt_enabled with istio_gateway_jwt_issuer and istio_gateway_jwt_jwks_uri), make the "
            "load balancer internal (istio_gateway_internal: true), list the client networks "
            "(istio_gateway_source_ranges), or accept it explicitly with "
            "istio_gateway_public_unauthenticated_acknowledged: true",
        ),
        (
            {"istio_gateway_jwt_issuer": "", "istio_gateway_source_ranges": ["10.0.0.1/8"]},
            "istio_gateway_source_ranges: '10.0.0.1/8' has host bits set: write the network, '10.0.0.0/8'; "
            "istio_gateway_jwt_enabled needs istio_gateway_jwt_issuer (the iss of the accepted tokens)",
        ),
        (
            {"istio_gateway_jwt_jwks_uri": "http://keys.example.test/jwks.json"},
            "istio_gateway_jwt_enabled needs exactly one of istio_gateway_jwt_jwks_uri and istio_gateway_jwt_jwks",
        ),
    ],
    ids=["public-open-unauthenticated", "bad-cidr-no-issuer", "two-key-sources"],
)
def test_unsafe_exposure_fails_in_preflight_naming_the_variables(env: Env, extra: dict, message: str):
    run = env.run(env.variables(**extra), tasks_from="preflight")
    assert run.rc != 0
    assert run.result("Check the gateway's exposure and authentication")["msg"].startswith(message), run.tail()


@pytest.mark.parametrize(
    "extra",
    [
        {"istio_gateway_jwt_enabled": False, "istio_gateway_public_unauthenticated_acknowledged": True},
        {"istio_gateway_jwt_enabled": False, "istio_gateway_internal": True},
        {"istio_gateway_jwt_enabled": False, "istio_gateway_source_ranges": ["203.0.113.0/24"]},
    ],
    ids=["acknowledged", "internal", "source-ranges"],
)
def test_each_opt_out_passes_the_exposure_check_when_made_safe_or_acknowledged(env: Env, extra: dict):
    run = env.run(env.variables(**extra), tasks_from="preflight")
    assert_ok(run)


def test_injection_reports_the_unreachable_injector_and_leaves_the_namespace_unlabelled(
    env: Env, installed: dict[str, Run]
):
    assert_ok(installed["first"])
    run = env.run(env.variables(istio_sidecar_injection=True))
    assert run.rc != 0
    failure = run.result("Check the sidecar injector answered")["msg"]
    print(f"injection failure: {failure}")
    assert failure.startswith(
        "istio_sidecar_injection: the sidecar injector webhook object.sidecar-injector.istio.io "
        "(istio-system/istiod:443/inject, failurePolicy Fail) cannot be reached from the API server, so no pod could "
        f"be created in namespace {NAMESPACE} once it is labelled istio-injection=enabled; the label was not set."
    ), failure
    assert "network is unreachable" in failure, failure
    assert failure.endswith("set istio_sidecar_injection: false."), failure
    labels = env.get("namespace", NAMESPACE)["metadata"].get("labels", {})
    assert "istio-injection" not in labels, labels
    assert not env.names("pods", "-n", NAMESPACE)  # the check was a dry run


def test_teardown_removes_everything_and_is_idempotent(env: Env, installed: dict[str, Run]):
    assert_ok(installed["first"])
    if not env.exists("namespace", NAMESPACE):
        env.kubectl("create", "namespace", NAMESPACE)
    env.kubectl("label", "namespace", NAMESPACE, "istio-injection=enabled", "--overwrite")
    check = env.run(env.variables(), "--check", teardown=True)
    assert_ok(check)
    assert check.recap.get("changed", 0) >= 5, check.tail()
    assert env.exists("namespace", "istio-system") and available(env, "istiod")
    assert env.get("namespace", NAMESPACE)["metadata"]["labels"]["istio-injection"] == "enabled"

    first = env.run(env.variables(), teardown=True)
    assert_ok(first)
    second = env.run(env.variables(), teardown=True)
    assert_ok(second)
    assert second.recap.get("changed") == 0, second.tail()
    print(f"istio teardown {first.seconds:.0f}s, rerun {second.seconds:.0f}s")
    assert not env.exists("namespace", "istio-system")
    assert [n for n in env.names("crd") if n.endswith(".istio.io")] == []
    assert not env.exists("mutatingwebhookconfiguration", "istio-sidecar-injector")
    assert not env.exists("validatingwebhookconfiguration", "istio-validator-istio-system")
    assert [n for n in env.names("clusterrole") if n.startswith("istio")] == []
    assert "istio-injection" not in env.get("namespace", NAMESPACE)["metadata"].get("labels", {})
