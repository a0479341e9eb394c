# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""One client for Triton's KServe v2 API over HTTP or gRPC, with a single error path.

`TritonClient` wraps ``tritonclient.http`` / ``tritonclient.grpc`` and normalizes their answers
to plain dicts (gRPC's JSON has int64 as strings; HTTP has ints). Every failure, whatever the
transport raised (connection refused, TLS, timeout, HTTP 4xx/5xx, gRPC status), comes out as
`TritonError` naming the operation and the URL.

On top of it: `wait_ready` (what ``tritonfil.eks.triton_ready`` runs) and `check_model`
(what ``tritonfil.eks.triton_infer`` runs). No Ansible import, so tests and the `tritonfil`
package can use it directly; numpy and tritonclient are imported lazily.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Argument spec shared by the modules; mirrors plugins/doc_fragments/triton.py.
TRITON_COMMON_ARGS: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "protocol": {"type": "str", "choices": ["http", "grpc"]},
    "validate_certs": {"type": "bool", "default": True},
    "ca_cert": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
    "headers": {"type": "dict", "default": {}, "no_log": True},
    "request_timeout": {"type": "float", "default": 10.0},
}
TRITON_REQUIRED_TOGETHER = [["client_cert", "client_key"]]

DATATYPE_TO_NUMPY = {
    "BOOL": "bool",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}


class TritonError(Exception):
    """A request to Triton failed; ``message`` says what, on which URL, and why."""

    def __init__(self, message: str, *, url: str = "", operation: str = "", status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.operation = operation
        self.status = status
        self.result: Any = None  # partial result (e.g. ReadyResult on a readiness timeout)


def parse_url(url: str, protocol: str | None = None) -> tuple[str, str, bool]:
    """Split URL into (protocol, host:port, tls). Schemes: http, https, grpc, grpcs, or none."""
    text = url.strip()
    if "://" not in text:
        proto = protocol or "http"
        return proto, text.rstrip("/"), False
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    schemes = {"http": ("http", False), "https": ("http", True), "grpc": ("grpc", False), "grpcs": ("grpc", True)}
    if scheme not in schemes:
        raise TritonError(f"url {url}: scheme must be http, https, grpc or grpcs", url=url, operation="parse url")
    proto, tls = schemes[scheme]
    if protocol and protocol != proto:
        raise TritonError(f"url {url} is a {proto} URL but protocol is {protocol}", url=url, operation="parse url")
    if parts.path not in ("", "/"):
        raise TritonError(
            f"url {url}: give scheme://host:port only (Triton's API paths start at /v2)", url=url, operation="parse url"
        )
    return proto, parts.netloc, tls


def _int_list(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values]


def _exception_text(exc: BaseException) -> str:
    text = ""
    message = getattr(exc, "message", None)
    if callable(message):
        try:
            text = str(message())
        except Exception:  # pragma: no cover - defensive
            text = ""
    text = text or str(exc) or type(exc).__name__
    return " ".join(text.split())


class TritonClient:
    """A KServe v2 client for one Triton endpoint (HTTP or gRPC, optional TLS and headers)."""

    def __init__(
        self,
        url: str,
        protocol: str | None = None,
        *,
        validate_certs: bool = True,
        ca_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        headers: dict[str, str] | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.protocol, self.address, self.tls = parse_url(url, protocol)
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()} or None
        self.timeout = float(request_timeout)
        self._client = self._connect(validate_certs, ca_cert, client_cert, client_key)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TritonClient:
        """Build from module parameters (the keys of TRITON_COMMON_ARGS)."""
        return cls(
            params["url"],
            params.get("protocol"),
            validate_certs=params.get("validate_certs", True),
            ca_cert=params.get("ca_cert"),
            client_cert=params.get("client_cert"),
            client_key=params.get("client_key"),
            headers=params.get("headers") or {},
            request_timeout=params.get("request_timeout", 10.0),
        )

    def _connect(self, validate: bool, ca_cert: str | None, cert: str | None, key: str | None) -> Any:
        try:
            if self.protocol == "http":
                import tritonclient.http as httpclient

                kwargs: dict[str, Any] = {
                    "connection_timeout": self.timeout,
                    "network_timeout": self.timeout,
                }
                if self.tls:
                    import gevent.ssl

                    options = {k: v for k, v in (("ca_certs", ca_cert), ("certfile", cert), ("keyfile", key)) if v}
                    kwargs.update(ssl=True, ssl_options=options, insecure=not validate)
                    if not validate:
                        kwargs["ssl_context_factory"] = gevent.ssl._create_unverified_context
                return httpclient.InferenceServerClient(self.address, **kwargs)
            import tritonclient.grpc as grpcclient

            if self.tls and not validate:
                raise TritonError(
                    f"url {self.url}: gRPC over TLS cannot skip certificate validation; pass ca_cert instead",
                    url=self.url,
                    operation="connect",
                )
            kwargs = {}
            if self.tls:
                kwargs = {"ssl": True, "root_certificates": ca_cert, "private_key": key, "certificate_chain": cert}
            return grpcclient.InferenceServerClient(self.address, **kwargs)
        except TritonError:
            raise
        except ImportError as exc:
            raise TritonError(
                f"tritonclient[{self.protocol}] is not installed: {exc}", url=self.url, operation="connect"
            ) from exc
        except Exception as exc:
            raise TritonError(
                f"cannot set up a {self.protocol} client for {self.url}: {_exception_text(exc)}",
                url=self.url,
                operation="connect",
            ) from exc

    # -- the single error path
    def _call(self, operation: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs["headers"] = self.headers
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            status = None
            get_status = getattr(exc, "status", None)
            if callable(get_status):
                try:
                    status = get_status()
                except Exception:  # pragma: no cover - defensive
                    status = None
            raise TritonError(
                f"{operation} on {self.url} failed: {_exception_text(exc)}",
                url=self.url,
                operation=operation,
                status=str(status) if status is not None else None,
            ) from exc

    def close(self) -> None:
        # Closing a broken connection must not mask the real error.
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health and metadata
    def server_live(self) -> bool:
        return bool(self._call("liveness check", self._client.is_server_live))

    def server_ready(self) -> bool:
        return bool(self._call("readiness check", self._client.is_server_ready))

    def server_metadata(self) -> dict[str, Any]:
        if self.protocol == "grpc":
            data = self._call("server metadata", self._client.get_server_metadata, as_json=True)
        else:
            data = self._call("server metadata", self._client.get_server_metadata)
        return {
            "name": data.get("name", ""),
            "version": data.get("version", ""),
            "extensions": data.get("extensions", []),
        }

    def repository_index(self) -> list[dict[str, str]]:
        if self.protocol == "grpc":
            data = self._call("repository index", self._client.get_model_repository_index, as_json=True)
            entries = data.get("models", [])
        else:
            entries = self._call("repository index", self._client.get_model_repository_index)
        return [
            {
                "name": str(e.get("name", "")),
                "version": str(e.get("version", "")),
                "state": str(e.get("state", "")),
                "reason": str(e.get("reason", "")),
            }
            for e in entries
        ]

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        operation = f"metadata of model {name}"
        if self.protocol == "grpc":
            data = self._call(operation, self._client.get_model_metadata, name, version, as_json=True)
        else:
            data = self._call(operation, self._client.get_model_metadata, name, version)

        def tensors(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {"name": t["name"], "datatype": t["datatype"], "shape": _int_list(t.get("shape", []))} for t in items
            ]

        return {
            "name": data.get("name", name),
            "versions": [str(v) for v in data.get("versions", [])],
            "platform": data.get("platform", ""),
            "inputs": tensors(data.get("inputs", [])),
            "outputs": tensors(data.get("outputs", [])),
        }

    def model_config(self, name: str, version: str = "") -> dict[str, Any]:
        """The model's configuration: max_batch_size (int) and parameters (key -> string)."""
        operation = f"configuration of model {name}"
        if self.protocol == "grpc":
            data = self._call(operation, self._client.get_model_config, name, version, as_json=True)
            data = data.get("config", {})
        else:
            data = self._call(operation, self._client.get_model_config, name, version)
        params = {k: (v or {}).get("string_value", "") for k, v in (data.get("parameters") or {}).items()}
        return {
            "name": data.get("name", name),
            "backend": data.get("backend", ""),
            "max_batch_size": int(data.get("max_batch_size", 0) or 0),
            "parameters": params,
        }

    # -- inference
    def infer(self, name: str, inputs: dict[str, Any], outputs: list[str], version: str = "") -> dict[str, Any]:
        """Run one request; INPUTS maps input name -> numpy array. Returns output name -> array."""
        if self.protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        from tritonclient.utils import np_to_triton_dtype

        request = []
        for input_name, array in inputs.items():
            tensor = module.InferInput(input_name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        wanted = [module.InferRequestedOutput(o) for o in outputs]
        result = self._call(
            f"inference on model {name}", self._client.infer, name, request, model_version=version, outputs=wanted
        )
        return {o: result.as_numpy(o) for o in outputs}


# --------------------------------------------------------------------------------------------
# Readiness


@dataclass
class ModelState:
    name: str
    version: str
    state: str
    reason: str = ""
    ready: bool = False

    def describe(self) -> str:
        version = f" version {self.version}" if self.version else ""
        reason = f": {short_reason(self.reason)}" if self.reason else ""
        return f"model {self.name}{version} (state {self.state or 'UNKNOWN'}{reason})"


def short_reason(reason: str, limit: int = 400) -> str:
    """The first paragraph of a load error on one line (backends append tracebacks)."""
    text = " ".join(reason.split("\n\n")[0].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ReadyResult:
    live: bool = False
    ready: bool = False
    elapsed: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)
    models: list[ModelState] = field(default_factory=list)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """'name' or 'name:version' -> (name, version); version '' means any/latest."""
    name, _sep, version = spec.partition(":")
    if not name or (version and not version.isdigit()):
        raise TritonError(f"model '{spec}' is not 'name' or 'name:version' with a numeric version", operation="parse")
    return name, version


def _model_states(index: list[dict[str, str]], wanted: list[tuple[str, str]] | None) -> list[ModelState]:
    if wanted is None:
        return [ModelState(e["name"], e["version"], e["state"], e["reason"], e["state"] == "READY") for e in index]
    states = []
    for name, version in wanted:
        entries = [e for e in index if e["name"] == name and (not version or e["version"] == version)]
        if not entries:
            known = ", ".join(sorted({e["name"] for e in index})) or "none"
            reason = f"not in the repository index (models: {known})"
            if version and any(e["name"] == name for e in index):
                versions = ", ".join(e["version"] for e in index if e["name"] == name)
                reason = f"version not in the repository index (versions: {versions})"
            states.append(ModelState(name, version, "MISSING", reason, False))
            continue
        for entry in entries:
            states.append(
                ModelState(name, entry["version"], entry["state"], entry["reason"], entry["state"] == "READY")
            )
    return states


def wait_ready(
    client: TritonClient,
    models: list[tuple[str, str]] | None = None,
    *,
    timeout: float = 120.0,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReadyResult:
    """Wait until the server is live and ready and every (or each listed) model version is READY.

    With MODELS None every model in the repository index must be READY and the server ready;
    with MODELS given only those must be READY. Raises TritonError naming every model that is
    not READY (with the reason from the repository index) when TIMEOUT passes.
    """
    start = clock()
    result = ReadyResult()
    last_error = ""
    while True:
        try:
            result.live = client.server_live()
            if result.live:
                if not result.server:
                    result.server = client.server_metadata()
                result.ready = client.server_ready()
                result.models = _model_states(client.repository_index(), models)
                last_error = ""
                models_ok = all(m.ready for m in result.models) and (models is not None or bool(result.models))
                if models_ok and (result.ready or models is not None):
                    result.elapsed = round(clock() - start, 3)
                    return result
        except TritonError as exc:
            last_error = exc.message
            result.live = False
        elapsed = clock() - start
        if elapsed >= timeout:
            result.elapsed = round(elapsed, 3)
            error = TritonError(
                _not_ready_message(client, result, models, timeout, last_error), url=client.url, operation="wait ready"
            )
            error.result = result
            raise error
        sleep(min(interval, max(timeout - elapsed, 0.0)))


def _not_ready_message(
    client: TritonClient, result: ReadyResult, models: list[tuple[str, str]] | None, timeout: float, error: str
) -> str:
    if not result.live:
        why = error or "liveness check returned false"
        return f"Triton at {client.url} not live after {timeout:g}s ({why})"
    pending = [m for m in result.models if not m.ready]
    if pending:
        parts = [f"{m.describe().replace(' (', ' not READY (', 1)}" for m in pending]
        return f"after {timeout:g}s: " + "; ".join(parts)
    if not result.models:
        return f"Triton at {client.url} serves no models after {timeout:g}s (empty repository index)"
    return f"Triton at {client.url} live but not ready after {timeout:g}s (every model READY: check the server log)"


# --------------------------------------------------------------------------------------------
# Inference checks


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def measure_latency(
    client: TritonClient, name: str, version: str, inputs: dict[str, Any], outputs: list[str], requests: int
) -> dict[str, float]:
    """Send REQUESTS identical requests one after another (after one warm-up)."""
    if requests <= 0:
        return {}
    rows = int(next(iter(inputs.values())).shape[0])
    client.infer(name, inputs, outputs, version)
    times = []
    for _request in range(requests):
        started = time.perf_counter()
        client.infer(name, inputs, outputs, version)
        times.append(time.perf_counter() - started)
    total = sum(times)
    return {
        "requests": requests,
        "batch_rows": rows,
        "p50_ms": round(_percentile(times, 50) * 1000, 3),
        "p99_ms": round(_percentile(times, 99) * 1000, 3),
        "mean_ms": round(total / requests * 1000, 3),
        "rows_per_second": round(requests * rows / total, 1) if total > 0 else 0.0,
    }


def _tile_rows(array: Any, rows: int) -> Any:
    import numpy as np

    reps = -(-rows // array.shape[0])
    return np.ascontiguousarray(np.tile(array, (reps,) + (1,) * (array.ndim - 1))[:rows])


def check_model(
    client: TritonClient,
    name: str,
    version: str = "",
    *,
    reference: dict[str, Any] | None = None,
    rows: int = 64,
    batch_size: int = 1024,
    requests: int = 20,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Infer on NAME and check the answer; returns a report dict with ``failures`` (empty = pass).

    Inputs come from REFERENCE (``input`` rows and ``expected`` output, as written by
    scripts/gen_models.py) or, without one, from the model metadata (random normal rows).
    TritonError propagates when the server cannot be reached at all.
    """
    import numpy as np

    meta = client.model_metadata(name, version)
    config = client.model_config(name, version)
    params = config["parameters"]
    batched = config["max_batch_size"] > 0
    report: dict[str, Any] = {
        "name": name,
        "version": version or (meta["versions"][-1] if meta["versions"] else ""),
        "platform": meta["platform"],
        "inputs": meta["inputs"],
        "outputs": meta["outputs"],
        "checks": [],
        "failures": [],
        "reference": None,
        "latency": {},
    }
    fail = report["failures"].append
    check = report["checks"].append
    rng = np.random.default_rng(seed)
    inputs: dict[str, Any] = {}
    from_reference = reference is not None and len(meta["inputs"]) == 1
    for tensor in meta["inputs"]:
        dtype = DATATYPE_TO_NUMPY.get(tensor["datatype"])
        if dtype is None:
            fail(f"input {tensor['name']}: datatype {tensor['datatype']} cannot be generated")
            return report
        shape = list(tensor["shape"])
        if batched:
            shape = shape[1:]
        if any(d < 0 for d in shape):
            fail(f"input {tensor['name']}: variable dims {tensor['shape']} cannot be generated")
            return report
        if from_reference:
            data = np.asarray(reference["input"], dtype=dtype)
            if list(data.shape[1:]) != shape:
                fail(
                    f"input {tensor['name']}: reference rows have shape {list(data.shape[1:])}"
                    f" but the model takes {shape}"
                )
                return report
        else:
            data = rng.standard_normal((rows, *shape)).astype(dtype)
        if not batched:
            data = data[0]
        inputs[tensor["name"]] = np.ascontiguousarray(data)
    n_rows = int(next(iter(inputs.values())).shape[0]) if batched else 1
    check(f"inputs built from {'reference' if from_reference else 'metadata'}: {n_rows} row(s)")
    out_names = [t["name"] for t in meta["outputs"]]
    results = client.infer(name, inputs, out_names, version)
    for tensor in meta["outputs"]:
        out = results.get(tensor["name"])
        label = f"output {tensor['name']}"
        if out is None:
            fail(f"{label}: missing from the response")
            continue
        want_dtype = DATATYPE_TO_NUMPY.get(tensor["datatype"])
        if want_dtype and out.dtype != np.dtype(want_dtype):
            fail(f"{label}: datatype {out.dtype} but metadata says {tensor['datatype']}")
        want_shape = [n_rows if (batched and i == 0) else d for i, d in enumerate(tensor["shape"])]
        if any(d < 0 for d in want_shape) and len(want_shape) == out.ndim:
            want_shape = [o if d < 0 else d for d, o in zip(want_shape, out.shape, strict=True)]
        if list(out.shape) != want_shape:
            fail(f"{label}: shape {list(out.shape)} but metadata says {want_shape}")
            continue
        check(f"{label}: {tensor['datatype']} {list(out.shape)}")
        values = out.astype(np.float64)
        if not np.all(np.isfinite(values)):
            fail(f"{label}: {int(np.sum(~np.isfinite(values)))} non-finite value(s)")
            continue
        if tensor["name"] == "output__0":
            _check_fil_range(values, params, label, check, fail)
    if from_reference and "expected" in reference and "output__0" in results:
        report["reference"] = _compare(results["output__0"], reference, atol, rtol, fail)
    if not report["failures"] and requests > 0:
        batch = {k: _tile_rows(v, batch_size) if batched else v for k, v in inputs.items()}
        report["latency"] = measure_latency(client, name, version, batch, out_names, requests)
    return report


def _check_fil_range(values: Any, params: dict[str, str], label: str, check: Callable, fail: Callable) -> None:
    import numpy as np

    is_classifier = params.get("is_classifier", params.get("output_class")) == "true"
    predict_proba = params.get("predict_proba") == "true"
    if is_classifier and predict_proba:
        if values.min() < -1e-6 or values.max() > 1 + 1e-6:
            fail(f"{label}: probabilities outside [0, 1] (min {values.min():.6g}, max {values.max():.6g})")
            return
        sums = values.reshape(values.shape[0], -1).sum(axis=1)
        worst = float(np.max(np.abs(sums - 1.0)))
        if worst > 1e-3:
            fail(f"{label}: class probabilities of a row sum to {1 + worst:.6g}, not 1")
            return
        check(f"{label}: probabilities in [0, 1], rows sum to 1")
    elif is_classifier:
        if np.any(values < 0) or np.any(values != np.round(values)):
            fail(f"{label}: class outputs must be non-negative integers (min {values.min():.6g})")
            return
        check(f"{label}: class indices {sorted({int(v) for v in np.unique(values)})}")
    else:
        check(f"{label}: finite regression values in [{values.min():.6g}, {values.max():.6g}]")


def _compare(got: Any, reference: dict[str, Any], atol: float | None, rtol: float | None, fail: Callable) -> dict:
    import numpy as np

    expected = np.asarray(reference["expected"], dtype=np.float64)
    atol = float(reference.get("atol", 1e-5) if atol is None else atol)
    rtol = float(reference.get("rtol", 1e-5) if rtol is None else rtol)
    result: dict[str, Any] = {"rows": int(expected.shape[0]), "atol": atol, "rtol": rtol}
    got = got.astype(np.float64)
    if got.shape != expected.shape:
        fail(f"output output__0: shape {list(got.shape)} but the reference has {list(expected.shape)}")
        result["match"] = False
        return result
    diff = np.abs(got - expected)
    bad = diff > atol + rtol * np.abs(expected)
    bad_rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
    result.update(max_abs_diff=float(diff.max()), mismatched_rows=int(bad_rows.size), match=not bad_rows.size)
    if bad_rows.size:
        row = int(bad_rows[0])
        fail(
            f"output output__0 differs from the reference in {bad_rows.size} of {expected.shape[0]} rows"
            f" (first: row {row}, got {got[row].tolist()}, expected {expected[row].tolist()};"
            f" max abs diff {float(diff.max()):.6g}, atol {atol:g}, rtol {rtol:g})"
        )
    return result
