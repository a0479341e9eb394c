"""module_utils/triton.py without a server: URL handling and the readiness wait's decisions."""

from __future__ import annotations

import pytest

from tritonfil.models import module_utils

triton = module_utils("triton")


@pytest.mark.parametrize(
    ("url", "protocol", "expected"),
    [
        ("http://127.0.0.1:8000", None, ("http", "127.0.0.1:8000", False)),
        ("https://triton.example.com", None, ("http", "triton.example.com", True)),
        ("grpc://127.0.0.1:8001", "grpc", ("grpc", "127.0.0.1:8001", False)),
        ("grpcs://gw:443", None, ("grpc", "gw:443", True)),
        ("127.0.0.1:8001", "grpc", ("grpc", "127.0.0.1:8001", False)),
        ("localhost:8000/", None, ("http", "localhost:8000", False)),
    ],
)
def test_parse_url(url: str, protocol: str | None, expected: tuple[str, str, bool]) -> None:
    assert triton.parse_url(url, protocol) == expected


@pytest.mark.parametrize(
    ("url", "protocol", "message"),
    [
        ("ftp://x:1", None, "url ftp://x:1: scheme must be http, https, grpc or grpcs"),
        ("grpc://x:1", "http", "url grpc://x:1 is a grpc URL but protocol is http"),
        ("http://x:1/v2/health", None, "url http://x:1/v2/health: give scheme://host:port only"),
    ],
)
def test_parse_url_rejects(url: str, protocol: str | None, message: str) -> None:
    with pytest.raises(triton.TritonError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        triton.parse_url(url, protocol)


def test_grpcs_cannot_skip_verification() -> None:
    with pytest.raises(triton.TritonError, match="gRPC over TLS cannot skip certificate validation"):
        triton.TritonClient("grpcs://127.0.0.1:1", validate_certs=False)


def test_model_spec() -> None:
    assert triton.parse_model_spec("xgb") == ("xgb", "")
    assert triton.parse_model_spec("xgb:2") == ("xgb", "2")
    with pytest.raises(triton.TritonError, match="'xgb:latest' is not 'name' or 'name:version'"):
        triton.parse_model_spec("xgb:latest")


class FakeClient:
    """Answers like a server whose models finish loading at given (fake) times."""

    url = "http://fake:8000"

    def __init__(self, clock: list[float], live_at: float, index: list[tuple[float, dict[str, str]]]) -> None:
        self.clock = clock
        self.live_at = live_at
        self.index = index

    def server_live(self) -> bool:
        if self.clock[0] < self.live_at:
            raise triton.TritonError("liveness check on http://fake:8000 failed: [Errno 111] Connection refused")
        return True

    def server_metadata(self) -> dict:
        return {"name": "triton", "version": "2.51.0", "extensions": []}

    def repository_index(self) -> list[dict[str, str]]:
        latest: dict[str, dict[str, str]] = {}
        for at, entry in self.index:
            if at <= self.clock[0]:
                latest[entry["name"]] = {"version": "1", "reason": "", **entry}
        return list(latest.values())

    def server_ready(self) -> bool:
        entries = self.repository_index()
        return bool(entries) and all(e["state"] == "READY" for e in entries)


def wait(client: FakeClient, clock: list[float], models=None, timeout: float = 10.0):
    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return triton.wait_ready(client, models, timeout=timeout, interval=1.0, clock=lambda: clock[0], sleep=sleep)


def test_waits_for_liveness_then_models() -> None:
    clock = [0.0]
    client = FakeClient(
        clock,
        live_at=2.0,
        index=[(2.0, {"name": "a", "state": "LOADING"}), (4.0, {"name": "a", "state": "READY"})],
    )
    result = wait(client, clock)
    assert (result.live, result.ready, result.elapsed) == (True, True, 4.0)
    assert [(m.name, m.state, m.ready) for m in result.models] == [("a", "READY", True)]


def test_timeout_names_each_unready_model_with_its_reason() -> None:
    clock = [0.0]
    client = FakeClient(
        clock,
        live_at=0.0,
        index=[
            (0.0, {"name": "a", "state": "READY"}),
            (0.0, {"name": "b", "state": "UNAVAILABLE", "reason": "failed to load 'xgboost.json'\n\nAt: trace"}),
            (0.0, {"name": "c", "state": "LOADING"}),
        ],
    )
    with pytest.raises(triton.TritonError) as info:
        wait(client, clock, timeout=5.0)
    assert info.value.message == (
        "after 5s: model b version 1 not READY (state UNAVAILABLE: failed to load 'xgboost.json');"
        " model c version 1 not READY (state LOADING)"
    )
    assert info.value.result.elapsed == 5.0
    assert [m.state for m in info.value.result.models] == ["READY", "UNAVAILABLE", "LOADING"]


def test_listed_models_ignore_others_and_report_missing_ones() -> None:
    clock = [0.0]
    client = FakeClient(
        clock,
        live_at=0.0,
        index=[(0.0, {"name": "a", "state": "READY"}), (0.0, {"name": "b", "state": "UNAVAILABLE"})],
    )
    result = wait(client, clock, models=[("a", "1")])
    assert result.ready is False and [m.name for m in result.models] == ["a"]
    with pytest.raises(triton.TritonError) as info:
        wait(client, clock, models=[("a", ""), ("z", "")], timeout=2.0)
    assert info.value.message == (
        "after 2s: model z not READY (state MISSING: not in the repository index (models: a, b))"
    )


def test_server_never_live() -> None:
    clock = [0.0]
    client = FakeClient(clock, live_at=100.0, index=[])
    with pytest.raises(triton.TritonError) as info:
        wait(client, clock, timeout=3.0)
    assert info.value.message == (
        "Triton at http://fake:8000 not live after 3s (liveness check on http://fake:8000 failed:"
        " [Errno 111] Connection refused)"
    )
    assert info.value.result.live is False
