"""Run the real tritonserver shipped in the nvidia-pytriton wheel, on CPU, bound to loopback, serving an
unmodified FIL model repository (a local directory) with the local FIL stand-in.

`LocalTritonServer` is what the pod runner (tritonfil.localenv.pods) does for one pod, without a pod: the
backend directory holds the python backend and the Python-based ``fil`` backend (tritonfil.localenv.fil_backend),
the models load with explicit model control, and a model whose config asks for ``KIND_GPU`` is loaded
through the model control API with the same config but ``KIND_CPU`` (no GPU here). ``--exit-on-error=false``
keeps the server up when a model fails to load, with the model ``UNAVAILABLE`` in the repository index, as
on a real deployment with that flag. Used by the tests and the benchmarks; the local environment's Triton
pods are the pod runner's.

    server = LocalTritonServer("model_repository", "work")
    server.start(timeout=60)
    ... server.http_url, server.grpc_url ...
    server.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["LocalTritonServer", "LocalTritonServerError", "free_port", "pytriton_tritonserver_dir"]


class LocalTritonServerError(RuntimeError):
    """The local tritonserver could not be started (the message carries the log tail)."""


def pytriton_tritonserver_dir() -> Path:
    """``site-packages/pytriton/tritonserver`` of the installed nvidia-pytriton wheel."""
    try:
        import pytriton
    except ImportError as exc:
        raise LocalTritonServerError(
            "nvidia-pytriton is not installed; it ships the tritonserver binary (pip install nvidia-pytriton)"
        ) from exc
    base = Path(pytriton.__file__).resolve().parent / "tritonserver"
    if not (base / "bin" / "tritonserver").is_file():
        raise LocalTritonServerError(f"no tritonserver binary under {base}/bin")
    return base


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalTritonServer:
    """A tritonserver process serving REPOSITORY on 127.0.0.1, with its files under WORKDIR."""

    def __init__(
        self,
        repository: str | os.PathLike[str],
        workdir: str | os.PathLike[str],
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.repository = Path(repository).resolve()
        self.workdir = Path(workdir).resolve()
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- locations
    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._port('http_port')}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self._port('grpc_port')}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self._port('metrics_port')}/metrics"

    def _port(self, name: str) -> int:
        port = getattr(self, name)
        if port is None:
            raise LocalTritonServerError(f"{name} is chosen at start(); the server has not been started")
        return int(port)

    @staticmethod
    def binary() -> Path:
        return pytriton_tritonserver_dir() / "bin" / "tritonserver"

    def prepare_backends(self) -> Path:
        """WORKDIR/backends: the python backend (real files) and the Python-based fil backend."""
        from tritonfil.localenv.pods import prepare_backends

        return prepare_backends(self.workdir / "backends")

    def configs(self) -> dict[str, dict[str, Any]]:
        """Every model's config.pbtxt in REPOSITORY as Triton's JSON model config."""
        from tritonfil.localenv.pods import read_local_configs

        return read_local_configs(self.repository)

    def environment(self) -> dict[str, str]:
        from tritonfil.localenv.pods import process_environment

        return process_environment({})

    def command(self) -> list[str]:
        from tritonfil.localenv.pods import gpu_models

        configs = self.configs()
        gpu = set(gpu_models(configs))
        return [
            str(self.binary()),
            f"--model-repository={self.repository}",
            f"--backend-directory={self.workdir / 'backends'}",
            "--http-address=127.0.0.1",
            f"--http-port={self._port('http_port')}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self._port('grpc_port')}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self._port('metrics_port')}",
            "--allow-gpu-metrics=false",
            "--model-control-mode=explicit",
            *[f"--load-model={name}" for name in sorted(configs) if name not in gpu],
            "--exit-on-error=false",
            "--disable-auto-complete-config",
            "--exit-timeout-secs=5",
            *self.extra_args,
        ]

    # -- lifecycle
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until the server is live and no model is still loading."""
        if self.is_running():
            raise LocalTritonServerError(f"tritonserver already running (pid {self.process.pid})")
        if not self.repository.is_dir():
            raise LocalTritonServerError(f"model repository {self.repository} is not a directory")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.prepare_backends()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            cwd=self.workdir,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                rc = self.process.returncode
                self._close_log()
                raise LocalTritonServerError(
                    f"tritonserver exited with rc {rc} during start; log {self.log_path}:\n{self.log_tail()}"
                )
            if self._settled():
                self._load_gpu_models_on_cpu()
                return
            if time.monotonic() > deadline:
                self.stop()
                raise LocalTritonServerError(
                    f"tritonserver not live with all models settled after {timeout:g}s;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _load_gpu_models_on_cpu(self) -> None:
        """The KIND_GPU models, loaded with their config made KIND_CPU (a failure leaves the model UNAVAILABLE)."""
        from tritonfil.localenv.pods import cpu_config, gpu_models, load_model

        configs = self.configs()
        for name in gpu_models(configs):
            load_model(self.http_url.removeprefix("http://"), name, cpu_config(configs[name]))

    def _request(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        request = urllib.request.Request(self.http_url + path, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _settled(self) -> bool:
        try:
            status, _ = self._request("/v2/health/live")
            if status != 200:
                return False
            status, body = self._request("/v2/repository/index", method="POST")
        except (OSError, urllib.error.URLError):
            return False
        if status != 200:
            return False
        index = json.loads(body or b"[]")
        return all(entry.get("state") not in ("LOADING", "UNLOADING") for entry in index)

    def repository_index(self) -> list[dict[str, Any]]:
        status, body = self._request("/v2/repository/index", method="POST")
        if status != 200:
            raise LocalTritonServerError(f"repository index returned HTTP {status}: {body[:200]!r}")
        return list(json.loads(body))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL it after TIMEOUT; returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
        # The python backend stubs share the process group; make sure none outlives the server.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self._close_log()
        return process.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalTritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
