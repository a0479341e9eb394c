"""`tritonfil models init` / tritonfil.eks.triton_model_init: model files from every library and task in, a FIL
repository the validator accepts out, with references the training library computed.

The model files are trained here (tests/model_files.py: XGBoost binary, multi-class and regression as JSON and
UBJSON, LightGBM binary, multi-class and regression, scikit-learn forests pickled with joblib and pickle, a
Treelite checkpoint). For each, what FIL serves (`fil_predict`, the local FIL backend's semantics on Treelite) is
compared with the library's own prediction on the model object, within the tolerance init wrote. Bad input is
refused with a message naming the file, and nothing is written.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.model_files import Case, specs, train_models
from tritonfil import cli
from tritonfil.collection import pins
from tritonfil.localenv.fil_backend import fil_predict, load_treelite_model
from tritonfil.models import module_utils, validate

model_init = module_utils("model_init")
repo_mod = module_utils("model_repository")
ModelInitError = model_init.ModelInitError
ModelSpec = model_init.ModelSpec
RELEASE = pins()["TRITON_RELEASE"]
NAMES = [
    "xgb_binary",
    "xgb_binary_proba",
    "xgb_multiclass",
    "xgb_multiclass_proba",
    "xgb_regression",
    "xgb_regression_ubj",
    "lgb_binary",
    "lgb_multiclass",
    "lgb_regression",
    "rf_classifier",
    "rf_regressor",
    "tl_binary",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    directory = tmp_path_factory.mktemp("model-files")
    cases = train_models(directory)
    return directory, {c.name: c for c in cases}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, trained: tuple[Path, dict[str, Case]]) -> tuple[Path, object]:
    directory, cases = trained
    out = tmp_path_factory.mktemp("init") / "repo"
    result = model_init.init_repository(specs(directory, list(cases.values())), out, triton_release=RELEASE)
    return out, result


def spec(trained: tuple[Path, dict[str, Case]], case_name: str, **overrides: object) -> object:
    directory, cases = trained
    case = cases[case_name]
    fields = {**case.spec, **overrides}
    return ModelSpec(path=str(directory / case.filename), **fields)


def tree_listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- every library and task ---------------------------------------------------------------------------


def test_the_cases_cover_every_library_and_task(trained: tuple[Path, dict[str, Case]]) -> None:
    _directory, cases = trained
    assert list(cases) == NAMES
    covered = {(c.library, c.task, c.model_type) for c in cases.values()}
    for library in ("xgboost", "lightgbm"):
        for task in ("binary", "multiclass", "regression"):
            assert any(lib == library and t == task for lib, t, _ in covered), (library, task)
    for task in ("binary", "multiclass", "regression"):
        assert ("xgboost", task, "xgboost_json") in covered and ("xgboost", task, "xgboost_ubj") in covered
    assert ("scikit-learn", "multiclass", "treelite_checkpoint") in covered
    assert ("scikit-learn", "regression", "treelite_checkpoint") in covered
    assert ("treelite", "binary", "treelite_checkpoint") in covered


def test_written_repository_validates_with_treelite_load(repo: tuple[Path, object]) -> None:
    out, result = repo
    assert result.changed and not result.check_mode
    assert result.warnings == []
    report = validate(out, load=True)
    assert report.problems == []
    assert [m.name for m in report.models] == sorted(NAMES)
    assert result.validation == f"model repository {out} is valid ({', '.join(sorted(NAMES))})"
    # The validator's light readers agree too (without Treelite).
    assert validate(out).problems == []


@pytest.mark.parametrize("name", NAMES)
def test_config_and_reference(repo: tuple[Path, object], trained: tuple[Path, dict[str, Case]], name: str) -> None:
    out, result = repo
    case = trained[1][name]
    mc = repo_mod.model_config_module()
    config = repo_mod.load_config(out / name / "config.pbtxt")
    params = repo_mod.config_parameters(config)
    assert (config.name, config.backend, config.max_batch_size) == (name, "fil", 32768)
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("input__0", mc.TYPE_FP32, [case.num_feature])
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("output__0", mc.TYPE_FP32, [case.output_width])
    ]
    assert [(g.kind, g.count) for g in config.instance_group] == [(mc.ModelInstanceGroup.KIND_GPU, 1)]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.version_policy.latest.num_versions == 1
    expected_params = {"model_type": case.model_type, "is_classifier": str(case.is_classifier).lower()}
    if case.is_classifier:
        expected_params.update(predict_proba=str(case.predict_proba).lower(), threshold="0.5")
    expected_params.update(layout="depth_first", cpu_nthread="-1")
    assert params == expected_params
    model_file = repo_mod.MODEL_FILENAMES[case.model_type]
    assert sorted(os.listdir(out / name)) == [".tritonfil-init.json", "1", "config.pbtxt", "reference.json"]
    assert os.listdir(out / name / "1") == [model_file]

    ref = json.loads((out / name / "reference.json").read_text())
    sample = json.loads((ROOT / "model_repository" / "xgb_classifier" / "reference.json").read_text())
    assert set(sample) - {"seed"} <= set(ref), "the reference format of the samples"
    assert (ref["model"], ref["model_type"], ref["input_name"], ref["output_name"]) == (
        name,
        case.model_type,
        "input__0",
        "output__0",
    )
    assert (ref["is_classifier"], ref["predict_proba"]) == (case.is_classifier, case.predict_proba)
    assert ref["input_shape"] == [64, case.num_feature] and ref["output_shape"] == [64, case.output_width]
    assert np.asarray(ref["input"]).shape == (64, case.num_feature)
    assert np.asarray(ref["expected"]).shape == (64, case.output_width)
    assert ref["source_file"] == case.filename
    if case.class_output:
        assert (ref["atol"], ref["rtol"]) == (0.0, 0.0)
    elif case.is_classifier:
        assert (ref["atol"], ref["rtol"]) == (1e-5, 1e-4)
    else:
        assert ref["rtol"] == 1e-5 and 0 < ref["atol"] <= 1e-5 * max(1.0, np.abs(ref["expected"]).max()) * 1.1
    library = {"xgboost": "xgboost ", "lightgbm": "lightgbm ", "scikit-learn": "scikit-learn ", "treelite": "treelite "}
    assert ref["library"].startswith(library[case.library])
    summary = next(m for m in result.models if m["name"] == name)
    assert summary["model_file"] == f"1/{model_file}" and summary["output_dims"] == [case.output_width]
    assert summary["format"] == ("sklearn_pickle" if case.library == "scikit-learn" else case.model_type)


@pytest.mark.parametrize("name", NAMES)
def test_fil_semantics_match_the_library_within_the_written_tolerance(
    repo: tuple[Path, object], trained: tuple[Path, dict[str, Case]], name: str
) -> None:
    out, _result = repo
    case = trained[1][name]
    ref = json.loads((out / name / "reference.json").read_text())
    x = np.asarray(ref["input"], dtype=np.float32)
    model = load_treelite_model(str(out / name / "1" / repo_mod.MODEL_FILENAMES[case.model_type]), case.model_type)
    served = fil_predict(model, x, is_classifier=case.is_classifier, predict_proba=case.predict_proba, nthread=1)
    library = case.predict(x)
    expected = np.asarray(ref["expected"], dtype=np.float32)
    assert served.shape == library.shape == expected.shape
    np.testing.assert_allclose(served, library, atol=ref["atol"], rtol=ref["rtol"])
    np.testing.assert_allclose(expected, library, atol=ref["atol"], rtol=ref["rtol"])
    if case.class_output:
        assert np.array_equal(served, library)
    if case.is_classifier and case.predict_proba:
        np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_class_references_keep_away_from_the_decision_boundary(repo: tuple[Path, object]) -> None:
    import treelite

    out, _result = repo
    ref = json.loads((out / "xgb_binary" / "reference.json").read_text())
    model = treelite.frontend.load_xgboost_model(str(out / "xgb_binary" / "1" / "xgboost.json"), format_choice="json")
    p = treelite.gtil.predict(model, np.asarray(ref["input"], dtype=np.float32))[:, 0, 0]
    assert np.all(np.abs(p - 0.5) > 1e-3)
    assert set(np.unique(ref["expected"])) == {0.0, 1.0}, "both classes among the reference rows"
    assert "keeping rows further than 0.001 from a class decision" in ref["input_source"]


def test_random_rows_lie_in_the_training_range(
    repo: tuple[Path, object], trained: tuple[Path, dict[str, Case]]
) -> None:
    out, _result = repo
    directory, _cases = trained
    line = next(
        s for s in (directory / "lgb_regression.txt").read_text().splitlines() if s.startswith("feature_infos=")
    )
    ranges = np.array([[float(v) for v in tok[1:-1].split(":")] for tok in line.partition("=")[2].split()])
    x = np.asarray(json.loads((out / "lgb_regression" / "reference.json").read_text())["input"])
    assert np.all(x >= ranges[:, 0].astype(np.float32)) and np.all(x <= ranges[:, 1].astype(np.float32))
    assert np.all(x.max(axis=0) - x.min(axis=0) > 0.5 * (ranges[:, 1] - ranges[:, 0])), "spread over the range"
    ref = json.loads((out / "xgb_regression" / "reference.json").read_text())
    assert ref["input_source"] == (
        "random rows, uniform per feature within the span of the model's split thresholds, widened by 10%"
    )
    forest = json.loads((out / "rf_classifier" / "reference.json").read_text())
    assert forest["classes"] == ["cat", "dog", "eel"]


def test_init_agrees_with_the_committed_samples() -> None:
    """The configs gen_models.py wrote, rewritten by init from the sample model files, are the same ModelConfig."""
    samples = ROOT / "model_repository"
    models = {
        "xgb_classifier": ("xgboost.json", False),
        "xgb_regressor": ("xgboost.ubj", False),
        "lgb_multiclass": ("model.txt", True),
        "sklearn_rf": ("checkpoint.tl", False),
    }
    planned = {
        name: model_init.plan_model(ModelSpec(path=str(samples / name / "1" / f), predict_proba=proba), name)
        for name, (f, proba) in models.items()
    }
    for name, plan in planned.items():
        ours = repo_mod.parse_config_text(plan.files["config.pbtxt"].decode())
        theirs = repo_mod.load_config(samples / name / "config.pbtxt")
        assert ours == theirs, name
        assert plan.files[f"1/{models[name][0]}"] == (samples / name / "1" / models[name][0]).read_bytes()


# -- idempotence, check mode, the CLI and rows --------------------------------------------------------


def test_rerun_is_idempotent_and_writes_nothing(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    out = tmp_path / "repo"
    chosen = [spec(trained, n) for n in ("xgb_multiclass", "lgb_binary", "rf_classifier")]
    first = model_init.init_repository(chosen, out)
    assert first.changed and {f["action"] for f in first.files} == {"create"}
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    second = model_init.init_repository(chosen, out)
    assert not second.changed
    assert {f["action"] for f in second.files} == {"unchanged"}
    assert second.summary() == f"model repository {out} is up to date (xgb_multiclass, lgb_binary, rf_classifier)"
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == stamps
    assert sorted(os.listdir(tmp_path)) == ["repo"], "no staging directory left behind"


def test_check_mode_reports_and_writes_nothing(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    out = tmp_path / "new" / "repo"
    result = model_init.init_repository([spec(trained, "xgb_regression")], out, check_mode=True)
    assert result.changed and result.check_mode
    assert result.files == [
        {"path": "xgb_regression/.tritonfil-init.json", "action": "create"},
        {"path": "xgb_regression/1/xgboost.json", "action": "create"},
        {"path": "xgb_regression/config.pbtxt", "action": "create"},
        {"path": "xgb_regression/reference.json", "action": "create"},
    ]
    assert result.summary() == f"would write 4 file(s) in {out} (xgb_regression)"
    assert result.diff[0]["before"] == "" and 'name: "xgb_regression"' in result.diff[0]["after"]
    assert os.listdir(tmp_path) == []


def test_cli_init_then_validate(
    trained: tuple[Path, dict[str, Case]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _cases = trained
    out = tmp_path / "repo"
    argv = ["models", "init", str(directory / "xgb_binary.json"), str(directory / "lgb_multiclass.txt")]
    rc = cli.main([*argv, "--out", str(out), "--name", "fraud", "--name", "churn", "--instance-kind", "KIND_CPU"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("fraud: XGBoost JSON, binary, 8 features, 15 trees -> output__0 [1]: 1.0 if P(class 1)")
    assert lines[1].startswith(
        "churn: LightGBM text, multiclass, 6 features, 45 trees -> output__0 [1]: the class index"
    )
    assert lines[-1] == f"wrote 8 file(s) in {out} (fraud, churn)"
    assert captured.err == ""
    assert "kind: KIND_CPU" in (out / "fraud" / "config.pbtxt").read_text()
    assert cli.main(["models", "validate", str(out), "--load"]) == 0
    capsys.readouterr()
    rc = cli.main(
        [*argv, "--out", str(out), "--name", "fraud", "--name", "churn", "--instance-kind", "KIND_CPU", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["changed"] is False and [m["name"] for m in doc["models"]] == ["fraud", "churn"]
    rc = cli.main([*argv, "--out", str(tmp_path / "other"), "--name", "fraud"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "tritonfil: models init: 1 names for 2 model file(s): give one per model file, in order\n"
    )


def test_reference_rows_from_csv_and_npy(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    _directory, cases = trained
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(10, 8)).astype(np.float32)
    csv = tmp_path / "holdout.csv"
    csv.write_text("a,b,c,d,e,f,g,h\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n")
    npy = tmp_path / "holdout.npy"
    np.save(npy, rows[:3].astype(np.float64))
    out = tmp_path / "repo"
    model_init.init_repository(
        [
            spec(trained, "xgb_binary", rows=str(csv)),
            spec(trained, "xgb_binary_proba", rows=str(npy)),
            spec(trained, "tl_binary", rows_data=rows[:2].tolist(), reference_rows=1),
        ],
        out,
    )
    ref = json.loads((out / "xgb_binary" / "reference.json").read_text())
    assert np.array_equal(np.asarray(ref["input"], dtype=np.float32), rows)
    assert np.array_equal(np.asarray(ref["expected"], dtype=np.float32), cases["xgb_binary"].predict(rows))
    assert ref["input_source"] == "rows from holdout.csv"
    ref = json.loads((out / "xgb_binary_proba" / "reference.json").read_text())
    assert ref["input_shape"] == [3, 8] and ref["input_source"] == "rows from holdout.npy"
    np.testing.assert_allclose(ref["expected"], cases["xgb_binary_proba"].predict(rows[:3]), atol=1e-5, rtol=1e-4)
    ref = json.loads((out / "tl_binary" / "reference.json").read_text())
    assert ref["input_source"] == "rows given inline (rows_data) (the first 1 of 2)"
    assert validate(out, load=True).ok


# -- bad input: a clear error naming the file, nothing written -----------------------------------------


def assert_nothing_written(tmp_path: Path, before: list[str]) -> None:
    assert tree_listing(tmp_path) == before, "init wrote something"


def test_mismatched_csv_columns(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("1,2,3,4,5,6,7\n8,9,10,11,12,13,14\n")
    before = tree_listing(tmp_path)
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([spec(trained, "xgb_binary", rows=str(csv))], tmp_path / "repo")
    assert str(err.value) == (
        f"{csv}: CSV rows have 7 column(s) but the model xgb_binary.json has 8 features"
        " (fix: give 8 values per row, in the model's feature order)"
    )
    assert err.value.file == str(csv)
    assert_nothing_written(tmp_path, before)
    csv.write_text("1,2,3,4,5,6,7,8\n1,2,3\n")
    with pytest.raises(ModelInitError, match=r"rows.csv: line 2 has 3 column\(s\), the first line has 8$"):
        model_init.init_repository([spec(trained, "xgb_binary", rows=str(csv))], tmp_path / "repo")
    csv.write_text("a,b,c,d,e,f,g,h\n1,2,3,4,5,6,7,x\n")  # a header line, then a bad cell
    with pytest.raises(ModelInitError, match=r"rows.csv: line 2: 'x' is not a number$"):
        model_init.init_repository([spec(trained, "xgb_binary", rows=str(csv))], tmp_path / "repo")
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([spec(trained, "xgb_binary", rows_data=[[1.0, 2.0]])], tmp_path / "repo")
    assert "rows_data rows have 2 value(s) but the model xgb_binary.json has 8 features" in str(err.value)
    assert_nothing_written(tmp_path, tree_listing(tmp_path))


def write_bad(tmp_path: Path, kind: str) -> Path:
    if kind == "random bytes":
        path = tmp_path / "model.bin"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "JSON that is not XGBoost":
        path = tmp_path / "model.json"
        path.write_text(json.dumps({"name": "not a model", "trees": []}))
    elif kind == "CSV data":
        path = tmp_path / "train.csv"
        path.write_text("a,b,label\n1,2,0\n")
    elif kind == "empty":
        path = tmp_path / "xgboost.json"
        path.write_bytes(b"")
    elif kind == "directory":
        path = tmp_path / "saved_model"
        path.mkdir()
    elif kind == "pickled list":
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps([1, 2, 3]))
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("random bytes", "unknown format (first bytes "),
        ("JSON that is not XGBoost", "not a tree model: looks like XGBoost JSON but JSON without the XGBoost learner"),
        ("CSV data", "unknown format (first bytes b'a,b,label\\n1,'): not XGBoost UBJSON, XGBoost JSON,"),
        ("empty", "is empty, not a model file"),
        ("directory", "is a directory, not a model file (fix: give the model file itself)"),
        ("pickled list", "unpickled a builtins.list, which Treelite cannot convert"),
    ],
)
def test_bad_model_file_is_refused_naming_it(tmp_path: Path, kind: str, message: str) -> None:
    path = write_bad(tmp_path, kind)
    before = tree_listing(tmp_path)
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([ModelSpec(path=str(path), allow_pickle=True)], tmp_path / "repo")
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    assert err.value.file == str(path)
    assert_nothing_written(tmp_path, before)


def test_truncated_and_corrupt_model_files(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    directory, _cases = trained
    data = (directory / "xgb_multiclass_proba.ubj").read_bytes()
    truncated = tmp_path / "truncated.ubj"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([ModelSpec(path=str(truncated))], tmp_path / "repo")
    assert str(err.value).startswith(f"{truncated}: not a tree model: looks like XGBoost UBJSON but not valid UBJSON")
    text = (directory / "lgb_binary.txt").read_text()
    corrupt = tmp_path / "corrupt.txt"
    corrupt.write_text(text.replace("split_feature=", "split_feature=x", 1))
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([ModelSpec(path=str(corrupt))], tmp_path / "repo")
    assert f"{corrupt}: looks like LightGBM text, but Treelite" in str(err.value)
    assert "cannot load it" in str(err.value)
    assert not (tmp_path / "repo").exists()


def test_pickles_need_allow_pickle(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    path = trained[0] / "rf_classifier.joblib"
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([ModelSpec(path=str(path))], tmp_path / "repo")
    assert str(err.value) == (
        f"{path}: is a Python pickle (a scikit-learn model?); unpickling runs code from the file, so init loads"
        " pickles only when allowed (fix: pass --allow-pickle (module: allow_pickle: true) for a file you trust,"
        " or convert it yourself: treelite.sklearn.import_model(model).serialize('checkpoint.tl'))"
    )
    assert os.listdir(tmp_path) == []


def test_task_overrides_that_fil_cannot_serve(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    directory = trained[0]
    cases = [
        ("xgb_regression", {"is_classifier": True}, "is a regressor (objective reg:squarederror); FIL serves it"),
        ("lgb_multiclass", {"is_classifier": False}, "is a 3-class classifier (objective multiclass num_class:3)"),
        ("rf_regressor", {"predict_proba": True}, "predict_proba asked for a model served as a regressor"),
        ("xgb_binary", {"threshold": 1.5}, "threshold 1.5 is outside [0, 1]"),
    ]
    for name, overrides, message in cases:
        with pytest.raises(ModelInitError) as err:
            model_init.init_repository([spec(trained, name, **overrides)], tmp_path / "repo")
        assert str(err.value).startswith(f"{directory / trained[1][name].filename}: {message}"), str(err.value)
    assert os.listdir(tmp_path) == []


def test_binary_model_served_as_regressor_returns_the_probability(
    trained: tuple[Path, dict[str, Case]], tmp_path: Path
) -> None:
    result = model_init.init_repository([spec(trained, "xgb_binary", is_classifier=False)], tmp_path / "repo")
    assert (
        result.warnings[0] == "xgb_binary: served as a regressor, output__0 is the class-1 score of a binary classifier"
    )
    assert "is_classifier is false for a binary classifier" in result.warnings[1], "the validator's warning"
    ref = json.loads((tmp_path / "repo" / "xgb_binary" / "reference.json").read_text())
    assert 0.0 < np.min(ref["expected"]) < np.max(ref["expected"]) < 1.0


def test_duplicate_names_are_refused(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    directory = trained[0]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(directory / "xgb_binary.json", tmp_path / sub / "model.json")
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository(
            [ModelSpec(path=str(tmp_path / "a" / "model.json")), ModelSpec(path=str(tmp_path / "b" / "model.json"))],
            tmp_path / "repo",
        )
    assert str(err.value) == (
        f"{tmp_path / 'b' / 'model.json'}: model name 'model' is also the name of {tmp_path / 'a' / 'model.json'}"
        " (fix: give each model its own name (--name once per MODEL_FILE; module: models[].name))"
    )
    with pytest.raises(ModelInitError, match="model name '../x' is not a directory name Triton can serve"):
        model_init.init_repository([ModelSpec(path=str(tmp_path / "a" / "model.json"), name="../x")], tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_non_empty_output_directory_needs_force(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    out = tmp_path / "repo"
    (out / "keep" / "1").mkdir(parents=True)
    (out / "README.md").write_text("mine\n")
    (out / "keep" / "config.pbtxt").write_text("name: 'keep'\n")
    before = tree_listing(tmp_path)
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([spec(trained, "xgb_binary")], out)
    assert str(err.value) == (
        f"{out}: output directory is not empty (holds README.md, keep/); init writes into a new or empty directory"
        " (fix: choose another directory, or pass --force (module: force: true) to replace the model directories"
        " it writes (never a file init did not write))"
    )
    assert_nothing_written(tmp_path, before)

    result = model_init.init_repository([spec(trained, "xgb_binary")], out, force=True)
    assert result.changed
    assert (out / "README.md").read_text() == "mine\n" and (out / "keep" / "config.pbtxt").is_file()
    assert (out / "xgb_binary" / "1" / "xgboost.json").is_file()

    # Retrained and saved as UBJSON under the same name: init's own old file goes, the new one comes.
    ubj = spec(trained, "xgb_binary_proba", name="xgb_binary", predict_proba=False)
    result = model_init.init_repository([ubj], out, force=True)
    actions = {f["path"]: f["action"] for f in result.files}
    assert actions["xgb_binary/1/xgboost.json"] == "delete" and actions["xgb_binary/1/xgboost.ubj"] == "create"
    assert actions["xgb_binary/config.pbtxt"] == "update"
    assert os.listdir(out / "xgb_binary" / "1") == ["xgboost.ubj"]
    assert validate(out / "xgb_binary" / "..", models=["xgb_binary"], load=True).ok

    # A file init did not write is never deleted: the replacement is refused.
    (out / "xgb_binary" / "notes.txt").write_text("mine too\n")
    (out / "xgb_binary" / "2").mkdir()
    before = tree_listing(tmp_path)
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([spec(trained, "xgb_binary")], out, force=True)
    assert str(err.value) == (
        f"{out}: replacing these model directories would delete entries init did not write: xgb_binary/notes.txt,"
        " xgb_binary/2/ (fix: move them away, or give the models other names)"
    )
    assert_nothing_written(tmp_path, before)


def test_an_edited_file_is_no_longer_inits_own(trained: tuple[Path, dict[str, Case]], tmp_path: Path) -> None:
    out = tmp_path / "repo"
    model_init.init_repository([spec(trained, "xgb_binary")], out)
    ref = out / "xgb_binary" / "1" / "xgboost.json"
    ref.write_bytes(ref.read_bytes() + b" ")
    with pytest.raises(ModelInitError, match="would delete entries init did not write: xgb_binary/1/xgboost.json "):
        model_init.init_repository([spec(trained, "xgb_binary_proba", name="xgb_binary")], out, force=True)


def test_a_failure_after_staging_leaves_nothing(
    trained: tuple[Path, dict[str, Case]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = model_init.validate_repository

    def rejecting(path: Path, **kwargs: object) -> object:
        report = real(path, **kwargs)
        report.problems.append(repo_mod.Problem("xgb_binary", "xgb_binary/config.pbtxt", "name", "simulated"))
        return report

    monkeypatch.setattr(model_init, "validate_repository", rejecting)
    out = tmp_path / "a" / "b" / "repo"
    with pytest.raises(ModelInitError) as err:
        model_init.init_repository([spec(trained, "xgb_binary")], out)
    assert str(err.value).startswith(
        f"{out}: the validator rejects what init would write, so nothing was written:"
        " xgb_binary: xgb_binary/config.pbtxt: name: simulated"
    )
    assert os.listdir(tmp_path) == [], "no staging directory, no parent directory left"


# -- the module, through ansible-playbook ---------------------------------------------------------------

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Init
      tritonfil.eks.triton_model_init:
        dest: {dest}
        models:
          - path: {binary}
          - path: {forest}
            name: forest
            rows_data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
        allow_pickle: true
        predict_proba: true
      register: result
      ignore_errors: true
    - name: Save the result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: {out}
        mode: "0600"
      check_mode: false
"""


def test_module_create_rerun_check_mode_and_failure(run_playbook, trained, tmp_path: Path) -> None:  # noqa: ANN001
    directory = trained[0]
    dest = tmp_path / "repo"
    out = tmp_path / "result.json"
    play = PLAY.format(
        dest=dest, binary=directory / "xgb_binary.json", forest=directory / "rf_classifier.joblib", out=out
    )

    proc = run_playbook(play, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["changed"] is True and not dest.exists()
    assert result["summary"] == f"would write 8 file(s) in {dest} (xgb_binary, forest)"
    assert '+name: "forest"' in proc.stdout, "the config.pbtxt diff"

    proc = run_playbook(play)
    result = json.loads(out.read_text())
    assert result["changed"] is True, proc.stdout
    assert [m["name"] for m in result["models"]] == ["xgb_binary", "forest"]
    assert result["models"][1]["reference"]["rows"] == 2 and result["models"][1]["output_dims"] == [3]
    assert result["validation"] == f"model repository {dest} is valid (forest, xgb_binary)"
    assert "warnings" not in result or result["warnings"] == []
    assert validate(dest, load=True).problems == []

    proc = run_playbook(play)
    result = json.loads(out.read_text())
    assert result["changed"] is False and {f["action"] for f in result["files"]} == {"unchanged"}, proc.stdout

    other = tmp_path / "other"
    other.mkdir()
    (other / "stray.txt").write_text("x")
    proc = run_playbook(play.replace(str(dest), str(other)))
    result = json.loads(out.read_text())
    assert result["failed"] is True
    assert result["msg"].startswith(f"{other}: output directory is not empty (holds stray.txt)")
    assert result["file"] == str(other)
    assert os.listdir(other) == ["stray.txt"]


def test_module_suboptions_match_the_documentation(monkeypatch: pytest.MonkeyPatch) -> None:
    """test_triton_modules checks the top-level options; the models[] suboptions are checked here."""
    from tests.unit.test_triton_modules import argument_spec, documented_options

    spec = argument_spec("triton_model_init", monkeypatch)["argument_spec"]["models"]
    docs = documented_options("triton_model_init")["models"]["suboptions"]
    assert sorted(docs) == sorted(spec["options"])
    for option, arg in spec["options"].items():
        doc = docs[option]
        assert (doc["type"], doc.get("required", False), doc.get("elements")) == (
            arg["type"],
            arg.get("required", False),
            arg.get("elements"),
        ), option
        assert doc.get("default") == arg.get("default") is None, option
    assert spec["mutually_exclusive"] == [("rows", "rows_data")]
