"""Model lifecycle on the process-backed pods: a retrained model rolls out verified, a bad one is rolled back.

Against the session's local environment, with a copy of the sample repository and two replicas (the HPA off):

1. deploy: revision R1, verified, live;
2. retrain xgb_regressor with another seed (scripts/gen_models.py's own builder) and deploy again, with a
   constant-rate client sending requests to the ready replicas all along (it follows the replicas as a Service's
   endpoints would): only that model's two objects are uploaded, the rest is copied server-side; the Deployment
   rolls; every replica serves the new outputs; verify passes against the new revision's own references; the
   client sees no failed request;
3. a revision whose model no longer matches its reference (xgb_classifier's threshold changed, its reference
   not): the gate rolls the release back to R2 and the run fails naming the model, the revision and the
   mismatch; the replicas serve R2 again; the bucket keeps both;
4. a corrupt model file: refused before anything is uploaded, naming the model;
5. the fixed repository converges (it is R2 again); a second run changes nothing;
6. the history lists R1, R2 (live, serving) and R3; an explicit rollback to R1 serves R1 and makes it live.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.test_pods import CONFIRM, NS, Deployment, assert_ok, wait_until
from tritonfil.localenv.env import LocalEnv
from tritonfil.localenv.load import ready_endpoints

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def gen_models():
    spec = importlib.util.spec_from_file_location("gen_models", ROOT / "scripts" / "gen_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_models"] = module
    spec.loader.exec_module(module)
    return module


def retrain_regressor(repository: Path, seed: int) -> None:
    """xgb_regressor trained again with SEED: a new model file and its reference (the training library's
    outputs), written the way scripts/gen_models.py writes them."""
    gm = gen_models()
    gm.SEED = seed
    with tempfile.TemporaryDirectory() as tmp:
        sample, x, expected = gm.xgb_regressor(Path(tmp))
        shutil.copy2(Path(tmp) / sample.filename, repository / sample.name / "1" / sample.filename)
        diff = gm.check_treelite_agrees(sample, repository / sample.name / "1" / sample.filename, x, expected)
        doc = gm.reference_document(sample, x, expected, diff)
        (repository / sample.name / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")


def infer(address: str, model: str, rows: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [{"name": "input__0", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]
    }
    req = urllib.request.Request(f"http://{address}/v2/models/{model}/infer", data=json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
        out = json.loads(resp.read())["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


class ConstantRateClient(threading.Thread):
    """Sends one request every PERIOD seconds to the ready replicas, round robin, refreshing the endpoints every
    100 ms from the pods (Ready and not being deleted), as a Service's endpoints follow a rollout."""

    def __init__(self, local: LocalEnv, model: str, rows: np.ndarray, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.local, self.model, self.rows, self.period = local, model, rows, period
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.endpoints: list[str] = []
        self.seen: set[str] = set()

    def refresh(self) -> None:
        pods = json.loads(self.local.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
        ready = ready_endpoints(pods)  # the load generator's rule: Ready, not being deleted, an address
        self.endpoints = ready  # sorted by ready_endpoints
        self.seen |= set(ready)

    def run(self) -> None:
        last_refresh, i = 0.0, 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - last_refresh > 0.1:
                self.refresh()
                last_refresh = now
            if self.endpoints:
                address = self.endpoints[i % len(self.endpoints)]
                i += 1
                started = time.monotonic()
                try:
                    infer(address, self.model, self.rows)
                    self.latencies.append(time.monotonic() - started)
                except Exception as exc:  # what a client would see
                    self.failures.append(f"{address}: {type(exc).__name__}: {exc}")
            self.stop.wait(self.period)

    def p99_ms(self) -> float:
        return round(float(np.percentile(self.latencies, 99)) * 1000, 2) if self.latencies else 0.0


def settled(deployment: Deployment, replicas: int = 2) -> list[dict]:
    """The release's processes once the rollout's old pods are gone: REPLICAS of them, each ready."""

    def done() -> bool:
        procs = deployment.processes()
        return len(procs) == replicas and all(p["ready"] and p["pid"] for p in procs)

    wait_until(f"{replicas} ready replicas and no other", done, 180)
    return deployment.ready()


def served(deployment: Deployment, model: str, rows: np.ndarray) -> list[np.ndarray]:
    return [infer(p["http"], model, rows) for p in settled(deployment)]


def reference(repository: Path, model: str) -> dict:
    return json.loads((repository / model / "reference.json").read_text())


@pytest.fixture(scope="module")
def lifecycle(local_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("rollout")
    repository = work / "model_repository"
    shutil.copytree(ROOT / "model_repository", repository)
    dep = Deployment(local_env, work, repository)
    dep.values["triton_release_extra_values"] = {"autoscaling": {"enabled": False}, "replicaCount": 2}
    out: dict[str, Any] = {"deployment": dep, "repository": repository}
    dep.run("clean-slate", "playbooks/teardown.yml", *CONFIRM)
    out["first"] = dep.run("first", "site.yml")
    assert_ok(out["first"])
    probe = np.asarray(reference(repository, "xgb_regressor")["input"], dtype=np.float32)[:8]
    out["r1_outputs"] = served(dep, "xgb_regressor", probe)
    out["r1_pods"] = sorted(p["pod"] for p in settled(dep))
    retrain_regressor(repository, seed=4242)
    client = ConstantRateClient(local_env, "xgb_regressor", probe)
    client.start()
    try:
        time.sleep(2)
        out["retrained"] = dep.run("retrained", "site.yml")
        time.sleep(2)
    finally:
        client.stop.set()
        client.join(10)
    out["client"] = client
    out["r2_outputs"] = served(dep, "xgb_regressor", probe)
    retrained_rows = np.asarray(reference(repository, "xgb_regressor")["input"], dtype=np.float32)[:8]
    out["r2_reference_outputs"] = served(dep, "xgb_regressor", retrained_rows)
    out["r2_pods"] = sorted(p["pod"] for p in settled(dep))
    out["probe"] = probe
    # 3. outputs that no longer match their reference
    config = repository / "xgb_classifier" / "config.pbtxt"
    good_config = config.read_text()
    config.write_text(good_config.replace('string_value: "0.5"', 'string_value: "0.99"'))
    out["mismatch"] = dep.run("mismatch", "site.yml")
    config.write_text(good_config)
    out["after_mismatch_outputs"] = served(dep, "xgb_regressor", probe)
    classifier_rows = np.asarray(reference(repository, "xgb_classifier")["input"], dtype=np.float32)
    out["after_mismatch_classifier"] = served(dep, "xgb_classifier", classifier_rows)
    # 4. a corrupt model file
    model = repository / "xgb_regressor" / "1" / "xgboost.ubj"
    good_model = model.read_bytes()
    model.write_bytes(b"{Lnot a model" + b"\x00" * 64)
    out["corrupt"] = dep.run("corrupt", "site.yml")
    model.write_bytes(good_model)
    # 5. fixed
    out["fixed"] = dep.run("fixed", "site.yml")
    out["again"] = dep.run("again", "site.yml")
    # 6. history, explicit rollback to R1
    out["history"] = dep.run("history", "playbooks/history.yml")
    r1 = out["first"].facts["s3_models_revision"]
    out["rollback"] = dep.run("rollback", "playbooks/rollback.yml", tritonfil_rollback_revision=r1)
    out["rolled_back_outputs"] = served(dep, "xgb_regressor", probe)
    out["history_after"] = dep.run("history-after", "playbooks/history.yml")
    yield out
    dep.run("cleanup", "playbooks/teardown.yml", *CONFIRM)


def revision(run) -> str:
    return run.facts["s3_models_revision"]


def test_first_deploy_is_verified_and_live(lifecycle):
    assert_ok(lifecycle["first"])
    report = lifecycle["first"].result("Inference check report")["msg"]
    assert report[0] == f"model revision {revision(lifecycle['first'])} (live)"


def test_a_retrained_model_uploads_only_its_files_rolls_every_replica_and_loses_no_request(lifecycle):
    run = lifecycle["retrained"]
    assert_ok(run)
    sync = run.facts["s3_models_sync"]
    new = sync["revision"]
    assert new != revision(lifecycle["first"]) and sync["previous"] == revision(lifecycle["first"])
    assert sync["changed_models"] == ["xgb_regressor"]
    assert sorted(sync["uploaded_keys"]) == [
        f"models/revisions/{new}/xgb_regressor/1/xgboost.ubj", f"models/revisions/{new}/xgb_regressor/reference.json"
    ]  # fmt: skip
    files = len([p for p in lifecycle["repository"].rglob("*") if p.is_file()])
    assert (int(sync["uploaded"]), int(sync["copied"])) == (2, files - 2)  # the rest copied server-side
    # The Deployment rolled: both replicas are new pods, each serving the retrained model.
    assert not set(lifecycle["r2_pods"]) & set(lifecycle["r1_pods"])
    r1, r2 = lifecycle["r1_outputs"], lifecycle["r2_outputs"]
    assert len(r2) == 2 and not np.allclose(r1[0], r2[0])
    expected = np.asarray(reference(lifecycle["repository"], "xgb_regressor")["expected"], dtype=np.float32)[:8]
    for outputs in lifecycle["r2_reference_outputs"]:  # the retrained reference's own rows and outputs
        np.testing.assert_allclose(outputs, expected, atol=1e-3, rtol=1e-5)
    # verify checked the new revision against its own references, and made it live.
    report = run.result("Inference check report")["msg"]
    assert report[0] == f"model revision {new} (live)"
    client = lifecycle["client"]
    print(
        f"rollout under load: {len(client.latencies)} requests, "
        f"p99 {client.p99_ms()} ms, failures {len(client.failures)}"
    )
    assert client.failures == [], client.failures[:5]
    assert len(client.latencies) > 100 and len(client.seen) >= 3  # it saw the old and the new replicas


def test_a_revision_that_no_longer_matches_its_reference_is_rolled_back(lifecycle):
    run = lifecycle["mismatch"]
    assert run.rc != 0
    bad = run.facts["s3_models_revision"]
    live = revision(lifecycle["retrained"])
    msg = run.result("Fail naming the revision, the models and the mismatch")["msg"]
    assert msg.startswith(f"verify failed on model revision {bad}:"), msg
    assert "model xgb_classifier" in msg, msg
    assert msg.endswith(f"Rolled back to the live revision {live}, which serves again."), msg
    # What is served is R2 again (the regressor's outputs, and the classifier with its 0.5 threshold).
    for outputs in lifecycle["after_mismatch_outputs"]:
        np.testing.assert_array_equal(outputs, lifecycle["r2_outputs"][0])
    expected = np.asarray(reference(lifecycle["repository"], "xgb_classifier")["expected"], dtype=np.float32)
    for outputs in lifecycle["after_mismatch_classifier"]:
        np.testing.assert_array_equal(outputs, expected)


def test_a_corrupt_model_file_is_refused_before_anything_is_uploaded(lifecycle):
    run = lifecycle["corrupt"]
    assert run.rc != 0
    msg = run.result("Report the model repository problems")["msg"]
    assert "xgb_regressor" in msg and "xgboost.ubj" in msg, msg
    assert not run.ran("Store the model repository as a revision")


def test_the_fixed_repository_converges_and_then_changes_nothing(lifecycle):
    assert_ok(lifecycle["fixed"])
    assert revision(lifecycle["fixed"]) == revision(lifecycle["retrained"])
    again = lifecycle["again"]
    assert_ok(again)
    assert again.recap["changed"] == 0, [n for n, r in again.tasks if r.get("changed")]


def test_history_and_an_explicit_rollback(lifecycle):
    r1, r2 = revision(lifecycle["first"]), revision(lifecycle["retrained"])
    r3 = lifecycle["mismatch"].facts["s3_models_revision"]
    history = lifecycle["history"].facts["tritonfil_model_history"]
    assert [h["revision"] for h in history] == [r2, r3, r1]
    assert [(h["revision"], h["live"], h["serving"]) for h in history if h["live"] or h["serving"]] == [
        (r2, True, True)
    ]
    assert_ok(lifecycle["rollback"])
    for outputs in lifecycle["rolled_back_outputs"]:
        np.testing.assert_array_equal(outputs, lifecycle["r1_outputs"][0])
    after = {h["revision"]: h for h in lifecycle["history_after"].facts["tritonfil_model_history"]}
    assert after[r1]["live"] and after[r1]["serving"] and not after[r2]["live"]
