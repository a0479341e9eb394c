"""A repository written by `models init` is served by the real tritonserver, and the served outputs match the
reference.json init wrote beside each config.pbtxt.

Model files from every library and task (tests/model_files.py) go through init unchanged; LocalTritonServer
(tritonserver 2.51 from the nvidia-pytriton wheel with the local FIL backend on Treelite) serves the repository
as it is, the KIND_GPU models loaded with KIND_CPU configs. The tritonclient HTTP client sends each model's
reference rows; the answer must match the reference (the training library's output) within its tolerance. That
the server loads every model with reference.json and .tritonfil-init.json in the model directories shows that
Triton ignores them. Finally the verify check (triton.check_model, what triton_infer runs) passes with the
repository itself as its reference_dir.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.model_files import Case, specs, train_models
from tritonfil.collection import pins
from tritonfil.models import module_utils
from tritonfil.tritonserver import LocalTritonServer

pytestmark = pytest.mark.integration

model_init = module_utils("model_init")
triton = module_utils("triton")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Case], LocalTritonServer]]:
    base = tmp_path_factory.mktemp("init-serve")
    cases = train_models(base / "files")
    repo = base / "repo"
    result = model_init.init_repository(specs(base / "files", cases), repo, triton_release=pins()["TRITON_RELEASE"])
    assert result.changed and result.validation.endswith("is valid (" + ", ".join(sorted(c.name for c in cases)) + ")")
    server = LocalTritonServer(repo, base / "work")
    server.start(timeout=300)
    try:
        yield repo, {c.name: c for c in cases}, server
    finally:
        server.stop()


def test_every_init_written_model_is_ready(served: tuple[Path, dict[str, Case], LocalTritonServer]) -> None:
    repo, cases, server = served
    index = {entry["name"]: entry for entry in server.repository_index()}
    assert sorted(index) == sorted(cases)
    not_ready = {name: entry for name, entry in index.items() if entry.get("state") != "READY"}
    assert not not_ready, f"{not_ready}\n{server.log_tail(60)}"
    assert all((repo / name / "reference.json").is_file() for name in cases)


def test_served_outputs_match_each_reference(served: tuple[Path, dict[str, Case], LocalTritonServer]) -> None:
    import tritonclient.http as httpclient

    repo, cases, server = served
    client = httpclient.InferenceServerClient(server.http_url.split("://", 1)[1])
    for name, case in cases.items():
        ref = json.loads((repo / name / "reference.json").read_text())
        x = np.asarray(ref["input"], dtype=np.float32)
        tensor = httpclient.InferInput("input__0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        answer = client.infer(name, [tensor], outputs=[httpclient.InferRequestedOutput("output__0")])
        got = answer.as_numpy("output__0")
        assert got.dtype == np.float32 and list(got.shape) == ref["output_shape"], name
        expected = np.asarray(ref["expected"], dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=ref["atol"], rtol=ref["rtol"], err_msg=name)
        # and the training library itself, on the model object in this process, agrees
        np.testing.assert_allclose(got, case.predict(x), atol=ref["atol"], rtol=ref["rtol"], err_msg=name)
    client.close()


def test_verify_check_uses_the_repository_as_reference_dir(
    served: tuple[Path, dict[str, Case], LocalTritonServer],
) -> None:
    repo, cases, server = served
    client = triton.TritonClient(server.http_url)
    for name in cases:
        reference = json.loads((repo / name / "reference.json").read_text())
        report = triton.check_model(client, name, reference=reference, requests=2, batch_size=64)
        assert report["failures"] == [], (name, report)
        assert report["reference"]["match"] is True and report["reference"]["rows"] == 64
