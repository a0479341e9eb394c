"""triton_ready and triton_infer against the real tritonserver serving the unmodified FIL repository.

A LocalTritonServer (tritonserver 2.51 from the nvidia-pytriton wheel, the Python-based FIL stand-in on
Treelite) serves model_repository/ as it is; the modules run through ansible-playbook exactly as a playbook
would run them. Each playbook writes its registered results to a JSON file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritonfil.tritonserver import LocalTritonServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "model_repository"
REFERENCES = ROOT / "model_repository"
MODELS = ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
VENV_BIN = Path(sys.executable).parent


def run_playbook(tmp_path: Path, tasks: str, **variables: object) -> tuple[dict, subprocess.CompletedProcess[str]]:
    """Run TASKS (YAML, indented for a play's task list) on localhost; return the saved results."""
    out = tmp_path / "results.json"
    play = f"""---
- name: Triton checks
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  tasks:
{tasks}
    - name: Save the results
      ansible.builtin.copy:
        content: "{{{{ results | to_json }}}}"
        dest: "{out}"
        mode: "0644"
      check_mode: false
"""
    book = tmp_path / "play.yml"
    book.write_text(play)
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(book), "-e", json.dumps(variables)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.is_file(), f"playbook did not reach the end:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return json.loads(out.read_text()), proc


def start_server(base: Path, repository: Path) -> LocalTritonServer:
    server = LocalTritonServer(repository, base / "work")
    server.start(timeout=120)
    return server


@pytest.fixture(scope="module")
def fil_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTritonServer]:
    base = tmp_path_factory.mktemp("triton-fil")
    server = start_server(base, SAMPLES)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def corrupt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTritonServer]:
    """A copy of the repository with xgb_regressor's model file overwritten by junk."""
    base = tmp_path_factory.mktemp("triton-corrupt")
    shutil.copytree(SAMPLES, base / "repo")
    (base / "repo" / "xgb_regressor" / "1" / "xgboost.ubj").write_bytes(b"{Lnot a model" + b"\x00" * 64)
    server = start_server(base, base / "repo")
    yield server
    server.stop()


def test_ready_and_infer_match_references(fil_server: LocalTritonServer, tmp_path: Path) -> None:
    tasks = """
    - name: Wait for every model over HTTP
      tritonfil.eks.triton_ready:
        url: "{{ http_url }}"
        timeout: 60
      register: ready_http
    - name: Wait for two listed models over gRPC, in check mode
      tritonfil.eks.triton_ready:
        url: "{{ grpc_url }}"
        models: [xgb_classifier, "lgb_multiclass:1"]
        timeout: 60
      check_mode: true
      register: ready_grpc
    - name: Check every model against its reference over HTTP
      tritonfil.eks.triton_infer:
        url: "{{ http_url }}"
        reference_dir: "{{ references }}"
        require_reference: true
        batch_size: 256
        requests: 10
      register: infer_http
    - name: Check every model over gRPC with random inputs from metadata, in check mode
      tritonfil.eks.triton_infer:
        url: "{{ grpc_url }}"
        rows: 33
        requests: 0
      check_mode: true
      register: infer_grpc
    - name: Collect
      ansible.builtin.set_fact:
        results: {ready_http: "{{ ready_http }}", ready_grpc: "{{ ready_grpc }}",
                  infer_http: "{{ infer_http }}", infer_grpc: "{{ infer_grpc }}"}
"""
    results, proc = run_playbook(
        tmp_path,
        tasks,
        http_url=fil_server.http_url,
        grpc_url=fil_server.grpc_url,
        references=str(REFERENCES),
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "changed=1 " in proc.stdout  # only the task that saves the results file
    assert all(result["changed"] is False for result in results.values())

    ready = results["ready_http"]
    assert ready["changed"] is False and ready["live"] is True and ready["ready"] is True
    assert ready["server"]["version"] == "2.51.0"
    assert [(m["name"], m["version"], m["state"]) for m in ready["models"]] == [(n, "1", "READY") for n in MODELS]
    assert 0 <= ready["elapsed"] < 60
    assert [(m["name"], m["state"]) for m in results["ready_grpc"]["models"]] == [
        ("xgb_classifier", "READY"),
        ("lgb_multiclass", "READY"),
    ]

    reports = {r["name"]: r for r in results["infer_http"]["models"]}
    assert sorted(reports) == MODELS
    for name, report in reports.items():
        ref = json.loads((REFERENCES / name / "reference.json").read_text())
        assert report["failures"] == [], name
        assert report["reference"]["match"] is True, name
        assert report["reference"]["rows"] == len(ref["expected"]) == 64
        assert report["reference"]["max_abs_diff"] <= ref["atol"] + ref["rtol"] * 1000
        assert report["outputs"] == [{"name": "output__0", "datatype": "FP32", "shape": [-1, ref["output_shape"][1]]}]
        assert report["latency"]["requests"] == 10 and report["latency"]["batch_rows"] == 256
        assert report["latency"]["p50_ms"] <= report["latency"]["p99_ms"]
        assert report["latency"]["rows_per_second"] > 0
    assert "output output__0: class indices [0, 1]" in reports["xgb_classifier"]["checks"]
    assert "output output__0: probabilities in [0, 1], rows sum to 1" in reports["lgb_multiclass"]["checks"]
    assert "output output__0: class indices [0, 1, 2]" in reports["sklearn_rf"]["checks"]

    grpc_reports = {r["name"]: r for r in results["infer_grpc"]["models"]}
    assert sorted(grpc_reports) == MODELS
    assert all(r["failures"] == [] and r["reference"] is None and r["latency"] == {} for r in grpc_reports.values())
    assert "inputs built from metadata: 33 row(s)" in grpc_reports["xgb_regressor"]["checks"]


def test_infer_reports_a_wrong_reference(fil_server: LocalTritonServer, tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    shutil.copytree(REFERENCES / "xgb_regressor", refs / "xgb_regressor")
    path = refs / "xgb_regressor" / "reference.json"
    doc = json.loads(path.read_text())
    doc["expected"][5][0] += 1.0
    path.write_text(json.dumps(doc))
    tasks = """
    - name: Check against a reference that is off in one row
      tritonfil.eks.triton_infer:
        url: "{{ http_url }}"
        models: [xgb_regressor]
        reference_dir: "{{ references }}"
      register: infer
      ignore_errors: true
    - name: Collect
      ansible.builtin.set_fact:
        results: {infer: "{{ infer }}"}
"""
    results, _ = run_playbook(tmp_path, tasks, http_url=fil_server.http_url, references=str(refs))
    infer = results["infer"]
    assert infer["failed"] is True
    assert infer["failed_models"] == ["xgb_regressor"]
    assert infer["msg"].startswith(
        "inference check failed for 1 of 1 model(s): model xgb_regressor: output output__0 differs from the"
        " reference in 1 of 64 rows (first: row 5, got ["
    )


def test_corrupt_model_fails_ready_naming_it(corrupt_server: LocalTritonServer, tmp_path: Path) -> None:
    index = {e["name"]: e for e in corrupt_server.repository_index()}
    assert index["xgb_regressor"]["state"] == "UNAVAILABLE"
    tasks = """
    - name: Wait for every model
      tritonfil.eks.triton_ready:
        url: "{{ http_url }}"
        timeout: 4
        interval: 0.5
      register: ready_all
      ignore_errors: true
    - name: Wait only for a healthy model
      tritonfil.eks.triton_ready:
        url: "{{ grpc_url }}"
        models: [xgb_classifier]
        timeout: 4
      register: ready_one
    - name: Collect
      ansible.builtin.set_fact:
        results: {ready_all: "{{ ready_all }}", ready_one: "{{ ready_one }}"}
"""
    results, _ = run_playbook(tmp_path, tasks, http_url=corrupt_server.http_url, grpc_url=corrupt_server.grpc_url)
    failed = results["ready_all"]
    assert failed["failed"] is True
    assert failed["msg"].startswith(
        "after 4s: model xgb_regressor version 1 not READY (state UNAVAILABLE: Internal: FilSemanticsError:"
        " failed to load 'xgboost.ubj': Model failed to load into Treelite with error: "
    )
    assert "\n" not in failed["msg"]  # the traceback the python backend appends stays in models[].reason
    assert index["xgb_regressor"]["reason"].startswith(failed["msg"].split("(state UNAVAILABLE: ")[1][:60])
    for healthy in ("xgb_classifier", "lgb_multiclass", "sklearn_rf"):
        assert healthy not in failed["msg"]
    assert failed["live"] is True and failed["ready"] is False
    assert 4 <= failed["elapsed"] < 8
    states = {m["name"]: m["state"] for m in failed["models"]}
    assert states == {
        "lgb_multiclass": "READY",
        "sklearn_rf": "READY",
        "xgb_classifier": "READY",
        "xgb_regressor": "UNAVAILABLE",
    }
    assert results["ready_one"]["failed"] is False
    assert results["ready_one"]["models"][0]["state"] == "READY"


def test_stopped_server_fails_both_within_timeout(corrupt_server: LocalTritonServer, tmp_path: Path) -> None:
    corrupt_server.stop()
    assert not corrupt_server.is_running()
    tasks = """
    - name: Wait on a stopped server
      tritonfil.eks.triton_ready:
        url: "{{ http_url }}"
        timeout: 3
        interval: 0.5
      register: ready
      ignore_errors: true
    - name: Time before inference
      ansible.builtin.set_fact:
        infer_start: "{{ now().timestamp() }}"
    - name: Infer on a stopped server over gRPC
      tritonfil.eks.triton_infer:
        url: "{{ grpc_url }}"
        models: [xgb_classifier]
        request_timeout: 3
      register: infer
      ignore_errors: true
    - name: Collect
      ansible.builtin.set_fact:
        results: {ready: "{{ ready }}", infer: "{{ infer }}", infer_start: "{{ infer_start }}",
                  infer_end: "{{ now().timestamp() }}"}
"""
    started = time.monotonic()
    results, _ = run_playbook(tmp_path, tasks, http_url=corrupt_server.http_url, grpc_url=corrupt_server.grpc_url)
    wall = time.monotonic() - started
    ready, infer = results["ready"], results["infer"]
    assert ready["failed"] is True
    assert ready["msg"].startswith(f"Triton at {corrupt_server.http_url} not live after 3s (liveness check on ")
    assert "Connection refused" in ready["msg"]
    assert ready["live"] is False and ready["models"] == []
    assert 3 <= ready["elapsed"] < 5
    assert infer["failed"] is True
    assert infer["msg"].startswith(
        f"metadata of model xgb_classifier on {corrupt_server.grpc_url} failed: failed to connect to all addresses"
    )
    assert infer["msg"].endswith("Connection refused")
    assert float(results["infer_end"]) - float(results["infer_start"]) < 3 + 5  # request_timeout + module start
    assert wall < 60


def test_local_server_interface(fil_server: LocalTritonServer) -> None:
    assert fil_server.is_running()
    assert fil_server.http_url.startswith("http://127.0.0.1:")
    assert fil_server.grpc_url.startswith("grpc://127.0.0.1:")
    assert fil_server.log_path.is_file()
    assert "--exit-on-error=false" in fil_server.command()
    # Real files (a backend library reached through a symlink leaving the backend directory is refused).
    backend = fil_server.workdir / "backends"
    for name in ("libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"):
        assert (backend / "python" / name).is_file() and not (backend / "python" / name).is_symlink(), name
    assert (backend / "fil" / "model.py").read_text().startswith('"""The local stand-in for Triton\'s FIL backend')
    # The repository is served as it is: every model's config asks for KIND_GPU, loaded with KIND_CPU.
    assert not [a for a in fil_server.command() if a.startswith("--load-model=")]
    env = fil_server.environment()
    assert env["PATH"].split(os.pathsep)[0] == str(VENV_BIN)
