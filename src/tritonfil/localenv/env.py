"""The offline local environment: the stand-ins that `inventory/local` deploys against.

- AWS APIs: moto server on 127.0.0.1
- ECR registry (image push): Debian `docker-registry` on 127.0.0.1 (push with skopeo)
- EKS control plane + GPU nodes: kwokctl binary runtime (etcd, kube-apiserver, controller-manager,
  scheduler, kwok, metrics-server) with simulated g4dn.12xlarge GPU nodes
- Triton + FIL pods: every pod of the cluster that runs tritonserver runs as a real tritonserver process on CPU
  (component `pods`, tritonfil.localenv.pods), loading its models from moto's S3 with the pod's credentials
- Prometheus scraping those processes through Kubernetes pod discovery (component `prometheus`)

State lives in one directory (default `~/.cache/tritonfil/local`, `TRITONFIL_LOCAL_STATE` overrides):
`endpoints.json` (read by inventory/local), `env` (shell exports), `kubeconfig`, logs and pid files.
Files holding endpoints or credentials are written 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonfil import collection
from tritonfil.localenv import netns
from tritonfil.localenv.images import build_oci_image
from tritonfil.localenv.nodes import GPU_SELECTOR, gpu_nodes_manifest

CLUSTER = "tritonfil"
REGION = "us-east-1"
# Fake credentials for moto; never real ones.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


class LocalEnvError(RuntimeError):
    """A component of the local environment failed; the message names it and its log."""


def cache_dir() -> Path:
    base = os.environ.get("TRITONFIL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tritonfil"
    )
    return Path(base)


def default_state_dir() -> Path:
    return Path(os.environ.get("TRITONFIL_LOCAL_STATE") or cache_dir() / "local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_private(path: Path, text: str) -> None:
    """Write TEXT to PATH readable by the owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.3)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise LocalEnvError(f"{what} not ready after {timeout:.0f}s (log: {log}){tail}")


@dataclass
class Tools:
    """Paths of the pinned binaries (built by scripts/tools.sh into the cache)."""

    bin_dir: Path = field(default_factory=lambda: cache_dir() / "bin")

    def path(self, name: str) -> Path:
        p = self.bin_dir / name
        if not p.exists():
            raise LocalEnvError(f"{name} not found in {self.bin_dir}: run `make tools` (scripts/tools.sh) first")
        return p

    def share(self, name: str) -> Path:
        p = self.bin_dir.parent / "share" / name
        if not p.exists():
            raise LocalEnvError(f"{p} not found: run `make tools` (scripts/tools.sh) first")
        return p

    def optional(self, name: str) -> Path | None:
        p = self.bin_dir / name
        return p if p.exists() else None


def system_tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if not found:
        raise LocalEnvError(f"{name} not found: install the Debian package (scripts/tools.sh installs it as root)")
    return found


class LocalEnv:
    """Start, inspect and stop the local environment. All addresses are 127.0.0.1."""

    def __init__(
        self,
        state_dir: Path | None = None,
        tools: Tools | None = None,
        nodes: int | None = None,
        system_nodes: int = 1,
    ) -> None:
        self.state = Path(state_dir or default_state_dir())
        self.tools = tools or Tools()
        # Static GPU nodes (a managed GPU node group that is always there). None: none when Karpenter is one of
        # the components (GPU nodes then come and go with the pods, as with the inventories' defaults), else 2.
        self.nodes = nodes
        # Untainted nodes of the `system` node group (istiod, the gateway): see localenv/nodes.py.
        self.system_nodes = system_nodes
        self.endpoints_file = self.state / "endpoints.json"
        self.kubeconfig = self.state / "kubeconfig"
        self.logs = self.state / "logs"
        self.pids = self.state / "pids"

    # -- state ---------------------------------------------------------------------------------
    def endpoints(self) -> dict[str, Any]:
        if not self.endpoints_file.exists():
            raise LocalEnvError(f"the local environment is not up (no {self.endpoints_file}): run `tritonfil local up`")
        return json.loads(self.endpoints_file.read_text())

    def environ(self, endpoints: dict[str, Any] | None = None) -> dict[str, str]:
        """Variables a client of the environment needs (KUBECONFIG, AWS endpoint, fake keys, PATH)."""
        ep = endpoints or self.endpoints()
        env = {"KUBECONFIG": ep["kubeconfig"], "TRITONFIL_LOCAL_STATE": str(self.state)}
        if "aws_endpoint_url" in ep:  # only when moto is one of the started components
            env.update(
                AWS_ENDPOINT_URL=ep["aws_endpoint_url"],
                AWS_URL=ep["aws_endpoint_url"],
                AWS_REGION=REGION,
                AWS_DEFAULT_REGION=REGION,
                **FAKE_AWS,
            )
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(self.tools.bin_dir), os.environ["PATH"]])
        return env

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, inherit: bool = True) -> int:
        """Start NAME in its own session, logging to logs/NAME.log. ENV is added to this process's environment,
        or (INHERIT false) is the whole environment."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})} if inherit else dict(env or {}),
            start_new_session=True,
            cwd=self.state,
        )
        log.close()
        (self.pids / f"{name}.pid").write_text(str(proc.pid))
        return proc.pid

    def _pid(self, name: str) -> int | None:
        f = self.pids / f"{name}.pid"
        if not f.exists():
            return None
        pid = int(f.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        # A zombie (exited child of this process) counts as gone.
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                return None
        return pid

    def _stop(self, name: str, grace: float = 10.0) -> None:
        pid = self._pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._pid(name) is not None:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    # -- components ----------------------------------------------------------------------------
    def _start_moto(self, ep: dict[str, Any], port: int | None = None) -> None:
        port = port or free_port()
        moto = Path(sys.executable).parent / "moto_server"
        self._spawn("moto", [str(moto), "-H", "127.0.0.1", "-p", str(port)], {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"})
        ep["aws_endpoint_url"] = f"http://127.0.0.1:{port}"
        wait_for("moto server", lambda: http_ok(f"http://127.0.0.1:{port}/moto-api/"), 60, self.logs / "moto.log")

    def _start_registry(self, ep: dict[str, Any]) -> None:
        port = free_port()
        data = self.state / "registry"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.state / "registry.yml"
        conf.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {data}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '127.0.0.1:{port}', debug: {{addr: ''}}}}\n"
        )
        self._spawn("registry", [system_tool("docker-registry"), "serve", str(conf)])
        ep["registry"] = f"127.0.0.1:{port}"
        wait_for("OCI registry", lambda: http_ok(f"http://127.0.0.1:{port}/v2/"), 30, self.logs / "registry.log")
        # The source the ecr_image role mirrors locally (no NGC offline): a one-file stand-in for the
        # Triton image, built once and kept (a rebuilt image has a new digest).
        layout = self.state / "images" / "tritonserver"
        # Tagged like the pinned Triton image (scripts/versions.env TRITON_IMAGE_TAG), which it stands in for.
        tag = collection.pins()["TRITON_IMAGE_TAG"]
        if not (layout / "index.json").exists():
            build_oci_image(layout, tag, "stand-in for nvcr.io/nvidia/tritonserver (tritonfil local)\n")
        ep["source_image"] = f"oci:{layout}:{tag}"

    def _kwok_stages(self, process_pods: bool) -> Path:
        """The kwok Stages (localenv/stages.py): with process-backed pods, tritonserver pods get their status from
        the pod runner; the node stages (with Karpenter's delayed node readiness) always."""
        from tritonfil.localenv.stages import manifest

        path = self.state / "kwok-stages.yaml"
        path.write_text(manifest(process_pods))
        return path

    def _kwok_config(self) -> Path:
        t = self.tools
        v = _versions()
        t.path("kube-apiserver")  # the first thing a fresh machine lacks: say `make tools` about it
        metrics_manifests = self.tools.share(f"metrics-server-{v['METRICS_SERVER_VERSION']}") / "overlays" / "release"
        conf = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "kubeVersion": v["KUBERNETES_VERSION"],
                "kubeApiserverBinary": str(t.path("kube-apiserver")),
                "kubeControllerManagerBinary": str(t.path("kube-controller-manager")),
                "kubeSchedulerBinary": str(t.path("kube-scheduler")),
                "kubectlBinary": str(t.path("kubectl")),
                "kwokControllerBinary": str(t.path("kwok")),
                "etcdBinary": str(t.path("etcd")),
                "metricsServerBinary": str(t.path("metrics-server")),
                "enableMetricsServer": True,
                # Read metrics-server's release manifest from the tool cache (kwokctl would fetch it from GitHub).
                "metricsServerManifests": [str(metrics_manifests)],
                "metricsServerVersion": v["METRICS_SERVER_VERSION"],
                "kubeAuthorization": True,
                "kubeAdmission": True,
            },
        }
        # Inside the namespace there is no default route: kube-apiserver must be told what to advertise.
        conf["componentsPatches"] = [
            {
                "name": "kube-apiserver",
                "extraArgs": [
                    {"key": "advertise-address", "value": "127.0.0.1"},
                    {"key": "service-cluster-ip-range", "value": "10.96.0.0/16"},
                    # The `kubernetes` Service cannot point at a loopback address; nothing in-cluster needs it.
                    {"key": "endpoint-reconciler-type", "value": "none"},
                ],
            }
        ]
        # Simulated kubelets advertise 127.0.0.1 (kwokctl passes an empty --node-ip otherwise): metrics-server
        # scrapes them there, never at a 10.x address.
        conf["componentsPatches"].append(
            {"name": "kwok-controller", "extraArgs": [{"key": "node-ip", "value": "127.0.0.1", "override": True}]}
        )
        path = self.state / "kwokctl.yaml"
        path.write_text(json.dumps(conf, indent=1) + "\n")
        return path

    def _kwokctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KWOK_WORKDIR": str(self.state / "kwok")}
        env["PATH"] = os.pathsep.join([str(self.tools.bin_dir), env["PATH"]])
        return subprocess.run(
            [str(self.tools.path("kwokctl")), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.tools.path("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input_text,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise LocalEnvError(f"kubectl {' '.join(args)} failed (rc={proc.returncode}): {proc.stderr.strip()}")
        return proc

    def _start_cluster(self, ep: dict[str, Any]) -> None:
        port = free_port()
        self.logs.mkdir(parents=True, exist_ok=True)
        conf = self._kwok_config()
        stages = self._kwok_stages(process_pods="pods" in ep["components"])
        proc = self._kwokctl(
            "create", "cluster", f"--name={CLUSTER}", f"--config={conf}", f"--config={stages}",
            f"--kube-apiserver-port={port}", f"--kubeconfig={self.kubeconfig}", "--wait=120s",
        )  # fmt: skip
        (self.logs / "kwokctl-create.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise LocalEnvError(
                f"kwokctl create cluster failed (rc={proc.returncode}), log {self.logs / 'kwokctl-create.log'}:\n"
                + "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            )
        os.chmod(self.kubeconfig, 0o600)
        ep["kube_apiserver"] = f"https://127.0.0.1:{port}"
        gpu_nodes = self.nodes if self.nodes is not None else (0 if "karpenter" in ep["components"] else 2)
        ep["static_gpu_nodes"] = gpu_nodes
        self.kubectl(
            "apply", "-f", "-", input_text=gpu_nodes_manifest(gpu_nodes, CLUSTER, REGION, system=self.system_nodes)
        )
        self.kubectl("wait", "--for=condition=Ready", "node", "-l", "tritonfil.io/simulated=true", "--timeout=120s")

    def _start_pods(self, ep: dict[str, Any]) -> None:
        """The pod runner: every tritonserver pod of the cluster as a process (tritonfil.localenv.pods)."""
        if "aws_endpoint_url" not in ep or "kube_apiserver" not in ep:
            raise LocalEnvError("the pods component needs moto and the cluster (start them first)")
        argv = [
            sys.executable, "-m", "tritonfil.localenv.pods", f"--state={self.state}", f"--kubeconfig={self.kubeconfig}",
            f"--s3-endpoint={ep['aws_endpoint_url']}", f"--region={REGION}",
        ]  # fmt: skip
        # Only what a process needs: no AWS keys of ours (each pod gets its own credentials).
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self._spawn("pods", argv, env=env, inherit=False)
        status = self.state / "pods" / "status.json"
        wait_for("pod runner", status.exists, 60, self.logs / "pods.log")
        ep["pods_status"] = str(status)

    def _start_prometheus(self, ep: dict[str, Any]) -> None:
        """Prometheus (a Go build with Kubernetes service discovery) scraping every process-backed Triton pod at
        the address the runner publishes (annotation tritonfil.io/metrics-address), through the local API server's
        pod discovery."""
        from tritonfil.localenv.prometheus import config

        port = free_port()
        data = self.state / "prometheus"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.state / "prometheus.yml"
        conf.write_text(config(self.kubeconfig))
        self._spawn(
            "prometheus",
            [str(self.tools.path("prometheus")), f"--config.file={conf}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=6h", f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        )  # fmt: skip
        ep["prometheus"] = f"http://127.0.0.1:{port}"
        wait_for("Prometheus", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), 60, self.logs / "prometheus.log")

    def _wait_crds(self, names: Sequence[str]) -> None:
        """Until every CRD of NAMES is Established (`kubectl wait` fails while a new CRD has no conditions yet)."""
        query = '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}'

        def established() -> bool:
            out = self.kubectl("get", "crd", "-o", f"jsonpath={query}", check=False).stdout
            done = {line.split("=")[0] for line in out.splitlines() if line.endswith("=True")}
            return set(names) <= done

        wait_for(f"CRDs {', '.join(names)} Established", established, 60)

    def _start_karpenter(self, ep: dict[str, Any]) -> None:
        """Karpenter with its kwok cloud provider (localenv/autoscalers.py): GPU nodes for pending pods."""
        from tritonfil.localenv import autoscalers

        if "kube_apiserver" not in ep:
            raise LocalEnvError("the karpenter component needs the cluster (start it first)")
        version = _versions()["KARPENTER_VERSION"]
        binary = self.tools.path("karpenter-kwok")
        self.kubectl("apply", "--server-side", "-f", str(self.tools.share(f"karpenter-{version}") / "crds"))
        self._wait_crds(autoscalers.KARPENTER_CRDS)
        types = autoscalers.write_instance_types(self.state / "karpenter" / "instance-types.json")
        metrics, health = free_port(), free_port()
        self._spawn(
            "karpenter",
            [str(binary)],
            {
                "KUBECONFIG": str(self.kubeconfig), "DISABLE_LEADER_ELECTION": "true", "LOG_LEVEL": "info",
                "METRICS_PORT": str(metrics), "HEALTH_PROBE_PORT": str(health),
                "INSTANCE_TYPES_FILE_PATH": str(types),
            },
        )  # fmt: skip
        ep["karpenter"] = {"metrics": f"http://127.0.0.1:{metrics}", "health": f"http://127.0.0.1:{health}"}
        wait_for("Karpenter", lambda: http_ok(f"http://127.0.0.1:{health}/readyz"), 60, self.logs / "karpenter.log")

    def _start_keda(self, ep: dict[str, Any]) -> None:
        """KEDA's operator and metrics API server (localenv/autoscalers.py); external.metrics.k8s.io through the
        aggregator at localhost."""
        from tritonfil.localenv import autoscalers

        if "kube_apiserver" not in ep:
            raise LocalEnvError("the keda component needs the cluster (start it first)")
        version = _versions()["KEDA_VERSION"]
        operator, adapter = self.tools.path("keda-operator"), self.tools.path("keda-metrics-apiserver")
        self.kubectl("apply", "--server-side", "-f", str(self.tools.share(f"keda-{version}") / "crds"))
        self._wait_crds(autoscalers.KEDA_CRDS)
        certs = autoscalers.make_certs(self.state / "keda" / "certs")
        cert_dir = certs["ca"].parent
        env = {
            "KUBECONFIG": str(self.kubeconfig), "WATCH_NAMESPACE": "", "POD_NAMESPACE": autoscalers.KEDA_NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": autoscalers.KEDA_NAMESPACE,
        }  # fmt: skip
        grpc, op_metrics, op_health = free_port(), free_port(), free_port()
        self._spawn(
            "keda-operator",
            [str(operator), "--leader-elect=false", "--enable-cert-rotation=false", f"--cert-dir={cert_dir}",
             f"--metrics-bind-address=127.0.0.1:{op_metrics}", f"--health-probe-bind-address=127.0.0.1:{op_health}",
             f"--metrics-service-bind-address=127.0.0.1:{grpc}", "--zap-log-level=info", "--zap-encoder=console"],
            env,
        )  # fmt: skip
        secure, ad_metrics = free_port(), free_port()
        kc = str(self.kubeconfig)
        self._spawn(
            "keda-metrics-apiserver",
            [str(adapter), f"--secure-port={secure}", "--bind-address=127.0.0.1", f"--cert-dir={cert_dir}",
             f"--tls-cert-file={certs['cert']}", f"--tls-private-key-file={certs['key']}", f"--kubeconfig={kc}",
             f"--lister-kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
             f"--metrics-service-address=127.0.0.1:{grpc}", f"--port={ad_metrics}", "--zap-log-level=info",
             "--zap-encoder=console"],
            env,
        )  # fmt: skip
        ep["keda"] = {
            "operator_health": f"http://127.0.0.1:{op_health}", "metrics_apiserver": f"https://127.0.0.1:{secure}",
            "grpc": f"127.0.0.1:{grpc}",
        }  # fmt: skip
        log = self.logs / "keda-operator.log"
        wait_for("KEDA operator", lambda: http_ok(f"http://127.0.0.1:{op_health}/readyz"), 90, log)
        self.kubectl("apply", "-f", "-", input_text=autoscalers.keda_api_manifest(secure, certs["ca"]))
        self.kubectl("wait", "--for=condition=Available", "--timeout=90s", f"apiservice/{autoscalers.KEDA_APISERVICE}")

    # -- public ----------------------------------------------------------------------------------
    COMPONENTS = ("moto", "registry", "cluster", "pods", "prometheus", "karpenter", "keda")

    def up(self, components: Sequence[str] = COMPONENTS, progress: Callable[[str], None] | None = None) -> dict:
        """Start every component (idempotent: a running environment is left as it is)."""
        say = progress or (lambda _m: None)
        if self.endpoints_file.exists():
            health = self.status()
            if all(h["ok"] for h in health.values()):
                say("local environment already up")
                return self.endpoints()
            say("stale or partial environment found: stopping it first")
            self.down()
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        ep: dict[str, Any] = {
            "state_dir": str(self.state),
            "isolation": isolation_mode(),
            "region": REGION,
            "cluster_name": CLUSTER,
            "kubeconfig": str(self.kubeconfig),
            "components": list(components),
            "versions": _versions(),
        }
        starters = {
            "moto": self._start_moto,
            "registry": self._start_registry,
            "cluster": self._start_cluster,
            "pods": self._start_pods,
            "prometheus": self._start_prometheus,
            "karpenter": self._start_karpenter,
            "keda": self._start_keda,
        }
        try:
            for name in components:
                t0 = time.monotonic()
                starters[name](ep)
                say(f"{name} up in {time.monotonic() - t0:.1f}s")
            write_private(self.endpoints_file, json.dumps(ep, indent=2) + "\n")
            exports = sorted(self.environ(ep).items())
            write_private(self.state / "env", "".join(f"export {k}={_shell_quote(v)}\n" for k, v in exports))
        except BaseException:
            self.down()
            raise
        return ep

    def status(self) -> dict[str, dict[str, Any]]:
        """Health of each component that the state says was started."""
        if not self.endpoints_file.exists():
            return {}
        ep = json.loads(self.endpoints_file.read_text())
        out: dict[str, dict[str, Any]] = {}
        for name in ep.get("components", []):
            if name == "moto":
                ok = http_ok(ep["aws_endpoint_url"] + "/moto-api/")
                out[name] = {"ok": ok, "endpoint": ep["aws_endpoint_url"], "pid": self._pid("moto")}
            elif name == "registry":
                ok = http_ok(f"http://{ep['registry']}/v2/")
                out[name] = {"ok": ok, "endpoint": ep["registry"], "pid": self._pid("registry")}
            elif name == "cluster":
                proc = self.kubectl("get", "--raw=/readyz", check=False)
                nodes = self.kubectl("get", "nodes", "-l", GPU_SELECTOR, "-o", "name", check=False).stdout.split()
                out[name] = {
                    "ok": proc.returncode == 0
                    and proc.stdout.strip() == "ok"
                    and len(nodes) >= ep.get("static_gpu_nodes", 1),
                    "endpoint": ep.get("kube_apiserver"),
                    "gpu_nodes": len(nodes),
                }
            elif name == "pods":
                pid = self._pid("pods")
                rows = self._last_pod_rows()
                fresh = False
                with contextlib.suppress(OSError, ValueError, KeyError):
                    fresh = time.time() - json.loads(Path(ep["pods_status"]).read_text())["updated"] < 30
                out[name] = {
                    "ok": pid is not None and fresh,
                    "pid": pid,
                    "pods": len(rows),
                    "ready": sum(1 for r in rows if r["ready"]),
                }
            elif name == "prometheus":
                ok = http_ok(ep["prometheus"] + "/-/ready")
                out[name] = {"ok": ok, "endpoint": ep["prometheus"], "pid": self._pid("prometheus")}
            elif name == "karpenter":
                ok = http_ok(ep["karpenter"]["health"] + "/readyz")
                out[name] = {"ok": ok, "endpoint": ep["karpenter"]["metrics"], "pid": self._pid("karpenter")}
            elif name == "keda":
                api = self.kubectl("get", "--raw=/apis/external.metrics.k8s.io/v1beta1", check=False)
                ok = http_ok(ep["keda"]["operator_health"] + "/readyz") and api.returncode == 0
                out[name] = {
                    "ok": ok, "endpoint": ep["keda"]["metrics_apiserver"],
                    "pid": [self._pid("keda-operator"), self._pid("keda-metrics-apiserver")],
                }  # fmt: skip
        return out

    def _last_pod_rows(self) -> list[dict[str, Any]]:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return json.loads((self.state / "pods" / "status.json").read_text())["pods"]
        return []

    def pod_processes(self) -> list[dict[str, Any]]:
        """What the pod runner reports: one row per process-backed pod (pod, pid, http, restarts, ready, log)."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            return json.loads(Path(self.endpoints()["pods_status"]).read_text())["pods"]
        return []

    # -- faults (tests/integration/test_faults.py) ------------------------------------------------------
    def restart_moto(self) -> None:
        """Stop moto and start an empty one on the same endpoint: every AWS resource (buckets, ECR repositories,
        EKS clusters, IAM roles) is gone, while everything outside moto (kubeconfig, cluster, registry) stays."""
        ep = self.endpoints()
        self._stop("moto")
        self._start_moto(ep, int(ep["aws_endpoint_url"].rsplit(":", 1)[1]))

    def restart_kube_apiserver(self, down: float = 0.0) -> None:
        """Stop the cluster's kube-apiserver (SIGTERM, SIGKILL after 5 s: its graceful shutdown waits a minute for
        open watches), leave it down DOWN seconds, start it again (kwokctl start
        cluster: the components that are not running, with their own command lines) and wait until it is ready.
        etcd and the other components keep running; kube-scheduler and kube-controller-manager exit when they
        cannot renew their leader lease in time, and are started again then, as their supervisor on a control-plane
        node would (watched for a lease duration after the API server is back)."""
        pids = self.state / "kwok" / "clusters" / CLUSTER / "pids"
        log = self.state / "kwok" / "clusters" / CLUSTER / "logs" / "kube-apiserver.log"

        def running(name: str) -> bool:  # a zombie nobody reaps (its parent is the namespace's init) is not
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{int((pids / f'{name}.pid').read_text())}/stat").read_text()
                return not stat.rsplit(") ", 1)[1].startswith("Z")
            return False

        def start() -> None:
            proc = self._kwokctl("start", "cluster", f"--name={CLUSTER}", timeout=120)
            if proc.returncode != 0:
                raise LocalEnvError(f"kwokctl start cluster failed (rc={proc.returncode}): {proc.stderr.strip()}")

        pid = int((pids / "kube-apiserver.pid").read_text())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, LocalEnvError):
                os.kill(pid, sig)
                wait_for("kube-apiserver to stop", lambda: not running("kube-apiserver"), 5, log)
        wait_for("kube-apiserver to stop", lambda: not running("kube-apiserver"), 25, log)
        time.sleep(down)
        start()
        ready = lambda: self.kubectl("get", "--raw=/readyz", check=False).stdout.strip() == "ok"  # noqa: E731
        wait_for("kube-apiserver ready again", ready, 120, log)
        deadline = time.monotonic() + 20  # kube-controller-manager's and kube-scheduler's lease duration: 15 s
        while time.monotonic() < deadline:
            if not all(running(n) for n in ("kube-controller-manager", "kube-scheduler")):
                start()
            time.sleep(1)

    def down(self) -> list[str]:
        """Stop everything `up` started; remove the cluster. Returns what was stopped."""
        stopped = []
        # The pod runner stops its tritonserver processes on SIGTERM; what a killed runner left is killed here.
        leftover = [r.get("pid") for r in self._last_pod_rows()]
        for name in ("keda-metrics-apiserver", "keda-operator", "karpenter", "prometheus", "pods", "registry", "moto"):
            if self._pid(name) is not None:
                stopped.append(name)
            self._stop(name, grace=30.0 if name == "pods" else 10.0)
        for pid in [p for p in leftover if p]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        kwokctl = self.tools.optional("kwokctl")
        if kwokctl and (self.state / "kwok" / "clusters" / CLUSTER).exists():
            proc = self._kwokctl("delete", "cluster", f"--name={CLUSTER}", f"--kubeconfig={self.kubeconfig}")
            if proc.returncode != 0:
                raise LocalEnvError(f"kwokctl delete cluster failed: {proc.stderr.strip()}")
            stopped.append("cluster")
        # eks-kubeconfig: what eks_gpu_cluster wrote (inventory/local) for the cluster just deleted.
        for f in (self.endpoints_file, self.state / "env", self.kubeconfig, self.state / "eks-kubeconfig"):
            f.unlink(missing_ok=True)
        return stopped


def isolation_mode() -> str:
    if netns.loopback_only():
        return "loopback-only network namespace"
    return "host network (not root: cannot isolate; every service still binds 127.0.0.1)"


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _versions() -> dict[str, str]:
    """Every pinned version (the collection's scripts/versions.env, `tritonfil.collection.pins`)."""
    return collection.pins()
