"""Inference load against the local environment's process-backed Triton pods, as clients behind a Service see them.

``Load`` sends KServe v2 ``infer`` requests to the ready replicas of a release, round robin, refreshing the
endpoints from the pods every ``refresh`` seconds (Ready, not being deleted, with the address the pod runner
publishes: what a Service's endpoints would hold). Two ways to offer load:

- ``concurrency=N`` (closed loop): N clients, each sending its next request when the last one answered - a queue
  forms in Triton's scheduler whenever more requests arrive than its instance executes at once;
- ``rate=R`` (open loop, rate-limited): R requests per second whatever the servers do (``set_rate`` changes it:
  a step or a ramp), sent by a pool of workers; requests the pool cannot send in time are counted as late.

Every request is recorded (time sent, latency, success), for the integration tests and ``bench/autoscale.py``.
Loopback only: the addresses are 127.0.0.1 ports of the pod runner's tritonserver processes.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tritonfil.localenv import pods as podlib


@dataclass
class Sample:
    sent: float  # monotonic time the request was sent
    latency: float  # seconds; -1 for a failure
    endpoint: str
    error: str = ""


def infer_body(model_input: str, rows: np.ndarray) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {"name": model_input, "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
            ]
        }
    ).encode()


def ready_endpoints(pods: list[dict]) -> list[str]:
    """HTTP addresses of the pods that are Ready, not being deleted, and publish an address."""
    out = []
    for pod in pods:
        ann = pod["metadata"].get("annotations") or {}
        if podlib.condition_true(pod) and not pod["metadata"].get("deletionTimestamp") and podlib.ANN_HTTP in ann:
            out.append(ann[podlib.ANN_HTTP])
    return sorted(out)


@dataclass
class Load:
    """Requests to MODEL on the replicas LIST_PODS returns (a callable: the release's pods as JSON dicts)."""

    list_pods: Callable[[], list[dict]]
    model: str
    rows: np.ndarray
    concurrency: int = 0
    rate: float = 0.0
    workers: int = 32
    refresh: float = 0.5
    timeout: float = 10.0
    model_input: str = "input__0"
    samples: list[Sample] = field(default_factory=list)
    late: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._endpoints: list[str] = []
        self._next = 0
        self._threads: list[threading.Thread] = []
        self._tickets: queue.Queue[float | None] = queue.Queue()
        self._body = infer_body(self.model_input, self.rows)
        self.started = time.monotonic()

    # endpoints
    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                endpoints = ready_endpoints(self.list_pods())
            except Exception:  # the API server restarting: keep the last endpoints
                endpoints = self._endpoints
            with self._lock:
                self._endpoints = endpoints
            self._stop.wait(self.refresh)

    def endpoints(self) -> list[str]:
        with self._lock:
            return list(self._endpoints)

    def _pick(self) -> str | None:
        with self._lock:
            if not self._endpoints:
                return None
            self._next = (self._next + 1) % len(self._endpoints)
            return self._endpoints[self._next]

    # requests
    def _send(self) -> None:
        endpoint = self._pick()
        if endpoint is None:
            time.sleep(0.05)
            return
        sent = time.monotonic()
        req = urllib.request.Request(f"http://{endpoint}/v2/models/{self.model}/infer", data=self._body)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (loopback)
                resp.read()
            sample = Sample(sent, time.monotonic() - sent, endpoint)
        except Exception as exc:  # what a client would see
            sample = Sample(sent, -1.0, endpoint, f"{type(exc).__name__}: {exc}"[:200])
        with self._lock:
            self.samples.append(sample)

    def _closed_loop(self) -> None:
        while not self._stop.is_set():
            self._send()

    def _worker(self) -> None:
        while True:
            due = self._tickets.get()
            if due is None:
                return
            if time.monotonic() - due > 1.0:
                with self._lock:
                    self.late += 1
            self._send()

    def _dispatch(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            rate = self.rate
            if rate <= 0:
                self._stop.wait(0.05)
                due = time.monotonic()
                continue
            due += 1.0 / rate
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            self._tickets.put(due)

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)

    def start(self) -> Load:
        self._threads.append(threading.Thread(target=self._refresh_loop, daemon=True, name="load-refresh"))
        if self.concurrency:
            for i in range(self.concurrency):
                self._threads.append(threading.Thread(target=self._closed_loop, daemon=True, name=f"load-{i}"))
        else:
            self._threads.append(threading.Thread(target=self._dispatch, daemon=True, name="load-dispatch"))
            for i in range(self.workers):
                self._threads.append(threading.Thread(target=self._worker, daemon=True, name=f"load-w{i}"))
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for _ in range(self.workers):
            self._tickets.put(None)
        for t in self._threads:
            t.join(self.timeout + 2)

    # results
    def window(self, since: float, until: float | None = None) -> list[Sample]:
        until = until if until is not None else time.monotonic()
        with self._lock:
            return [s for s in self.samples if since <= s.sent < until]

    def summary(self, since: float = 0.0, until: float | None = None) -> dict[str, Any]:
        samples = self.window(since, until)
        ok = [s.latency for s in samples if s.latency >= 0]
        failed = [s for s in samples if s.latency < 0]
        return {
            "requests": len(samples),
            "failures": len(failed),
            "failure_examples": [f"{s.endpoint}: {s.error}" for s in failed[:5]],
            "p50_ms": round(float(np.percentile(ok, 50)) * 1000, 2) if ok else None,
            "p99_ms": round(float(np.percentile(ok, 99)) * 1000, 2) if ok else None,
            "endpoints": sorted({s.endpoint for s in samples}),
            "late": self.late,
        }
