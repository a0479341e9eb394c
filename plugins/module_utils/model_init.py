# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Create a FIL model repository from model files: ``tritonfil models init`` and ``tritonfil.eks.triton_model_init``.

For each model file this

* detects the format from the content (XGBoost JSON, UBJSON or legacy binary, LightGBM text, a Treelite
  checkpoint; a pickled scikit-learn forest only when ``allow_pickle`` is set, because unpickling runs code
  from the file) and converts a scikit-learn forest into a Treelite checkpoint with
  ``treelite.sklearn.import_model``;
* reads the feature count, the classes and the objective from the model, and loads it with Treelite, the
  library the FIL backend loads it with;
* writes ``REPO/<name>/config.pbtxt`` in the pinned FIL parameter format (the one
  ``scripts/gen_models.py`` writes and ``model_repository.validate_repository`` accepts),
  ``REPO/<name>/1/<model file>`` under the name FIL opens for its ``model_type``, and
  ``REPO/<name>/reference.json`` (the samples' format): input rows (random within the
  training range read from the model, or rows the caller gives) and the output the training library
  computes for them in FIL's output semantics (Treelite's output where there is no training library),
  with the tolerance to compare with. Triton reads only ``config.pbtxt`` and the numeric version
  directories of a model directory, so the reference travels with the repository.

Everything is computed in memory first; then the files are written into a temporary directory beside
REPO, validated there (``validate_repository(load=True)``), and only then moved into place. An error
leaves REPO as it was. An existing non-empty REPO is written into only with ``force``, and even then
only the model directories being written are replaced, and only when every file in them that is not
rewritten was written by init (``<name>/.tritonfil-init.json`` lists them with their digests).

Plain Python, no Ansible import; numpy, Treelite and the training libraries are imported when needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.tritonfil.eks.plugins.module_utils.model_repository import (
    FORMAT_NAMES,
    MODEL_FILENAMES,
    ModelFacts,
    load_with_treelite,
    read_model_facts,
    sniff_format,
    treelite_facts,
    validate_repository,
)

PICKLE = "sklearn_pickle"
MANIFEST = ".tritonfil-init.json"
REFERENCE = "reference.json"
CONFIG = "config.pbtxt"
VERSION = "1"
WRITTEN_BY = "tritonfil models init"
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU", "KIND_AUTO")
# Rows whose class decision is this close to a tie or to the threshold are not used as references
# (the same margin as scripts/gen_models.py), so float32 rounding cannot flip a class.
DECISION_MARGIN = 1e-3
# Candidate random rows drawn per reference row, to find rows away from the decision boundary.
CANDIDATES_PER_ROW = 16
PROBA_ATOL, PROBA_RTOL = 1e-5, 1e-4
VALUE_RTOL = 1e-5
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav")
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x04\x22\x4d\x18")


class ModelInitError(ValueError):
    """Init cannot proceed; the message names the file (model, rows file or output directory)."""

    def __init__(self, file: str | os.PathLike[str], message: str, hint: str = "") -> None:
        self.file = str(file)
        self.detail = message
        self.hint = hint
        text = f"{self.file}: {message}"
        super().__init__(f"{text} (fix: {hint})" if hint else text)


@dataclass
class ModelSpec:
    """One model file and how to serve it. None means: decide from the model."""

    path: str
    name: str | None = None
    is_classifier: bool | None = None
    predict_proba: bool = False
    threshold: float = 0.5
    rows: str | None = None  # CSV or NPY file with reference input rows
    rows_data: list[list[float]] | None = None  # the same, inline
    reference_rows: int = 64
    seed: int | None = None
    max_batch_size: int = 32768
    max_queue_delay_microseconds: int = 100
    instance_kind: str = "KIND_GPU"
    instance_count: int = 1
    allow_pickle: bool = False


@dataclass
class PlannedModel:
    name: str
    source: str
    files: dict[str, bytes]  # path relative to the model directory -> content
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@dataclass
class InitResult:
    dest: str
    changed: bool
    check_mode: bool
    models: list[dict[str, Any]]
    files: list[dict[str, str]]
    warnings: list[str]
    validation: str = ""
    diff: list[dict[str, str]] = field(default_factory=list)  # config.pbtxt before/after, for Ansible's --diff

    def summary(self) -> str:
        names = ", ".join(m["name"] for m in self.models)
        if not self.changed:
            return f"model repository {self.dest} is up to date ({names})"
        verb = "would write" if self.check_mode else "wrote"
        count = sum(1 for f in self.files if f["action"] != "unchanged")
        return f"{verb} {count} file(s) in {self.dest} ({names})"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["summary"] = self.summary()
        return out


# --------------------------------------------------------------------------------------------
# Helpers


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).strip().split("\n\n", maxsplit=1)[0].split())
    return text or type(exc).__name__


def _softmax(margin: Any) -> Any:
    import numpy as np

    shifted = margin - margin.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _round_up(value: float) -> float:
    """VALUE rounded up to two significant digits (tolerances people can read)."""
    import math

    if value <= 0:
        return 0.0
    exponent = math.floor(math.log10(value)) - 1
    scale = 10.0**exponent
    return float(f"{math.ceil(value / scale - 1e-9) * scale:.3g}")


def default_name(path: str | os.PathLike[str]) -> str:
    """The model name init uses for PATH: its file name without the suffix, made a safe directory name."""
    stem = Path(path).stem or Path(path).name
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    return name if NAME_PATTERN.match(name) else f"model_{name.lstrip('.-')}"


# --------------------------------------------------------------------------------------------
# Formats


def _looks_pickled(head: bytes, suffix: str) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    compressed = any(head.startswith(m) for m in COMPRESSED_MAGIC) or (
        len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA)
    )
    return compressed and suffix.lower() in PICKLE_SUFFIXES


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of the model file at PATH: a key of MODEL_FILENAMES, or PICKLE. Raises ModelInitError."""
    path = Path(path)
    if not path.exists():
        raise ModelInitError(path, "no such file")
    if path.is_dir():
        raise ModelInitError(path, "is a directory, not a model file", "give the model file itself")
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head:
        raise ModelInitError(path, "is empty, not a model file")
    if _looks_pickled(head, path.suffix):
        return PICKLE
    fmt = sniff_format(path)
    if fmt == "other":
        known = ", ".join(FORMAT_NAMES.values())
        raise ModelInitError(
            path,
            f"unknown format (first bytes {head[:12]!r}): not {known}, nor a pickled scikit-learn model",
            "save the model with its library (XGBoost save_model('model.json'), LightGBM save_model('model.txt'),"
            " treelite Model.serialize('checkpoint.tl'))",
        )
    return fmt


@dataclass
class _Source:
    """A model file, read: what to write and how to predict with it."""

    path: Path
    model_type: str
    model_bytes: bytes
    facts: ModelFacts
    treelite_model: Any
    library: str | None = None  # "xgboost 3.2.0"; None: Treelite is the reference
    library_call: str = ""  # "xgboost.Booster.predict(X)"
    library_scores: Callable[[Any], Any] | None = None
    library_note: str = ""  # why there is no library prediction
    feature_names: list[str] | None = None
    classes: list[Any] | None = None
    training_range: tuple[Any, Any, dict[int, list[int]]] | None = None  # LightGBM feature_infos
    description: str = ""
    source_format: str = ""  # model_type, or PICKLE


def _treelite_error(path: Path, what: str, exc: BaseException) -> ModelInitError:
    import treelite

    return ModelInitError(
        path,
        f"{what}, but Treelite {treelite.__version__} (what the FIL backend loads it with) cannot load it:"
        f" {_first_line(exc)}",
        "re-export the model with the training library",
    )


def _require_treelite(path: Path) -> None:
    try:
        import treelite  # noqa: F401
    except ImportError as exc:
        raise ModelInitError(
            path,
            f"init needs the treelite Python package to load the model as FIL does ({exc})",
            "pip install treelite",
        ) from None


def read_source(path: str | os.PathLike[str], allow_pickle: bool = False) -> _Source:
    """Detect, read and load the model file at PATH (ModelInitError naming the file when it is not a tree model)."""
    path = Path(path)
    fmt = detect_format(path)
    _require_treelite(path)
    if fmt == PICKLE:
        return _read_pickle(path, allow_pickle)
    try:
        facts = read_model_facts(path, fmt)
    except (ValueError, OSError) as exc:
        raise ModelInitError(
            path,
            f"not a tree model: looks like {FORMAT_NAMES[fmt]} but {exc}",
            "give a model file saved by XGBoost, LightGBM or Treelite",
        ) from None
    try:
        model = load_with_treelite(path, fmt)
        loaded = treelite_facts(model, fmt)
    except Exception as exc:  # Treelite raises TreeliteError and friends
        raise _treelite_error(path, f"looks like {FORMAT_NAMES[fmt]}", exc) from None
    if facts is None:  # legacy binary: no light reader
        facts = loaded
    else:
        facts.num_feature = loaded.num_feature
        facts.num_target = loaded.num_target
        if facts.kind in (None, "other") and loaded.kind != "other":
            facts.kind, facts.num_class = loaded.kind, loaded.num_class
    source = _Source(path, fmt, path.read_bytes(), facts, model, source_format=fmt)
    if fmt.startswith("xgboost"):
        _attach_xgboost(source)
    elif fmt == "lightgbm":
        _attach_lightgbm(source)
    else:
        source.library_note = "a Treelite checkpoint carries no training library: Treelite computes the reference"
    return source


def _attach_xgboost(source: _Source) -> None:
    import numpy as np

    try:
        import xgboost
    except ImportError:
        source.library_note = "xgboost is not installed: Treelite computes the reference"
        return
    try:
        booster = xgboost.Booster(model_file=str(source.path))
        booster.set_param({"nthread": 1})
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    except Exception as exc:  # XGBoostError: e.g. the legacy binary format in XGBoost >= 3.1
        source.library_note = f"xgboost {xgboost.__version__} cannot load it ({_first_line(exc)}): Treelite computes it"
        return
    names, types = booster.feature_names, booster.feature_types
    categorical = bool(types) and "c" in types

    def scores(x: Any) -> Any:
        matrix = xgboost.DMatrix(x, feature_names=names, feature_types=types, enable_categorical=categorical, nthread=1)
        if objective == "multi:softmax":  # predict() returns labels; FIL's probabilities are the softmax
            return _softmax(np.asarray(booster.predict(matrix, output_margin=True), dtype=np.float64))
        return np.asarray(booster.predict(matrix)).reshape(x.shape[0], -1)

    source.library = f"xgboost {xgboost.__version__}"
    source.library_call = "xgboost.Booster.predict(X)" + (
        " (softmax of the margins)" if objective == "multi:softmax" else ""
    )
    source.library_scores = scores
    source.feature_names = list(names) if names else None


def _lightgbm_infos(path: Path, num_feature: int) -> tuple[Any, Any, dict[int, list[int]]] | None:
    """Per-feature training ranges from LightGBM's ``feature_infos`` header line: ([min], [max], categories)."""
    import numpy as np

    line = ""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle):
            if text.startswith("feature_infos="):
                line = text.strip().partition("=")[2]
                break
            if text.startswith("Tree=") or number > 400:
                break
    tokens = line.split(" ") if line else []
    if len(tokens) != num_feature:
        return None
    lo = np.full(num_feature, np.nan)
    hi = np.full(num_feature, np.nan)
    categories: dict[int, list[int]] = {}
    for index, token in enumerate(tokens):
        if token.startswith("[") and token.endswith("]") and ":" in token:
            low, high = token[1:-1].split(":", 1)
            try:
                lo[index], hi[index] = float(low), float(high)
            except ValueError:
                continue
        elif token != "none":
            try:
                values = sorted({int(v) for v in token.split(":") if int(v) >= 0})
            except ValueError:
                continue
            if values:
                categories[index] = values
    return lo, hi, categories


def _attach_lightgbm(source: _Source) -> None:
    import numpy as np

    source.training_range = _lightgbm_infos(source.path, source.facts.num_feature or 0)
    try:
        import lightgbm
    except ImportError:
        source.library_note = "lightgbm is not installed: Treelite computes the reference"
        return
    try:
        booster = lightgbm.Booster(model_file=str(source.path))
    except Exception as exc:  # LightGBMError
        source.library_note = (
            f"lightgbm {lightgbm.__version__} cannot load it ({_first_line(exc)}): Treelite computes it"
        )
        return

    def scores(x: Any) -> Any:
        return np.asarray(booster.predict(x, num_threads=1)).reshape(x.shape[0], -1)

    source.library = f"lightgbm {lightgbm.__version__}"
    source.library_call = "lightgbm.Booster.predict(X)"
    source.library_scores = scores
    names = booster.feature_name()
    source.feature_names = list(names) if names else None


def _read_pickle(path: Path, allow_pickle: bool) -> _Source:
    if not allow_pickle:
        raise ModelInitError(
            path,
            "is a Python pickle (a scikit-learn model?); unpickling runs code from the file, so init loads"
            " pickles only when allowed",
            "pass --allow-pickle (module: allow_pickle: true) for a file you trust, or convert it yourself:"
            " treelite.sklearn.import_model(model).serialize('checkpoint.tl')",
        )
    import numpy as np
    import treelite
    import treelite.sklearn

    try:
        import joblib

        estimator = joblib.load(path)  # reads plain pickles too
    except ImportError:
        import pickle

        with path.open("rb") as handle:
            estimator = pickle.load(handle)  # noqa: S301 - allowed explicitly by the caller
    except Exception as exc:
        raise ModelInitError(path, f"cannot be unpickled: {_first_line(exc)}") from None
    kind_name = type(estimator).__name__
    if type(estimator).__module__.startswith("sklearn.pipeline"):
        raise ModelInitError(
            path,
            "is a scikit-learn Pipeline; FIL serves the forest alone, without the preprocessing steps",
            "pickle the final estimator (pipeline[-1]) and apply the preprocessing in the client",
        )
    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as exc:
        raise ModelInitError(
            path,
            f"unpickled a {type(estimator).__module__}.{kind_name}, which Treelite cannot convert ({_first_line(exc)})",
            "init converts scikit-learn RandomForest, ExtraTrees, GradientBoosting, HistGradientBoosting"
            " and IsolationForest models",
        ) from None
    data = model.serialize_bytes()
    facts = treelite_facts(model, "treelite_checkpoint")
    import sklearn

    facts.writer = f"scikit-learn {sklearn.__version__}"
    facts.detail = kind_name
    source = _Source(path, "treelite_checkpoint", data, facts, model, source_format=PICKLE)

    source.library = f"scikit-learn {sklearn.__version__} (converted with treelite {treelite.__version__})"
    classes = getattr(estimator, "classes_", None)
    if classes is not None and getattr(classes, "ndim", 1) == 1:
        source.classes = [c.item() if hasattr(c, "item") else c for c in classes]
        if not all(isinstance(c, (int, float, str, bool)) for c in source.classes):
            source.classes = [str(c) for c in source.classes]
    names = getattr(estimator, "feature_names_in_", None)
    source.feature_names = [str(n) for n in names] if names is not None else None
    if kind_name == "IsolationForest":
        source.library_call = "-IsolationForest.score_samples(X)"

        def scores(x: Any) -> Any:
            return -np.asarray(estimator.score_samples(x)).reshape(x.shape[0], -1)

    elif hasattr(estimator, "predict_proba") and facts.kind in ("binary", "multiclass"):
        source.library_call = f"{kind_name}.predict_proba(X)"

        def scores(x: Any) -> Any:
            return np.asarray(estimator.predict_proba(x), dtype=np.float64)

    else:
        source.library_call = f"{kind_name}.predict(X)"

        def scores(x: Any) -> Any:
            return np.asarray(estimator.predict(x), dtype=np.float64).reshape(x.shape[0], -1)

    def quiet(x: Any) -> Any:
        with warnings.catch_warnings():  # "X does not have valid feature names": the rows are positional
            warnings.simplefilter("ignore", UserWarning)
            return scores(x)

    source.library_scores = quiet
    return source


# --------------------------------------------------------------------------------------------
# Predictions in FIL's output semantics


def treelite_scores(model: Any, x: Any) -> Any:
    """Treelite's per-class scores (rows x classes; one column for regressors and single-output binary models)."""
    import numpy as np
    import treelite

    header = model.get_header_accessor()
    if header.get_field("postprocessor") == "max_index":  # FIL gives the softmax for probabilities
        margin = treelite.gtil.predict(model, x, nthread=1, pred_margin=True)[:, 0, :]
        return _softmax(np.asarray(margin, dtype=np.float64))
    return np.asarray(treelite.gtil.predict(model, x, nthread=1)[:, 0, :])


def fil_output(scores: Any, *, is_classifier: bool, predict_proba: bool, threshold: float) -> Any:
    """What the FIL backend writes into output__0 for per-class SCORES (docs/models.md, fil_backend.fil_predict)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    if not is_classifier:
        return scores[:, :1].astype(np.float32)
    if scores.shape[1] == 1:
        positive = scores[:, 0]
        if predict_proba:
            return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)
        return (positive > threshold).astype(np.float32)[:, None]
    if predict_proba:
        return scores.astype(np.float32)
    return np.argmax(scores, axis=1).astype(np.float32)[:, None]


def _decision_gap(scores: Any, threshold: float) -> Any:
    """Per row: how far the class decision is from flipping (threshold for one column, top-2 gap otherwise)."""
    import numpy as np

    if scores.shape[1] == 1:
        return np.abs(scores[:, 0] - threshold)
    top2 = np.sort(scores, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


# --------------------------------------------------------------------------------------------
# Reference inputs


def _split_ranges(model: Any, num_feature: int) -> tuple[Any, Any, dict[int, list[int]]]:
    """Per-feature [min, max] of the numerical split thresholds, and the categories of categorical splits."""
    import numpy as np

    lo = np.full(num_feature, np.inf)
    hi = np.full(num_feature, -np.inf)
    categories: dict[int, set[int]] = {}
    for tree in range(model.num_tree):
        accessor = model.get_tree_accessor(tree)
        node_type = accessor.get_field("node_type")
        split = accessor.get_field("split_index")
        numerical = node_type == 1
        if numerical.any():
            threshold = accessor.get_field("threshold").astype(np.float64)
            np.minimum.at(lo, split[numerical], threshold[numerical])
            np.maximum.at(hi, split[numerical], threshold[numerical])
        for node in np.flatnonzero(node_type == 2):
            cats = accessor.get_field("category_list")
            begin = accessor.get_field("category_list_begin")[node]
            end = accessor.get_field("category_list_end")[node]
            categories.setdefault(int(split[node]), set()).update(int(c) for c in cats[begin:end])
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    cats = {k: sorted(v | {max(v) + 1}) for k, v in categories.items() if v}  # max+1: the "other" branch
    return lo, hi, cats


def random_rows(source: _Source, count: int, rng: Any) -> tuple[Any, str]:
    """COUNT float32 rows drawn uniformly per feature within the model's training range (LightGBM's
    feature_infos) or the span of its split thresholds (10% wider), and how they were drawn."""
    import numpy as np

    num_feature = int(source.facts.num_feature or 0)
    if source.training_range is not None:
        lo, hi, cats = source.training_range
        pad = np.zeros(num_feature)
        how = "uniform per feature within the training range (LightGBM feature_infos)"
    else:
        lo, hi, cats = _split_ranges(source.treelite_model, num_feature)
        span = hi - lo
        pad = np.where(span > 0, 0.1 * span, np.maximum(1.0, 0.1 * np.abs(lo)))
        how = "uniform per feature within the span of the model's split thresholds, widened by 10%"
    unused = np.isnan(lo) | np.isnan(hi)
    low = np.where(unused, 0.0, lo - pad)
    high = np.where(unused, 1.0, hi + pad)
    rows = rng.uniform(low, high, size=(count, num_feature))
    for index, values in cats.items():
        rows[:, index] = rng.choice(np.asarray(values, dtype=np.float64), size=count)
    return rows.astype(np.float32), how


def read_rows(path: str | os.PathLike[str], num_feature: int, model_file: str) -> Any:
    """Reference rows from a CSV (an optional header line) or NPY file, checked against NUM_FEATURE columns."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ModelInitError(path, "rows file not found")
    if path.suffix.lower() == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ModelInitError(path, f"not a numeric NPY array ({_first_line(exc)})") from None
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2:
            raise ModelInitError(path, f"NPY array has shape {list(data.shape)}; rows x features expected")
        if not np.issubdtype(data.dtype, np.number) and data.dtype != np.bool_:
            raise ModelInitError(path, f"NPY array of {data.dtype}; numbers expected")
        source = "NPY"
    else:
        data = _read_csv(path)
        source = "CSV"
    if data.shape[0] == 0:
        raise ModelInitError(path, "holds no rows")
    if data.shape[1] != num_feature:
        raise ModelInitError(
            path,
            f"{source} rows have {data.shape[1]} column(s) but the model {model_file} has {num_feature} features",
            f"give {num_feature} values per row, in the model's feature order",
        )
    data = data.astype(np.float32)
    if not np.all(np.isfinite(data)):
        row = int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
        raise ModelInitError(
            path,
            f"row {row + 1} has a missing or infinite value; reference.json cannot hold NaN (JSON has none)",
            "give complete rows",
        )
    return data


def _read_csv(path: Path) -> Any:
    import csv

    import numpy as np

    rows: list[list[float]] = []
    width = None
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for number, record in enumerate(csv.reader(handle), start=1):
            if not record or all(not cell.strip() for cell in record):
                continue
            try:
                values = [float(cell) for cell in record]
            except ValueError:
                if number == 1 and not rows:
                    width = len(record)  # a header line
                    continue
                bad = next(cell for cell in record if not _is_float(cell))
                raise ModelInitError(path, f"line {number}: {bad!r} is not a number") from None
            if width is None:
                width = len(values)
            elif len(values) != width:
                raise ModelInitError(path, f"line {number} has {len(values)} column(s), the first line has {width}")
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width or 0)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Planning one model


def _decide_task(spec: ModelSpec, source: _Source, classes: int) -> bool:
    """is_classifier for the model, or ModelInitError when the requested task cannot be served."""
    facts = source.facts
    path = source.path
    if facts.num_target > 1:
        raise ModelInitError(
            path, f"has {facts.num_target} targets; the FIL backend does not serve multi-output models",
            "train one model per target",
        )  # fmt: skip
    kind = facts.kind or "other"
    is_classifier = kind in ("binary", "multiclass") if spec.is_classifier is None else spec.is_classifier
    if is_classifier and kind not in ("binary", "multiclass"):
        raise ModelInitError(
            path,
            f"is a regressor ({facts.detail}); FIL serves it with is_classifier false only",
            "drop the classifier override",
        )
    if not is_classifier and (kind == "multiclass" or classes > 1):
        raise ModelInitError(
            path,
            f"is a {facts.num_class}-class classifier ({facts.detail}) with one score per class; FIL cannot"
            " serve it as a regressor (one value per row)",
            "drop the regressor override (use predict_proba for the probabilities)",
        )
    if spec.predict_proba and not is_classifier:
        raise ModelInitError(
            path,
            f"predict_proba asked for a model served as a regressor ({facts.detail})",
            "drop predict_proba, or serve a classifier",
        )
    return is_classifier


def _config_text(name: str, spec: ModelSpec, source: _Source, params: dict[str, str], width: int, what: str) -> str:
    facts = source.facts
    entries = ",\n".join(
        f'  {{\n    key: "{key}"\n    value: {{ string_value: "{value}" }}\n  }}' for key, value in params.items()
    )
    return f"""\
# {source.description}
# Written by {WRITTEN_BY} from {source.path.name}; FIL backend parameter format of Triton >= 25.09
# (see docs/models.md). output__0: {what}.
name: "{name}"
backend: "fil"
max_batch_size: {spec.max_batch_size}
input [
  {{
    name: "input__0"
    data_type: TYPE_FP32
    dims: [ {facts.num_feature} ]
  }}
]
output [
  {{
    name: "output__0"
    data_type: TYPE_FP32
    dims: [ {width} ]
  }}
]
version_policy: {{ latest: {{ num_versions: 1 }} }}
instance_group [
  {{
    kind: {spec.instance_kind}
    count: {spec.instance_count}
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {spec.max_queue_delay_microseconds}
}}
parameters [
{entries}
]
"""


def _check_spec(spec: ModelSpec) -> None:
    path = spec.path
    if spec.instance_kind not in INSTANCE_KINDS:
        raise ModelInitError(path, f"instance kind {spec.instance_kind!r} is not one of {', '.join(INSTANCE_KINDS)}")
    for label, value, minimum in (
        ("max_batch_size", spec.max_batch_size, 1),
        ("instance_count", spec.instance_count, 1),
        ("reference_rows", spec.reference_rows, 1),
        ("max_queue_delay_microseconds", spec.max_queue_delay_microseconds, 0),
    ):
        if value < minimum:
            raise ModelInitError(path, f"{label} {value} must be >= {minimum}")
    if not 0.0 <= spec.threshold <= 1.0:
        raise ModelInitError(path, f"threshold {spec.threshold} is outside [0, 1]; it is compared with a probability")
    if spec.rows and spec.rows_data is not None:
        raise ModelInitError(path, "rows (a file) and rows_data (inline rows) are mutually exclusive")


def _given_rows(spec: ModelSpec, num_feature: int, path: Path) -> tuple[Any, str]:
    """The caller's reference rows (float32, rows x features) and where they came from; (None, "") if none."""
    import numpy as np

    if spec.rows:
        return read_rows(spec.rows, num_feature, path.name), f"rows from {Path(spec.rows).name}"
    if spec.rows_data is None:
        return None, ""
    try:
        given = np.asarray(spec.rows_data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelInitError(path, f"rows_data is not a list of numeric rows ({exc})") from None
    if given.ndim == 1:
        given = given[None, :]
    if given.ndim != 2 or given.shape[1] != num_feature or given.shape[0] == 0:
        found = given.shape[-1] if given.ndim else 0
        raise ModelInitError(
            path,
            f"rows_data rows have {found} value(s) but the model {path.name} has {num_feature} features",
            f"give {num_feature} values per row",
        )
    if not np.all(np.isfinite(given)):
        raise ModelInitError(path, "rows_data has a missing or infinite value; reference.json cannot hold NaN")
    return given.astype(np.float32), "rows given inline (rows_data)"


def _scores(source: _Source, x: Any) -> tuple[Any, Any]:
    """(the training library's scores, Treelite's scores) for rows X, in Treelite's shape (rows x classes)."""
    import numpy as np

    tl = treelite_scores(source.treelite_model, x)
    if source.library_scores is None:
        return tl, tl
    try:
        lib = np.asarray(source.library_scores(x), dtype=np.float64)
    except Exception as exc:
        message = f"{source.library} cannot predict on the reference rows: {_first_line(exc)}"
        raise ModelInitError(source.path, message) from None
    if lib.shape[1] == 2 and tl.shape[1] == 1:  # [P(class 0), P(class 1)] -> the model's one score
        lib = lib[:, 1:]
    if lib.shape != tl.shape:
        raise ModelInitError(
            source.path,
            f"{source.library} returns {lib.shape[1]} value(s) per row but Treelite returns {tl.shape[1]}",
            "check the model's objective; FIL serves what Treelite computes",
        )
    return lib, tl


def _tolerance(class_output: bool, is_classifier: bool, expected: Any) -> tuple[float, float]:
    """(atol, rtol): exact for class indices, gen_models' for probabilities, relative to the scale for values."""
    import numpy as np

    if class_output:
        return 0.0, 0.0
    if is_classifier:
        return PROBA_ATOL, PROBA_RTOL
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    return _round_up(1e-5 * max(1.0, scale)), VALUE_RTOL


def plan_model(spec: ModelSpec, name: str) -> PlannedModel:
    """Everything init writes for SPEC as model NAME, in memory (ModelInitError naming the file on bad input)."""
    import numpy as np
    import treelite

    _check_spec(spec)
    source = read_source(spec.path, spec.allow_pickle)
    facts, path, model = source.facts, source.path, source.treelite_model
    classes = int(max(model.get_header_accessor().get_field("num_class")))
    is_classifier = _decide_task(spec, source, classes)
    predict_proba = bool(spec.predict_proba and is_classifier)
    class_output = is_classifier and not predict_proba
    num_feature = int(facts.num_feature or 0)
    notes: list[str] = []
    if is_classifier and classes == 2 and spec.threshold != 0.5:
        notes.append(
            f"{name}: threshold {spec.threshold} has no effect: {path.name} has one score per class (2 columns),"
            " so FIL returns the argmax"
        )
    if not is_classifier and facts.kind == "binary":
        notes.append(f"{name}: served as a regressor, output__0 is the class-1 score of a binary classifier")

    seed = spec.seed if spec.seed is not None else int(_sha256(source.model_bytes)[:8], 16)
    given, input_source = _given_rows(spec, num_feature, path)
    if given is not None:
        x = given[: spec.reference_rows]
        if given.shape[0] > x.shape[0]:
            input_source += f" (the first {x.shape[0]} of {given.shape[0]})"
    else:
        count = spec.reference_rows * (CANDIDATES_PER_ROW if class_output else 1)
        x, how = random_rows(source, count, np.random.default_rng(seed))
        input_source = f"random rows, {how}"
    lib, tl = _scores(source, x)
    if class_output:
        gap = np.minimum(_decision_gap(lib, spec.threshold), _decision_gap(tl, spec.threshold))
        decisive = gap > DECISION_MARGIN
        if given is None:
            keep = np.flatnonzero(decisive)[: spec.reference_rows]
            if keep.size == 0:
                raise ModelInitError(
                    path,
                    f"no random row is further than {DECISION_MARGIN:g} from a class decision",
                    "give reference rows (--rows; module: rows or rows_data)",
                )
            x, lib, tl = x[keep], lib[keep], tl[keep]
            input_source += f", keeping rows further than {DECISION_MARGIN:g} from a class decision"
        elif not decisive.all():
            close = [int(i) + 1 for i in np.flatnonzero(~decisive)[:5]]
            notes.append(
                f"{name}: rows {close} are within {DECISION_MARGIN:g} of a class decision; FIL on a GPU may"
                " classify them differently"
            )
    semantics = {"is_classifier": is_classifier, "predict_proba": predict_proba, "threshold": spec.threshold}
    expected = fil_output(lib, **semantics)
    served = fil_output(tl, **semantics)
    diff = float(np.max(np.abs(served.astype(np.float64) - expected.astype(np.float64)))) if expected.size else 0.0
    atol, rtol = _tolerance(class_output, is_classifier, expected)
    if source.library_scores is not None and not np.allclose(served, expected, atol=atol, rtol=rtol):
        bad = np.flatnonzero(~np.isclose(served, expected, atol=atol, rtol=rtol).all(axis=1))
        row = int(bad[0])
        raise ModelInitError(
            path,
            f"Treelite {treelite.__version__} (what FIL runs) disagrees with {source.library} on {bad.size} of"
            f" {x.shape[0]} reference rows (row {row + 1}: Treelite {served[row].tolist()}, library"
            f" {expected[row].tolist()}; max abs diff {diff:.3g}, atol {atol:g}, rtol {rtol:g})",
            "FIL would serve other outputs than the library computes; check the model with the FIL backend",
        )

    width = int(expected.shape[1])
    model_file = MODEL_FILENAMES[source.model_type]
    params = {"model_type": source.model_type, "is_classifier": "true" if is_classifier else "false"}
    if is_classifier:
        params["predict_proba"] = "true" if predict_proba else "false"
        params["threshold"] = repr(float(spec.threshold))
    params["layout"] = "depth_first"
    params["cpu_nthread"] = "-1"
    what, how = _semantics(source, is_classifier, predict_proba, classes, spec.threshold)
    kind_text = {"binary": "binary classifier", "multiclass": f"{facts.num_class}-class classifier"}
    writer = facts.writer or FORMAT_NAMES[source.model_type]
    source.description = (
        f"{writer} {kind_text.get(facts.kind or '', 'regressor')} ({facts.detail}, {model.num_tree} trees,"
        f" {num_feature} features), {FORMAT_NAMES[source.model_type]}"
    )
    library = source.library or f"treelite {treelite.__version__} ({source.library_note})"
    reference: dict[str, Any] = {
        "model": name,
        "description": source.description,
        "library": library,
        "semantics": how,
        "model_type": source.model_type,
        "is_classifier": is_classifier,
        "predict_proba": predict_proba,
        "input_name": "input__0",
        "output_name": "output__0",
        "input_shape": list(x.shape),
        "output_shape": list(expected.shape),
        "atol": atol,
        "rtol": rtol,
        "treelite_max_abs_diff": diff,
        "seed": seed,
        "input_source": input_source,
        "source_file": path.name,
        "source_sha256": _sha256(path.read_bytes()),
        "written_by": WRITTEN_BY,
    }
    if is_classifier:
        reference["threshold"] = spec.threshold
    if source.classes is not None:
        reference["classes"] = source.classes
    if source.feature_names:
        reference["feature_names"] = source.feature_names
    reference["input"] = [[float(v) for v in row] for row in x.astype(np.float32)]
    reference["expected"] = [[float(v) for v in row] for row in expected.astype(np.float32)]
    files = {
        CONFIG: _config_text(name, spec, source, params, width, what).encode("utf-8"),
        f"{VERSION}/{model_file}": source.model_bytes,
        REFERENCE: (json.dumps(reference, indent=1) + "\n").encode("utf-8"),
    }
    manifest = {"written_by": WRITTEN_BY, "files": {rel: _sha256(data) for rel, data in sorted(files.items())}}
    files[MANIFEST] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")
    summary = {
        "name": name,
        "source": str(spec.path),
        "format": source.source_format,
        "format_name": FORMAT_NAMES.get(source.source_format, "a pickled scikit-learn model"),
        "model_type": source.model_type,
        "model_file": f"{VERSION}/{model_file}",
        "kind": facts.kind,
        "objective": facts.detail,
        "writer": facts.writer,
        "num_feature": num_feature,
        "num_class": facts.num_class,
        "num_tree": int(model.num_tree),
        "is_classifier": is_classifier,
        "predict_proba": predict_proba,
        "threshold": spec.threshold if is_classifier else None,
        "output_dims": [width],
        "output": what,
        "instance_kind": spec.instance_kind,
        "max_batch_size": spec.max_batch_size,
        "reference": {
            "rows": int(x.shape[0]),
            "input_source": input_source,
            "library": library,
            "atol": atol,
            "rtol": rtol,
            "treelite_max_abs_diff": diff,
            "seed": seed,
        },
    }
    return PlannedModel(name=name, source=str(spec.path), files=files, summary=summary, warnings=notes)


def _semantics(
    source: _Source, is_classifier: bool, predict_proba: bool, classes: int, threshold: float
) -> tuple[str, str]:
    """(what output__0 holds, how the reference output was computed)."""
    call = source.library_call if source.library_scores is not None else "treelite.gtil.predict(X)"
    if not is_classifier:
        return "the predicted value", call
    if classes == 1:
        if predict_proba:
            return "[P(class 0), P(class 1)]", f"[1 - p, p] with p = {call} (FIL: predict_proba)"
        return (
            f"1.0 if P(class 1) > {threshold:g} else 0.0",
            f"{call} > {threshold:g} as 0.0/1.0 (FIL: class with threshold)",
        )
    if predict_proba:
        return f"one probability per class ({classes})", f"{call} (FIL: one probability per class)"
    return f"the class index 0..{classes - 1} (argmax)", f"argmax of {call} (FIL: argmax class index)"


# --------------------------------------------------------------------------------------------
# The repository


def resolve_names(specs: list[ModelSpec]) -> list[str]:
    """Each model's name (given, or from its file name); ModelInitError for a bad or repeated name."""
    names: list[str] = []
    seen: dict[str, str] = {}
    for spec in specs:
        name = spec.name or default_name(spec.path)
        if not NAME_PATTERN.match(name):
            raise ModelInitError(
                spec.path,
                f"model name {name!r} is not a directory name Triton can serve",
                "use letters, digits, '_', '-' and '.', not starting with '.' or '-'",
            )
        if name in seen:
            raise ModelInitError(
                spec.path,
                f"model name {name!r} is also the name of {seen[name]}",
                "give each model its own name (--name once per MODEL_FILE; module: models[].name)",
            )
        seen[name] = str(spec.path)
        names.append(name)
    return names


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """(files, directories) under ROOT, relative with '/', symlinks counted as files and not followed."""
    files: list[str] = []
    dirs: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        base = Path(current).relative_to(root)
        for dirname in list(dirnames):
            rel = (base / dirname).as_posix()
            if (Path(current) / dirname).is_symlink():
                files.append(rel)
                dirnames.remove(dirname)
            else:
                dirs.append(rel)
        files.extend((base / filename).as_posix() for filename in filenames)
    return sorted(files), sorted(dirs)


def _manifest(model_dir: Path) -> dict[str, str]:
    """The files an earlier init wrote into MODEL_DIR (relative path -> sha256); {} when there is no manifest."""
    try:
        doc = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
        files = doc["files"] if doc.get("written_by") == WRITTEN_BY else {}
        return {str(k): str(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _compare(dest: Path, model: PlannedModel) -> tuple[list[dict[str, str]], list[str]]:
    """What writing MODEL into DEST does to each file ([{path, action}]), and the entries in its directory that
    init did not write and would have to delete (relative to DEST)."""
    model_dir = dest / model.name
    actions: list[dict[str, str]] = []
    foreign: list[str] = []
    if model_dir.is_symlink() or (model_dir.exists() and not model_dir.is_dir()):
        return [{"path": f"{model.name}/{rel}", "action": "create"} for rel in model.files], [model.name]
    files, dirs = _walk(model_dir) if model_dir.is_dir() else ([], [])
    present = set(files)
    for rel, data in sorted(model.files.items()):
        target = model_dir / rel
        if rel not in present:
            action = "create"
        elif target.is_symlink() or target.read_bytes() != data:
            action = "update"
        else:
            action = "unchanged"
        actions.append({"path": f"{model.name}/{rel}", "action": action})
    ours = _manifest(model_dir)
    for rel in files:
        if rel in model.files:
            continue
        target = model_dir / rel
        if not target.is_symlink() and rel in ours and _sha256(target.read_bytes()) == ours[rel]:
            actions.append({"path": f"{model.name}/{rel}", "action": "delete"})
        else:
            foreign.append(f"{model.name}/{rel}")
    needed = {str(Path(rel).parent.as_posix()) for rel in model.files}
    for rel in dirs:
        if rel not in needed and not any(f.startswith(rel + "/") for f in files):
            foreign.append(f"{model.name}/{rel}/")
    return actions, foreign


def _listing(entries: list[str], limit: int = 6) -> str:
    shown = ", ".join(entries[:limit])
    return shown + (f" and {len(entries) - limit} more" if len(entries) > limit else "")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def init_repository(
    specs: list[ModelSpec],
    dest: str | os.PathLike[str],
    *,
    force: bool = False,
    check_mode: bool = False,
    triton_release: str | None = None,
) -> InitResult:
    """Write one FIL model directory per spec into DEST (see the module docstring); ModelInitError on bad input,
    with nothing written."""
    dest = Path(dest)
    if not specs:
        raise ModelInitError(dest, "no model files given")
    if dest.exists() and not dest.is_dir():
        raise ModelInitError(dest, "exists and is not a directory", "give a new or empty directory as the output")
    names = resolve_names(specs)
    planned = [plan_model(spec, name) for spec, name in zip(specs, names)]  # noqa: B905 (Python 3.8 nodes)
    notes = [note for model in planned for note in model.warnings]

    files: list[dict[str, str]] = []
    changed_models: list[PlannedModel] = []
    foreign: list[str] = []
    for model in planned:
        actions, strangers = _compare(dest, model)
        files.extend(actions)
        foreign.extend(strangers)
        changed = bool(strangers) or any(a["action"] != "unchanged" for a in actions)
        model.summary["changed"] = changed
        model.summary["files"] = [a["path"] for a in actions if a["action"] != "delete"]
        if changed:
            changed_models.append(model)
    changed = bool(changed_models)
    existing = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in dest.iterdir()) if dest.is_dir() else []
    if changed and existing and not force:
        raise ModelInitError(
            dest,
            f"output directory is not empty (holds {_listing(existing)}); init writes into a new or empty directory",
            "choose another directory, or pass --force (module: force: true) to replace the model directories it"
            " writes (never a file init did not write)",
        )
    if changed and foreign:
        raise ModelInitError(
            dest,
            f"replacing these model directories would delete entries init did not write: {_listing(foreign)}",
            "move them away, or give the models other names",
        )
    diffs = []
    for model in changed_models:
        target = dest / model.name / CONFIG
        before = target.read_text(encoding="utf-8", errors="replace") if target.is_file() else ""
        after = model.files[CONFIG].decode("utf-8")
        if before != after:
            diffs.append({"before_header": str(target), "after_header": str(target), "before": before, "after": after})
    result = InitResult(
        dest=str(dest),
        changed=changed,
        check_mode=check_mode,
        models=[m.summary for m in planned],
        files=files,
        warnings=notes,
        diff=diffs,
    )
    if not changed:
        result.validation = "unchanged: nothing written"
        return result
    if check_mode:
        result.validation = "not run in check mode"
        return result
    result.validation = _write(dest, changed_models, triton_release, result.warnings)
    return result


def _write(dest: Path, models: list[PlannedModel], triton_release: str | None, notes: list[str]) -> str:
    """Stage MODELS beside DEST, validate them there, then move them into place. Returns the validation summary."""
    created: list[Path] = []
    parent = dest.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    for directory in reversed(created):
        directory.mkdir()
    mode = _umask_mode()
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.init-", dir=dest.parent))
    try:
        os.chmod(staging, mode)
        for model in models:
            for rel, data in model.files.items():
                target = staging / model.name / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        report = validate_repository(staging, load=True, triton_release=triton_release)
        notes.extend(f"{p}" for p in report.warnings)
        if not report.ok:
            details = "; ".join(str(p) for p in report.errors)
            raise ModelInitError(
                dest,
                f"the validator rejects what init would write, so nothing was written: {details}",
                "this is a bug in init: please report it with the model file",
            )
        summary = report.summary().replace(str(staging), str(dest))
        if not dest.exists():
            os.rename(staging, dest)
            staging = None
            return summary
        done: list[tuple[str, Path | None]] = []
        try:
            for model in models:
                target = dest / model.name
                backup = None
                if target.exists() or target.is_symlink():
                    backup = staging / f".replaced-{model.name}"
                    os.rename(target, backup)
                done.append((model.name, backup))
                os.rename(staging / model.name, target)
        except OSError as exc:
            for name, backup in reversed(done):
                target = dest / name
                if target.exists() and not (staging / name).exists():
                    os.rename(target, staging / name)
                if backup is not None and backup.exists():
                    os.rename(backup, target)
            raise ModelInitError(dest, f"cannot move the models into place ({exc}); nothing was changed") from None
        return summary
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for directory in created:  # the parent directories init made, innermost first
            try:
                directory.rmdir()
            except OSError:
                break
        raise
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
