"""The Triton stand-in: a real tritonserver on CPU serving the python-backend twin of model_repository/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritonfil import collection
from tritonfil.localenv.env import LocalEnvError
from tritonfil.tritonserver import LocalTritonServer, LocalTritonServerError
from tritonfil.twin import build_twin

if TYPE_CHECKING:
    from tritonfil.localenv.env import LocalEnv


def start_triton(env: LocalEnv, repository: Path | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """Build the twin of REPOSITORY (default: the collection's model_repository/) and serve it as a daemon."""
    source = repository or collection.root() / "model_repository"
    twin = env.state / "twin_repository"
    report = build_twin(source, twin, overwrite=True)
    server = LocalTritonServer(repository=twin, workdir=env.state / "triton")
    try:
        server.start(timeout=timeout)
    except LocalTritonServerError as e:
        raise LocalEnvError(f"tritonserver failed to start: {e}") from e
    env.pids.mkdir(parents=True, exist_ok=True)
    (env.pids / "triton.pid").write_text(str(server.process.pid))
    not_ready = [m for m in server.repository_index() if m.get("state") != "READY"]
    if not_ready:
        env._stop("triton")
        raise LocalEnvError(f"tritonserver started but models are not READY: {not_ready} (log {server.log_path})")
    return {
        "triton_http": server.http_url,
        "triton_grpc": server.grpc_url.removeprefix("grpc://"),
        "triton_metrics": server.metrics_url,
        "triton_models": sorted(report.models),
        "triton_log": str(server.log_path),
    }
