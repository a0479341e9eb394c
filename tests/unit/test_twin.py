"""The CPU twin keeps what clients see and serves FIL's output semantics with Treelite.

The python-backend model runs here in-process against a minimal stand-in for
``triton_python_backend_utils`` (the stub-only module); tests/integration runs it in the real
tritonserver.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tritonfil import twin_model
from tritonfil.models import ModelRepositoryError, module_utils
from tritonfil.twin import MARKER, TwinError, build_twin

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "model_repository"
REFERENCES = ROOT / "model_references"
MODELS = ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
repo_mod = module_utils("model_repository")


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("twin") / "repo"
    report = build_twin(SAMPLES, dest)
    assert report.models == MODELS
    return dest


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


def load_twin_model(twin: Path, name: str) -> twin_model.TritonPythonModel:
    config = repo_mod.load_config(twin / name / "config.pbtxt")
    from google.protobuf import json_format

    args = {
        "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
        "model_repository": str(twin / name),
        "model_version": "1",
        "model_name": name,
    }
    model = twin_model.TritonPythonModel()
    model.initialize(args)
    return model


def reference(name: str) -> dict:
    return json.loads((REFERENCES / name / "reference.json").read_text())


def test_twin_keeps_names_tensors_batching_and_parameters(twin: Path) -> None:
    assert (twin / MARKER).is_file()
    for name in MODELS:
        fil = repo_mod.load_config(SAMPLES / name / "config.pbtxt")
        cpu = repo_mod.load_config(twin / name / "config.pbtxt")
        assert cpu.backend == "python"
        assert cpu.name == fil.name == name
        assert cpu.max_batch_size == fil.max_batch_size
        assert cpu.input == fil.input
        assert cpu.output == fil.output
        assert cpu.dynamic_batching == fil.dynamic_batching
        assert cpu.version_policy == fil.version_policy
        assert [(g.kind, g.count) for g in cpu.instance_group] == [
            (repo_mod.model_config_module().ModelInstanceGroup.KIND_CPU, g.count) for g in fil.instance_group
        ]
        params = repo_mod.config_parameters(cpu)
        assert params.pop(twin_model.TWIN_FILE_PARAMETER) == repo_mod.MODEL_FILENAMES[params["model_type"]]
        assert params == repo_mod.config_parameters(fil)
        version = twin / name / "1"
        assert (version / "model.py").read_text() == Path(twin_model.__file__).read_text()
        model_file = repo_mod.MODEL_FILENAMES[params["model_type"]]
        assert (version / model_file).read_bytes() == (SAMPLES / name / "1" / model_file).read_bytes()


@pytest.mark.parametrize("name", MODELS)
def test_twin_model_answers_like_the_training_library(twin: Path, pb_utils: types.ModuleType, name: str) -> None:
    model = load_twin_model(twin, name)
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


def test_fil_semantics_binary_proba_threshold_and_argmax(twin: Path) -> None:
    ref = reference("xgb_classifier")
    x = np.asarray(ref["input"], dtype=np.float32)
    model = twin_model.load_treelite_model(str(twin / "xgb_classifier" / "1" / "xgboost.json"), "xgboost_json")
    proba = twin_model.fil_predict(model, x, is_classifier=True, predict_proba=True)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    strict = twin_model.fil_predict(model, x, is_classifier=True, threshold=0.5)
    np.testing.assert_array_equal(strict[:, 0], (proba[:, 1] > 0.5).astype(np.float32))
    everything = twin_model.fil_predict(model, x, is_classifier=True, threshold=0.0)
    assert set(np.unique(everything)) == {1.0}
    rf = twin_model.load_treelite_model(str(twin / "sklearn_rf" / "1" / "checkpoint.tl"), "treelite_checkpoint")
    rf_proba = twin_model.fil_predict(rf, x[:, :10], is_classifier=True, predict_proba=True)
    classes = twin_model.fil_predict(rf, x[:, :10], is_classifier=True)
    np.testing.assert_array_equal(classes[:, 0], np.argmax(rf_proba, axis=1).astype(np.float32))


def test_twin_model_refuses_what_fil_refuses(twin: Path) -> None:
    rf = twin_model.load_treelite_model(str(twin / "sklearn_rf" / "1" / "checkpoint.tl"), "treelite_checkpoint")
    with pytest.raises(twin_model.FilSemanticsError, match="is_classifier is false but the model has 3 classes"):
        twin_model.fil_predict(rf, np.zeros((1, 10), np.float32), is_classifier=False)
    with pytest.raises(twin_model.FilSemanticsError, match="not recognized as a valid serialization format"):
        twin_model.load_treelite_model("x", "onnx")


def test_missing_threshold_fails_initialize_like_fil(twin: Path, tmp_path: Path, pb_utils: types.ModuleType) -> None:
    copy = tmp_path / "t"
    shutil.copytree(twin, copy)
    path = copy / "xgb_classifier" / "config.pbtxt"
    config = repo_mod.load_config(path)
    del config.parameters["threshold"]
    path.write_text(repo_mod.config_to_text(config))
    with pytest.raises(twin_model.FilSemanticsError, match="Required parameter threshold not found in config"):
        load_twin_model(copy, "xgb_classifier")


def test_invalid_source_writes_no_twin(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SAMPLES, src)
    (src / "xgb_regressor" / "1" / "xgboost.ubj").unlink()
    with pytest.raises(ModelRepositoryError, match="has 1 error"):
        build_twin(src, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_destination_must_be_empty_or_a_twin(tmp_path: Path, twin: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(TwinError, match="is not empty and was not written by tritonfil twin"):
        build_twin(SAMPLES, other)
    assert (other / "keep.txt").read_text() == "mine"
    again = tmp_path / "again"
    build_twin(SAMPLES, again)
    (again / "xgb_classifier" / "stale").mkdir()
    build_twin(SAMPLES, again)  # a twin is replaced as a whole
    assert not (again / "xgb_classifier" / "stale").exists()
