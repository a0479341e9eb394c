# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""One wrapper around the eksctl CLI, with a single error path.

`Eksctl` finds the binary, builds every command line as an argv list, runs it with ``LC_ALL=C``
and the AWS endpoint override passed through, and parses the JSON that ``eksctl get ... -o json``
prints. Any failure comes out as `EksctlError` carrying the command, rc, stdout and stderr, with
AWS credentials redacted. `render_cluster_config` builds the ClusterConfig (eksctl.io/v1alpha5)
the module hands to ``eksctl create cluster -f``; `plan` compares it with what exists and `converge`
makes an existing cluster complete (missing node groups, IRSA roles, OIDC provider) and scales it.

No Ansible import, so unit tests and the simulator's tests use it directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:
    import yaml
except ImportError as exc:  # the controller's Python has it (ansible-core needs it); elsewhere the module says so
    yaml = None
    YAML_IMPORT_ERROR: ImportError | None = exc
else:
    YAML_IMPORT_ERROR = None

# Argument spec shared with plugins/doc_fragments/eksctl.py.
EKSCTL_COMMON_ARGS: dict[str, dict[str, Any]] = {
    "eksctl_path": {"type": "str", "default": "eksctl"},
    "region": {"type": "str", "required": True},
    "endpoint_url": {"type": "str"},
}

# The control-plane hardening render_cluster_config applies unless told otherwise (the module's options of the
# same names): the three log types the EKS best-practices guide asks for, both endpoints (private: nodes and pods
# reach the API inside the VPC), no CIDR list (the caller's rule decides whether an open public endpoint is
# acceptable), no KMS key (Secrets then have EKS's default encryption only).
SECURITY_DEFAULTS: dict[str, Any] = {
    "cluster_logging": ["api", "audit", "authenticator"],
    "endpoint_public_access": True,
    "endpoint_private_access": True,
    "public_access_cidrs": [],
    "secrets_kms_key_arn": "",
}

# eksctl's CloudWatch control-plane log types (pkg/apis/eksctl.io/v1alpha5/cloudwatch.go; "all" and "*" too).
CLUSTER_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler", "all", "*")

# Environment variables handed to eksctl besides the inherited environment; the values of the
# credential ones are redacted from every error message.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
_SECRET_PATTERNS = [
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken)(\s*[=:]\s*)(\S+)"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b"),
]

NOT_FOUND_MARKERS = ("ResourceNotFoundException", "No cluster found for name")

# `eksctl utils associate-iam-oidc-provider` without --approve (plan mode) logs one of these
# (pkg/ctl/utils/associate_iam_oidc_provider.go, cmdutils.LogIntendedAction).
OIDC_PRESENT_MARKER = "IAM Open ID Connect provider is already associated with cluster"
OIDC_MISSING_MARKER = "would create IAM Open ID Connect provider for cluster"

# EKS cluster statuses waited for (eksctl's own waiters would); DELETING and FAILED are refused.
WAIT_STATUSES = ("CREATING", "PENDING")


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


class Refusal(EksctlError):
    """The cluster exists but cannot be made to match the config in place (version, instance type, status)."""

    def __init__(self, message: str, cluster: dict[str, Any] | None = None,
                 nodegroups: Sequence[dict[str, Any]] = ()) -> None:  # fmt: skip
        super().__init__(message)
        self.cluster = cluster
        self.nodegroups = list(nodegroups)


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
    """The eksctl CLI for one region. ``runner`` replaces subprocess in tests. PARALLEL_READS: `read_all` runs
    independent reads at the same time (default: only with the real subprocess runner, so a test's runner that
    answers from a queue gets its calls in order)."""

    def __init__(
        self,
        binary: str = "eksctl",
        region: str = "",
        endpoint_url: str | None = None,
        environ: dict[str, str] | None = None,
        runner: Runner | None = None,
        timeout: float | None = None,
        parallel_reads: bool | None = None,
    ) -> None:
        self.binary = binary
        self.region = region
        self.endpoint_url = endpoint_url
        self.base_env = dict(os.environ if environ is None else environ)
        self.parallel_reads = runner is None if parallel_reads is None else parallel_reads
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
    def argv_get_cluster(self, name: str) -> list[str]:
        return [self.binary, "get", "cluster", "--name", name, "--region", self.region, "--output", "json"]

    def argv_get_nodegroups(self, cluster: str) -> list[str]:
        return [self.binary, "get", "nodegroup", "--cluster", cluster, "--region", self.region, "--output", "json"]

    def argv_create_cluster(self, config_file: str, timeout: int) -> list[str]:
        # The kubeconfig is written separately (write-kubeconfig), to the path the caller asked for.
        return [self.binary, "create", "cluster", "--config-file", config_file, "--write-kubeconfig=false",
                "--timeout", f"{timeout}s"]  # fmt: skip

    def argv_get_iamserviceaccounts(self, cluster: str) -> list[str]:
        return [self.binary, "get", "iamserviceaccount", "--cluster", cluster, "--region", self.region,
                "--output", "json"]  # fmt: skip

    def argv_create_nodegroups(self, config_file: str, names: Sequence[str], timeout: int) -> list[str]:
        # With --config-file eksctl refuses --region/--cluster (they come from metadata); --include picks the
        # missing ones (an existing node group matching --include is an error, not a skip).
        return [self.binary, "create", "nodegroup", "--config-file", config_file, f"--include={','.join(names)}",
                "--timeout", f"{timeout}s"]  # fmt: skip

    def argv_create_iamserviceaccounts(self, config_file: str, names: Sequence[str], timeout: int) -> list[str]:
        # NAMES are NAMESPACE/NAME. --override-existing-serviceaccounts: a ServiceAccount that already exists in
        # Kubernetes (without its role) gets the role and annotation instead of being skipped silently; it has
        # no effect on roleOnly entries.
        return [self.binary, "create", "iamserviceaccount", "--config-file", config_file,
                f"--include={','.join(names)}", "--override-existing-serviceaccounts", "--approve",
                "--timeout", f"{timeout}s"]  # fmt: skip

    def argv_check_oidc_provider(self, cluster: str) -> list[str]:
        # Without --approve this is eksctl's plan mode: it only says whether it would create the provider.
        return [self.binary, "utils", "associate-iam-oidc-provider", "--cluster", cluster, "--region", self.region]

    def argv_associate_oidc_provider(self, config_file: str) -> list[str]:
        return [self.binary, "utils", "associate-iam-oidc-provider", "--config-file", config_file, "--approve"]

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
    def read_all(self, reads: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
        """Each read's result by its key. With parallel_reads the reads run at the same time (each is its own eksctl
        process; on AWS each `get` is seconds of EKS and CloudFormation calls); all of them finish either way, and
        the first error in READS' order is raised."""
        if not self.parallel_reads or len(reads) < 2:
            return {key: read() for key, read in reads.items()}
        with ThreadPoolExecutor(max_workers=len(reads)) as pool:
            futures = {key: pool.submit(read) for key, read in reads.items()}
        for future in futures.values():
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return {key: future.result() for key, future in futures.items()}

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

    def get_iamserviceaccounts(self, cluster: str) -> list[dict[str, Any]]:
        """IRSA service accounts (their CloudFormation stacks) as `eksctl get iamserviceaccount -o json` prints
        them: ``{"metadata": {"name", "namespace"}, "status": {"roleARN", "stackName", ...}}``."""
        argv = self.argv_get_iamserviceaccounts(cluster)
        what = f"get iamserviceaccounts of {cluster}"
        return parse_json_list(self.check(argv, what), argv, what)

    def oidc_provider_associated(self, cluster: str) -> bool:
        """Whether the cluster's IAM OIDC provider exists, asked through eksctl's plan mode (no --approve)."""
        argv = self.argv_check_oidc_provider(cluster)
        what = f"check the IAM OIDC provider of {cluster}"
        rc, out, err = self.run(argv, what)
        if rc != 0:
            raise EksctlError(f"{what} failed (rc={rc}): {last_error_line(err or out)}", command=argv, rc=rc,
                              stdout=out, stderr=err)  # fmt: skip
        if OIDC_PRESENT_MARKER in out + err:  # eksctl logs to stdout (get commands: stderr)
            return True
        if OIDC_MISSING_MARKER in out + err:
            return False
        raise EksctlError(f"{what}: eksctl said neither that the provider exists nor that it would create it",
                          command=argv, rc=rc, stdout=out, stderr=err)  # fmt: skip


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
    security: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ClusterConfig (eksctl.io/v1alpha5) from the module's options.

    SECURITY (keys of `SECURITY_DEFAULTS`, missing ones take those defaults) hardens the control plane:
    CloudWatch control-plane logging (``cloudWatch.clusterLogging.enableTypes``), the API endpoint's public and
    private access (``vpc.clusterEndpoints``) and the CIDRs allowed to the public one (``vpc.publicAccessCIDRs``;
    none rendered = EKS's default, any address), envelope encryption of Secrets (``secretsEncryption.keyARN``).
    Each node group gets ``volumeEncrypted`` (+ ``volumeKmsKeyID``) and ``disablePodIMDS`` (eksctl then requires
    IMDSv2 with a hop limit of 1: pods on the pod network cannot reach the node role's credentials) unless its
    ``volume_encrypted`` / ``disable_pod_imds`` say false. TAGS become ``metadata.tags`` (the stacks' tags, which
    CloudFormation puts on the VPC, subnets and security groups it creates)."""
    sec = {**SECURITY_DEFAULTS, **{k: v for k, v in (security or {}).items() if v is not None}}
    config: dict[str, Any] = {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {
            "name": name,
            "region": region,
            "version": str(version),
            **({"tags": {str(k): str(v) for k, v in tags.items()}} if tags else {}),
        },
        "iam": {"withOIDC": bool(with_oidc)},
        "vpc": {
            "clusterEndpoints": {
                "publicAccess": bool(sec["endpoint_public_access"]),
                "privateAccess": bool(sec["endpoint_private_access"]),
            },
        },
        "managedNodeGroups": [],
    }
    if sec["endpoint_public_access"] and sec["public_access_cidrs"]:
        config["vpc"]["publicAccessCIDRs"] = [str(c) for c in sec["public_access_cidrs"]]
    if sec["cluster_logging"]:
        config["cloudWatch"] = {"clusterLogging": {"enableTypes": [str(t) for t in sec["cluster_logging"]]}}
    if sec["secrets_kms_key_arn"]:
        config["secretsEncryption"] = {"keyARN": str(sec["secrets_kms_key_arn"])}
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
            "volumeEncrypted": ng.get("volume_encrypted", True) is not False,
            "disablePodIMDS": ng.get("disable_pod_imds", True) is not False,
            "ssh": {"allow": bool(ng.get("ssh_allow"))},
        }
        if rendered["volumeEncrypted"] and ng.get("volume_kms_key_id"):
            rendered["volumeKmsKeyID"] = str(ng["volume_kms_key_id"])
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
    endpoints = (config.get("vpc") or {}).get("clusterEndpoints") or {}
    if endpoints and endpoints.get("publicAccess") is False and endpoints.get("privateAccess") is False:
        problems.append("vpc.clusterEndpoints: publicAccess and privateAccess cannot both be false")
    log_types = ((config.get("cloudWatch") or {}).get("clusterLogging") or {}).get("enableTypes") or []
    unknown = [t for t in log_types if t not in CLUSTER_LOG_TYPES]
    if unknown:
        problems.append(
            f"cloudWatch.clusterLogging.enableTypes: unknown {', '.join(map(str, unknown))} "
            f"(one of {', '.join(CLUSTER_LOG_TYPES)})"
        )
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


def service_account_name(sa: dict[str, Any]) -> str:
    """NAMESPACE/NAME of an iam.serviceAccounts entry (eksctl's NameString; namespace defaults to default)."""
    meta = sa.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def desired_state(config: dict[str, Any]) -> dict[str, Any]:
    """The fields the module compares and diffs, from a ClusterConfig.

    ``iam_oidc_provider`` only with ``iam.withOIDC``, ``service_accounts`` (NAMESPACE/NAME) only when the
    config has ``iam.serviceAccounts``: the module reads those only then."""
    state: dict[str, Any] = {
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
    iam = config.get("iam") or {}
    if iam.get("withOIDC"):
        state["iam_oidc_provider"] = True
    if iam.get("serviceAccounts"):
        state["service_accounts"] = sorted(service_account_name(sa) for sa in iam["serviceAccounts"])
    return state


def current_state(
    cluster: dict[str, Any] | None,
    nodegroups: Sequence[dict[str, Any]],
    service_accounts: Sequence[dict[str, Any]] | None = None,
    oidc_provider: bool | None = None,
) -> dict[str, Any]:
    """The same fields from `eksctl get cluster` / `get nodegroup` / `get iamserviceaccount` JSON and the OIDC
    check ({} when there is no cluster; the IAM keys only when they were read)."""
    if cluster is None:
        return {}
    state: dict[str, Any] = {
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
    if oidc_provider is not None:
        state["iam_oidc_provider"] = oidc_provider
    if service_accounts is not None:
        state["service_accounts"] = sorted(service_account_name(sa) for sa in service_accounts)
    return state


def plan(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What to do to go from BEFORE to AFTER on an existing cluster:
    ``associate_oidc`` (bool), ``create_nodegroups`` (names), ``create_service_accounts`` (NAMESPACE/NAME),
    ``scale`` (node groups with their wanted sizes) and ``refusals`` (what cannot be changed in place)."""
    refusals = []
    scale = []
    create_nodegroups = []
    name = after["name"]
    if before["version"] != after["version"]:
        refusals.append(
            f"Cannot modify version of existing cluster {name} (it is {before['version']}, asked for "
            f"{after['version']}): upgrade it with `eksctl upgrade cluster`"
        )
    for ng_name, want in after["nodegroups"].items():
        have = before["nodegroups"].get(ng_name)
        if have is None:
            create_nodegroups.append(ng_name)
            continue
        if want["instance_type"] and have["instance_type"] and want["instance_type"] != have["instance_type"]:
            refusals.append(
                f"Cannot modify instance type of node group {ng_name} of existing cluster {name} "
                f"(it is {have['instance_type']}, asked for {want['instance_type']})"
            )
        sizes = ("min_size", "desired_capacity", "max_size")
        if any(want[k] != have[k] for k in sizes):
            scale.append({"name": ng_name, **{k: want[k] for k in sizes}})
    have_sas = before.get("service_accounts")
    create_service_accounts = [
        sa for sa in after.get("service_accounts", []) if have_sas is not None and sa not in have_sas
    ]
    return {
        "associate_oidc": bool(after.get("iam_oidc_provider")) and before.get("iam_oidc_provider") is False,
        "create_nodegroups": create_nodegroups,
        "create_service_accounts": create_service_accounts,
        "scale": scale,
        "refusals": refusals,
    }


def control_plane_drift(cluster: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """How an existing CLUSTER (`eksctl get cluster` JSON) differs from CONFIG's control-plane hardening (logging,
    endpoint access, public CIDRs, Secrets encryption), each with the eksctl command that changes it. eksctl applies
    these at creation only; the module reports them and changes nothing (changing API access from a run that
    depends on it could cut the run off)."""
    name = config["metadata"]["name"]
    out = []
    every = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    want_types = ((config.get("cloudWatch") or {}).get("clusterLogging") or {}).get("enableTypes") or []
    want_logs = sorted(every if {"all", "*"} & set(want_types) else want_types)
    have_logs = sorted(
        t for entry in (cluster.get("Logging") or {}).get("ClusterLogging") or [] if entry.get("Enabled")
        for t in entry.get("Types") or []
    )  # fmt: skip
    if want_logs != have_logs:
        out.append(
            f"cluster {name}: control-plane logging is [{', '.join(have_logs)}], the config asks for "
            f"[{', '.join(want_logs)}]: `eksctl utils update-cluster-logging --config-file FILE --approve`"
        )
    vpc = cluster.get("ResourcesVpcConfig") or {}
    want_vpc = config.get("vpc") or {}
    endpoints = want_vpc.get("clusterEndpoints") or {}
    want_public = endpoints.get("publicAccess", True) is not False
    want_cidrs = sorted(want_vpc.get("publicAccessCIDRs") or ["0.0.0.0/0"]) if want_public else []
    have_public = vpc.get("EndpointPublicAccess", True) is not False
    have_cidrs = sorted(vpc.get("PublicAccessCidrs") or ["0.0.0.0/0"]) if have_public else []
    access = [
        ("public", have_public, want_public),
        ("private", bool(vpc.get("EndpointPrivateAccess")), bool(endpoints.get("privateAccess", False))),
    ]
    changed = [f"{what} access {have} (config: {want})" for what, have, want in access if have != want]
    if have_cidrs != want_cidrs:
        changed.append(f"public access CIDRs {', '.join(have_cidrs) or '-'} (config: {', '.join(want_cidrs) or '-'})")
    if changed:
        out.append(
            f"cluster {name}: API endpoint {'; '.join(changed)}: "
            "`eksctl utils update-cluster-vpc-config --config-file FILE --approve`"
        )
    want_key = (config.get("secretsEncryption") or {}).get("keyARN") or ""
    have_keys = [
        (e.get("Provider") or {}).get("KeyArn", "") for e in cluster.get("EncryptionConfig") or []
        if "secrets" in (e.get("Resources") or [])
    ]  # fmt: skip
    if want_key and want_key not in have_keys:
        out.append(
            f"cluster {name}: Secrets are not envelope-encrypted with {want_key}"
            f"{' (they are with ' + ', '.join(have_keys) + ')' if have_keys else ''}: "
            "`eksctl utils enable-secrets-encryption --config-file FILE --approve`"
        )
    return out


def _describe_nodegroup(config: dict[str, Any], name: str) -> str:
    ng = next(ng for ng in config.get("managedNodeGroups") or [] if ng["name"] == name)
    return (
        f"create node group {name} ({ng.get('instanceType', '?')}, min {ng['minSize']}, "
        f"desired {ng['desiredCapacity']}, max {ng['maxSize']})"
    )


def _describe_service_account(config: dict[str, Any], name: str) -> str:
    sa = next(sa for sa in (config.get("iam") or {}).get("serviceAccounts") or [] if service_account_name(sa) == name)
    what = "IAM role" if sa.get("roleOnly") else "IAM role and ServiceAccount"
    role = f" {sa['roleName']}" if sa.get("roleName") else ""
    return f"create IRSA service account {name} ({what}{role})"


def converge(
    eksctl: Eksctl,
    config: dict[str, Any],
    *,
    check_mode: bool,
    wait_timeout: int,
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float = 10.0,
    commands: list[list[str]] | None = None,
) -> dict[str, Any]:
    """Make the cluster of CONFIG exist and match it as far as eksctl can in place.

    Missing cluster: ``eksctl create cluster``. Existing cluster (after waiting while it is CREATING, as
    eksctl's own waiters would): the IAM OIDC provider (``utils associate-iam-oidc-provider``), IRSA service
    accounts (``create iamserviceaccount``) and managed node groups (``create nodegroup``) that are missing
    are created — what an interrupted ``eksctl create cluster`` leaves out — and node group sizes scaled.
    A different version or instance type, or a cluster DELETING/FAILED, raises `Refusal`. In CHECK_MODE only
    reads run. WAIT: wait for scaling (creation always waits). Returns ``changed``, ``actions``, ``commands``,
    ``warnings``, ``diff`` (None when unchanged), ``cluster`` and ``nodegroups``. COMMANDS, when given, is
    the list the commands run are appended to (a caller still has them when an `EksctlError` interrupts)."""
    name = config["metadata"]["name"]
    after = desired_state(config)
    out: dict[str, Any] = {"changed": False, "actions": [], "commands": [] if commands is None else commands,
                           "warnings": [], "diff": None, "cluster": None, "nodegroups": []}  # fmt: skip
    cluster = eksctl.get_cluster(name)
    cluster = _settled(eksctl, cluster, name, check_mode, wait_timeout, sleep, clock, poll_interval, out)
    todo: dict[str, Any] = {"associate_oidc": False, "create_nodegroups": [], "create_service_accounts": [],
                            "scale": []}  # fmt: skip
    if cluster is None:
        before: dict[str, Any] = {}
        nodegroups: list[dict[str, Any]] = []
        out["actions"].append(
            f"create cluster {name} (Kubernetes {after['version']}) with node groups {', '.join(after['nodegroups'])}"
        )
    elif cluster.get("Status") in WAIT_STATUSES:  # check mode: eksctl cannot read IAM of a cluster not ACTIVE
        nodegroups = []
        before = current_state(cluster, nodegroups)
        out["actions"].append(
            f"wait for cluster {name} to become ACTIVE (it is {cluster.get('Status')}), then create what it lacks"
        )
        after = {**after, "nodegroups": {**before["nodegroups"], **after["nodegroups"]}}
    else:
        reads: dict[str, Callable[[], Any]] = {"nodegroups": lambda: eksctl.get_nodegroups(name)}
        if "service_accounts" in after:
            reads["service_accounts"] = lambda: eksctl.get_iamserviceaccounts(name)
        if after.get("iam_oidc_provider"):
            reads["oidc"] = lambda: eksctl.oidc_provider_associated(name)
        got = eksctl.read_all(reads)
        nodegroups, sas, oidc = got["nodegroups"], got.get("service_accounts"), got.get("oidc")
        before = current_state(cluster, nodegroups, sas, oidc)
        out["warnings"].extend(control_plane_drift(cluster, config))
        todo = plan(before, after)
        if todo["refusals"]:
            raise Refusal("; ".join(todo["refusals"]), cluster, nodegroups)
        if todo["associate_oidc"]:
            out["actions"].append(f"associate IAM OIDC provider with cluster {name}")
        for sa in todo["create_service_accounts"]:
            out["actions"].append(_describe_service_account(config, sa))
        for ng in todo["create_nodegroups"]:
            out["actions"].append(_describe_nodegroup(config, ng))
        for ng in todo["scale"]:
            out["actions"].append(
                f"scale node group {ng['name']} to min {ng['min_size']}, desired {ng['desired_capacity']}, "
                f"max {ng['max_size']}"
            )
        # Node groups and service accounts the config does not name are left alone: reported, never compared.
        after = {**after, "nodegroups": {**before["nodegroups"], **after["nodegroups"]}}
        if "service_accounts" in after:
            after["service_accounts"] = sorted(set(before["service_accounts"]) | set(after["service_accounts"]))
    out["changed"] = bool(out["actions"])
    if out["changed"]:
        out["diff"] = {"before": before, "after": after}
    if check_mode or not out["changed"]:
        out.update(cluster=cluster, nodegroups=nodegroups)
        return out

    config_file = None
    try:
        if out["changed"]:
            fd, config_file = tempfile.mkstemp(prefix="eksctl-", suffix=".yaml")
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(config, f, sort_keys=False)
        if cluster is None:
            _do(eksctl, out, eksctl.argv_create_cluster(config_file, wait_timeout), f"create cluster {name}")
        if todo["associate_oidc"]:
            _do(eksctl, out, eksctl.argv_associate_oidc_provider(config_file),
                f"associate IAM OIDC provider with cluster {name}")  # fmt: skip
        if todo["create_service_accounts"]:
            _do(eksctl, out,
                eksctl.argv_create_iamserviceaccounts(config_file, todo["create_service_accounts"], wait_timeout),
                f"create iamserviceaccounts {', '.join(todo['create_service_accounts'])} of {name}")  # fmt: skip
        if todo["create_nodegroups"]:
            _do(eksctl, out, eksctl.argv_create_nodegroups(config_file, todo["create_nodegroups"], wait_timeout),
                f"create node groups {', '.join(todo['create_nodegroups'])} of {name}")  # fmt: skip
    finally:
        if config_file:
            os.unlink(config_file)
    for ng in todo["scale"]:
        argv = eksctl.argv_scale_nodegroup(
            name, ng["name"], ng["min_size"], ng["desired_capacity"], ng["max_size"], wait, wait_timeout
        )
        _do(eksctl, out, argv, f"scale node group {ng['name']} of {name}")

    cluster = eksctl.get_cluster(name)
    if cluster is None:
        raise EksctlError(f"cluster {name} not found after eksctl create cluster")
    out.update(cluster=cluster, nodegroups=eksctl.get_nodegroups(name))
    missing = [ng for ng in after["nodegroups"] if ng not in {n["Name"] for n in out["nodegroups"]}]
    if missing:
        raise EksctlError(f"cluster {name}: node groups {', '.join(missing)} still missing after eksctl ran")
    if todo["create_service_accounts"]:
        have = {service_account_name(sa) for sa in eksctl.get_iamserviceaccounts(name)}
        still = [sa for sa in todo["create_service_accounts"] if sa not in have]
        if still:
            raise EksctlError(
                f"cluster {name}: IRSA service accounts {', '.join(still)} still missing after eksctl create "
                "iamserviceaccount"
            )
    return out


def _do(eksctl: Eksctl, out: dict[str, Any], argv: list[str], what: str) -> None:
    eksctl.check(argv, what)
    out["commands"].append(argv)


def _settled(
    eksctl: Eksctl,
    cluster: dict[str, Any] | None,
    name: str,
    check_mode: bool,
    wait_timeout: int,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    poll_interval: float,
    out: dict[str, Any],
) -> dict[str, Any] | None:
    """CLUSTER once it is no longer CREATING (not waited for in check mode); Refusal when DELETING/FAILED."""
    if cluster is None:
        return None
    status = cluster.get("Status", "")
    if status in WAIT_STATUSES:
        if check_mode:
            out["warnings"].append(
                f"cluster {name} is {status}: a real run waits until it is ACTIVE, then creates the node groups, "
                "IRSA roles and OIDC provider it lacks"
            )
            return cluster
        deadline = clock() + wait_timeout
        while status in WAIT_STATUSES:
            if clock() >= deadline:
                raise EksctlError(f"cluster {name} is still {status} after {wait_timeout}s")
            sleep(poll_interval)
            cluster = eksctl.get_cluster(name)
            if cluster is None:
                raise EksctlError(
                    f"cluster {name} disappeared while it was {status} (its creation failed and was rolled back?)"
                )
            status = cluster.get("Status", "")
    if status == "DELETING":
        raise Refusal(
            f"cluster {name} is being deleted (status DELETING): run again once the deletion has finished "
            f"(`eksctl get cluster --name {name} --region {eksctl.region}` reports it missing)",
            cluster,
        )
    if status == "FAILED":
        raise Refusal(
            f"cluster {name} is in status FAILED: delete it (`eksctl delete cluster --name {name} --region "
            f"{eksctl.region}`) and run again",
            cluster,
        )
    return cluster
