#!/usr/bin/env python3
"""Concurrency sweep of the local tritonserver: throughput and latency, HTTP and gRPC (asyncio).

    .venv/bin/python bench/infer_sweep.py [--concurrency 1,2,4,8,16] [--seconds 4] [--batch 1024]

Serves model_repository/ as bench/infer_local.py does (`serve_repository`, same batch
tiling), then for each model, protocol (tritonclient.http.aio, tritonclient.grpc.aio) and
concurrency C runs C coroutines that each send requests of BATCH rows back to back for SECONDS
(after a warm-up), recording every request's latency. Per point: requests, rows/s, p50/p90/p99
latency. The in-process Treelite rate at the same batch size (`infer_local.in_process`) gives the
served/in-process ratio. The client runs on the same 2 cores as the server: at high concurrency
the client's own CPU is part of what is measured.

Results: bench/results/infer_sweep.json and infer_sweep.png.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Recorder, pyplot, save_figure, say  # noqa: E402
from infer_local import in_process, model_batch, serve_repository  # noqa: E402


def _client(protocol: str, url: str):
    if protocol == "http":
        import tritonclient.http as mod
        import tritonclient.http.aio as aio

        return aio.InferenceServerClient(url.removeprefix("http://")), mod
    import tritonclient.grpc as mod
    import tritonclient.grpc.aio as aio

    return aio.InferenceServerClient(url.removeprefix("grpc://")), mod


async def sweep_point(protocol: str, url: str, model: str, batch: np.ndarray, concurrency: int, seconds: float):
    client, mod = _client(protocol, url)
    try:
        inp = mod.InferInput("input__0", list(batch.shape), "FP32")
        if protocol == "http":
            inp.set_data_from_numpy(batch, binary_data=True)
            out = [mod.InferRequestedOutput("output__0", binary_data=True)]
        else:
            inp.set_data_from_numpy(batch)
            out = [mod.InferRequestedOutput("output__0")]
        for _ in range(2):  # warm-up (connections, first-request costs)
            await client.infer(model, [inp], outputs=out)
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    await client.infer(model, [inp], outputs=out)
                except Exception:  # noqa: BLE001 (counted, not fatal: the point records its errors)
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    lat = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "rows_per_second": round(len(latencies) * batch.shape[0] / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "p90_ms": round(float(np.percentile(lat, 90)), 3) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),  # other processes on the shared machine
    }


def run(args: argparse.Namespace, rec: Recorder) -> None:
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    protocols = args.protocols.split(",")
    rec.doc.update(batch_rows=args.batch, seconds_per_point=args.seconds, concurrency=concurrencies, models={})
    with serve_repository(args.repository) as (server, ready):
        rec.doc["tritonserver"] = ready.server.get("version", "")
        urls = {"http": server.http_url, "grpc": server.grpc_url}
        names = [s.name for s in ready.models]
        if args.models:
            names = [n for n in names if n in args.models.split(",")]
        for name in names:
            params, batch = model_batch(name, args.batch, args.repository, args.references)
            # The baseline: the best in-process Treelite rate over batch sizes and thread counts, each point
            # repeated (median and spread), measured in this run (bench/infer_local.py in_process).
            local = in_process(args.repository / name, params, batch, args.in_process_calls)
            local["p50_ms"] = round(local["batch_rows"] / local["rows_per_second"] * 1000, 3)
            entry: dict[str, Any] = {"in_process_treelite": local}
            for protocol in protocols:
                points = []
                for c in concurrencies:
                    p = asyncio.run(sweep_point(protocol, urls[protocol], name, batch, c, args.seconds))
                    p["served_over_in_process"] = round(p["rows_per_second"] / local["rows_per_second"], 3)
                    if c == 1 and p["p50_ms"]:  # one request at a time: compare median call times too
                        p["served_over_in_process_at_p50"] = round(local["p50_ms"] / p["p50_ms"], 3)
                    points.append(p)
                    rate = f"{p['rows_per_second']:,.0f} rows/s p99 {p['p99_ms']} ms"
                    say(f"infer_sweep: {name} {protocol} c={c}: {rate}")
                best = max(points, key=lambda q: q["rows_per_second"])
                entry[protocol] = {
                    "points": points,
                    "best_rows_per_second": best["rows_per_second"],
                    "best_at_concurrency": best["concurrency"],
                    "served_over_in_process_c1": points[0]["served_over_in_process"],
                    "served_over_in_process_c1_at_p50": points[0].get("served_over_in_process_at_p50"),
                    "served_over_in_process_best": best["served_over_in_process"],
                }
            rec.doc["models"][name] = entry


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None or not doc["models"]:
        return
    names = list(doc["models"])
    fig, axes = plt.subplots(2, len(names), figsize=(4 * len(names), 7.5), squeeze=False)
    for i, name in enumerate(names):
        m = doc["models"][name]
        top, bottom = axes[0][i], axes[1][i]
        for protocol, style in (("http", "-"), ("grpc", "--")):
            if protocol not in m:
                continue
            pts = m[protocol]["points"]
            c = [p["concurrency"] for p in pts]
            top.plot(c, [p["rows_per_second"] / 1000 for p in pts], style, marker="o", label=protocol)
            for q, color in (("p50_ms", "C0"), ("p90_ms", "C1"), ("p99_ms", "C3")):
                bottom.plot(c, [p[q] for p in pts], style, color=color, marker=".", label=f"{protocol} {q[:3]}")
        top.axhline(m["in_process_treelite"]["rows_per_second"] / 1000, color="gray", ls=":", label="in-process")
        top.set_title(f"{name} ({doc['batch_rows']} rows/request)", fontsize=9)
        top.set_ylabel("thousand rows/s")
        bottom.set_ylabel("latency, ms")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent requests")
            ax.grid(True, alpha=0.3)
        top.legend(fontsize=7)
        bottom.legend(fontsize=6, ncol=2)
    save_figure(fig, doc, path)


def table(doc: dict[str, Any]) -> str:
    lines = [f"{'model':<16} {'proto':<5} {'c':>3} {'rows/s':>10} {'p50':>7} {'p90':>7} {'p99':>7} {'/in-proc':>8}"]
    for name, m in doc["models"].items():
        for protocol in ("http", "grpc"):
            for p in m.get(protocol, {}).get("points", []):
                lines.append(
                    f"{name:<16} {protocol:<5} {p['concurrency']:>3} {p['rows_per_second']:>10,.0f}"
                    f" {p['p50_ms']:>7} {p['p90_ms']:>7} {p['p99_ms']:>7} {p['served_over_in_process']:>8.0%}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per point (default 4)")
    parser.add_argument("--batch", type=int, default=1024, help="rows per request (default 1024)")
    parser.add_argument("--models", default="", help="comma-separated subset (default every model)")
    parser.add_argument("--in-process-calls", type=int, default=100)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--references", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--output", type=Path, default=RESULTS / "infer_sweep.json")
    args = parser.parse_args(argv)
    rec = Recorder("infer_sweep", argv)
    run(args, rec)
    path = rec.write(args.output)
    plot(rec.doc, path.with_suffix(".png"))
    sys.stdout.write(table(rec.doc) + f"\nwrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
