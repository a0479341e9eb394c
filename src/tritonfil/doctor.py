"""`tritonfil doctor`: what a deployment needs, checked one by one, each failure with its fix.

The checks, in order: the tritonfil.eks collection; the inventory (its values read through Ansible, as a
run would read them); the local environment (``-i local`` only); the tools the stages run (this
venv's ansible-playbook, helm v3, kubectl, skopeo, eksctl, istioctl; versions from
`tritonfil.collection.pins`); the AWS credential chain (which source boto3 found; never a secret),
the AWS endpoint override when there is one, and the caller identity; the kubeconfig the stages use
(exists, parses, its current context) and its API server's ``/readyz``.

Each check is ``ok``, ``FAIL`` or ``skip`` (nothing to check yet, e.g. no kubeconfig before the first
deploy). Everything outside (commands, files, AWS, HTTP) goes through `Probe`, which tests replace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Check", "Probe", "document", "format_checks", "run_checks"]

OK, FAIL, SKIP = "ok", "FAIL", "skip"
#: Seconds a reachability check waits.
TIMEOUT = 5.0
#: Credential sources as botocore names them (Credentials.method) -> what to tell the user.
CREDENTIAL_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID ...)",
    "shared-credentials-file": "the shared credentials file",
    "config-file": "the AWS config file",
    "assume-role": "an assumed role (role_arn in the AWS config)",
    "assume-role-with-web-identity": "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, e.g. IRSA)",
    "sso": "AWS SSO (IAM Identity Center)",
    "custom-process": "a credential_process",
    "container-role": "the container's role (ECS/EKS pod identity)",
    "iam-role": "the instance's role (EC2 instance metadata)",
    "boto-config": "a boto config file",
}
#: The inventory values the checks read.
INVENTORY_VARS = (
    "tritonfil_region",
    "tritonfil_aws_endpoint_url",
    "tritonfil_kubeconfig",
    "eks_gpu_cluster_eksctl_path",
    "istio_istioctl_path",
    "istio_istioctl_allow_dev_build",
)


@dataclass(frozen=True)
class Check:
    """One check: its name, ok / FAIL / skip, what was found, and (when not ok) what to do."""

    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        return self.status != FAIL


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class Probe:
    """The world the checks look at: commands on PATH, files, AWS, HTTP. Tests pass a fake."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        # As a run has it (tritonfil.api): this venv's bin first on PATH.
        path = self.environ.get("PATH", "")
        if str(self.venv_bin()) not in path.split(os.pathsep):
            self.environ["PATH"] = os.pathsep.join([str(self.venv_bin()), path])

    # -- commands ---------------------------------------------------------------------------------
    def venv_bin(self) -> Path:
        return Path(sys.executable).parent

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.environ.get("PATH"))

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        """(rc, stdout, stderr) of ARGV in the C.UTF-8 locale; rc 127 when it cannot be started."""
        try:
            proc = subprocess.run(
                argv, env={**self.environ, "LC_ALL": "C.UTF-8"}, capture_output=True, text=True, timeout=30, check=False
            )
        except OSError as e:
            return 127, "", str(e)
        except subprocess.TimeoutExpired:
            return 124, "", f"{argv[0]} did not answer within 30s"
        return proc.returncode, proc.stdout, proc.stderr

    # -- the collection and the inventory -----------------------------------------------------------
    def collection_root(self) -> Path:
        from tritonfil import collection

        return collection.root()

    def pins(self) -> dict[str, str]:
        from tritonfil import collection

        return collection.pins()

    def inventory_vars(self, inventory: Path, names: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """(host, {name: value}) of the first host of group tritonfil, each value templated as a run would
        template it (`read_inventory_vars`), in a child Python: Ansible's plugin loader and display are
        process-wide state that the caller's process should not inherit."""
        proc = subprocess.run(
            [sys.executable, "-m", "tritonfil.doctor", "inventory-vars", str(inventory), *names],
            env={**self.environ, "ANSIBLE_NOCOLOR": "1"}, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or [f"reading {inventory} failed (rc={proc.returncode})"]
            raise LookupError(last[0])
        answer = json.loads(proc.stdout)
        return answer["host"], answer["values"]

    def local_status(self) -> dict[str, dict[str, Any]]:
        from tritonfil.localenv.env import LocalEnv

        return LocalEnv().status()

    # -- AWS --------------------------------------------------------------------------------------
    def aws_credentials(self) -> tuple[str | None, str | None]:
        """(botocore's name of the credential source or None, the session's region)."""
        import boto3

        session = boto3.Session()
        creds = session.get_credentials()
        return (creds.method if creds is not None else None), session.region_name

    def caller_identity(self, region: str | None, endpoint: str | None) -> dict[str, str]:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=TIMEOUT, read_timeout=TIMEOUT, retries={"max_attempts": 1})
        sts = boto3.client("sts", region_name=region, endpoint_url=endpoint or None, config=config)
        answer = sts.get_caller_identity()
        return {"account": str(answer.get("Account", "")), "arn": str(answer.get("Arn", ""))}

    def http_status(self, url: str) -> int:
        """The HTTP status URL answers with (any answer means reachable); raises OSError when unreachable."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 (http/https from config)
                return int(response.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    # -- Kubernetes -------------------------------------------------------------------------------
    def read_file(self, path: Path) -> str:
        return path.read_text()

    def kube_readyz(self, kubeconfig: Path) -> tuple[int, str]:
        """(status, body) of GET /readyz on the kubeconfig's current context, with its credentials."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg, persist_config=False)
        cfg.retries = 0
        api = client.ApiClient(cfg)
        method, url, headers, body, post = api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
        response = api.call_api(method, url, headers, body, post, _request_timeout=TIMEOUT)
        response.read()
        return int(response.status), (response.data or b"").decode(errors="replace").strip()


# -- the checks -----------------------------------------------------------------------------------
def _version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _tool_missing(name: str, path: str, fix: str) -> Check:
    where = "on PATH" if "/" not in path else "at that path"
    return Check(name, FAIL, f"{path} not found {where}", fix)


def check_ansible(probe: Probe) -> Check:
    playbook = probe.venv_bin() / "ansible-playbook"
    fix = "reinstall tritonfil into this venv (`pip install tritonfil`, it depends on ansible-core), or `make setup`"
    if not playbook.exists():
        return Check("ansible-playbook", FAIL, f"{playbook} does not exist", fix)
    rc, out, err = probe.run([str(playbook), "--version"])
    first = _first_line(out)
    m = re.search(r"core (\d+\.\d+\.\d+)", first)
    if rc != 0 or not m:
        return Check("ansible-playbook", FAIL, f"{playbook} --version failed (rc={rc}): {_first_line(err)}", fix)
    found = m.group(1)
    need = ">=2.19,<2.20"  # ansible-core of pyproject.toml (the roles use 2.19's features and data tagging)
    if _version(found)[:2] != (2, 19):  # type: ignore[index]
        return Check("ansible-playbook", FAIL, f"ansible-core {found}, the collection needs {need}", fix)
    return Check("ansible-playbook", OK, f"{playbook} (ansible-core {found})")


def check_helm(probe: Probe, pins: Mapping[str, str]) -> Check:
    pin = pins.get("HELM_VERSION", "")
    fix = (
        f"install helm {pin or 'v3'}: `scripts/tools.sh helm` in a checkout builds it into ~/.cache/tritonfil/bin"
        f" (put that on PATH), or https://github.com/helm/helm/releases/tag/{pin}"
    )
    path = probe.which("helm")
    if path is None:
        return _tool_missing("helm", "helm", fix)
    rc, out, err = probe.run([path, "version", "--template", "{{.Version}}"])
    found = out.strip()
    if rc != 0 or not found:
        return Check("helm", FAIL, f"{path} version failed (rc={rc}): {_first_line(err)}", fix)
    if not found.startswith("v3."):
        return Check("helm", FAIL, f"{path} is helm {found}: kubernetes.core 6.2 accepts Helm v3 only", fix)
    if pin and found != pin:
        return Check("helm", FAIL, f"{path} is helm {found}, the pin is {pin}", fix)
    return Check("helm", OK, f"{path} ({found})")


def check_kubectl(probe: Probe, pins: Mapping[str, str]) -> Check:
    pin = pins.get("KUBERNETES_VERSION", "")
    want = _version(pin)
    fix = (
        f"install kubectl {pin} (within one minor version of the cluster): `scripts/tools.sh kubernetes` builds it,"
        " or https://kubernetes.io/docs/tasks/tools/"
    )
    path = probe.which("kubectl")
    if path is None:
        return _tool_missing("kubectl", "kubectl", fix)
    rc, out, err = probe.run([path, "version", "--client", "-o", "json"])
    try:
        found = str(json.loads(out)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return Check("kubectl", FAIL, f"{path} version --client failed (rc={rc}): {_first_line(err or out)}", fix)
    have = _version(found)
    if want and have and (have[0] != want[0] or abs(have[1] - want[1]) > 1):
        return Check("kubectl", FAIL, f"{path} is kubectl {found}, more than one minor from {pin}", fix)
    return Check("kubectl", OK, f"{path} ({found})")


def check_skopeo(probe: Probe) -> Check:
    fix = "apt-get install skopeo (Debian 12 and Ubuntu 23.04 have >= 1.9; `make tools` installs it as root)"
    path = probe.which("skopeo")
    if path is None:
        return _tool_missing("skopeo", "skopeo", fix)
    rc, out, err = probe.run([path, "--version"])
    have = _version(out)
    if rc != 0 or have is None:
        return Check("skopeo", FAIL, f"{path} --version failed (rc={rc}): {_first_line(err)}", fix)
    if have[:2] < (1, 9):
        return Check(
            "skopeo", FAIL, f"{path} is skopeo {'.'.join(map(str, have))}, the ecr_image stage needs >= 1.9", fix
        )
    return Check("skopeo", OK, f"{path} ({'.'.join(map(str, have))})")


def check_eksctl(probe: Probe, pins: Mapping[str, str], configured: str) -> Check:
    pin = pins.get("EKSCTL_VERSION", "")
    fix = (
        f"install eksctl {pin}: `scripts/tools.sh eksctl` in a checkout builds it, or"
        f" https://github.com/eksctl-io/eksctl/releases/tag/{pin}"
    )
    path = probe.which(configured)
    if path is None:
        return _tool_missing("eksctl", configured, fix)
    if Path(configured).name != "eksctl":  # a stand-in (the local environment's simulator)
        return Check("eksctl", OK, f"{path} (eks_gpu_cluster_eksctl_path: the inventory's stand-in, no version pin)")
    rc, out, err = probe.run([path, "version"])
    found = _first_line(out)
    if rc != 0 or not found:
        return Check("eksctl", FAIL, f"{path} version failed (rc={rc}): {_first_line(err)}", fix)
    if pin and found.lstrip("v") != pin.lstrip("v"):
        return Check("eksctl", FAIL, f"{path} is eksctl {found}, the pin is {pin}", fix)
    return Check("eksctl", OK, f"{path} ({found})")


def check_istioctl(probe: Probe, pins: Mapping[str, str], configured: str, allow_dev: bool) -> Check:
    pin = pins.get("ISTIO_VERSION", "")
    fix = f"install istioctl {pin}: https://github.com/istio/istio/releases/tag/{pin} (`scripts/tools.sh istioctl`"
    fix += " builds a development snapshot, which only an inventory with istio_istioctl_allow_dev_build: true accepts)"
    path = probe.which(configured)
    if path is None:
        return _tool_missing("istioctl", configured, fix)
    rc, out, err = probe.run([path, "version", "--remote=false", "--output=json"])
    try:
        found = str(json.loads(out)["clientVersion"]["version"])
    except (ValueError, KeyError, TypeError):
        return Check("istioctl", FAIL, f"{path} version failed (rc={rc}): {_first_line(err or out)}", fix)
    if found == pin:
        return Check("istioctl", OK, f"{path} ({found})")
    release = re.fullmatch(r"1\.\d+\.\d+", found) is not None
    if not release and allow_dev:
        return Check(
            "istioctl", OK, f"{path} ({found}: a development build, allowed by istio_istioctl_allow_dev_build)"
        )
    kind = "" if release else " (a development build)"
    return Check("istioctl", FAIL, f"{path} is istioctl {found}{kind}, the istio stage needs {pin}", fix)


def check_aws_credentials(probe: Probe) -> tuple[Check, str | None]:
    fix = (
        "give boto3 credentials: `aws configure` or `aws sso login --profile P` with AWS_PROFILE=P, or"
        " AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance/pod role"
    )
    try:
        method, region = probe.aws_credentials()
    except Exception as e:  # noqa: BLE001 (a broken config file, an SSO cache that cannot be read ...)
        return Check("aws credentials", FAIL, f"the credential chain failed: {_first_line(str(e))}", fix), None
    if method is None:
        return Check("aws credentials", FAIL, "none found in the credential chain", fix), region
    source = CREDENTIAL_SOURCES.get(method, method)
    env = probe.environ
    if method in ("shared-credentials-file", "config-file", "assume-role", "sso", "custom-process"):
        profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
        source += f", profile {profile}"
        if method == "shared-credentials-file" and env.get("AWS_SHARED_CREDENTIALS_FILE"):
            source += f" ({env['AWS_SHARED_CREDENTIALS_FILE']})"
    return Check("aws credentials", OK, f"found: {source}"), region


def check_aws_endpoint(probe: Probe, endpoint: str, local: bool) -> Check:
    fix = "start it: `tritonfil local up`" if local else "check tritonfil_aws_endpoint_url / AWS_ENDPOINT_URL"
    try:
        status = probe.http_status(endpoint)
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return Check("aws endpoint", FAIL, f"{endpoint} unreachable: {reason}", fix)
    return Check("aws endpoint", OK, f"{endpoint} answers (HTTP {status})")


def check_aws_identity(probe: Probe, region: str | None, endpoint: str | None) -> Check:
    try:
        who = probe.caller_identity(region, endpoint)
    except Exception as e:  # noqa: BLE001 (botocore's ClientError, EndpointConnectionError, NoRegionError ...)
        text = _first_line(str(e))
        if "Could not connect" in text or "Connect timeout" in text:
            fix = "no route to the AWS endpoint: check the network, proxy (HTTPS_PROXY) or the endpoint override"
        elif "region" in text.lower():
            fix = "set tritonfil_region in the inventory (or AWS_REGION)"
        else:
            fix = "the credentials were refused: refresh them (`aws sso login`, new keys) or pick another AWS_PROFILE"
        return Check("aws identity", FAIL, f"sts:GetCallerIdentity failed: {text}", fix)
    return Check("aws identity", OK, f"account {who['account']} as {who['arn']}")


def _kubeconfig_path(explicit: str | None, inventory_value: Any, environ: Mapping[str, str]) -> tuple[Path, str]:
    if explicit:
        return Path(explicit).expanduser(), "--kubeconfig"
    if inventory_value:
        return Path(str(inventory_value)).expanduser(), "the inventory's tritonfil_kubeconfig"
    if environ.get("KUBECONFIG"):
        return Path(environ["KUBECONFIG"].split(os.pathsep)[0]).expanduser(), "KUBECONFIG"
    return Path("~/.kube/config").expanduser(), "the default"


def check_kubeconfig(probe: Probe, path: Path, origin: str) -> Check:
    import yaml

    try:
        text = probe.read_file(path)
    except FileNotFoundError:
        return Check(
            "kubeconfig", SKIP,
            f"{path} ({origin}) does not exist yet: the eks_gpu_cluster stage writes it"
            " (`tritonfil deploy --tags eks_gpu_cluster`)",
        )  # fmt: skip
    except OSError as e:
        return Check("kubeconfig", FAIL, f"{path}: {e.strerror}", f"make {path} readable by this user")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        return Check("kubeconfig", FAIL, f"{path} does not parse: {_first_line(str(e))}", f"fix or remove {path}")
    current = data.get("current-context") if isinstance(data, dict) else None
    contexts = {c.get("name"): c.get("context") or {} for c in (data.get("contexts") or []) if isinstance(c, dict)}
    if not current or current not in contexts:
        names = ", ".join(str(n) for n in contexts) or "none"
        return Check(
            "kubeconfig", FAIL, f"{path}: no current context (contexts: {names})",
            f"kubectl --kubeconfig {path} config use-context NAME",
        )  # fmt: skip
    ctx = contexts[current]
    clusters = {c.get("name"): c.get("cluster") or {} for c in (data.get("clusters") or []) if isinstance(c, dict)}
    users = {u.get("name"): u.get("user") or {} for u in (data.get("users") or []) if isinstance(u, dict)}
    server = clusters.get(ctx.get("cluster"), {}).get("server")
    if not server:
        return Check(
            "kubeconfig", FAIL, f"{path}: context {current} names cluster {ctx.get('cluster')!r}, which has no server",
            f"rewrite it: `aws eks update-kubeconfig --name CLUSTER --kubeconfig {path}`",
        )  # fmt: skip
    exec_cmd = (users.get(ctx.get("user"), {}).get("exec") or {}).get("command")
    if exec_cmd and probe.which(str(exec_cmd)) is None:
        return Check(
            "kubeconfig", FAIL, f"{path}: context {current} authenticates with `{exec_cmd}`, which is not on PATH",
            "install the AWS CLI (`pip install awscli`), which `aws eks get-token` needs",
        )  # fmt: skip
    auth = f", auth: {exec_cmd}" if exec_cmd else ""
    return Check("kubeconfig", OK, f"{path}: context {current}, server {server}{auth}")


def check_kube_api(probe: Probe, path: Path, local: bool) -> Check:
    fix = (
        "is the local environment up? `tritonfil local status`"
        if local
        else "is the cluster up (`aws eks describe-cluster`)? can this machine reach its endpoint (VPN, public access)?"
    )
    try:
        status, body = probe.kube_readyz(path)
    except Exception as e:  # noqa: BLE001 (urllib3, the exec plugin, a bad certificate ...)
        return Check("kube API", FAIL, f"/readyz: {_first_line(str(e))[:300]}", fix)
    if status == 200:
        return Check("kube API", OK, f"/readyz: {body or 'ok'}")
    if status in (401, 403):
        return Check(
            "kube API", FAIL, f"/readyz answered {status}: the kubeconfig's credentials are refused",
            "refresh the credentials (for EKS: the AWS identity must be in the cluster's access entries)",
        )  # fmt: skip
    return Check("kube API", FAIL, f"/readyz answered {status}: {body[:200]}", fix)


def run_checks(
    *,
    inventory: str = "local",
    project: str | None = None,
    kubeconfig: str | None = None,
    probe: Probe | None = None,
) -> list[Check]:
    """Every check for a deployment with INVENTORY (local, aws or a path), in order."""
    from tritonfil import api

    probe = probe or Probe()
    checks: list[Check] = []
    root: Path | None = None
    try:
        root = probe.collection_root()
        checks.append(Check("collection", OK, f"tritonfil.eks at {root}"))
    except ImportError as e:
        checks.append(Check("collection", FAIL, str(e).split(":", 1)[0], str(e).split(":", 1)[-1].strip()))
    pins: dict[str, str] = {}
    if root is not None:
        try:
            pins = probe.pins()
        except Exception as e:  # noqa: BLE001
            checks.append(Check("pins", FAIL, f"scripts/versions.env: {e}", "reinstall tritonfil (the wheel has it)"))

    values: dict[str, Any] = {}
    local = False
    try:
        proj = api.find_project(project)
        inv = api.resolve_inventory(inventory, proj)
        local = api.is_local_inventory(inv, proj)
        if isinstance(inv, Path):
            host, values = probe.inventory_vars(inv, INVENTORY_VARS)
            region = values.get("tritonfil_region", "?")
            checks.append(Check("inventory", OK, f"{inv} (host {host}, region {region})"))
        else:
            checks.append(Check("inventory", OK, f"host list {inv}"))
    except Exception as e:  # noqa: BLE001 (ProjectNotFound, an inventory Ansible cannot parse)
        checks.append(Check("inventory", FAIL, _first_line(str(e)), "pass -i local, -i aws or an inventory path"))

    if local:
        try:
            health = probe.local_status()
        except Exception as e:  # noqa: BLE001
            health, error = {}, _first_line(str(e))
        else:
            error = ""
        bad = sorted(n for n, h in health.items() if not h.get("ok"))
        if not health:
            checks.append(Check("local environment", FAIL, error or "down", "`tritonfil local up`"))
        elif bad:
            checks.append(
                Check(
                    "local environment",
                    FAIL,
                    f"not healthy: {', '.join(bad)}",
                    "`tritonfil local down && tritonfil local up`",
                )
            )
        else:
            checks.append(Check("local environment", OK, f"up: {', '.join(health)}"))

    checks.append(check_ansible(probe))
    checks.append(check_helm(probe, pins))
    checks.append(check_kubectl(probe, pins))
    checks.append(check_skopeo(probe))
    checks.append(check_eksctl(probe, pins, str(values.get("eks_gpu_cluster_eksctl_path") or "eksctl")))
    allow_dev = str(values.get("istio_istioctl_allow_dev_build", "false")).lower() in ("true", "1", "yes")
    checks.append(check_istioctl(probe, pins, str(values.get("istio_istioctl_path") or "istioctl"), allow_dev))

    creds, session_region = check_aws_credentials(probe)
    checks.append(creds)
    endpoint = str(values.get("tritonfil_aws_endpoint_url") or probe.environ.get("AWS_ENDPOINT_URL") or "")
    if endpoint:
        checks.append(check_aws_endpoint(probe, endpoint, local))
    region = str(values.get("tritonfil_region") or session_region or "") or None
    if creds.status == OK:
        checks.append(check_aws_identity(probe, region, endpoint or None))
    else:
        checks.append(Check("aws identity", SKIP, "no credentials to ask sts:GetCallerIdentity with"))

    path, origin = _kubeconfig_path(kubeconfig, values.get("tritonfil_kubeconfig"), probe.environ)
    kube = check_kubeconfig(probe, path, origin)
    checks.append(kube)
    if kube.status == OK:
        checks.append(check_kube_api(probe, path, local))
    else:
        checks.append(Check("kube API", SKIP, "no usable kubeconfig to reach it with"))
    return checks


def read_inventory_vars(inventory: str, names: list[str]) -> dict[str, Any]:
    """{"host": the first host of group tritonfil, "values": {name: templated value}}; a value that cannot be
    templated (a lookup of a file that does not exist yet, say) is left out."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    init_plugin_loader()
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[inventory])
    hosts = manager.get_hosts("tritonfil")
    if not hosts:
        raise LookupError(f"{inventory} has no host in group tritonfil")
    variables = VariableManager(loader=loader, inventory=manager).get_vars(host=hosts[0])
    templar = Templar(loader=loader, variables=variables)
    values: dict[str, Any] = {}
    for name in names:
        if name in variables:
            try:
                values[name] = templar.template(variables[name])
            except Exception:  # noqa: BLE001 (a value the run would fail on; its stage reports it)
                continue
    return {"host": hosts[0].name, "values": values}


def format_checks(checks: list[Check]) -> str:
    """One line per check (status, name, detail, fix), then the count."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        line = f"{c.status:<4}  {c.name:<{width}}  {c.detail}"
        if c.fix and c.status != OK:
            line += f"; fix: {c.fix}"
        lines.append(line)
    failed = sum(1 for c in checks if c.status == FAIL)
    skipped = sum(1 for c in checks if c.status == SKIP)
    lines.append(f"doctor: {len(checks) - failed - skipped} ok, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def document(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}


if __name__ == "__main__":  # `python -m tritonfil.doctor inventory-vars INVENTORY NAME...` (Probe.inventory_vars)
    if sys.argv[1:2] != ["inventory-vars"] or len(sys.argv) < 3:
        sys.exit("usage: python -m tritonfil.doctor inventory-vars INVENTORY [NAME...]")
    try:
        print(json.dumps(read_inventory_vars(sys.argv[2], sys.argv[3:]), default=str))
    except Exception as exc:  # noqa: BLE001 (one line for the parent)
        sys.exit(f"{type(exc).__name__}: {_first_line(str(exc))}")
