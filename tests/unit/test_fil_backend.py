"""The local FIL stand-in (tritonfil.localenv.fil_backend) serves the unmodified FIL repository with FIL's
output semantics (Treelite).

The Python-based backend's model runs here in-process against a minimal stand-in for
``triton_python_backend_utils`` (the stub-only module), with the repository's own config.pbtxt and model
files; tests/integration runs it in the real tritonserver (the pod runner, LocalTritonServer).
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tritonfil.localenv import fil_backend
from tritonfil.models import module_utils

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "model_repository"
REFERENCES = ROOT / "model_repository"
MODELS = ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
repo_mod = module_utils("model_repository")


@pytest.fixture(scope="module")
def repo() -> Path:
    """The unmodified FIL repository: what the FIL backend and its local stand-in both serve."""
    return SAMPLES


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name = name
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Response:
    def __init__(self, output_tensors: list[_Tensor]) -> None:
        self.output_tensors = output_tensors


class _Request:
    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors


@pytest.fixture
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = _Tensor
    module.InferenceResponse = _Response
    module.get_input_tensor_by_name = lambda request, name: _Tensor(name, request.tensors[name])
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module


def load_model(repo: Path, name: str) -> fil_backend.TritonPythonModel:
    config = repo_mod.load_config(repo / name / "config.pbtxt")
    from google.protobuf import json_format

    args = {
        "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
        "model_repository": str(repo / name),
        "model_version": "1",
        "model_name": name,
    }
    model = fil_backend.TritonPythonModel()
    model.initialize(args)
    return model


def reference(name: str) -> dict:
    return json.loads((REFERENCES / name / "reference.json").read_text())


def test_the_backend_is_one_standalone_file_importing_nothing_of_tritonfil() -> None:
    """The python backend stub loads it as BACKEND_DIR/fil/model.py, outside the package."""
    imports = [
        line for line in Path(fil_backend.__file__).read_text().splitlines() if line.startswith(("import", "from"))
    ]
    assert not [line for line in imports if "tritonfil" in line], imports
    assert fil_backend.TritonPythonModel.execute


@pytest.mark.parametrize("name", MODELS)
def test_the_backend_answers_like_the_training_library(repo: Path, pb_utils: types.ModuleType, name: str) -> None:
    model = load_model(repo, name)
    ref = reference(name)
    x = np.asarray(ref["input"], dtype=np.float32)
    # Two requests in one execute() call, as dynamic batching delivers them.
    responses = model.execute([_Request({"input__0": x[:10]}), _Request({"input__0": x[10:]})])
    got = np.concatenate([r.output_tensors[0].as_numpy() for r in responses])
    assert [r.output_tensors[0].name for r in responses] == ["output__0", "output__0"]
    assert got.dtype == np.float32
    expected = np.asarray(ref["expected"], dtype=np.float32)
    assert got.shape == expected.shape == (len(x), ref["output_shape"][1])
    np.testing.assert_allclose(got, expected, atol=ref["atol"], rtol=ref["rtol"])


def test_fil_semantics_binary_proba_threshold_and_argmax(repo: Path) -> None:
    ref = reference("xgb_classifier")
    x = np.asarray(ref["input"], dtype=np.float32)
    model = fil_backend.load_treelite_model(str(repo / "xgb_classifier" / "1" / "xgboost.json"), "xgboost_json")
    proba = fil_backend.fil_predict(model, x, is_classifier=True, predict_proba=True)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    strict = fil_backend.fil_predict(model, x, is_classifier=True, threshold=0.5)
    np.testing.assert_array_equal(strict[:, 0], (proba[:, 1] > 0.5).astype(np.float32))
    everything = fil_backend.fil_predict(model, x, is_classifier=True, threshold=0.0)
    assert set(np.unique(everything)) == {1.0}
    rf = fil_backend.load_treelite_model(str(repo / "sklearn_rf" / "1" / "checkpoint.tl"), "treelite_checkpoint")
    rf_proba = fil_backend.fil_predict(rf, x[:, :10], is_classifier=True, predict_proba=True)
    classes = fil_backend.fil_predict(rf, x[:, :10], is_classifier=True)
    np.testing.assert_array_equal(classes[:, 0], np.argmax(rf_proba, axis=1).astype(np.float32))


def test_the_backend_refuses_what_fil_refuses(repo: Path) -> None:
    rf = fil_backend.load_treelite_model(str(repo / "sklearn_rf" / "1" / "checkpoint.tl"), "treelite_checkpoint")
    with pytest.raises(fil_backend.FilSemanticsError, match="is_classifier is false but the model has 3 classes"):
        fil_backend.fil_predict(rf, np.zeros((1, 10), np.float32), is_classifier=False)
    with pytest.raises(fil_backend.FilSemanticsError, match="not recognized as a valid serialization format"):
        fil_backend.load_treelite_model("x", "onnx")


def test_missing_threshold_fails_initialize_like_fil(repo: Path, tmp_path: Path, pb_utils: types.ModuleType) -> None:
    copy = tmp_path / "t"
    shutil.copytree(repo, copy)
    path = copy / "xgb_classifier" / "config.pbtxt"
    config = repo_mod.load_config(path)
    del config.parameters["threshold"]
    path.write_text(repo_mod.config_to_text(config))
    with pytest.raises(fil_backend.FilSemanticsError, match="Required parameter threshold not found in config"):
        load_model(copy, "xgb_classifier")


def test_a_corrupt_model_file_fails_initialize_naming_the_file(tmp_path: Path, pb_utils: types.ModuleType) -> None:
    copy = tmp_path / "t"
    shutil.copytree(SAMPLES, copy)
    (copy / "xgb_regressor" / "1" / "xgboost.ubj").write_bytes(b"{Lnot a model" + b"\x00" * 64)
    with pytest.raises(fil_backend.FilSemanticsError, match="failed to load 'xgboost.ubj': Model failed to load"):
        load_model(copy, "xgb_regressor")
