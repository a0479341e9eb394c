"""Small tree models from every library and task `models init` supports, trained in the test (seeded, one thread).

`train_models(directory)` writes one model file per case and returns the cases: the file, how init is asked
to serve it, and the training library's own prediction in FIL's output semantics (the class index, the
thresholded class, the probabilities or the value), computed by the library on the model object in memory.
Shared by tests/unit/test_model_init.py and tests/integration/test_model_init_serve.py.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED = 7
TREES = 15
DEPTH = 4


@dataclass
class Case:
    name: str  # the model name init derives from the file name
    filename: str
    library: str  # "xgboost", "lightgbm", "scikit-learn", "treelite"
    task: str  # "binary", "multiclass", "regression"
    model_type: str  # what init must detect
    is_classifier: bool
    predict_proba: bool
    output_width: int
    num_feature: int
    predict: Callable[[Any], Any]  # the library's own output in FIL semantics, float32 rows x output_width
    spec: dict[str, Any] = field(default_factory=dict)  # extra ModelSpec fields (predict_proba, allow_pickle)

    @property
    def class_output(self) -> bool:
        return self.is_classifier and not self.predict_proba


def _data(task: str, features: int) -> tuple[Any, Any]:
    import numpy as np
    from sklearn.datasets import make_classification, make_regression

    if task == "regression":
        x, y = make_regression(n_samples=600, n_features=features, n_informative=5, noise=3.0, random_state=SEED)
    else:
        classes = 2 if task == "binary" else 3
        x, y = make_classification(
            n_samples=600,
            n_features=features,
            n_informative=5,
            n_redundant=1,
            n_classes=classes,
            n_clusters_per_class=1,
            random_state=SEED,
        )
    return x.astype(np.float32), y


def _f32(values: Any) -> Any:
    import numpy as np

    values = np.asarray(values, dtype=np.float32)
    return values[:, None] if values.ndim == 1 else values


def train_models(directory: Path) -> list[Case]:
    import joblib
    import lightgbm
    import numpy as np
    import treelite
    import xgboost
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor

    directory.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    xgb = {"n_estimators": TREES, "max_depth": DEPTH, "learning_rate": 0.3, "random_state": SEED, "n_jobs": 1}
    lgb = {
        "n_estimators": TREES,
        "max_depth": DEPTH,
        "num_leaves": 15,
        "random_state": SEED,
        "n_jobs": 1,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    tree = {"n_estimators": TREES, "max_depth": 6, "random_state": SEED, "n_jobs": 1}

    # XGBoost: binary, multi-class and regression, each as JSON and as UBJSON.
    x, y = _data("binary", 8)
    clf = xgboost.XGBClassifier(**xgb).fit(x, y)
    clf.save_model(directory / "xgb_binary.json")
    clf.save_model(directory / "xgb_binary_proba.ubj")
    cases.append(
        Case("xgb_binary", "xgb_binary.json", "xgboost", "binary", "xgboost_json", True, False, 1, 8,
             lambda a, m=clf: _f32(m.predict_proba(a)[:, 1] > 0.5))
    )  # fmt: skip
    cases.append(
        Case("xgb_binary_proba", "xgb_binary_proba.ubj", "xgboost", "binary", "xgboost_ubj", True, True, 2, 8,
             lambda a, m=clf: _f32(m.predict_proba(a)), {"predict_proba": True})
    )  # fmt: skip
    x, y = _data("multiclass", 10)
    booster = xgboost.train(  # multi:softmax: predict() returns labels, probabilities come from the margins
        {"objective": "multi:softmax", "num_class": 3, "max_depth": DEPTH, "nthread": 1, "seed": SEED},
        xgboost.DMatrix(x, y),
        TREES,
    )
    booster.save_model(directory / "xgb_multiclass.json")
    cases.append(
        Case("xgb_multiclass", "xgb_multiclass.json", "xgboost", "multiclass", "xgboost_json", True, False, 1, 10,
             lambda a, m=booster: _f32(m.predict(xgboost.DMatrix(a))))
    )  # fmt: skip
    clf = xgboost.XGBClassifier(**xgb).fit(x, y)
    clf.save_model(directory / "xgb_multiclass_proba.ubj")
    cases.append(
        Case("xgb_multiclass_proba", "xgb_multiclass_proba.ubj", "xgboost", "multiclass", "xgboost_ubj", True, True,
             3, 10, lambda a, m=clf: _f32(m.predict_proba(a)), {"predict_proba": True})
    )  # fmt: skip
    x, y = _data("regression", 7)
    reg = xgboost.XGBRegressor(**xgb).fit(x, y)
    for name, filename, model_type in (
        ("xgb_regression", "xgb_regression.json", "xgboost_json"),
        ("xgb_regression_ubj", "xgb_regression_ubj.ubj", "xgboost_ubj"),
    ):
        reg.save_model(directory / filename)
        cases.append(
            Case(name, filename, "xgboost", "regression", model_type, False, False, 1, 7,
                 lambda a, m=reg: _f32(m.predict(a)))
        )  # fmt: skip

    # LightGBM text: binary, multi-class (predict_proba), regression.
    x, y = _data("binary", 9)
    lclf = lightgbm.LGBMClassifier(**lgb).fit(x, y)
    lclf.booster_.save_model(str(directory / "lgb_binary.txt"))
    cases.append(
        Case("lgb_binary", "lgb_binary.txt", "lightgbm", "binary", "lightgbm", True, False, 1, 9,
             lambda a, m=lclf: _f32(m.predict_proba(a)[:, 1] > 0.5))
    )  # fmt: skip
    x, y = _data("multiclass", 6)
    lclf = lightgbm.LGBMClassifier(**lgb).fit(x, y)
    lclf.booster_.save_model(str(directory / "lgb_multiclass.txt"))
    cases.append(
        Case("lgb_multiclass", "lgb_multiclass.txt", "lightgbm", "multiclass", "lightgbm", True, True, 3, 6,
             lambda a, m=lclf: _f32(m.predict_proba(a)), {"predict_proba": True})
    )  # fmt: skip
    x, y = _data("regression", 5)
    lreg = lightgbm.LGBMRegressor(**lgb).fit(x, y)
    lreg.booster_.save_model(str(directory / "lgb_regression.txt"))
    cases.append(
        Case("lgb_regression", "lgb_regression.txt", "lightgbm", "regression", "lightgbm", False, False, 1, 5,
             lambda a, m=lreg: _f32(m.predict(a)))
    )  # fmt: skip

    # scikit-learn forests, pickled (joblib and plain pickle), converted by init through Treelite.
    x, y = _data("multiclass", 10)
    labels = np.array(["cat", "dog", "eel"])[y]
    forest = RandomForestClassifier(**tree).fit(x, labels)
    joblib.dump(forest, directory / "rf_classifier.joblib")
    cases.append(
        Case("rf_classifier", "rf_classifier.joblib", "scikit-learn", "multiclass", "treelite_checkpoint", True,
             False, 1, 10, lambda a, m=forest: _f32(np.searchsorted(m.classes_, m.predict(a))),
             {"allow_pickle": True})
    )  # fmt: skip
    x, y = _data("regression", 6)
    forest_reg = RandomForestRegressor(**tree).fit(x, y)
    with (directory / "rf_regressor.pkl").open("wb") as handle:
        pickle.dump(forest_reg, handle)
    cases.append(
        Case("rf_regressor", "rf_regressor.pkl", "scikit-learn", "regression", "treelite_checkpoint", False, False,
             1, 6, lambda a, m=forest_reg: _f32(m.predict(a)), {"allow_pickle": True})
    )  # fmt: skip

    # A Treelite checkpoint (of a scikit-learn ExtraTreesClassifier, binary, two probability columns).
    x, y = _data("binary", 8)
    extra = ExtraTreesClassifier(**tree).fit(x, y)
    treelite.sklearn.import_model(extra).serialize(str(directory / "tl_binary.tl"))
    cases.append(
        Case("tl_binary", "tl_binary.tl", "treelite", "binary", "treelite_checkpoint", True, True, 2, 8,
             lambda a, m=extra: _f32(m.predict_proba(a)), {"predict_proba": True})
    )  # fmt: skip
    return cases


def specs(directory: Path, cases: list[Case]) -> list[Any]:
    """One ModelSpec per case (init's defaults plus the case's overrides)."""
    from tritonfil.models import module_utils

    model_init = module_utils("model_init")
    return [model_init.ModelSpec(path=str(directory / c.filename), **c.spec) for c in cases]
