"""`tritonfil doctor`: each check with a fake world (tools, AWS, files, HTTP), its text and its fix; the real Probe
against inventory/aws and against a stub API server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tritonfil import cli, doctor
from tritonfil.doctor import FAIL, OK, SKIP, Check, Probe

PINS = {
    "HELM_VERSION": "v3.22.0", "KUBERNETES_VERSION": "v1.36.3", "EKSCTL_VERSION": "v0.215.0", "ISTIO_VERSION": "1.28.0",
}  # fmt: skip
SECRET = "wJalrXUtnFEMI-doctor-fake-secret"


def kubeconfig(server: str = "https://ABC.gr7.us-east-1.eks.amazonaws.com", exec_cmd: str | None = "aws") -> str:
    user: dict[str, Any] = {"token": "t"}
    if exec_cmd:
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": exec_cmd, "args": ["eks"]}}
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "current-context": "triton",
            "contexts": [{"name": "triton", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": user}],
        }
    )


class FakeProbe(Probe):
    """A machine where everything a deployment needs is in place; each test breaks one thing."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "venv" / "bin"
        self.bin.mkdir(parents=True)
        super().__init__({"PATH": "/opt/bin", "HOME": str(tmp_path), "AWS_SECRET_ACCESS_KEY": SECRET})
        (self.bin / "ansible-playbook").write_text("")
        self.tools = {n: f"/opt/bin/{n}" for n in ("helm", "kubectl", "skopeo", "eksctl", "istioctl", "aws")}
        self.outputs: dict[str, tuple[int, str, str]] = {
            "ansible-playbook": (0, "ansible-playbook [core 2.19.14]\n  config file = None\n", ""),
            "helm": (0, "v3.22.0", ""),
            "kubectl": (0, json.dumps({"clientVersion": {"gitVersion": "v1.36.3"}}), ""),
            "skopeo": (0, "skopeo version 1.9.3\n", ""),
            "eksctl": (0, "0.215.0\n", ""),
            "istioctl": (0, json.dumps({"clientVersion": {"version": "1.28.0"}}), ""),
        }
        self.ran: list[list[str]] = []
        self.values: dict[str, Any] = {
            "tritonfil_region": "us-east-1", "tritonfil_kubeconfig": str(tmp_path / "kubeconfig"),
        }  # fmt: skip
        self.files = {str(tmp_path / "kubeconfig"): kubeconfig()}
        self.credentials: tuple[str | None, str | None] = ("env", "us-east-1")
        self.identity: Exception | dict[str, str] = {"account": "123456789012", "arn": "arn:aws:iam::1:user/ops"}
        self.readyz: Exception | tuple[int, str] = (200, "ok")
        self.http: dict[str, Exception | int] = {}
        self.local: dict[str, dict[str, Any]] = {"moto": {"ok": True}, "cluster": {"ok": True}}

    def venv_bin(self) -> Path:
        return self.bin

    def which(self, name: str) -> str | None:
        return self.tools.get(name)

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        self.ran.append(argv)
        return self.outputs[Path(argv[0]).name]

    def collection_root(self) -> Path:
        return Path("/site-packages/ansible_collections/tritonfil/eks")

    def pins(self) -> dict[str, str]:
        return dict(PINS)

    def inventory_vars(self, inventory: Path, names: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        return "localhost", {k: v for k, v in self.values.items() if k in names}

    def local_status(self) -> dict[str, dict[str, Any]]:
        return self.local

    def aws_credentials(self) -> tuple[str | None, str | None]:
        return self.credentials

    def caller_identity(self, region: str | None, endpoint: str | None) -> dict[str, str]:
        if isinstance(self.identity, Exception):
            raise self.identity
        return self.identity

    def http_status(self, url: str) -> int:
        answer = self.http[url]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def read_file(self, path: Path) -> str:
        if str(path) not in self.files:
            raise FileNotFoundError(path)
        return self.files[str(path)]

    def kube_readyz(self, kubeconfig: Path) -> tuple[int, str]:
        if isinstance(self.readyz, Exception):
            raise self.readyz
        return self.readyz


@pytest.fixture
def probe(tmp_path: Path) -> FakeProbe:
    return FakeProbe(tmp_path)


def checks(probe: FakeProbe, inventory: str = "aws", **kw: Any) -> dict[str, Check]:
    return {c.name: c for c in doctor.run_checks(inventory=inventory, project=str(ROOT), probe=probe, **kw)}


def test_everything_in_place(probe):
    found = doctor.run_checks(inventory="aws", project=str(ROOT), probe=probe)
    assert [(c.name, c.status) for c in found] == [
        ("collection", OK), ("inventory", OK), ("ansible-playbook", OK), ("helm", OK), ("kubectl", OK),
        ("skopeo", OK), ("eksctl", OK), ("istioctl", OK), ("aws credentials", OK), ("aws identity", OK),
        ("kubeconfig", OK), ("kube API", OK),
    ]  # fmt: skip
    by = {c.name: c for c in found}
    assert by["helm"].detail == "/opt/bin/helm (v3.22.0)"
    assert by["ansible-playbook"].detail == f"{probe.bin}/ansible-playbook (ansible-core 2.19.14)"
    assert by["aws credentials"].detail == "found: environment variables (AWS_ACCESS_KEY_ID ...)"
    assert by["aws identity"].detail == "account 123456789012 as arn:aws:iam::1:user/ops"
    assert by["kubeconfig"].detail.endswith(
        "kubeconfig: context triton, server https://ABC.gr7.us-east-1.eks.amazonaws.com, auth: aws"
    )
    assert ["/opt/bin/helm", "version", "--template", "{{.Version}}"] in probe.ran
    text = doctor.format_checks(found)
    assert text.splitlines()[3] == "ok    helm              /opt/bin/helm (v3.22.0)"
    assert text.splitlines()[-1] == "doctor: 12 ok, 0 failed, 0 skipped"
    assert SECRET not in text and SECRET not in json.dumps(doctor.document(found))


@pytest.mark.parametrize(
    ("tool", "fix"),
    [
        ("helm", "install helm v3.22.0: `scripts/tools.sh helm` in a checkout builds it into ~/.cache/tritonfil/bin"),
        ("kubectl", "install kubectl v1.36.3 (within one minor version of the cluster)"),
        ("skopeo", "apt-get install skopeo"),
        ("eksctl", "install eksctl v0.215.0: `scripts/tools.sh eksctl` in a checkout builds it, or https://github.com/eksctl-io/eksctl/releases/tag/v0.215.0"),
        ("istioctl", "install istioctl 1.28.0: https://github.com/istio/istio/releases/tag/1.28.0"),
    ],
)  # fmt: skip
def test_a_missing_tool_names_its_fix(probe, tool, fix):
    del probe.tools[tool]
    found = checks(probe)
    assert (found[tool].status, found[tool].detail) == (FAIL, f"{tool} not found on PATH")
    assert found[tool].fix.startswith(fix)
    line = next(x for x in doctor.format_checks(list(found.values())).splitlines() if f" {tool} " in x)
    assert line.startswith(f"FAIL  {tool}") and f"; fix: {fix}" in line
    assert [n for n, c in found.items() if c.status == FAIL] == [tool]


@pytest.mark.parametrize(
    ("tool", "output", "detail"),
    [
        ("helm", "v4.0.1", "/opt/bin/helm is helm v4.0.1: kubernetes.core 6.2 accepts Helm v3 only"),
        ("helm", "v3.19.0", "/opt/bin/helm is helm v3.19.0, the pin is v3.22.0"),
        ("kubectl", json.dumps({"clientVersion": {"gitVersion": "v1.32.4"}}),
         "/opt/bin/kubectl is kubectl v1.32.4, more than one minor from v1.36.3"),
        ("skopeo", "skopeo version 1.4.1", "/opt/bin/skopeo is skopeo 1.4.1, the ecr_image stage needs >= 1.9"),
        ("eksctl", "0.190.0", "/opt/bin/eksctl is eksctl 0.190.0, the pin is v0.215.0"),
        ("istioctl", json.dumps({"clientVersion": {"version": "1.27.3"}}),
         "/opt/bin/istioctl is istioctl 1.27.3, the istio stage needs 1.28.0"),
        ("istioctl", json.dumps({"clientVersion": {"version": "v0.0.0-20260827124520-eed52ebb66ad"}}),
         "/opt/bin/istioctl is istioctl v0.0.0-20260827124520-eed52ebb66ad (a development build), the istio stage"
         " needs 1.28.0"),
    ],
)  # fmt: skip
def test_a_wrong_version_fails(probe, tool, output, detail):
    probe.outputs[tool] = (0, output, "")
    found = checks(probe)
    assert (found[tool].status, found[tool].detail) == (FAIL, detail)


def test_a_tool_that_does_not_run(probe):
    probe.outputs["helm"] = (126, "", "permission denied\n")
    assert checks(probe)["helm"].detail == "/opt/bin/helm version failed (rc=126): permission denied"
    probe.outputs["ansible-playbook"] = (1, "", "ERROR: Ansible requires the locale encoding to be UTF-8\n")
    found = checks(probe)["ansible-playbook"]
    assert found.status == FAIL and found.detail.endswith(
        "(rc=1): ERROR: Ansible requires the locale encoding to be UTF-8"
    )
    (probe.bin / "ansible-playbook").unlink()
    found = checks(probe)["ansible-playbook"]
    assert (found.detail, found.fix) == (
        f"{probe.bin}/ansible-playbook does not exist",
        "reinstall tritonfil into this venv (`pip install tritonfil`, it depends on ansible-core), or `make setup`",
    )


def test_the_inventorys_tool_paths_and_dev_build_switch(probe):
    probe.values.update(eks_gpu_cluster_eksctl_path="tritonfil-eksctl-sim", istio_istioctl_allow_dev_build=True)
    probe.tools["tritonfil-eksctl-sim"] = "/venv/bin/tritonfil-eksctl-sim"
    probe.outputs["istioctl"] = (0, json.dumps({"clientVersion": {"version": "v0.0.0-2026-eed52eb"}}), "")
    found = checks(probe)
    assert (found["eksctl"].status, found["eksctl"].detail) == (
        OK, "/venv/bin/tritonfil-eksctl-sim (eks_gpu_cluster_eksctl_path: the inventory's stand-in, no version pin)",
    )  # fmt: skip
    assert found["istioctl"].status == OK and "allowed by istio_istioctl_allow_dev_build" in found["istioctl"].detail


def test_aws_credentials_missing_skips_the_identity(probe):
    probe.credentials = (None, None)
    found = checks(probe)
    assert (found["aws credentials"].status, found["aws credentials"].detail) == (
        FAIL,
        "none found in the credential chain",
    )
    assert "aws configure" in found["aws credentials"].fix and "AWS_PROFILE" in found["aws credentials"].fix
    assert found["aws identity"].status == SKIP


def test_aws_credentials_source_names_the_profile_never_the_secret(probe):
    probe.credentials = ("sso", "eu-west-1")
    probe.environ["AWS_PROFILE"] = "ops"
    found = checks(probe)
    assert found["aws credentials"].detail == "found: AWS SSO (IAM Identity Center), profile ops"
    assert SECRET not in doctor.format_checks(list(found.values()))


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (RuntimeError("An error occurred (InvalidClientTokenId) when calling GetCallerIdentity"), "refresh them"),
        (RuntimeError('Could not connect to the endpoint URL: "https://sts.amazonaws.com/"'), "no route"),
    ],
)
def test_aws_identity_failures(probe, error, fix):
    probe.identity = error
    found = checks(probe)["aws identity"]
    assert found.status == FAIL and found.detail == f"sts:GetCallerIdentity failed: {error}"
    assert fix in found.fix


def test_aws_endpoint_override_reachability(probe):
    probe.values["tritonfil_aws_endpoint_url"] = "http://127.0.0.1:5000"
    probe.http["http://127.0.0.1:5000"] = 404
    assert checks(probe)["aws endpoint"].detail == "http://127.0.0.1:5000 answers (HTTP 404)"
    probe.http["http://127.0.0.1:5000"] = ConnectionRefusedError(111, "Connection refused")
    found = checks(probe, inventory="local")["aws endpoint"]
    assert found.status == FAIL and found.detail.startswith("http://127.0.0.1:5000 unreachable:")
    assert found.fix == "start it: `tritonfil local up`"


def test_no_kubeconfig_yet_is_skipped_not_failed(probe, tmp_path):
    probe.files.clear()
    found = checks(probe)
    assert found["kubeconfig"].status == SKIP and found["kube API"].status == SKIP
    assert found["kubeconfig"].detail == (
        f"{tmp_path}/kubeconfig (the inventory's tritonfil_kubeconfig) does not exist yet: the eks_gpu_cluster stage"
        " writes it (`tritonfil deploy --tags eks_gpu_cluster`)"
    )
    assert all(c.passed for c in found.values())


@pytest.mark.parametrize(
    ("text", "detail", "fix"),
    [
        ("clusters: [unclosed", "does not parse", "fix or remove"),
        (yaml.safe_dump({"contexts": [{"name": "a", "context": {}}]}), "no current context (contexts: a)",
         "config use-context NAME"),
        (kubeconfig(exec_cmd="aws-iam-authenticator"),
         "context triton authenticates with `aws-iam-authenticator`, which is not on PATH", "install the AWS CLI"),
    ],
)  # fmt: skip
def test_a_broken_kubeconfig_fails_with_its_fix(probe, tmp_path, text, detail, fix):
    probe.files[str(tmp_path / "kubeconfig")] = text
    found = checks(probe)
    assert found["kubeconfig"].status == FAIL and detail in found["kubeconfig"].detail
    assert fix in found["kubeconfig"].fix
    assert found["kube API"].status == SKIP


def test_the_kubeconfig_option_wins_over_the_inventory(probe, tmp_path):
    other = tmp_path / "other"
    probe.files[str(other)] = kubeconfig(server="https://10.0.0.1:6443", exec_cmd=None)
    found = checks(probe, kubeconfig=str(other))
    assert found["kubeconfig"].detail == f"{other}: context triton, server https://10.0.0.1:6443"


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        ((403, "forbidden"), "/readyz answered 403: the kubeconfig's credentials are refused"),
        ((500, "[-]etcd failed"), "/readyz answered 500: [-]etcd failed"),
        (OSError("[Errno 111] Connection refused"), "/readyz: [Errno 111] Connection refused"),
    ],
)
def test_kube_api_failures(probe, answer, detail):
    probe.readyz = answer
    found = checks(probe)["kube API"]
    assert (found.status, found.detail) == (FAIL, detail)


def test_local_inventory_checks_the_local_environment(probe):
    found = checks(probe, inventory="local")
    assert found["local environment"].detail == "up: moto, cluster"
    probe.local = {}
    found = checks(probe, inventory="local")["local environment"]
    assert (found.status, found.detail, found.fix) == (FAIL, "down", "`tritonfil local up`")
    probe.local = {"moto": {"ok": True}, "cluster": {"ok": False}}
    assert checks(probe, inventory="local")["local environment"].detail == "not healthy: cluster"
    assert "local environment" not in checks(probe, inventory="aws")


def test_unknown_inventory(probe):
    found = checks(probe, inventory="no/such/inventory")["inventory"]
    assert found.status == FAIL and found.detail.startswith("inventory no/such/inventory not found")


def test_cli_doctor_exit_status_and_json(monkeypatch, capsys, probe):
    monkeypatch.setattr(doctor, "Probe", lambda: probe)
    assert cli.main(["doctor", "-i", "aws", "--project", str(ROOT)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "doctor: 12 ok, 0 failed, 0 skipped"
    del probe.tools["skopeo"]
    assert cli.main(["doctor", "-i", "aws", "--project", str(ROOT), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert {"name": "skopeo", "status": "FAIL", "detail": "skopeo not found on PATH",
            "fix": doctor.check_skopeo(probe).fix} in doc["checks"]  # fmt: skip


# -- the real Probe ------------------------------------------------------------------------------------
def test_real_probe_templates_the_inventory_as_a_run_would(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    host, values = Probe().inventory_vars(ROOT / "inventory" / "aws", doctor.INVENTORY_VARS)
    assert host == "localhost"
    assert values["tritonfil_region"] == "us-east-1"
    assert values["tritonfil_kubeconfig"] == f"{tmp_path}/.kube/tritonfil-tritonfil"  # lookup('env', 'HOME')


def test_real_probe_run_of_a_missing_command():
    rc, out, err = Probe().run(["/nonexistent/helm", "version"])
    assert (rc, out) == (127, "") and "No such file" in err


class _ReadyzHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.path == "/readyz" and self.headers.get("Authorization") == "Bearer sesame"
        body = b"ok" if ok else b"forbidden"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReadyzHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_real_probe_reads_readyz_with_the_kubeconfigs_credentials(api_server, tmp_path):
    config = yaml.safe_load(kubeconfig(server=api_server, exec_cmd=None))
    config["users"][0]["user"] = {"token": "sesame"}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert Probe().kube_readyz(path) == (200, "ok")
    config["users"][0]["user"] = {"token": "wrong"}
    path.write_text(yaml.safe_dump(config))
    assert Probe().kube_readyz(path) == (403, "forbidden")
    assert Probe().http_status(api_server + "/") == 403
    with pytest.raises(OSError):
        Probe().http_status("http://127.0.0.1:9/")  # discard port: nothing listens
