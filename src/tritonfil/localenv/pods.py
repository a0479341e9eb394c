"""Process-backed Triton pods: every pod of the local cluster that runs tritonserver runs as a real process.

KWOK simulates the pods (nothing runs for them) and this runner, a component of the local environment
(`tritonfil local up` starts it; `tritonfil local status` shows it), makes the Triton ones real: for each pod
scheduled on a simulated node whose container runs ``tritonserver``, it starts the pytriton ``tritonserver``
binary from that pod's own container args and env, translating only what must be:

- the S3 endpoint: ``--model-repository=s3://BUCKET/PREFIX`` becomes ``s3://http://127.0.0.1:PORT/BUCKET/PREFIX``
  (moto), read with the credentials the pod would have: its service account's IRSA role
  (``eks.amazonaws.com/role-arn``) assumed through moto's ``sts:AssumeRoleWithWebIdentity``, or the static keys
  of its env (``valueFrom: secretKeyRef``); never the environment's admin keys;
- ports and bind addresses: free loopback ports, ``--{http,grpc,metrics}-address=127.0.0.1``;
- the backends: ``--backend-directory`` with the python backend and the Python-based ``fil`` backend
  (tritonfil.localenv.fil_backend) that serves the unmodified FIL repository on CPU;
- ``KIND_GPU`` instance groups (no GPU here: Triton refuses to load them): those models are left out of the
  start-up ``--load-model`` list and loaded through the model control API right after start with the same
  config but ``KIND_CPU``; everything else in their config is unchanged. With ``--exit-on-error`` (the
  default) a failed override load ends the process, as the failed start-up load would have.

Everything else (model control mode, the model list, strict readiness, exit-on-error, log flags, extra
arguments, ``AWS_REGION``) is passed as the pod says. The pod's status follows the process through annotations
that the runner sets and kwok stages apply (localenv/stages.py): ``tritonfil.io/process-ready`` (GET
``/v2/health/ready``, like the chart's readiness probe), ``tritonfil.io/restarts`` (a process that exits is
restarted with the kubelet's back-off and counted). Deleting the pod runs its preStop sleep, then SIGTERM
(Triton drains for ``--exit-timeout-secs``), then the runner marks it stopped and kwok removes it. Each pod's
addresses are published as annotations (``tritonfil.io/http-address``, ``grpc-address``,
``metrics-address``) for verify, load generators and Prometheus; its log is the pod's log (a kwok ``Logs``
object points ``kubectl logs`` at the process's log file).

Run as ``python -m tritonfil.localenv.pods --state DIR`` (the local environment does); all addresses are
127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- the contract with the stages (localenv/stages.py) and with verify -------------------------------------
ANN_READY = "tritonfil.io/process-ready"
NODE_METRICS_PATH = "metrics.k8s.io/resource-metrics-path"
ANN_RESTARTS = "tritonfil.io/restarts"
ANN_STOPPED = "tritonfil.io/process-stopped"
ANN_CONTAINER = "tritonfil.io/container"
ANN_REASON = "tritonfil.io/process-reason"
ANN_HTTP = "tritonfil.io/http-address"
ANN_GRPC = "tritonfil.io/grpc-address"
ANN_METRICS = "tritonfil.io/metrics-address"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
SERVER = "tritonserver"
# Flags whose value the runner sets itself (the pod's are replaced).
PORT_FLAGS = {"--http-port": "http", "--grpc-port": "grpc", "--metrics-port": "metrics"}
ADDRESS_FLAGS = ("--http-address", "--grpc-address", "--metrics-address")
# Kubelet's restart back-off: 10 s doubling to 5 min (CrashLoopBackOff); scaled by BACKOFF_SCALE locally.
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0


class RunnerError(RuntimeError):
    """A pod cannot be run as a process; the message names the pod and why."""


# -- which pods ---------------------------------------------------------------------------------------------
def server_container(pod: Mapping[str, Any]) -> dict | None:
    """The pod's container that runs tritonserver (its command, else its first arg), or None."""
    for container in pod.get("spec", {}).get("containers", []):
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if argv and (argv[0] == SERVER or argv[0].endswith("/" + SERVER)):
            return container
    return None


def condition_true(obj: Mapping[str, Any], condition: str = "Ready") -> bool:
    """Whether a Kubernetes object's status has CONDITION with status True (a node Karpenter has just created, or a
    pod not scheduled yet, has no conditions)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == condition and c.get("status") == "True" for c in conditions)


def is_process_backed(pod: Mapping[str, Any]) -> bool:
    return server_container(pod) is not None


# -- translating the pod into a process ------------------------------------------------------------------
def flag(argv: Iterable[str], name: str) -> list[str]:
    """Values of ``--name=value`` (and ``--name value``) in ARGV."""
    out, items = [], list(argv)
    for i, arg in enumerate(items):
        if arg.startswith(name + "="):
            out.append(arg.split("=", 1)[1])
        elif arg == name and i + 1 < len(items):
            out.append(items[i + 1])
    return out


def _without(argv: list[str], names: Iterable[str]) -> list[str]:
    names = tuple(names)
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in names:
            skip = True
            continue
        if arg.startswith(tuple(n + "=" for n in names)):
            continue
        out.append(arg)
    return out


def s3_repository(uri: str, endpoint: str) -> str:
    """``s3://BUCKET/PREFIX`` as Triton reads it from an S3-compatible endpoint (``s3://http://HOST:PORT/...``)."""
    if not uri.startswith("s3://") or uri.startswith(("s3://http://", "s3://https://")):
        return uri
    return f"s3://{endpoint.rstrip('/')}/{uri[len('s3://') :]}"


def truthy(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Plan:
    """How one pod runs: the argv, the models loaded after start (KIND_GPU made KIND_CPU) and what the pod asked."""

    argv: list[str]
    repository: str  # the pod's --model-repository (s3://...)
    local_repository: str  # what the process gets
    control_mode: str
    startup_models: list[str]  # --load-model values passed at start
    override_models: dict[str, dict] = field(default_factory=dict)  # name -> config JSON to load with
    exit_on_error: bool = True


def translate(
    argv: list[str],
    *,
    binary: str,
    backend_dir: str,
    ports: Mapping[str, int],
    s3_endpoint: str,
    gpu_models: Iterable[str] = (),
    configs: Mapping[str, dict] | None = None,
) -> Plan:
    """The tritonserver argv of a pod's container ARGV, translated for a loopback process.

    GPU_MODELS (their configs in CONFIGS, as Triton's JSON model config) are loaded after start with KIND_CPU
    instance groups instead of at start.
    """
    if not argv or not (argv[0] == SERVER or argv[0].endswith("/" + SERVER)):
        raise RunnerError(f"not a tritonserver command line: {argv[:1]}")
    args = argv[1:]
    repositories = flag(args, "--model-repository") or flag(args, "--model-store")
    if len(repositories) != 1:
        raise RunnerError(f"expected one --model-repository, got {repositories}")
    repository = repositories[0]
    local_repository = s3_repository(repository, s3_endpoint)
    control = (flag(args, "--model-control-mode") or ["none"])[-1]
    loads = flag(args, "--load-model")
    exit_on_error = truthy((flag(args, "--exit-on-error") or [None])[-1], True)
    gpu = [m for m in gpu_models]
    overrides: dict[str, dict] = {}
    startup = list(loads)
    if gpu:
        if control != "explicit":
            raise RunnerError(
                f"models {', '.join(gpu)} have KIND_GPU instance groups and --model-control-mode is {control}: the"
                " local environment can load them on CPU only through explicit model control"
                " (docs/local-environment.md)"
            )
        wanted = set((configs or {}).keys()) if "*" in loads else set(loads)
        startup = sorted(wanted - set(gpu)) if ("*" in loads or gpu) else loads
        for name in gpu:
            if name in wanted:
                overrides[name] = cpu_config((configs or {})[name])
    keep = _without(
        args,
        ["--model-repository", "--model-store", "--load-model", "--backend-directory", *PORT_FLAGS, *ADDRESS_FLAGS],
    )
    out = [binary, f"--model-repository={local_repository}", f"--backend-directory={backend_dir}"]
    if control == "explicit" or not gpu:
        out += [f"--load-model={m}" for m in startup]
    for name, kind in PORT_FLAGS.items():
        out.append(f"{name}={ports[kind]}")
    out += [f"{a}=127.0.0.1" for a in ADDRESS_FLAGS]
    out += keep
    return Plan(out, repository, local_repository, control, startup, overrides, exit_on_error)


def cpu_config(config: dict) -> dict:
    """CONFIG (Triton's JSON model config) with every KIND_GPU instance group made KIND_CPU (its gpus dropped)."""
    out = json.loads(json.dumps(config))
    for group in out.get("instance_group", []):
        if group.get("kind") == "KIND_GPU":
            group["kind"] = "KIND_CPU"
            group.pop("gpus", None)
    return out


# -- reading the model repository the pod would load (its configs), with the pod's credentials -------------
def read_configs(s3: Any, uri: str) -> dict[str, dict]:
    """Every ``<model>/config.pbtxt`` under the s3:// URI, parsed into Triton's JSON model config."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    configs: dict[str, dict] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=base, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            model = common["Prefix"][len(base) :].strip("/")
            key = f"{base}{model}/config.pbtxt"
            try:
                text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            except Exception as exc:  # a model directory without config: Triton reports it when it loads
                if "NoSuchKey" in str(exc) or "404" in str(exc):
                    continue
                raise
            message = text_format.Parse(text, model_config_pb2.ModelConfig())
            config = json_format.MessageToDict(message, preserving_proto_field_name=True)
            config.setdefault("name", model)
            configs[model] = config
    return configs


def read_local_configs(root: str | os.PathLike[str]) -> dict[str, dict]:
    """Every ``<model>/config.pbtxt`` under the local directory ROOT, as Triton's JSON model config."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    configs: dict[str, dict] = {}
    for path in sorted(Path(root).glob("*/config.pbtxt")):
        message = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        config = json_format.MessageToDict(message, preserving_proto_field_name=True)
        config.setdefault("name", path.parent.name)
        configs[path.parent.name] = config
    return configs


def load_model(http: str, name: str, config: Mapping[str, Any] | None = None, timeout: float = 600) -> tuple[int, str]:
    """POST /v2/repository/models/NAME/load on HTTP (host:port), with CONFIG (Triton's JSON model config) as the
    config override when given. Returns (HTTP status, body)."""
    body = {"parameters": {"config": json.dumps(config)}} if config is not None else {}
    return request(f"http://{http}/v2/repository/models/{name}/load", json.dumps(body).encode(), timeout=timeout)


def gpu_models(configs: Mapping[str, dict]) -> list[str]:
    return sorted(
        n for n, c in configs.items() if any(g.get("kind") == "KIND_GPU" for g in c.get("instance_group", []))
    )


# -- the backends directory ----------------------------------------------------------------------------------
def prepare_backends(directory: Path) -> Path:
    """DIRECTORY/python (the python backend, real files: Triton refuses a backend library reached through a
    symlink that leaves the backend directory) and DIRECTORY/fil/model.py (the Python-based FIL stand-in)."""
    import pytriton

    base = Path(pytriton.__file__).resolve().parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = base / "python_backend_stubs" / version / "triton_python_backend_stub"
    files = {
        "libtriton_python.so": base / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": base / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    python_dir = directory / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        target = python_dir / name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copy2(source, target)
    fil_dir = directory / "fil"
    fil_dir.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).with_name("fil_backend.py")
    if not (fil_dir / "model.py").exists() or (fil_dir / "model.py").read_bytes() != source.read_bytes():
        shutil.copy2(source, fil_dir / "model.py")
    return directory


def tritonserver_binary() -> str:
    import pytriton

    return str(Path(pytriton.__file__).resolve().parent / "tritonserver" / "bin" / SERVER)


def process_environment(pod_env: Mapping[str, str]) -> dict[str, str]:
    """The pod's env plus what the binary and the python backend stub need on this host (and nothing of ours:
    no admin AWS keys, no KUBECONFIG)."""
    import pytriton

    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        # The stub links libpython of this interpreter and the CUDA stubs pytriton ships (its rpath is lost
        # when the stub is copied).
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (sysconfig.get_config_var("LIBDIR") or "", str(libs)) if p),
    }
    env.update(pod_env)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one pod's process ----------------------------------------------------------------------------------------
class PodProcess:
    """The tritonserver process of one pod (keyed by the pod's uid)."""

    def __init__(self, key: str, namespace: str, name: str, workdir: Path, clock: Callable[[], float] = time.monotonic):
        self.key, self.namespace, self.name = key, namespace, name
        self.workdir = workdir
        self.clock = clock
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.restarts = 0
        self.plan: Plan | None = None
        self.env: dict[str, str] = {}
        self.next_start = 0.0
        self.backoff = BACKOFF_START
        self.loaded = False  # the override loads are done
        self.failed_loads: list[str] = []
        self.reason = ""
        self.stopping = False
        self.stopped = False
        self.started_at = 0.0
        self.ready_since: float | None = None
        # Wall-clock times of the current process (bench/pods.py compares them with the pod's conditions).
        self.timing: dict[str, float] = {}

    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    def http(self) -> str:
        return f"127.0.0.1:{self.ports['http']}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, plan: Plan, env: dict[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plan, self.env = plan, env
        self.loaded = not plan.override_models
        self.failed_loads = []
        with self.log_path.open("ab") as log:
            log.write(f"[tritonfil pod runner] starting {self.namespace}/{self.name}: {' '.join(plan.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                plan.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip
        self.started_at = self.clock()
        self.ready_since = None
        self.timing = {"started": time.time()}

    def load_overrides(self) -> None:
        """Load the KIND_GPU models with their CPU config through the model control API (once live)."""
        assert self.plan is not None
        failed = []
        for name, config in self.plan.override_models.items():
            status, text = load_model(self.http(), name, config)
            if status != 200:
                failed.append(f"{name}: {text.strip()}")
        self.loaded = True
        self.failed_loads = failed
        if failed:
            self.reason = "failed to load " + "; ".join(failed)
            self.log(self.reason)
            if self.plan.exit_on_error:  # what --exit-on-error does to a failed start-up load
                self.log("--exit-on-error: the server exits")
                self.kill()

    def log(self, text: str) -> None:
        with contextlib.suppress(OSError), self.log_path.open("a") as f:
            f.write(f"[tritonfil pod runner] {text}\n")

    def ready(self) -> bool:
        # A model that failed to load keeps the server not ready (strict readiness, as for a start-up load).
        if not self.running() or not self.loaded or self.failed_loads:
            return False
        status, _ = request(f"http://{self.http()}/v2/health/ready", None, timeout=2)
        return status == 200

    def live(self) -> bool:
        if not self.running():
            return False
        status, _ = request(f"http://{self.http()}/v2/health/live", None, timeout=2)
        return status == 200

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)

    def terminate(self, grace: float) -> None:
        """SIGTERM (Triton stops taking requests and drains in-flight ones), SIGKILL after GRACE; then the stubs."""
        self.signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.log(f"still running {grace:.0f}s after SIGTERM: SIGKILL")
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the python backend stubs share the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)


def request(url: str, body: bytes | None, timeout: float) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


# -- credentials the pod would have ---------------------------------------------------------------------------
def web_identity_token(namespace: str, service_account: str, audience: str = "sts.amazonaws.com") -> str:
    """An unsigned JWT shaped like the projected service account token EKS gives the pod (moto does not verify
    the signature; AWS STS would)."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {
        "aud": [audience], "iss": "https://oidc.eks.local.tritonfil", "iat": now, "exp": now + 86400,
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
    }  # fmt: skip
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def irsa_credentials(sts: Any, role_arn: str, namespace: str, service_account: str, session: str) -> dict[str, str]:
    """sts:AssumeRoleWithWebIdentity for the pod's role: the temporary keys (and what the EKS webhook would set)."""
    token = web_identity_token(namespace, service_account)
    creds = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName=session[:64], WebIdentityToken=token, DurationSeconds=3600
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
        "AWS_ROLE_ARN": role_arn,
    }


# -- the runner ------------------------------------------------------------------------------------------------
@dataclass
class Settings:
    state: Path
    kubeconfig: Path
    s3_endpoint: str
    region: str = "us-east-1"
    interval: float = 1.0
    backoff_scale: float = 0.2  # locally the kubelet's 10 s..5 min back-off runs 5x faster


class Runner:
    """Reconciles the local cluster's tritonserver pods with processes, every Settings.interval seconds."""

    def __init__(self, settings: Settings, core: Any = None, s3_factory: Callable[[dict], Any] | None = None) -> None:
        self.settings = settings
        self.core = core
        self.s3_factory = s3_factory
        self.processes: dict[str, PodProcess] = {}
        self.backends = prepare_backends(settings.state / "pods" / "backends")
        self.binary = tritonserver_binary()
        self._sts = None
        self._stop = threading.Event()
        self._passes = 0
        self.status_file = settings.state / "pods" / "status.json"

    # kubernetes access
    def api(self) -> Any:
        if self.core is None:
            from kubernetes import client, config

            config.load_kube_config(config_file=str(self.settings.kubeconfig))
            self.core = client.CoreV1Api()
        return self.core

    def aws(self, service: str, env: Mapping[str, str] | None = None) -> Any:
        import boto3

        keys = dict(env or {})
        return boto3.client(
            service, endpoint_url=self.settings.s3_endpoint, region_name=keys.get("AWS_REGION", self.settings.region),
            aws_access_key_id=keys.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=keys.get("AWS_SECRET_ACCESS_KEY", "testing"),
            aws_session_token=keys.get("AWS_SESSION_TOKEN"),
        )  # fmt: skip

    # the loop
    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as exc:  # keep serving; the next pass retries
                print(f"[pods] reconcile failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self._stop.wait(self.settings.interval)
        for proc in list(self.processes.values()):
            proc.terminate(grace=5)
        self.write_status()

    def list_nodes(self) -> list[dict] | None:
        """The cluster's nodes (None when they cannot be listed: the pass then holds back no pod for its node)."""
        try:
            return json.loads(self.api().list_node(_preload_content=False).data)["items"]
        except Exception as exc:
            print(f"[pods] listing nodes failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None

    @staticmethod
    def ready_nodes(nodes: list[dict]) -> set[str]:
        """The names of the NODES whose Ready condition is True.

        A Karpenter node exists from its creation but is Ready only once it has joined (the stage
        node-initialize-delayed: creationTimestamp + the join delay). The scheduler binds pods to it before
        that (a KWOK node without conditions carries no not-ready taint), so the runner, like a kubelet that
        has not joined yet, starts no container there before the node is Ready: a new replica's readiness then
        includes the node's join, as on EKS."""
        return {n["metadata"]["name"] for n in nodes if condition_true(n)}

    def annotate_new_nodes(self, nodes: list[dict]) -> None:
        """Nodes that appear while the environment runs (Karpenter's, named at creation) get the annotation that
        tells metrics-server kwok's per-node metrics path, as localenv/nodes.py gives the static ones: pods
        there then have CPU metrics (the CPU HPA, `kubectl top`)."""
        for node in nodes:
            meta = node["metadata"]
            ann = meta.get("annotations") or {}
            if ann.get("kwok.x-k8s.io/node") == "fake" and NODE_METRICS_PATH not in ann:
                path = f"/metrics/nodes/{meta['name']}/metrics/resource"
                with contextlib.suppress(Exception):  # gone already, or a conflict: the next pass retries
                    self.api().patch_node(meta["name"], {"metadata": {"annotations": {NODE_METRICS_PATH: path}}})

    def reconcile(self) -> None:
        self._passes += 1
        nodes = self.list_nodes()
        joined = None if nodes is None else self.ready_nodes(nodes)
        if nodes is not None and self._passes % 3 == 1:
            try:
                self.annotate_new_nodes(nodes)
            except Exception as exc:
                print(f"[pods] annotating nodes failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        pods = self.api().list_pod_for_all_namespaces(_preload_content=False)
        items = json.loads(pods.data)["items"]
        seen = set()
        for pod in items:
            if not is_process_backed(pod) or not pod.get("spec", {}).get("nodeName"):
                continue
            if pod.get("status", {}).get("phase") not in ("Running",):
                continue  # kwok's process-pod-start stage has not run yet
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            if uid not in self.processes and joined is not None and pod["spec"]["nodeName"] not in joined:
                continue  # its node is still joining: nothing starts there yet (ready_nodes)
            self.reconcile_pod(pod)
        for uid in [u for u in self.processes if u not in seen]:
            proc = self.processes.pop(uid)
            proc.log("pod gone: stopping")
            proc.terminate(grace=5)
        self.write_status()

    def reconcile_pod(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid, ns, name = meta["uid"], meta["namespace"], meta["name"]
        proc = self.processes.get(uid)
        if proc is None:
            proc = PodProcess(uid, ns, name, self.settings.state / "pods" / f"{ns}_{name}")
            self.processes[uid] = proc
        if meta.get("deletionTimestamp"):
            self.delete(pod, proc)
            return
        now = time.monotonic()
        if not proc.running() and not proc.stopping:
            if proc.process is not None:  # it ran and exited: a restart, with the kubelet's back-off
                rc = proc.process.returncode
                proc.process = None
                proc.restarts += 1
                proc.log(
                    f"exited with rc {rc}: restart {proc.restarts} in {proc.backoff * self.settings.backoff_scale:.0f}s"
                )
                proc.next_start = now + proc.backoff * self.settings.backoff_scale
                proc.backoff = min(proc.backoff * 2, BACKOFF_MAX)
            if now >= proc.next_start:
                try:
                    plan, env = self.plan_for(pod, proc)
                    proc.start(plan, env)
                except Exception as exc:
                    proc.reason = f"cannot start: {exc}"
                    proc.log(proc.reason)
                    proc.next_start = now + proc.backoff * self.settings.backoff_scale
        if proc.running() and "live" not in proc.timing and proc.live():
            proc.timing["live"] = time.time()
        if proc.running() and not proc.loaded and "live" in proc.timing:
            proc.load_overrides()
        ready = proc.ready()
        if ready:
            proc.reason = ""
            if proc.ready_since is None:
                proc.ready_since = now
                proc.timing["ready"] = time.time()
                proc.backoff = BACKOFF_START  # kubelet resets the back-off after a good run
        self.annotate(pod, proc, ready)

    def plan_for(self, pod: dict, proc: PodProcess) -> tuple[Plan, dict[str, str]]:
        container = server_container(pod)
        assert container is not None
        env = self.pod_env(pod, container)
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        repositories = flag(argv[1:], "--model-repository") or flag(argv[1:], "--model-store")
        configs: dict[str, dict] = {}
        if repositories and repositories[0].startswith("s3://"):
            s3 = self.s3_factory(env) if self.s3_factory else self.aws("s3", env)
            try:
                configs = read_configs(s3, repositories[0])
            except Exception as exc:
                raise RunnerError(f"reading {repositories[0]} with the pod's credentials failed: {exc}") from exc
        proc.ports = proc.ports or {k: free_port() for k in ("http", "grpc", "metrics")}
        plan = translate(
            argv, binary=self.binary, backend_dir=str(self.backends), ports=proc.ports,
            s3_endpoint=self.settings.s3_endpoint, gpu_models=gpu_models(configs), configs=configs,
        )  # fmt: skip
        return plan, process_environment(env)

    def pod_env(self, pod: dict, container: dict) -> dict[str, str]:
        """The container's env (values, and secretKeyRef/configMapKeyRef read from the cluster) and the IRSA
        credentials of its service account."""
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "valueFrom" in item:
                value = self.value_from(ns, item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
        sa_name = pod["spec"].get("serviceAccountName") or "default"
        role = None
        with contextlib.suppress(Exception):
            sa = self.api().read_namespaced_service_account(sa_name, ns)
            role = (sa.metadata.annotations or {}).get(IRSA_ANNOTATION)
        if role and "AWS_ACCESS_KEY_ID" not in env:
            sts = self.aws("sts")
            env.update(irsa_credentials(sts, role, ns, sa_name, f"{pod['metadata']['name']}"))
        return env

    def value_from(self, ns: str, source: dict) -> str | None:
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            try:
                secret = self.api().read_namespaced_secret(ref["name"], ns)
            except Exception:
                return None
            data = (secret.data or {}).get(ref["key"])
            return base64.b64decode(data).decode() if data is not None else None
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            try:
                cm = self.api().read_namespaced_config_map(ref["name"], ns)
            except Exception:
                return None
            return (cm.data or {}).get(ref["key"])
        return None

    def delete(self, pod: dict, proc: PodProcess) -> None:
        """Graceful deletion: preStop sleep, SIGTERM, wait; then mark the pod stopped (kwok then removes it)."""
        if proc.stopped:
            return
        if not proc.stopping:
            proc.stopping = True
            container = server_container(pod) or {}
            pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
            grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
            proc.log(f"pod deleted: preStop sleep {pre_stop}s, then SIGTERM (grace {grace:.0f}s)")

            def stop() -> None:
                time.sleep(min(float(pre_stop), grace))
                proc.terminate(grace=max(1.0, grace - float(pre_stop)))
                proc.stopped = True
                self.patch(pod, {ANN_STOPPED: "true", ANN_READY: "false"})

            threading.Thread(target=stop, name=f"stop-{proc.name}", daemon=True).start()
            # Not ready from the first moment of the deletion (endpoints drop the pod), as Kubernetes does.
            self.patch(pod, {ANN_READY: "false"})

    def annotate(self, pod: dict, proc: PodProcess, ready: bool) -> None:
        want = {
            ANN_READY: "true" if ready else "false",
            ANN_RESTARTS: str(proc.restarts),
            ANN_CONTAINER: (server_container(pod) or {}).get("name", ""),
        }
        if proc.ports:
            want[ANN_HTTP] = f"127.0.0.1:{proc.ports['http']}"
            want[ANN_GRPC] = f"127.0.0.1:{proc.ports['grpc']}"
            want[ANN_METRICS] = f"127.0.0.1:{proc.ports['metrics']}"
        want[ANN_REASON] = proc.reason[:1000]
        have = pod["metadata"].get("annotations") or {}
        changed = {k: v for k, v in want.items() if have.get(k) != v}
        if changed:
            self.patch(pod, changed)

    def patch(self, pod: dict, annotations: dict[str, str]) -> None:
        body = {"metadata": {"annotations": annotations}}
        with contextlib.suppress(Exception):  # the pod may be gone already
            self.api().patch_namespaced_pod(pod["metadata"]["name"], pod["metadata"]["namespace"], body)

    def write_status(self) -> None:
        rows = [
            {
                "pod": f"{p.namespace}/{p.name}", "pid": p.process.pid if p.running() else None,
                "http": p.http() if p.ports else None, "restarts": p.restarts,
                "ready": p.ready_since is not None and not p.stopping,
                "reason": p.reason, "log": str(p.log_path), "timing": p.timing,
            }
            for p in self.processes.values()
        ]  # fmt: skip
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"updated": time.time(), "pods": rows}, indent=1))
        tmp.replace(self.status_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = Settings(args.state, args.kubeconfig, args.s3_endpoint, args.region, args.interval)
    Runner(settings).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "ANN_GRPC", "ANN_HTTP", "ANN_METRICS", "ANN_READY", "ANN_REASON", "ANN_RESTARTS", "ANN_STOPPED", "Plan",
    "PodProcess", "Runner", "RunnerError", "Settings", "cpu_config", "gpu_models", "irsa_credentials",
    "is_process_backed", "read_configs", "server_container", "translate",
]  # fmt: skip
