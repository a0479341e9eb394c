"""Model repository validation: the samples pass; each real-world mistake gets its own message.

Every broken repository is a copy of model_repository/ with one mistake made to it. The tests
assert the exact problem (file, field, message) and that the CLI exits non-zero.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tritonfil import cli
from tritonfil.collection import pins
from tritonfil.models import module_utils, validate

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "model_repository"
repo_mod = module_utils("model_repository")
mc = repo_mod.model_config_module()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(SAMPLES, dest)
    return dest


def edit_config(repo: Path, model: str, change: Callable[[object], None]) -> None:
    path = repo / model / "config.pbtxt"
    config = repo_mod.load_config(path)
    change(config)
    path.write_text(repo_mod.config_to_text(config))


def set_param(repo: Path, model: str, key: str, value: str | None) -> None:
    def change(config: object) -> None:
        if value is None:
            del config.parameters[key]
        else:
            config.parameters[key].string_value = value

    edit_config(repo, model, change)


def rename_param(repo: Path, model: str, old: str, new: str) -> None:
    def change(config: object) -> None:
        value = config.parameters[old].string_value
        del config.parameters[old]
        config.parameters[new].string_value = value

    edit_config(repo, model, change)


def found(report: object) -> set[tuple[str, str, str]]:
    return {(p.file, p.field, p.message) for p in report.errors}


def run_cli(path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(["models", "validate", str(path), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


# -- the committed samples ------------------------------------------------------------------------


def test_samples_are_valid_with_treelite_load(capsys: pytest.CaptureFixture[str]) -> None:
    report = validate(SAMPLES, load=True)
    assert report.problems == []
    assert [m.name for m in report.models] == ["lgb_multiclass", "sklearn_rf", "xgb_classifier", "xgb_regressor"]
    rc, out, err = run_cli(SAMPLES, capsys=capsys)
    assert rc == 0
    assert out.strip().endswith("is valid (lgb_multiclass, sklearn_rf, xgb_classifier, xgb_regressor)")
    assert err == ""


def test_header_readers_agree_with_treelite() -> None:
    """The light readers (no Treelite) see the same features and classes Treelite does."""
    light = {m.name: m.facts for m in validate(SAMPLES).models}
    loaded = {m.name: m.facts for m in validate(SAMPLES, load=True).models}
    for name in light:
        for key in ("num_feature", "kind", "num_class", "num_target"):
            assert light[name][key] == loaded[name][key], (name, key)
        assert light[name]["source"] == "header"
        assert loaded[name]["source"] == "treelite"
    assert light["xgb_classifier"]["writer"].startswith("XGBoost 3.")
    assert light["xgb_regressor"]["detail"] == "objective reg:squarederror"
    assert light["lgb_multiclass"]["num_class"] == 4
    assert light["sklearn_rf"]["writer"] == "Treelite 4.8.1"


def test_json_report_carries_models_and_pin(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(SAMPLES, "--json", capsys=capsys)
    doc = json.loads(out)
    assert rc == 0
    assert doc["valid"] is True
    assert doc["target_triton_release"] == pins()["TRITON_RELEASE"]  # the package and the roles pass the pin
    classifier = next(m for m in doc["models"] if m["name"] == "xgb_classifier")
    assert classifier["inputs"] == [{"name": "input__0", "data_type": "TYPE_FP32", "dims": [16]}]
    assert classifier["model_files"] == ["xgb_classifier/1/xgboost.json"]


# -- broken repositories: one real-world mistake each ---------------------------------------------


def break_dir_name(repo: Path) -> None:
    (repo / "xgb_classifier").rename(repo / "xgb_clf")


def break_version_dir(repo: Path) -> None:
    (repo / "xgb_regressor" / "1").rename(repo / "xgb_regressor" / "v1")


def break_missing_file(repo: Path) -> None:
    (repo / "xgb_regressor" / "1" / "xgboost.ubj").unlink()


def break_filename_for_type(repo: Path) -> None:
    (repo / "xgb_classifier" / "1" / "xgboost.json").rename(repo / "xgb_classifier" / "1" / "xgboost.model")


def break_ubj_as_legacy(repo: Path) -> None:
    (repo / "xgb_regressor" / "1" / "xgboost.ubj").rename(repo / "xgb_regressor" / "1" / "xgboost.model")
    set_param(repo, "xgb_regressor", "model_type", "xgboost")


def break_pickle(repo: Path) -> None:
    (repo / "sklearn_rf" / "1" / "checkpoint.tl").rename(repo / "sklearn_rf" / "1" / "model.pkl")


def break_output_class(repo: Path) -> None:
    rename_param(repo, "xgb_classifier", "is_classifier", "output_class")


def break_algo(repo: Path) -> None:
    rename_param(repo, "lgb_multiclass", "layout", "algo")
    set_param(repo, "lgb_multiclass", "algo", "TREE_REORG")


def break_storage_type(repo: Path) -> None:
    set_param(repo, "xgb_regressor", "storage_type", "SPARSE")


def break_unknown_param(repo: Path) -> None:
    rename_param(repo, "lgb_multiclass", "predict_proba", "predict_probability")


def break_bool_value(repo: Path) -> None:
    set_param(repo, "xgb_classifier", "is_classifier", "True")


def break_missing_is_classifier(repo: Path) -> None:
    set_param(repo, "xgb_regressor", "is_classifier", None)


def break_missing_threshold(repo: Path) -> None:
    set_param(repo, "sklearn_rf", "threshold", None)


def break_input_dims(repo: Path) -> None:
    edit_config(repo, "xgb_classifier", lambda c: c.input[0].dims.__setitem__(0, 15))


def break_input_name(repo: Path) -> None:
    edit_config(repo, "xgb_classifier", lambda c: setattr(c.input[0], "name", "input_0"))


def break_input_dtype(repo: Path) -> None:
    edit_config(repo, "xgb_regressor", lambda c: setattr(c.input[0], "data_type", mc.TYPE_FP64))


def break_proba_dims(repo: Path) -> None:
    edit_config(repo, "lgb_multiclass", lambda c: c.output[0].dims.__setitem__(0, 3))


def break_binary_proba_dims(repo: Path) -> None:
    set_param(repo, "xgb_classifier", "predict_proba", "true")


def break_regressor_proba(repo: Path) -> None:
    set_param(repo, "xgb_regressor", "predict_proba", "true")


def break_classifier_flag_on_regressor(repo: Path) -> None:
    set_param(repo, "xgb_regressor", "is_classifier", "true")
    set_param(repo, "xgb_regressor", "threshold", "0.5")


def break_multiclass_as_regressor(repo: Path) -> None:
    set_param(repo, "sklearn_rf", "is_classifier", "false")
    set_param(repo, "sklearn_rf", "predict_proba", None)
    set_param(repo, "sklearn_rf", "threshold", None)


def break_instance_kind(repo: Path) -> None:
    edit_config(
        repo, "xgb_classifier", lambda c: setattr(c.instance_group[0], "kind", mc.ModelInstanceGroup.KIND_MODEL)
    )


def break_cpu_gpus(repo: Path) -> None:
    def change(config: object) -> None:
        config.instance_group[0].kind = mc.ModelInstanceGroup.KIND_CPU
        config.instance_group[0].gpus.append(0)

    edit_config(repo, "lgb_multiclass", change)


def break_batch_zero(repo: Path) -> None:
    edit_config(repo, "xgb_regressor", lambda c: setattr(c, "max_batch_size", 0))


def break_preferred_batch(repo: Path) -> None:
    edit_config(repo, "lgb_multiclass", lambda c: c.dynamic_batching.preferred_batch_size.extend([1024, 65536]))


def break_syntax(repo: Path) -> None:
    path = repo / "sklearn_rf" / "config.pbtxt"
    path.write_text(path.read_text().replace("max_batch_size: 32768", "max_batch_sise: 32768"))


def break_version_policy(repo: Path) -> None:
    def change(config: object) -> None:
        config.version_policy.specific.versions.extend([1, 2])

    edit_config(repo, "xgb_regressor", change)


def break_checkpoint_version(repo: Path) -> None:
    path = repo / "sklearn_rf" / "1" / "checkpoint.tl"
    data = bytearray(path.read_bytes())
    data[0:12] = struct.pack("<iii", 5, 0, 0)
    path.write_bytes(bytes(data))


def break_truncated_json(repo: Path) -> None:
    path = repo / "xgb_classifier" / "1" / "xgboost.json"
    path.write_text(path.read_text()[:5000])


def break_missing_config(repo: Path) -> None:
    (repo / ".ipynb_checkpoints").mkdir()


def break_missing_model_type(repo: Path) -> None:
    set_param(repo, "lgb_multiclass", "model_type", None)


def break_name_typo_backend(repo: Path) -> None:
    edit_config(repo, "xgb_regressor", lambda c: setattr(c, "backend", "fill"))


TREELITE = "4.8.1"
CFG = "config.pbtxt"
CASES = [
    (
        break_dir_name,
        ("xgb_clf/config.pbtxt", "name", "name 'xgb_classifier' does not match the directory name 'xgb_clf'"),
    ),
    (
        break_version_dir,
        ("xgb_regressor/v1", "version", "'v1' is not a numeric version directory; Triton ignores it"),
    ),
    (
        break_missing_file,
        (
            "xgb_regressor/1/xgboost.ubj",
            "parameters.model_type",
            "model file 'xgboost.ubj' for model_type 'xgboost_ubj' is missing from version 1",
        ),
    ),
    (
        break_filename_for_type,
        (
            "xgb_classifier/1/xgboost.json",
            "parameters.model_type",
            "model file 'xgboost.json' for model_type 'xgboost_json' is missing from version 1"
            " (found 'xgboost.model', the file name for model_type 'xgboost')",
        ),
    ),
    (
        break_ubj_as_legacy,
        (
            "xgb_regressor/1/xgboost.model",
            "parameters.model_type",
            "'xgboost.model' holds XGBoost UBJSON but model_type is 'xgboost' (XGBoost >= 3.1 writes UBJSON"
            " even to a .model file; the legacy binary format is gone)",
        ),
    ),
    (
        break_pickle,
        (
            "sklearn_rf/1/checkpoint.tl",
            "parameters.model_type",
            "model file 'checkpoint.tl' for model_type 'treelite_checkpoint' is missing from version 1"
            " (found model.pkl: FIL cannot load pickles)",
        ),
    ),
    (
        break_output_class,
        (
            "xgb_classifier/config.pbtxt",
            "parameters.output_class",
            "'output_class' was removed in FIL backend 25.09; its replacement is 'is_classifier'",
        ),
    ),
    (
        break_algo,
        (
            "lgb_multiclass/config.pbtxt",
            "parameters.algo",
            "'algo' was removed in FIL backend 25.09; its replacement is 'layout'",
        ),
    ),
    (
        break_storage_type,
        (
            "xgb_regressor/config.pbtxt",
            "parameters.storage_type",
            "'storage_type' was removed in FIL backend 25.09 and has no replacement",
        ),
    ),
    (
        break_unknown_param,
        (
            "lgb_multiclass/config.pbtxt",
            "parameters.predict_probability",
            "'predict_probability' is not a FIL backend parameter; Triton passes it on and FIL ignores it",
        ),
    ),
    (
        break_bool_value,
        (
            "xgb_classifier/config.pbtxt",
            "parameters.is_classifier",
            "'True' is not a boolean; the FIL backend reads only 'true' or 'false'",
        ),
    ),
    (
        break_missing_is_classifier,
        (
            "xgb_regressor/config.pbtxt",
            "parameters.is_classifier",
            "is_classifier is not set; the FIL backend requires it ('Required parameter is_classifier not found"
            " in config')",
        ),
    ),
    (
        break_missing_threshold,
        (
            "sklearn_rf/config.pbtxt",
            "parameters.threshold",
            "threshold is not set; the FIL backend reads it without a default when is_classifier is true",
        ),
    ),
    (
        break_input_dims,
        ("xgb_classifier/config.pbtxt", "input[0].dims", "dims [15] but the model file has 16 features"),
    ),
    (
        break_input_name,
        (
            "xgb_classifier/config.pbtxt",
            "input[0].name",
            "input name is 'input_0'; the FIL backend reads 'input__0'",
        ),
    ),
    (
        break_input_dtype,
        (
            "xgb_regressor/config.pbtxt",
            "input[0].data_type",
            "TYPE_FP64 is not supported; FIL inputs are TYPE_FP32",
        ),
    ),
    (
        break_proba_dims,
        (
            "lgb_multiclass/config.pbtxt",
            "output[0].dims",
            "dims [3] but predict_proba on a 4-class classifier returns 4 value(s) per row",
        ),
    ),
    (
        break_binary_proba_dims,
        (
            "xgb_classifier/config.pbtxt",
            "output[0].dims",
            "dims [1] but predict_proba on a binary classifier returns [P(class 0), P(class 1)]: 2 value(s) per row",
        ),
    ),
    (
        break_regressor_proba,
        (
            "xgb_regressor/config.pbtxt",
            "parameters.predict_proba",
            "predict_proba is true but is_classifier is false: a regressor has no class probabilities",
        ),
    ),
    (
        break_classifier_flag_on_regressor,
        (
            "xgb_regressor/config.pbtxt",
            "parameters.is_classifier",
            "is_classifier is true but the model file is a regressor (objective reg:squarederror)",
        ),
    ),
    (
        break_multiclass_as_regressor,
        (
            "sklearn_rf/config.pbtxt",
            "parameters.is_classifier",
            "is_classifier is false but the model file is a 3-class classifier (task kMultiClf); FIL would"
            " write 3 scores per row into one value",
        ),
    ),
    (
        break_instance_kind,
        (
            "xgb_classifier/config.pbtxt",
            "instance_group[0].kind",
            "KIND_MODEL is not supported by the FIL backend (it runs KIND_AUTO, KIND_GPU or KIND_CPU)",
        ),
    ),
    (
        break_cpu_gpus,
        ("lgb_multiclass/config.pbtxt", "instance_group[0].gpus", "gpus [0] are listed for a KIND_CPU group"),
    ),
    (
        break_batch_zero,
        (
            "xgb_regressor/config.pbtxt",
            "dynamic_batching",
            "dynamic batching requires max_batch_size > 0; Triton refuses to load this model",
        ),
    ),
    (
        break_preferred_batch,
        (
            "lgb_multiclass/config.pbtxt",
            "dynamic_batching.preferred_batch_size",
            "preferred batch size 65536 exceeds max_batch_size 32768; Triton refuses to load this model",
        ),
    ),
    (
        break_syntax,
        (
            "sklearn_rf/config.pbtxt",
            "line 6 column 1",
            'not valid protobuf text for inference.ModelConfig: Message type "inference.ModelConfig" has no'
            ' field named "max_batch_sise".',
        ),
    ),
    (
        break_version_policy,
        (
            "xgb_regressor/config.pbtxt",
            "version_policy.specific.versions",
            "version 2 is selected but xgb_regressor/2/ does not exist",
        ),
    ),
    (
        break_checkpoint_version,
        (
            "sklearn_rf/1/checkpoint.tl",
            "parameters.model_type",
            "checkpoint written by Treelite 5.0.0; the FIL backend's Treelite 4 reads checkpoints from"
            " Treelite 3.9 and 4.x only",
        ),
    ),
    (
        break_truncated_json,
        (
            "xgb_classifier/1/xgboost.json",
            "parameters.model_type",
            "cannot be read as XGBoost JSON: not valid JSON (Expecting ',' delimiter: line 1 column 5001 (char 5000))",
        ),
    ),
    (break_missing_config, (".ipynb_checkpoints/config.pbtxt", "-", "config.pbtxt is missing")),
    (
        break_missing_model_type,
        (
            "lgb_multiclass/config.pbtxt",
            "parameters.model_type",
            "model_type is not set; the FIL backend then assumes 'xgboost' (the legacy binary format)",
        ),
    ),
    (
        break_name_typo_backend,
        ("xgb_regressor/config.pbtxt", "backend", "backend 'fill' is not a Triton backend this repository can use"),
    ),
]


@pytest.mark.parametrize(("breaker", "expected"), CASES, ids=[c[0].__name__.removeprefix("break_") for c in CASES])
def test_broken_repository_is_reported(
    repo: Path, breaker: Callable[[Path], None], expected: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    breaker(repo)
    report = validate(repo)
    assert not report.ok
    assert expected in found(report), report.format_text()
    rc, out, err = run_cli(repo, capsys=capsys)
    assert rc == 1
    assert expected[2] in out
    assert err.startswith(f"tritonfil: model repository {repo} has ")
    assert err.count("\n") == 1  # one line on stderr, the full list on stdout


def test_problem_text_names_model_file_field_and_fix(repo: Path) -> None:
    break_input_dims(repo)
    (problem,) = validate(repo).errors
    assert str(problem) == (
        "xgb_classifier: xgb_classifier/config.pbtxt: input[0].dims: dims [15] but the model file has 16"
        " features (fix: set dims: [ 16 ])"
    )


def test_hints_name_the_replacement(repo: Path) -> None:
    break_output_class(repo)
    break_unknown_param(repo)
    hints = {p.field: p.hint for p in validate(repo).errors}
    assert hints["parameters.output_class"] == (
        'rename the key to \'is_classifier\' (same value: "true" for classifiers, "false" for regressors)'
    )
    assert hints["parameters.predict_probability"] == "did you mean 'predict_proba'?"


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    for breaker in (break_dir_name, break_storage_type, break_proba_dims, break_syntax, break_missing_file):
        breaker(repo)
    models = {p.model for p in validate(repo).errors}
    assert models == {"xgb_clf", "xgb_regressor", "lgb_multiclass", "sklearn_rf"}
    assert len(validate(repo).errors) == 5


def test_treelite_load_catches_a_corrupt_file_the_header_reader_accepts(repo: Path) -> None:
    path = repo / "lgb_multiclass" / "1" / "model.txt"
    text = path.read_text()
    path.write_text(text.replace("split_feature=", "split_feature=x", 1))
    assert validate(repo).ok  # the header is intact
    (problem,) = validate(repo, load=True).errors
    assert problem.file == "lgb_multiclass/1/model.txt"
    assert problem.message.startswith(f"Treelite {TREELITE} cannot load it as LightGBM text: ")


def test_warnings_do_not_fail(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(repo, "xgb_regressor", lambda c: c.ClearField("dynamic_batching"))
    report = validate(repo)
    assert report.ok
    assert [(p.field, p.message) for p in report.warnings] == [
        ("dynamic_batching", "dynamic batching is off; each request runs alone")
    ]
    rc, _, _ = run_cli(repo, capsys=capsys)
    assert rc == 0


def test_models_filter_and_missing_repository(tmp_path: Path, repo: Path) -> None:
    break_storage_type(repo)
    assert validate(repo, models=["xgb_classifier"]).ok
    assert not validate(repo, models=["xgb_regressor"]).ok
    (problem,) = validate(tmp_path / "nope").errors
    assert (problem.field, problem.message) == ("-", "is not a directory")
