"""Fault injectors for tests/integration/test_faults.py: each holds a real request of a real client in the middle
of what it does, so a drill can kill or interrupt the run at a known point instead of racing it.

- ``AdmissionStall``: a validating admission webhook (a loopback HTTPS server the API server calls by URL) that
  holds the API server's admission of matching requests, e.g. the Deployment update of a ``helm upgrade``: helm
  has written its release record (pending-upgrade / pending-install) and waits on the API server.
- ``HttpStall``: a TCP proxy in front of an HTTP server (the local OCI registry, moto) that holds one request (it
  never reaches the server) or its response (the server did it, the client never hears so): the manifest PUT that
  ends a ``skopeo copy``, an EKS DeleteNodegroup inside ``eksctl delete cluster``, the S3 DeleteObjects of a
  bucket's teardown.
- ``kill_tree`` / ``processes``: SIGKILL of a run and everything it started; the processes of a command line.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.playbook_run import ROOT, VENV_BIN, Run


def processes(*words: str, under: int | None = None) -> list[int]:
    """PIDs whose command line has every one of WORDS as an argument (or an argument's basename); with UNDER, only
    that process and those below it (other runs on the machine have processes of the same names)."""
    scope = set(descendants(under)) if under is not None else None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (scope is not None and int(entry.name) not in scope):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        names = set(argv) | {os.path.basename(a) for a in argv}
        if all(w in names for w in words):
            found.append(int(entry.name))
    return found


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last})")


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A certificate for 127.0.0.1 and its key in DIRECTORY; returns (cert, key, base64 of the cert as a CA)."""
    import base64

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tritonfil-fault-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=6))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "webhook.crt", directory / "webhook.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, base64.b64encode(pem).decode()


class AdmissionStall:
    """While armed, the API server's admission of the matching requests waits in this webhook (up to HOLD seconds,
    under the API server's 30 s webhook limit), then is allowed. ``seen`` lists what it held (operation, kind,
    namespace/name). failurePolicy Ignore: when this server is gone, nothing is blocked."""

    NAME = "tritonfil-fault-stall"

    def __init__(self, kubectl: Callable[..., Any], work: Path, hold: float = 25.0) -> None:
        self.kubectl, self.work, self.hold = kubectl, work, hold
        self.seen: list[str] = []
        self.held = threading.Event()  # a request is being held now
        self._release = threading.Event()
        self.allowed = True  # the answer to the held requests once released
        self._server: http.server.ThreadingHTTPServer | None = None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        stall = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                req = review["request"]
                stall.seen.append(f"{req['operation']} {req['kind']['kind']} {req.get('namespace')}/{req.get('name')}")
                stall.held.set()
                stall._release.wait(stall.hold)
                body = json.dumps({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": req["uid"], "allowed": stall.allowed},
                }).encode()  # fmt: skip
                with contextlib.suppress(OSError):  # the API server may have given up on us
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        return Handler

    def deny(self) -> None:
        """Answer the held requests (and any later one) with a denial: the write they carry never happens. Whether
        the API server still completes a request whose client is gone depends on when it notices the disconnect;
        a drill that kills the client and then denies makes "killed before the write" certain."""
        self.allowed = False
        self._release.set()

    @contextlib.contextmanager
    def armed(self, namespace: str, kinds: tuple[str, str] = ("apps", "deployments"),
              operations: tuple[str, ...] = ("CREATE", "UPDATE")) -> Iterator[AdmissionStall]:  # fmt: skip
        cert, key, ca = self_signed(self.work)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        group, resource = kinds
        config = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.NAME},
            "webhooks": [{
                "name": "stall.faults.tritonfil.io",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/stall", "caBundle": ca},
                "rules": [{"apiGroups": [group], "apiVersions": ["*"], "operations": list(operations),
                           "resources": [resource], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 30,
            }],
        }  # fmt: skip
        self.kubectl("apply", "-f", "-", input_text=json.dumps(config))
        try:
            yield self
        finally:
            self._release.set()
            self.kubectl("delete", "validatingwebhookconfiguration", self.NAME, "--ignore-not-found")
            self._server.shutdown()
            self._server.server_close()


class HttpStall:
    """A loopback TCP proxy to the HTTP server at TARGET (host:port) that holds one kind of request: the first
    request whose request line MATCH accepts (e.g. ``PUT /v2/REPO/manifests/TAG``) is, with HOLD ``request``, never
    forwarded (the server never sees it), or, with HOLD ``response``, forwarded and its answer held (the server did
    it; the client never hears so). Its connection stays open until ``close``; every other request passes.
    ``held`` is set once one is held; ``address`` is what clients use instead of TARGET."""

    def __init__(self, target: str, match: Callable[[str], bool], hold: str = "request") -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.match, self.hold = match, hold
        self.held = threading.Event()
        self.held_line = ""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._halt = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._listener.settimeout(0.5)
        while not self._halt.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _matches(self, data: bytes) -> bool:
        if self.held.is_set():
            return False  # one request only
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        if line.split(" ", 1)[0] in ("GET", "PUT", "POST", "DELETE", "HEAD", "PATCH") and self.match(line):
            self.held_line = line
            self.held.set()
            return True
        return False

    def _pipe(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client, socket.create_connection(self.target) as upstream:
            mute = False  # the held request's answer is not passed on
            while not self._halt.is_set():
                readable, _, _ = select.select([client] if mute else [client, upstream], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self._matches(data):
                        if self.hold == "request":
                            self._halt.wait()
                            return
                        mute = True
                    (upstream if sock is client else client).sendall(data)

    def close(self) -> None:
        self._halt.set()
        self._listener.close()


def descendants(pid: int) -> list[int]:
    """PID and every process below it (by parent links), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def kill_tree(pid: int) -> list[int]:
    """SIGKILL PID and everything it started, as a closed laptop or a killed CI container ends a run: each process
    is stopped first (SIGSTOP, so none can finish its step or start another), then killed. Ansible's workers run
    in sessions of their own (os.setsid), so the run's process group alone would miss them and the modules they
    run. Returns the PIDs killed."""
    tree: list[int] = []
    for _ in range(3):  # a process may have been forked while the tree was read
        for p in descendants(pid):
            if p not in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGSTOP)
                tree.append(p)
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return tree


def private_files(root: Path, prefix: str) -> list[str]:
    """Every path under ROOT (recursively, not following symlinks) whose name starts with PREFIX."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _e: None):
        for name in dirnames + filenames:
            if name.startswith(prefix):
                found.append(os.path.join(dirpath, name))
    return found


def tempdir_roots() -> list[Path]:
    """Where a temporary file of a run can be: the system temp directory and /tmp, /var/tmp, ~/.ansible."""
    roots = {Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp"), Path.home() / ".ansible"}  # noqa: S108
    return sorted(r for r in roots if r.exists())


class Prober(threading.Thread):
    """Sends MODEL's reference rows (REFERENCE: its reference.json) to the address ADDRESS() returns, every PERIOD
    seconds, until stopped, and checks each answer against the reference's expected outputs: ``answers`` counts the
    correct ones per address, ``failures`` lists every request that failed or answered something else."""

    def __init__(self, address: Callable[[], str | None], reference: Path, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.address, self.period = address, period
        ref = json.loads(reference.read_text())
        self.model, self.expected = ref["model"], ref["expected"]
        self.body = json.dumps({"inputs": [{
            "name": ref["input_name"], "shape": ref["input_shape"], "datatype": "FP32",
            "data": [x for row in ref["input"] for x in row],
        }]}).encode()  # fmt: skip
        self.atol = max(float(ref.get("atol") or 0), 1e-5)
        self.answers: dict[str, int] = {}
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import urllib.request

        while not self._halt.is_set():
            target = self.address()
            if target:
                url = f"http://{target}/v2/models/{self.model}/infer"
                try:
                    with urllib.request.urlopen(urllib.request.Request(url, data=self.body), timeout=10) as resp:  # noqa: S310
                        out = json.loads(resp.read())["outputs"][0]["data"]
                    flat = [x for row in self.expected for x in (row if isinstance(row, list) else [row])]
                    if len(out) != len(flat) or any(abs(a - b) > self.atol for a, b in zip(out, flat, strict=True)):
                        self.failures.append(f"{target}: wrong answer")
                    else:
                        self.answers[target] = self.answers.get(target, 0) + 1
                except Exception as exc:  # every failed request is recorded, none is retried
                    self.failures.append(f"{target}: {exc}")
            self._halt.wait(self.period)

    def stop(self) -> Prober:
        self._halt.set()
        self.join(15)
        return self


def run_during(
    playbook: str,
    work: Path,
    env: dict[str, str],
    *args: str,
    during: Callable[[int], Any],
    inventory: str = "inventory/local",
    timeout: float = 900,
    parse: type[Run] = Run,
) -> tuple[Run, Any]:
    """Run PLAYBOOK as tests/integration/playbook_run.run_playbook does (JSON callback, the checkout's ansible.cfg),
    while DURING(pid of ansible-playbook) runs in a thread: it waits for a point of the run (a process below the
    pid, a state of the cluster) and injects the fault there. Returns the parsed run and what DURING returned; an
    exception in DURING is raised after the run has ended."""
    work.mkdir(parents=True)
    full = {
        **env,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
    }
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, playbook, *args]
    start = time.monotonic()
    child = subprocess.Popen(argv, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    outcome: dict[str, Any] = {}

    def inject() -> None:
        try:
            outcome["value"] = during(child.pid)
        except BaseException as exc:  # raised in the test's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=inject, daemon=True)
    thread.start()
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(child.pid)
        out, err = child.communicate()
    thread.join(300)
    (work / "stdout").write_text(out)
    (work / "stderr").write_text(err)
    if "error" in outcome:
        raise outcome["error"]
    return parse.parse(subprocess.CompletedProcess(argv, child.returncode, out, err), time.monotonic() - start), (
        outcome.get("value")
    )
