#!/usr/bin/env python3
"""Served vs in-process inference rate of the sample models on the local tritonserver (FIL stand-in).

    .venv/bin/python bench/infer_local.py [--batch 1024] [--requests 100] [--protocol http]

Serves model_repository/ as it is with the real tritonserver from the nvidia-pytriton wheel and the
Python-based FIL stand-in (`tritonfil.tritonserver.LocalTritonServer`), and for
each model sends REQUESTS sequential requests of BATCH rows (one client, after one warm-up) with
the same client code `tritonfil.eks.triton_infer` uses, recording p50/p99 latency and rows per
second. For comparison it times Treelite's ``gtil.predict`` in this process on the same rows
with the same FIL output semantics (`tritonfil.localenv.fil_backend.fil_predict`). Results go to
bench/results/infer_local.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import treelite

from tritonfil.localenv.fil_backend import fil_predict, load_treelite_model
from tritonfil.models import module_utils
from tritonfil.tritonserver import LocalTritonServer

ROOT = Path(__file__).resolve().parents[1]


def in_process(model_dir: Path, params: dict[str, str], batch: np.ndarray, requests: int) -> dict[str, float]:
    repo = module_utils("model_repository")
    model_type = params["model_type"]
    model = load_treelite_model(str(model_dir / "1" / repo.MODEL_FILENAMES[model_type]), model_type)
    kwargs = {
        "is_classifier": params["is_classifier"] == "true",
        "predict_proba": params.get("predict_proba") == "true",
        "threshold": float(params.get("threshold", "0.5")),
        "nthread": int(params.get("cpu_nthread", "-1")),
    }
    fil_predict(model, batch, **kwargs)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        fil_predict(model, batch, **kwargs)
        times.append(time.perf_counter() - started)
    total = sum(times)
    p50 = float(np.percentile(times, 50))
    return {
        "calls": requests,
        "batch_rows": int(batch.shape[0]),
        "p50_ms": round(p50 * 1000, 3),
        "p99_ms": round(float(np.percentile(times, 99)) * 1000, 3),
        "rows_per_second": round(requests * batch.shape[0] / total, 1),
        # batch / median call time: less sensitive than the mean to other processes on a shared machine
        "rows_per_second_at_p50": round(batch.shape[0] / p50, 1),
    }


def model_batch(name: str, batch_rows: int, repository: Path, references: Path) -> tuple[dict[str, str], np.ndarray]:
    """The FIL parameters of model NAME and a BATCH_ROWS-row batch tiled from its reference rows."""
    repo = module_utils("model_repository")
    params = repo.config_parameters(repo.load_config(repository / name / repo.CONFIG_NAME))
    ref = json.loads((references / name / "reference.json").read_text())
    rows = np.asarray(ref["input"], dtype=np.float32)
    batch = np.ascontiguousarray(np.tile(rows, (-(-batch_rows // len(rows)), 1))[:batch_rows])
    return params, batch


@contextlib.contextmanager
def serve_repository(repository: Path) -> Iterator[tuple[LocalTritonServer, Any]]:
    """REPOSITORY (unmodified) served by a local tritonserver with the FIL stand-in; yields (server, readiness)."""
    triton = module_utils("triton")
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        server = LocalTritonServer(repository, Path(tmp) / "work")
        server.start(timeout=120)
        try:
            with triton.TritonClient(server.http_url, request_timeout=60) as client:
                ready = triton.wait_ready(client, timeout=60)
            yield server, ready
        finally:
            server.stop()


def run(batch_rows: int, requests: int, protocol: str, repository: Path, references: Path) -> dict:
    triton = module_utils("triton")
    with serve_repository(repository) as (server, ready):
        url = server.http_url if protocol == "http" else server.grpc_url
        with triton.TritonClient(url, request_timeout=60) as client:
            models = {}
            for state in ready.models:
                name = state.name
                params, batch = model_batch(name, batch_rows, repository, references)
                served = triton.measure_latency(client, name, "", {"input__0": batch}, ["output__0"], requests)
                local = in_process(repository / name, params, batch, requests)
                models[name] = {
                    "served": served,
                    "in_process_treelite": local,
                    "served_share_of_in_process": round(served["rows_per_second"] / local["rows_per_second"], 3),
                }
        server_version = ready.server.get("version", "")
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "bench/infer_local.py " + " ".join(sys.argv[1:]),
        "protocol": protocol,
        "batch_rows": batch_rows,
        "requests": requests,
        "clients": 1,
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "tritonserver": server_version,
            "treelite": treelite.__version__,
            "numpy": np.__version__,
        },
        "models": models,
    }


def table(result: dict) -> str:
    lines = [
        f"{'model':<16} {'served rows/s':>14} {'p50 ms':>8} {'p99 ms':>8} {'in-proc rows/s':>15} {'share':>6}",
    ]
    for name, m in result["models"].items():
        s, p = m["served"], m["in_process_treelite"]
        lines.append(
            f"{name:<16} {s['rows_per_second']:>14,.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
            f" {p['rows_per_second']:>15,.0f} {m['served_share_of_in_process']:>6.0%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="rows per request (default 1024)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per model (default 100)")
    parser.add_argument("--protocol", choices=["http", "grpc"], default="http")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--references", type=Path, default=ROOT / "model_references")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "infer_local.json")
    args = parser.parse_args(argv)
    load_start = [round(x, 2) for x in os.getloadavg()]
    result = run(args.batch, args.requests, args.protocol, args.repository, args.references)
    result["load"] = {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(table(result) + f"\nwrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
