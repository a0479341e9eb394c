# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""One wrapper around the eksctl CLI, with a single error path.

`Eksctl` finds the binary, builds every command line as an argv list, runs it with ``LC_ALL=C``
and the AWS endpoint override passed through, and parses the JSON that ``eksctl get ... -o json``
prints. Any failure comes out as `EksctlError` carrying the command, rc, stdout and stderr, with
AWS credentials redacted. `render_cluster_config` builds the ClusterConfig (eksctl.io/v1alpha5)
the module hands to ``eksctl create cluster -f``; `plan` compares it with what exists.

No Ansible import, so unit tests and the simulator's tests use it directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

# Argument spec shared with plugins/doc_fragments/eksctl.py.
EKSCTL_COMMON_ARGS: dict[str, dict[str, Any]] = {
    "eksctl_path": {"type": "str", "default": "eksctl"},
    "region": {"type": "str", "required": True},
    "endpoint_url": {"type": "str"},
}

# Environment variables handed to eksctl besides the inherited environment; the values of the
# credential ones are redacted from every error message.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
_SECRET_PATTERNS = [
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken)(\s*[=:]\s*)(\S+)"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b"),
]

NOT_FOUND_MARKERS = ("ResourceNotFoundException", "No cluster found for name")


class EksctlError(Exception):
    """An eksctl command failed; ``message`` says what and on which cluster."""

    def __init__(self, message: str, *, command: Sequence[str] = (), rc: int | None = None, stdout: str = "",
                 stderr: str = "") -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.command = list(command)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def details(self) -> dict[str, Any]:
        return {"command": self.command, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """TEXT with the given secret values and anything shaped like an AWS credential replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "********")
    text = _SECRET_PATTERNS[0].sub(r"\1\2********", text)
    return _SECRET_PATTERNS[1].sub("********", text)


Runner = Callable[[list[str], dict[str, str]], tuple[int, str, str]]


def _subprocess_runner(timeout: float | None) -> Runner:
    def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    return run


class Eksctl:
    """The eksctl CLI for one region. ``runner`` replaces subprocess in tests."""

    def __init__(
        self,
        binary: str = "eksctl",
        region: str = "",
        endpoint_url: str | None = None,
        environ: dict[str, str] | None = None,
        runner: Runner | None = None,
        timeout: float | None = None,
    ) -> None:
        self.binary = binary
        self.region = region
        self.endpoint_url = endpoint_url
        self.base_env = dict(os.environ if environ is None else environ)
        self.runner = runner or _subprocess_runner(timeout)

    # -- binary and environment
    def find(self) -> str:
        """Absolute path of the binary (a name is looked up on PATH); EksctlError when missing."""
        found = shutil.which(self.binary, path=self.base_env.get("PATH"))
        if not found:
            raise EksctlError(
                f"eksctl not found: {self.binary!r} is not an executable file or on PATH "
                "(install eksctl, or set eksctl_path)",
                command=[self.binary],
            )
        self.binary = found
        return found

    def env(self) -> dict[str, str]:
        env = dict(self.base_env)
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.region:
            env["AWS_REGION"] = self.region
            env["AWS_DEFAULT_REGION"] = self.region
        return env

    # -- command lines
    def argv_version(self) -> list[str]:
        return [self.binary, "version"]

    def argv_get_cluster(self, name: str) -> list[str]:
        return [self.binary, "get", "cluster", "--name", name, "--region", self.region, "--output", "json"]

    def argv_get_nodegroups(self, cluster: str) -> list[str]:
        return [self.binary, "get", "nodegroup", "--cluster", cluster, "--region", self.region, "--output", "json"]

    def argv_create_cluster(self, config_file: str, timeout: int) -> list[str]:
        # The kubeconfig is written separately (write-kubeconfig), to the path the caller asked for.
        return [self.binary, "create", "cluster", "--config-file", config_file, "--write-kubeconfig=false",
                "--timeout", f"{timeout}s"]  # fmt: skip

    def argv_scale_nodegroup(
        self, cluster: str, nodegroup: str, min_size: int, desired: int, max_size: int, wait: bool, timeout: int
    ) -> list[str]:
        argv = [self.binary, "scale", "nodegroup", "--cluster", cluster, "--name", nodegroup, "--region", self.region,
                "--nodes", str(desired), "--nodes-min", str(min_size), "--nodes-max", str(max_size)]  # fmt: skip
        if wait:
            argv += ["--wait", "--timeout", f"{timeout}s"]
        return argv

    def argv_delete_cluster(self, name: str, wait: bool, timeout: int) -> list[str]:
        argv = [self.binary, "delete", "cluster", "--name", name, "--region", self.region]
        if wait:
            argv += ["--wait", "--timeout", f"{timeout}s"]
        return argv

    def argv_write_kubeconfig(self, name: str, path: str) -> list[str]:
        return [self.binary, "utils", "write-kubeconfig", "--cluster", name, "--region", self.region,
                "--kubeconfig", path]  # fmt: skip

    # -- the single error path
    def run(self, argv: list[str], what: str) -> tuple[int, str, str]:
        env = self.env()
        secrets = [env.get(k, "") for k in SECRET_ENV]
        try:
            rc, out, err = self.runner(argv, env)
        except subprocess.TimeoutExpired as exc:
            raise EksctlError(f"{what}: timed out after {exc.timeout}s", command=argv) from exc
        except OSError as exc:
            raise EksctlError(f"{what}: cannot run {argv[0]}: {exc}", command=argv) from exc
        return rc, redact(out, secrets), redact(err, secrets)

    def check(self, argv: list[str], what: str) -> str:
        rc, out, err = self.run(argv, what)
        if rc != 0:
            raise EksctlError(f"{what} failed (rc={rc}): {last_error_line(err or out)}", command=argv, rc=rc,
                              stdout=out, stderr=err)  # fmt: skip
        return out

    # -- reads
    def version(self) -> str:
        return self.check(self.argv_version(), "eksctl version").strip()

    def get_cluster(self, name: str) -> dict[str, Any] | None:
        """The cluster as `eksctl get cluster -o json` prints it (EKS Cluster, Go field names); None when absent."""
        argv = self.argv_get_cluster(name)
        rc, out, err = self.run(argv, f"get cluster {name}")
        if rc != 0:
            if any(marker in err + out for marker in NOT_FOUND_MARKERS):
                return None
            raise EksctlError(f"get cluster {name} failed (rc={rc}): {last_error_line(err or out)}", command=argv,
                              rc=rc, stdout=out, stderr=err)  # fmt: skip
        clusters = parse_json_list(out, argv, f"get cluster {name}")
        return clusters[0] if clusters else None

    def get_nodegroups(self, cluster: str) -> list[dict[str, Any]]:
        """Node group summaries as `eksctl get nodegroup -o json` prints them."""
        argv = self.argv_get_nodegroups(cluster)
        return parse_json_list(self.check(argv, f"get nodegroups of {cluster}"), argv, f"get nodegroups of {cluster}")


def last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:") or "✖" in ln]
    return (errors or lines or ["no output"])[-1]


def parse_json_list(text: str, argv: list[str], what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise EksctlError(f"{what}: eksctl printed no valid JSON ({exc})", command=argv, stdout=text) from exc
    if isinstance(data, dict):  # an empty result prints `{}` in some versions
        data = [data] if data else []
    if not isinstance(data, list):
        raise EksctlError(f"{what}: expected a JSON list, got {type(data).__name__}", command=argv, stdout=text)
    return data


# -- ClusterConfig ---------------------------------------------------------------------------------


def render_cluster_config(
    name: str,
    region: str,
    version: str,
    nodegroups: Sequence[dict[str, Any]],
    with_oidc: bool = True,
    service_accounts: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A ClusterConfig (eksctl.io/v1alpha5) from the module's options."""
    config: dict[str, Any] = {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {"name": name, "region": region, "version": str(version)},
        "iam": {"withOIDC": bool(with_oidc)},
        "managedNodeGroups": [],
    }
    if service_accounts:
        config["iam"]["serviceAccounts"] = [
            {
                "metadata": {"name": sa["name"], "namespace": sa["namespace"]},
                "attachPolicy": sa["attach_policy"],
                **({"roleName": sa["role_name"]} if sa.get("role_name") else {}),
                # role_only: eksctl creates the IAM role but no ServiceAccount (a Helm chart owns it).
                **({"roleOnly": True} if sa.get("role_only") else {}),
            }
            for sa in service_accounts
        ]
    for ng in nodegroups:
        rendered: dict[str, Any] = {
            "name": ng["name"],
            "instanceType": ng["instance_type"],
            "amiFamily": ng.get("ami_family") or "AmazonLinux2023",
            "minSize": ng["min_size"],
            "desiredCapacity": ng["desired_capacity"],
            "maxSize": ng["max_size"],
            "volumeSize": ng.get("volume_size") or 80,
            "ssh": {"allow": bool(ng.get("ssh_allow"))},
        }
        if ng.get("labels"):
            rendered["labels"] = {str(k): str(v) for k, v in ng["labels"].items()}
        if ng.get("taints"):
            rendered["taints"] = [
                {"key": t["key"], "value": str(t.get("value", "")), "effect": t.get("effect", "NoSchedule")}
                for t in ng["taints"]
            ]
        config["managedNodeGroups"].append(rendered)
    return config


def validate_config(config: dict[str, Any], name: str, region: str) -> list[str]:
    """Problems that eksctl would reject later, named by field; empty when the config is usable."""
    problems = []
    meta = config.get("metadata") or {}
    if meta.get("name") != name:
        problems.append(f"config.metadata.name {meta.get('name')!r} differs from name {name!r}")
    if meta.get("region") != region:
        problems.append(f"config.metadata.region {meta.get('region')!r} differs from region {region!r}")
    if not meta.get("version"):
        problems.append("config.metadata.version is required (e.g. '1.33')")
    for ng in config.get("managedNodeGroups") or []:
        sizes = [ng.get("minSize"), ng.get("desiredCapacity"), ng.get("maxSize")]
        if None in sizes:
            problems.append(f"managed node group {ng.get('name')}: minSize, desiredCapacity and maxSize are required")
        elif not (0 <= sizes[0] <= sizes[1] <= sizes[2]):
            problems.append(
                f"managed node group {ng.get('name')}: need 0 <= minSize <= desiredCapacity <= maxSize, "
                f"got {sizes[0]}/{sizes[1]}/{sizes[2]}"
            )
    return problems


def desired_state(config: dict[str, Any]) -> dict[str, Any]:
    """The fields the module compares and diffs, from a ClusterConfig."""
    return {
        "name": config["metadata"]["name"],
        "version": str(config["metadata"]["version"]),
        "nodegroups": {
            ng["name"]: {
                "instance_type": ng.get("instanceType", ""),
                "min_size": ng["minSize"],
                "desired_capacity": ng["desiredCapacity"],
                "max_size": ng["maxSize"],
            }
            for ng in config.get("managedNodeGroups") or []
        },
    }


def current_state(cluster: dict[str, Any] | None, nodegroups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The same fields from `eksctl get cluster` / `get nodegroup` JSON ({} when there is no cluster)."""
    if cluster is None:
        return {}
    return {
        "name": cluster.get("Name", ""),
        "version": str(cluster.get("Version", "")),
        "nodegroups": {
            ng["Name"]: {
                "instance_type": ng.get("InstanceType", ""),
                "min_size": int(ng.get("MinSize", 0)),
                "desired_capacity": int(ng.get("DesiredCapacity", 0)),
                "max_size": int(ng.get("MaxSize", 0)),
            }
            for ng in nodegroups
        },
    }


def plan(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(node groups to scale, refusals) to go from BEFORE to AFTER on an existing cluster."""
    refusals = []
    scale = []
    name = after["name"]
    if before["version"] != after["version"]:
        refusals.append(
            f"Cannot modify version of existing cluster {name} (it is {before['version']}, asked for "
            f"{after['version']}): upgrade it with `eksctl upgrade cluster`"
        )
    for ng_name, want in after["nodegroups"].items():
        have = before["nodegroups"].get(ng_name)
        if have is None:
            refusals.append(
                f"Cannot add managed node group {ng_name} to existing cluster {name}: "
                f"it has {sorted(before['nodegroups']) or 'none'} (create it with `eksctl create nodegroup`)"
            )
            continue
        if want["instance_type"] and have["instance_type"] and want["instance_type"] != have["instance_type"]:
            refusals.append(
                f"Cannot modify instance type of node group {ng_name} of existing cluster {name} "
                f"(it is {have['instance_type']}, asked for {want['instance_type']})"
            )
        sizes = ("min_size", "desired_capacity", "max_size")
        if any(want[k] != have[k] for k in sizes):
            scale.append({"name": ng_name, **{k: want[k] for k in sizes}})
    return scale, refusals
