# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Validate a Triton model repository of FIL models before anything is uploaded.

This is the one validation implementation. It is plain Python with no Ansible import, so the
module ``tritonfil.eks.triton_model_repository``, the ``tritonfil`` package (``tritonfil models
validate``) and the tests all run exactly this code.

What it checks, for every model directory, reporting every problem at once:

* ``config.pbtxt`` parses as protobuf text against Triton's ``inference.ModelConfig`` (the proto
  that tritonclient ships), its ``name`` agrees with the directory, ``backend`` is ``fil``;
* version folders are numeric and ``version_policy`` selects versions that exist;
* each version holds the model file under the name the FIL backend opens for its ``model_type``
  (or ``default_model_filename``), and the file's content is that format;
* FIL parameters: known ones with valid values, the ones renamed or removed in FIL 25.09 with
  their replacement named, unknown ones (Triton ignores those silently);
* ``input__0`` dims against the model's feature count, ``output__0`` dims against
  ``is_classifier`` / ``predict_proba`` / the number of classes;
* instance group kinds and dynamic batching sanity;
* optionally (``load=True``) loads each model file with Treelite and predicts one row.

Facts about a model file (feature count, classes, objective) come from a light reader for each
format (XGBoost JSON/UBJSON, LightGBM text, Treelite checkpoint header), so validation needs
neither XGBoost, LightGBM nor Treelite; ``load=True`` needs Treelite.
"""

from __future__ import annotations

import difflib
import json
import re
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# What the FIL backend of the pinned Triton release (scripts/versions.env TRITON_RELEASE; the callers
# pass it as ``triton_release``, module_utils cannot read files inside a module) expects (docs/models.md):
# - Parameter names: FIL 25.09 renamed output_class/algo/threads_per_tree and removed
#   storage_type/blocks_per_sm (fil_backend src/shared_state.h).
# - Model files: XGBoost >= 3.1 writes a vector base_score that needs Treelite >= 4.6.1
#   (dmlc/treelite#638), which FIL releases built before November 2025 lack.
FIL_PARAMETER_FORMAT_SINCE = "25.09"
# Newest XGBoost model-file version known to load in the targeted FIL backend's Treelite.
XGBOOST_NEWEST_KNOWN = (3, 2)

CONFIG_NAME = "config.pbtxt"
REPOSITORY = "(repository)"

# model_type -> the file name the FIL backend opens when default_model_filename is unset.
MODEL_FILENAMES = {
    "xgboost_ubj": "xgboost.ubj",
    "xgboost_json": "xgboost.json",
    "xgboost": "xgboost.model",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
FORMAT_NAMES = {
    "xgboost_ubj": "XGBoost UBJSON",
    "xgboost_json": "XGBoost JSON",
    "xgboost": "XGBoost legacy binary",
    "lightgbm": "LightGBM text",
    "treelite_checkpoint": "a Treelite checkpoint",
}

BOOL_PARAMETERS = ("is_classifier", "predict_proba", "use_experimental_optimizations", "xgboost_allow_unknown_field")
KNOWN_PARAMETERS = (
    "model_type",
    "is_classifier",
    "predict_proba",
    "threshold",
    "layout",
    "chunk_size",
    "cpu_nthread",
    "transfer_threshold",
    "use_experimental_optimizations",
    "xgboost_allow_unknown_field",
)
# Removed in FIL 25.09, with the key that replaces them (fil_backend src/shared_state.h).
RENAMED_PARAMETERS = {
    "output_class": ("is_classifier", 'same value: "true" for classifiers, "false" for regressors'),
    "algo": ("layout", "values: depth_first, breadth_first, layered"),
    "threads_per_tree": ("chunk_size", "a power of 2 from 1 to 32"),
}
REMOVED_PARAMETERS = ("storage_type", "blocks_per_sm")
LAYOUTS = ("depth_first", "breadth_first", "layered", "layered_children_together")
FIL_INSTANCE_KINDS = ("KIND_AUTO", "KIND_GPU", "KIND_CPU")
OTHER_BACKENDS = ("python", "onnxruntime", "pytorch", "tensorflow", "tensorrt", "openvino", "dali", "vllm")
TREESHAP_OUTPUT = "treeshap_output"


class ModelRepositoryError(Exception):
    """Raised by callers that turn a failed validation into an exception."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class Problem:
    """One finding: which model, which file, which field, what is wrong and how to fix it."""

    model: str
    file: str
    field: str
    message: str
    hint: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        text = f"{self.model}: {self.file}: {self.field}: {self.message}"
        return f"{text} (fix: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class ModelFacts:
    """What the model file says about itself."""

    format: str
    num_feature: int | None = None
    kind: str | None = None  # "regressor", "binary", "multiclass", "other"
    num_class: int | None = None  # classes for multiclass, 2 for binary, 1 for regressors
    num_target: int = 1
    writer: str = ""  # e.g. "XGBoost 3.2.0", "LightGBM v4", "Treelite 4.8.1"
    detail: str = ""  # objective / task type as written in the file
    source: str = "header"  # "header" (light reader) or "treelite" (load=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelSummary:
    name: str
    path: str
    backend: str = ""
    model_type: str = ""
    versions: list[int] = field(default_factory=list)
    model_files: list[str] = field(default_factory=list)
    is_classifier: bool | None = None
    predict_proba: bool = False
    threshold: float | None = None
    max_batch_size: int = 0
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    instance_groups: list[dict[str, Any]] = field(default_factory=list)
    dynamic_batching: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    repository: str
    models: list[ModelSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    loaded: bool = False
    triton_release: str | None = None  # the pinned release the checks target (None: not given)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        names = ", ".join(m.name for m in self.models) or "no models"
        if self.ok:
            extra = f", {len(self.warnings)} warning(s)" if self.warnings else ""
            return f"model repository {self.repository} is valid ({names}{extra})"
        return (
            f"model repository {self.repository} has {len(self.errors)} error(s)"
            f" and {len(self.warnings)} warning(s) in {names}"
        )

    def format_text(self) -> str:
        lines = [f"{p.severity.upper()}: {p}" for p in self.problems]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "valid": self.ok,
            "loaded": self.loaded,
            "target_triton_release": self.triton_release,
            "summary": self.summary(),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "models": [m.to_dict() for m in self.models],
            "problems": [p.to_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------------------------
# config.pbtxt


def model_config_module() -> Any:
    """Triton's generated ModelConfig protobuf module, as shipped by tritonclient."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"tritonclient[grpc] is needed to parse config.pbtxt against Triton's ModelConfig ({exc})"
        ) from exc
    return model_config_pb2


class ConfigSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def parse_config_text(text: str) -> Any:
    """Parse config.pbtxt text into an ``inference.ModelConfig`` message."""
    from google.protobuf import text_format

    config = model_config_module().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        message = str(exc)
        line, column = exc.GetLine(), exc.GetColumn()
        message = re.sub(r"^\d+:\d+ : ", "", message)
        raise ConfigSyntaxError(message, line, column) from exc
    return config


def load_config(path: str | Path) -> Any:
    return parse_config_text(Path(path).read_text(encoding="utf-8"))


def config_to_text(config: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def config_parameters(config: Any) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def enum_name(enum_type: Any, value: int) -> str:
    try:
        return enum_type.Name(value)
    except ValueError:
        return str(value)


def parse_bool(value: str | None) -> bool | None:
    """The FIL backend reads booleans with std::boolalpha: exactly 'true' or 'false'."""
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def expected_output_width(is_classifier: bool, predict_proba: bool, facts: ModelFacts | None) -> int | None:
    """Values per row in output__0 under FIL semantics; None when it depends on unknown facts."""
    if not is_classifier:
        return 1
    if not predict_proba:
        return 1  # class index (thresholded for binary classifiers, argmax otherwise)
    if facts is None or facts.num_class is None:
        return None
    return max(facts.num_class, 2)  # binary models return [P(class 0), P(class 1)]


# --------------------------------------------------------------------------------------------
# Model files: sniffing and light readers


def sniff_format(path: Path) -> str:
    """Guess the serialization format from the first bytes: one of MODEL_FILENAMES' keys or 'other'."""
    with path.open("rb") as handle:
        head = handle.read(64)
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        rest = stripped[1:].lstrip()
        if rest[:1] in (b'"', b"}"):
            return "xgboost_json"
        if rest[:1] in (b"L", b"l", b"i", b"U", b"I", b"$", b"#", b"}"):
            return "xgboost_ubj"
        return "other"
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n") or b"version=v" in head:
        return "lightgbm"
    if head.startswith(b"binf"):
        return "xgboost"
    if len(head) >= 12:
        major, minor, patch = struct.unpack_from("<iii", head)
        if 1 <= major <= 9 and 0 <= minor <= 99 and 0 <= patch <= 99:
            return "treelite_checkpoint"
    return "other"


class UBJSONError(ValueError):
    pass


def decode_ubjson(data: bytes) -> Any:
    """Decode UBJSON (the subset XGBoost writes: big-endian, optimized typed containers)."""
    numeric = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q", "d": ">f", "D": ">d"}
    pos = 0

    def take(count: int) -> bytes:
        nonlocal pos
        if pos + count > len(data):
            raise UBJSONError(f"truncated at byte {pos}")
        chunk = data[pos : pos + count]
        pos += count
        return chunk

    def marker() -> str:
        while True:
            char = take(1).decode("latin-1")
            if char != "N":
                return char

    def integer(mark: str) -> int:
        if mark not in ("i", "U", "I", "l", "L"):
            raise UBJSONError(f"expected an integer length at byte {pos}, got {mark!r}")
        fmt = numeric[mark]
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    def string() -> str:
        return take(integer(marker())).decode("utf-8")

    def value(mark: str) -> Any:
        if mark in numeric:
            fmt = numeric[mark]
            return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
        if mark in ("S", "H"):
            return string()
        if mark == "C":
            return take(1).decode("latin-1")
        if mark == "Z":
            return None
        if mark == "T":
            return True
        if mark == "F":
            return False
        if mark in ("[", "{"):
            return container(mark)
        raise UBJSONError(f"unknown marker {mark!r} at byte {pos - 1}")

    def container(kind: str) -> Any:
        nonlocal pos
        item_type = None
        count = None
        nxt = data[pos : pos + 1].decode("latin-1")
        if nxt == "$":
            pos += 1
            item_type = take(1).decode("latin-1")
            if take(1) != b"#":
                raise UBJSONError(f"typed container without count at byte {pos}")
            count = integer(marker())
        elif nxt == "#":
            pos += 1
            count = integer(marker())
        if kind == "[":
            if item_type in numeric and count is not None:
                fmt = numeric[item_type]
                size = struct.calcsize(fmt)
                return list(struct.unpack(f">{count}{fmt[1]}", take(size * count)))
            items: list[Any] = []
            while count is None or len(items) < count:
                if count is None and data[pos : pos + 1] == b"]":
                    pos += 1
                    break
                items.append(value(item_type or marker()))
            return items
        obj: dict[str, Any] = {}
        while count is None or len(obj) < count:
            if count is None and data[pos : pos + 1] == b"}":
                pos += 1
                break
            key = take(integer(marker())).decode("utf-8")
            obj[key] = value(item_type or marker())
        return obj

    return value(marker())


def _xgboost_facts(doc: Any, fmt: str) -> ModelFacts:
    learner = doc["learner"]
    params = learner["learner_model_param"]
    version = doc.get("version") or []
    objective = str(learner.get("objective", {}).get("name", ""))
    booster = str(learner.get("gradient_booster", {}).get("name", ""))
    num_class = int(params.get("num_class", 0) or 0)
    num_target = int(params.get("num_target", 1) or 1)
    if objective.startswith("multi:"):
        kind, classes = "multiclass", max(num_class, 2)
    elif objective.startswith("binary:"):
        kind, classes = "binary", 2
    elif objective.startswith(("reg:", "count:", "survival:")):
        kind, classes = "regressor", 1
    else:
        kind, classes = "other", max(num_class, 1)
    detail = f"objective {objective}" + (f", booster {booster}" if booster and booster != "gbtree" else "")
    return ModelFacts(
        format=fmt,
        num_feature=int(params["num_feature"]),
        kind=kind,
        num_class=classes,
        num_target=num_target,
        writer="XGBoost " + ".".join(str(v) for v in version) if version else "XGBoost",
        detail=detail,
    )


def _lightgbm_facts(path: Path) -> ModelFacts:
    header: dict[str, str] = {}
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            line = line.strip()
            if line.startswith("Tree=") or number > 200:
                break
            key, sep, val = line.partition("=")
            if sep:
                header[key] = val
    if "max_feature_idx" not in header:
        raise ValueError("no max_feature_idx= line in the header: not a LightGBM text model")
    objective = header.get("objective", "")
    name = objective.split(" ")[0]
    num_class = int(header.get("num_class", "1"))
    if name in ("multiclass", "multiclassova", "softmax", "multiclass_ova", "ova", "ovr"):
        kind, classes = "multiclass", num_class
    elif name in ("binary", "cross_entropy", "xentropy"):
        kind, classes = "binary", 2
    elif name.startswith(("lambdarank", "rank_xendcg")):
        kind, classes = "other", 1
    else:
        kind, classes = "regressor", 1
    return ModelFacts(
        format="lightgbm",
        num_feature=int(header["max_feature_idx"]) + 1,
        kind=kind,
        num_class=classes,
        writer=f"LightGBM {header.get('version', '')}".strip(),
        detail=f"objective {objective}",
    )


TREELITE_TASKS = {0: "kBinaryClf", 1: "kRegressor", 2: "kMultiClf", 3: "kLearningToRank", 4: "kIsolationForest"}


def _treelite_facts(path: Path) -> ModelFacts:
    """Read the Treelite 4 checkpoint header (version, num_feature, task, classes) without Treelite."""
    with path.open("rb") as handle:
        head = handle.read(64)
    major, minor, patch = struct.unpack_from("<iii", head)
    facts = ModelFacts(format="treelite_checkpoint", writer=f"Treelite {major}.{minor}.{patch}")
    if major != 4 or len(head) < 44:
        return facts
    (num_feature,) = struct.unpack_from("<i", head, 22)
    task = head[26]
    (num_target,) = struct.unpack_from("<i", head, 28)
    (classes_len,) = struct.unpack_from("<Q", head, 32)
    num_class = struct.unpack_from("<i", head, 40)[0] if classes_len >= 1 else 1
    task_name = TREELITE_TASKS.get(task, f"task {task}")
    if task_name == "kBinaryClf":
        kind, classes = "binary", 2
    elif task_name == "kMultiClf":
        kind, classes = ("binary", 2) if num_class == 2 else ("multiclass", num_class)
    elif task_name == "kRegressor":
        kind, classes = "regressor", 1
    else:
        kind, classes = "other", num_class
    facts.num_feature = num_feature
    facts.kind = kind
    facts.num_class = classes
    facts.num_target = num_target
    facts.detail = f"task {task_name}"
    return facts


def read_model_facts(path: Path, model_type: str) -> ModelFacts | None:
    """Facts from the file header for MODEL_TYPE; None for formats without a light reader.

    Raises ValueError when the file cannot be read as that format.
    """
    if model_type == "xgboost_json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return _xgboost_facts(doc, model_type)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON ({exc})") from exc
        except (KeyError, TypeError) as exc:
            raise ValueError(f"JSON without the XGBoost learner fields ({exc})") from exc
    if model_type == "xgboost_ubj":
        try:
            return _xgboost_facts(decode_ubjson(path.read_bytes()), model_type)
        except UBJSONError as exc:
            raise ValueError(f"not valid UBJSON ({exc})") from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"UBJSON without the XGBoost learner fields ({exc})") from exc
    if model_type == "lightgbm":
        return _lightgbm_facts(path)
    if model_type == "treelite_checkpoint":
        return _treelite_facts(path)
    return None


def load_with_treelite(path: Path, model_type: str, allow_unknown_field: bool = False) -> Any:
    """Load PATH the way the FIL backend does (Treelite's loader for MODEL_TYPE)."""
    import treelite

    if model_type == "xgboost_json":
        return treelite.frontend.load_xgboost_model(
            str(path), format_choice="json", allow_unknown_field=allow_unknown_field
        )
    if model_type == "xgboost_ubj":
        return treelite.frontend.load_xgboost_model(
            str(path), format_choice="ubjson", allow_unknown_field=allow_unknown_field
        )
    if model_type == "xgboost":
        return treelite.frontend.load_xgboost_model_legacy_binary(str(path))
    if model_type == "lightgbm":
        return treelite.frontend.load_lightgbm_model(str(path))
    if model_type == "treelite_checkpoint":
        return treelite.Model.deserialize(str(path))
    raise ValueError(f"unknown model_type {model_type!r}")


def treelite_facts(model: Any, fmt: str) -> ModelFacts:
    import treelite

    header = model.get_header_accessor()
    task = TREELITE_TASKS.get(int(header.get_field("task_type")[0]), "other")
    num_class = int(max(header.get_field("num_class")))
    num_target = int(header.get_field("num_target")[0])
    if task == "kBinaryClf" or (task == "kMultiClf" and num_class == 2):
        kind, classes = "binary", 2
    elif task == "kMultiClf":
        kind, classes = "multiclass", num_class
    elif task == "kRegressor":
        kind, classes = "regressor", 1
    else:
        kind, classes = "other", num_class
    return ModelFacts(
        format=fmt,
        num_feature=int(model.num_feature),
        kind=kind,
        num_class=classes,
        num_target=num_target,
        writer=f"loaded by Treelite {treelite.__version__}",
        detail=f"task {task}, postprocessor {header.get_field('postprocessor')}",
        source="treelite",
    )


# --------------------------------------------------------------------------------------------
# Validation


class _ModelChecker:
    def __init__(self, root: Path, model_dir: Path, load: bool, triton_release: str | None = None) -> None:
        self.triton_release = triton_release
        self.root = root
        self.dir = model_dir
        self.name = model_dir.name
        self.load = load
        self.problems: list[Problem] = []
        self.summary = ModelSummary(name=self.name, path=str(model_dir))
        self.config_file = f"{self.name}/{CONFIG_NAME}"

    # -- reporting
    def error(self, file: str, fld: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.name, file, fld, message, hint, "error"))

    def warning(self, file: str, fld: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.name, file, fld, message, hint, "warning"))

    def cfg_error(self, fld: str, message: str, hint: str = "") -> None:
        self.error(self.config_file, fld, message, hint)

    # -- entry
    def run(self) -> None:
        versions = self.check_versions()
        config_path = self.dir / CONFIG_NAME
        if not config_path.is_file():
            self.error(
                self.config_file,
                "-",
                "config.pbtxt is missing",
                'write one with backend: "fil", max_batch_size, input__0, output__0 and the FIL parameters;'
                " Triton cannot auto-complete a FIL model",
            )
            return
        try:
            config = load_config(config_path)
        except ConfigSyntaxError as exc:
            self.cfg_error(
                f"line {exc.line} column {exc.column}",
                f"not valid protobuf text for inference.ModelConfig: {exc}",
                "check the field name and the brackets against Triton's model_config.proto",
            )
            return
        except UnicodeDecodeError as exc:
            self.cfg_error("-", f"not UTF-8 text ({exc})", "save config.pbtxt as UTF-8 text")
            return
        self.summarize(config, versions)
        self.check_name(config)
        if not self.check_backend(config):
            self.check_batching(config)
            return
        self.check_version_policy(config, versions)
        params = config_parameters(config)
        self.check_parameters(params)
        model_type = params.get("model_type", "")
        facts = self.check_model_files(config, params, versions)
        self.summary.facts = facts.to_dict() if facts else None
        self.check_inputs(config, facts)
        self.check_outputs(config, params, facts)
        self.check_task(params, facts)
        self.check_batching(config)
        self.check_instance_groups(config)
        if model_type == "xgboost" and facts is None and self.summary.model_files and not self.load:
            self.warning(
                self.config_file,
                "parameters.model_type",
                f"{FORMAT_NAMES[model_type]} files have no header reader here, so feature and class"
                " counts were not checked",
                "run with load enabled (--load) to check them with Treelite",
            )

    def summarize(self, config: Any, versions: list[int]) -> None:
        mc = model_config_module()
        params = config_parameters(config)
        s = self.summary
        s.backend = config.backend or config.platform
        s.model_type = params.get("model_type", "")
        s.versions = versions
        s.is_classifier = parse_bool(params.get("is_classifier"))
        s.predict_proba = parse_bool(params.get("predict_proba")) is True
        try:
            s.threshold = float(params["threshold"]) if "threshold" in params else None
        except ValueError:
            s.threshold = None
        s.max_batch_size = config.max_batch_size
        s.inputs = [
            {"name": t.name, "data_type": enum_name(mc.DataType, t.data_type), "dims": list(t.dims)}
            for t in config.input
        ]
        s.outputs = [
            {"name": t.name, "data_type": enum_name(mc.DataType, t.data_type), "dims": list(t.dims)}
            for t in config.output
        ]
        s.instance_groups = [
            {"kind": enum_name(mc.ModelInstanceGroup.Kind, g.kind), "count": g.count or 1}
            for g in config.instance_group
        ]
        s.dynamic_batching = config.HasField("dynamic_batching")
        s.parameters = params

    def check_versions(self) -> list[int]:
        versions = []
        for entry in sorted(self.dir.iterdir()):
            if not entry.is_dir():
                continue
            if entry.name.isdigit():
                versions.append(int(entry.name))
            else:
                self.error(
                    f"{self.name}/{entry.name}",
                    "version",
                    f"'{entry.name}' is not a numeric version directory; Triton ignores it",
                    "rename it to a positive integer such as 1",
                )
        if not versions:
            self.error(
                f"{self.name}/",
                "version",
                "no numeric version directory holds a model file",
                f"put the model file in {self.name}/1/",
            )
        return sorted(versions)

    def check_name(self, config: Any) -> None:
        if config.name and config.name != self.name:
            self.cfg_error(
                "name",
                f"name '{config.name}' does not match the directory name '{self.name}'",
                f'set name: "{self.name}" or rename the directory; Triton requires them to agree',
            )

    def check_backend(self, config: Any) -> bool:
        backend = config.backend
        if backend == "fil":
            return True
        if not backend and config.platform:
            kind = "an ensemble" if config.platform == "ensemble" else f"platform '{config.platform}'"
            self.warning(
                self.config_file,
                "platform",
                f"{kind}, not a FIL model: only the directory layout and batching were checked",
            )
            return False
        if not backend:
            self.cfg_error("backend", "backend is not set", 'add backend: "fil"')
            return False
        if backend in OTHER_BACKENDS:
            self.warning(
                self.config_file,
                "backend",
                f"backend '{backend}', not a FIL model: only the directory layout and batching were checked",
            )
            return False
        close = difflib.get_close_matches(backend.lower(), ["fil", *OTHER_BACKENDS], n=1)
        self.cfg_error(
            "backend",
            f"backend '{backend}' is not a Triton backend this repository can use",
            f'did you mean "{close[0]}"?' if close else 'use backend: "fil" for forest models',
        )
        return False

    def check_version_policy(self, config: Any, versions: list[int]) -> None:
        if not config.HasField("version_policy"):
            return
        policy = config.version_policy
        which = policy.WhichOneof("policy_choice")
        available = ", ".join(str(v) for v in versions) or "none"
        if which == "specific":
            for version in policy.specific.versions:
                if version not in versions:
                    self.cfg_error(
                        "version_policy.specific.versions",
                        f"version {version} is selected but {self.name}/{version}/ does not exist",
                        f"select existing versions (available: {available})",
                    )
        elif which == "latest" and policy.latest.num_versions < 1:
            self.cfg_error(
                "version_policy.latest.num_versions",
                f"num_versions is {policy.latest.num_versions}: no version would be served",
                "set num_versions: 1",
            )

    def served_versions(self, config: Any, versions: list[int]) -> list[int]:
        if config.HasField("version_policy"):
            policy = config.version_policy
            which = policy.WhichOneof("policy_choice")
            if which == "specific":
                return [v for v in policy.specific.versions if v in versions]
            if which == "all":
                return versions
            if which == "latest":
                return versions[-max(policy.latest.num_versions, 1) :]
        return versions[-1:]

    def check_parameters(self, params: dict[str, str]) -> None:
        for key, value in params.items():
            fld = f"parameters.{key}"
            if key in RENAMED_PARAMETERS:
                new, values = RENAMED_PARAMETERS[key]
                self.cfg_error(
                    fld,
                    f"'{key}' was removed in FIL backend {FIL_PARAMETER_FORMAT_SINCE}; its replacement is '{new}'",
                    f"rename the key to '{new}' ({values})",
                )
            elif key in REMOVED_PARAMETERS:
                self.cfg_error(
                    fld,
                    f"'{key}' was removed in FIL backend {FIL_PARAMETER_FORMAT_SINCE} and has no replacement",
                    "delete it",
                )
            elif key not in KNOWN_PARAMETERS:
                close = difflib.get_close_matches(key, [*KNOWN_PARAMETERS, *RENAMED_PARAMETERS], n=1)
                hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(KNOWN_PARAMETERS)
                self.cfg_error(
                    fld,
                    f"'{key}' is not a FIL backend parameter; Triton passes it on and FIL ignores it",
                    hint,
                )
            elif key in BOOL_PARAMETERS and parse_bool(value) is None:
                guess = "true" if value.strip().lower() in ("1", "yes", "on", "true", "y") else "false"
                self.cfg_error(
                    fld,
                    f"'{value}' is not a boolean; the FIL backend reads only 'true' or 'false'",
                    f'use string_value: "{guess}"',
                )
        self.check_parameter_values(params)

    def check_parameter_values(self, params: dict[str, str]) -> None:
        model_type = params.get("model_type")
        if model_type is None:
            self.cfg_error(
                "parameters.model_type",
                "model_type is not set; the FIL backend then assumes 'xgboost' (the legacy binary format)",
                "set model_type to one of " + ", ".join(MODEL_FILENAMES),
            )
        elif model_type not in MODEL_FILENAMES:
            close = difflib.get_close_matches(model_type, list(MODEL_FILENAMES), n=1)
            self.cfg_error(
                "parameters.model_type",
                f"model_type '{model_type}' is not a FIL model type",
                f"did you mean '{close[0]}'?" if close else "use one of " + ", ".join(MODEL_FILENAMES),
            )
        is_classifier = parse_bool(params.get("is_classifier"))
        if "is_classifier" not in params and "output_class" not in params:
            self.cfg_error(
                "parameters.is_classifier",
                "is_classifier is not set; the FIL backend requires it"
                " ('Required parameter is_classifier not found in config')",
                'set is_classifier to "true" for a classifier, "false" for a regressor',
            )
        if is_classifier:
            if "threshold" not in params:
                self.cfg_error(
                    "parameters.threshold",
                    "threshold is not set; the FIL backend reads it without a default when is_classifier is true",
                    'set threshold to "0.5" (the decision threshold on the class-1 probability)',
                )
            else:
                try:
                    threshold = float(params["threshold"])
                except ValueError:
                    self.cfg_error("parameters.threshold", f"'{params['threshold']}' is not a number", 'e.g. "0.5"')
                else:
                    if not 0.0 <= threshold <= 1.0:
                        self.warning(
                            self.config_file,
                            "parameters.threshold",
                            f"threshold {threshold} is outside [0, 1]; it is compared with a probability",
                            'e.g. "0.5"',
                        )
        elif is_classifier is False and "threshold" in params:
            self.warning(
                self.config_file,
                "parameters.threshold",
                "threshold is ignored because is_classifier is false",
                "delete it, or set is_classifier to true",
            )
        if parse_bool(params.get("predict_proba")) and is_classifier is False:
            self.cfg_error(
                "parameters.predict_proba",
                "predict_proba is true but is_classifier is false: a regressor has no class probabilities",
                'set predict_proba to "false" (or is_classifier to "true" if this is a classifier)',
            )
        if "layout" in params and params["layout"] not in LAYOUTS:
            self.cfg_error(
                "parameters.layout",
                f"layout '{params['layout']}' is not one of depth_first, breadth_first, layered",
                "depth_first suits deep trees, breadth_first shallow ones",
            )
        if "chunk_size" in params:
            try:
                chunk = int(params["chunk_size"])
            except ValueError:
                chunk = 0
            if chunk not in (1, 2, 4, 8, 16, 32):
                self.cfg_error(
                    "parameters.chunk_size",
                    f"chunk_size '{params['chunk_size']}' is not a power of 2 from 1 to 32",
                    'e.g. "4"',
                )
        for key, minimum in (("cpu_nthread", -1), ("transfer_threshold", 0)):
            if key in params:
                try:
                    number = int(params[key])
                except ValueError:
                    number = minimum - 1
                if number < minimum:
                    self.cfg_error(
                        f"parameters.{key}",
                        f"{key} '{params[key]}' is not an integer >= {minimum}",
                        '"-1" uses every core' if key == "cpu_nthread" else 'e.g. "0"',
                    )

    def check_model_files(self, config: Any, params: dict[str, str], versions: list[int]) -> ModelFacts | None:
        model_type = params.get("model_type", "xgboost")
        if model_type not in MODEL_FILENAMES:
            return None
        custom = config.default_model_filename
        expected = custom or MODEL_FILENAMES[model_type]
        fld = "default_model_filename" if custom else "parameters.model_type"
        facts: ModelFacts | None = None
        by_name = {name: mt for mt, name in MODEL_FILENAMES.items()}
        for version in self.served_versions(config, versions):
            vdir = self.dir / str(version)
            path = vdir / expected
            rel = f"{self.name}/{version}/{expected}"
            if path.is_dir():
                path = path / "xgboost.model"
                rel = f"{rel}/xgboost.model"
            if not path.is_file():
                present = sorted(p.name for p in vdir.iterdir() if p.is_file()) if vdir.is_dir() else []
                self.missing_file(rel, fld, version, model_type, expected, present, by_name)
                continue
            self.summary.model_files.append(rel)
            version_facts = self.check_file_content(path, rel, model_type, params)
            if version_facts is not None and facts is None:
                facts = version_facts
        return facts

    def missing_file(
        self,
        rel: str,
        fld: str,
        version: int,
        model_type: str,
        expected: str,
        present: list[str],
        by_name: dict[str, str],
    ) -> None:
        message = f"model file '{expected}' for model_type '{model_type}' is missing from version {version}"
        known = [name for name in present if name in by_name]
        if known:
            other = known[0]
            other_type = by_name[other]
            message += f" (found '{other}', the file name for model_type '{other_type}')"
            hint = (
                f"if the file is {FORMAT_NAMES[model_type]}, rename it to '{expected}';"
                f" if it is {FORMAT_NAMES[other_type]}, set model_type to '{other_type}'"
            )
        elif any(name.endswith((".pkl", ".pickle", ".joblib")) for name in present):
            message += f" (found {', '.join(present)}: FIL cannot load pickles)"
            hint = "convert with treelite.sklearn.import_model(model).serialize('checkpoint.tl')"
        elif present:
            message += f" (found {', '.join(present)})"
            hint = f"rename the model file to '{expected}' or set default_model_filename"
        else:
            hint = f"put the {FORMAT_NAMES[model_type]} file at {rel}"
        self.error(rel, fld, message, hint)

    def check_file_content(self, path: Path, rel: str, model_type: str, params: dict[str, str]) -> ModelFacts | None:
        sniffed = sniff_format(path)
        if sniffed not in (model_type, "other"):
            extra = ""
            if model_type == "xgboost" and sniffed == "xgboost_ubj":
                extra = " (XGBoost >= 3.1 writes UBJSON even to a .model file; the legacy binary format is gone)"
            self.error(
                rel,
                "parameters.model_type",
                f"'{path.name}' holds {FORMAT_NAMES[sniffed]} but model_type is '{model_type}'{extra}",
                f"set model_type to '{sniffed}' and name the file '{MODEL_FILENAMES[sniffed]}'",
            )
            return None
        if sniffed == "other" and model_type != "xgboost":
            self.error(
                rel,
                "parameters.model_type",
                f"'{path.name}' does not look like {FORMAT_NAMES[model_type]}",
                "re-export the model with the training library (see docs/models.md)",
            )
            return None
        facts: ModelFacts | None = None
        try:
            facts = read_model_facts(path, model_type)
        except (ValueError, OSError, struct.error) as exc:
            self.error(
                rel,
                "parameters.model_type",
                f"cannot be read as {FORMAT_NAMES[model_type]}: {exc}",
                "re-export the model with the training library (see docs/models.md)",
            )
            return None
        if facts is not None:
            self.check_writer(facts, rel)
        if self.load:
            facts = self.load_check(path, rel, model_type, params, facts)
        return facts

    def check_writer(self, facts: ModelFacts, rel: str) -> None:
        if facts.format == "treelite_checkpoint":
            major, minor, _patch = (int(x) for x in facts.writer.split()[-1].split("."))
            if major >= 5 or (major, minor) < (3, 9):
                self.error(
                    rel,
                    "parameters.model_type",
                    f"checkpoint written by {facts.writer}; the FIL backend's Treelite 4 reads"
                    " checkpoints from Treelite 3.9 and 4.x only",
                    "re-serialize the model with treelite 4.x (treelite.Model.serialize)",
                )
        elif facts.format.startswith("xgboost") and facts.writer.startswith("XGBoost "):
            try:
                version = tuple(int(v) for v in facts.writer.split()[1].split(".")[:2])
            except ValueError:
                return
            if version > XGBOOST_NEWEST_KNOWN:
                newest = ".".join(str(v) for v in XGBOOST_NEWEST_KNOWN)
                self.warning(
                    rel,
                    "parameters.model_type",
                    f"written by {facts.writer}, newer than XGBoost {newest}, the newest known to load"
                    f" in FIL (Triton {self.triton_release or 'release pinned'}); XGBoost changes its model format"
                    " between minor releases",
                    "load the file with the FIL backend's Treelite before deploying (--load checks the local one)",
                )
        if "booster gblinear" in facts.detail:
            self.error(
                rel,
                "parameters.model_type",
                "an XGBoost linear booster (gblinear) has no trees; FIL serves tree models only",
                "train with booster gbtree or dart",
            )

    def load_check(
        self, path: Path, rel: str, model_type: str, params: dict[str, str], facts: ModelFacts | None
    ) -> ModelFacts | None:
        import numpy as np

        try:
            import treelite
        except ImportError:
            self.error(rel, "-", "load requested but treelite is not installed", "pip install treelite")
            return facts
        try:
            model = load_with_treelite(path, model_type, parse_bool(params.get("xgboost_allow_unknown_field")) is True)
            loaded = treelite_facts(model, model_type)
            treelite.gtil.predict(model, np.zeros((2, loaded.num_feature or 1), dtype=np.float32))
        except Exception as exc:  # Treelite raises TreeliteError and friends
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.error(
                rel,
                "parameters.model_type",
                f"Treelite {treelite.__version__} cannot load it as {FORMAT_NAMES[model_type]}: {message}",
                "re-export the model with the training library (see docs/models.md)",
            )
            return facts
        self.summary.facts = loaded.to_dict()
        return loaded

    def check_inputs(self, config: Any, facts: ModelFacts | None) -> None:
        mc = model_config_module()
        if len(config.input) != 1:
            self.cfg_error(
                "input",
                f"FIL models take exactly one input, found {len(config.input)}",
                'declare one input: name "input__0", TYPE_FP32, dims [ <feature count> ]',
            )
            if not config.input:
                return
        tensor = config.input[0]
        if tensor.name != "input__0":
            self.cfg_error(
                "input[0].name",
                f"input name is '{tensor.name}'; the FIL backend reads 'input__0'",
                'name: "input__0"',
            )
        if tensor.data_type != mc.TYPE_FP32:
            self.cfg_error(
                "input[0].data_type",
                f"{enum_name(mc.DataType, tensor.data_type)} is not supported; FIL inputs are TYPE_FP32",
                "data_type: TYPE_FP32 (cast features to float32 on the client)",
            )
        dims = list(tensor.dims)
        if len(dims) != 1:
            self.cfg_error(
                "input[0].dims",
                f"dims {dims} must have one entry, the feature count"
                " (the batch dimension is implied by max_batch_size)",
                f"dims: [ {facts.num_feature if facts and facts.num_feature else '<feature count>'} ]",
            )
        elif facts is not None and facts.num_feature is not None and dims[0] != facts.num_feature:
            self.cfg_error(
                "input[0].dims",
                f"dims [{dims[0]}] but the model file has {facts.num_feature} features",
                f"set dims: [ {facts.num_feature} ]",
            )

    def check_outputs(self, config: Any, params: dict[str, str], facts: ModelFacts | None) -> None:
        mc = model_config_module()
        if not config.output:
            self.cfg_error("output", "no output declared", 'declare name "output__0", TYPE_FP32, dims [ 1 ]')
            return
        for index, tensor in enumerate(config.output):
            fld = f"output[{index}]"
            if index == 0:
                if tensor.name != "output__0":
                    self.cfg_error(
                        f"{fld}.name",
                        f"output name is '{tensor.name}'; the FIL backend writes 'output__0'",
                        'name: "output__0"',
                    )
            elif tensor.name != TREESHAP_OUTPUT:
                self.cfg_error(
                    f"{fld}.name",
                    f"output '{tensor.name}' is not produced by the FIL backend",
                    f"FIL outputs are output__0 and, for Shapley values, {TREESHAP_OUTPUT}",
                )
            if tensor.data_type != mc.TYPE_FP32:
                self.cfg_error(
                    f"{fld}.data_type",
                    f"{enum_name(mc.DataType, tensor.data_type)} is not supported; FIL outputs are TYPE_FP32",
                    "data_type: TYPE_FP32",
                )
        tensor = config.output[0]
        dims = list(tensor.dims)
        is_classifier = parse_bool(params.get("is_classifier", params.get("output_class")))
        predict_proba = parse_bool(params.get("predict_proba")) is True
        if is_classifier is None:
            return
        if facts is not None and facts.num_target > 1:
            self.cfg_error(
                "output[0].dims",
                f"the model file has {facts.num_target} targets; the FIL backend does not serve multi-output models",
                "train one model per target",
            )
            return
        expected = expected_output_width(is_classifier, predict_proba and is_classifier, facts)
        if len(dims) != 1:
            self.cfg_error(
                "output[0].dims",
                f"dims {dims} must have one entry (values per row)",
                f"dims: [ {expected or '<classes>'} ]",
            )
            return
        if expected is None:
            if dims[0] < 2:
                self.cfg_error(
                    "output[0].dims",
                    f"dims [{dims[0]}] but predict_proba returns one probability per class (at least 2)",
                    "set dims to the number of classes (2 for a binary classifier)",
                )
            return
        if dims[0] != expected:
            if not is_classifier:
                why = "a regressor returns"
            elif not predict_proba:
                why = "is_classifier without predict_proba returns the class index:"
            elif facts is not None and facts.kind == "binary":
                why = "predict_proba on a binary classifier returns [P(class 0), P(class 1)]:"
            else:
                why = f"predict_proba on a {expected}-class classifier returns"
            self.cfg_error(
                "output[0].dims",
                f"dims [{dims[0]}] but {why} {expected} value(s) per row",
                f"set dims: [ {expected} ]",
            )

    def check_task(self, params: dict[str, str], facts: ModelFacts | None) -> None:
        is_classifier = parse_bool(params.get("is_classifier", params.get("output_class")))
        if facts is None or facts.kind is None or is_classifier is None:
            return
        if is_classifier and facts.kind == "regressor":
            self.cfg_error(
                "parameters.is_classifier",
                f"is_classifier is true but the model file is a regressor ({facts.detail})",
                'set is_classifier to "false"',
            )
        elif not is_classifier and facts.kind == "multiclass":
            self.cfg_error(
                "parameters.is_classifier",
                f"is_classifier is false but the model file is a {facts.num_class}-class classifier"
                f" ({facts.detail}); FIL would write {facts.num_class} scores per row into one value",
                'set is_classifier to "true"',
            )
        elif not is_classifier and facts.kind == "binary":
            self.warning(
                self.config_file,
                "parameters.is_classifier",
                f"is_classifier is false for a binary classifier ({facts.detail}): output__0 is the"
                " class-1 probability, not a class",
                'set is_classifier to "true" (and threshold) if clients expect 0/1',
            )

    def check_batching(self, config: Any) -> None:
        batching = config.HasField("dynamic_batching")
        if config.max_batch_size <= 0:
            self.cfg_error(
                "max_batch_size",
                f"max_batch_size is {config.max_batch_size}: the FIL backend needs a batch dimension",
                "set max_batch_size (e.g. 32768; FIL is built for large batches)",
            )
            if batching:
                self.cfg_error(
                    "dynamic_batching",
                    "dynamic batching requires max_batch_size > 0; Triton refuses to load this model",
                    "set max_batch_size > 0",
                )
            return
        if not batching:
            if config.backend == "fil":
                self.warning(
                    self.config_file,
                    "dynamic_batching",
                    "dynamic batching is off; each request runs alone",
                    "add dynamic_batching { } (the FIL documentation recommends it for every deployment)",
                )
            return
        for size in config.dynamic_batching.preferred_batch_size:
            if size <= 0:
                self.cfg_error(
                    "dynamic_batching.preferred_batch_size",
                    f"preferred batch size {size} must be positive",
                    "delete it or use a positive size",
                )
            elif size > config.max_batch_size:
                self.cfg_error(
                    "dynamic_batching.preferred_batch_size",
                    f"preferred batch size {size} exceeds max_batch_size {config.max_batch_size};"
                    " Triton refuses to load this model",
                    f"use sizes <= {config.max_batch_size} or raise max_batch_size",
                )
        delay = config.dynamic_batching.max_queue_delay_microseconds
        if delay > 1_000_000:
            self.warning(
                self.config_file,
                "dynamic_batching.max_queue_delay_microseconds",
                f"a request may wait {delay / 1e6:g} s for a batch to fill",
                "keep it in the hundreds of microseconds",
            )

    def check_instance_groups(self, config: Any) -> None:
        mc = model_config_module()
        for index, group in enumerate(config.instance_group):
            kind = enum_name(mc.ModelInstanceGroup.Kind, group.kind)
            if kind not in FIL_INSTANCE_KINDS:
                self.cfg_error(
                    f"instance_group[{index}].kind",
                    f"{kind} is not supported by the FIL backend (it runs KIND_AUTO, KIND_GPU or KIND_CPU)",
                    "use kind: KIND_GPU on GPU nodes (KIND_AUTO falls back to CPU when no GPU is visible)",
                )
            if kind == "KIND_CPU" and group.gpus:
                self.cfg_error(
                    f"instance_group[{index}].gpus",
                    f"gpus {list(group.gpus)} are listed for a KIND_CPU group",
                    "delete gpus, or use kind: KIND_GPU",
                )
            if group.count < 0:
                self.cfg_error(f"instance_group[{index}].count", f"count {group.count} is negative", "count: 1")


def model_directories(root: Path) -> list[Path]:
    return sorted(entry for entry in root.iterdir() if entry.is_dir())


def validate_repository(
    path: str | Path, *, load: bool = False, models: Iterable[str] | None = None, triton_release: str | None = None
) -> ValidationReport:
    """Validate every model directory under PATH (or only MODELS) against what the FIL backend of TRITON_RELEASE
    (the pinned release) expects, and report every problem."""
    root = Path(path)
    report = ValidationReport(repository=str(path), loaded=load, triton_release=triton_release)
    if not root.is_dir():
        report.problems.append(
            Problem(
                REPOSITORY,
                str(path),
                "-",
                "is not a directory",
                "point at the directory that holds one sub-directory per model",
            )
        )
        return report
    wanted = list(models) if models else None
    dirs = model_directories(root)
    if wanted:
        names = {d.name for d in dirs}
        for name in wanted:
            if name not in names:
                report.problems.append(
                    Problem(
                        name,
                        f"{name}/",
                        "-",
                        f"model directory {root / name} does not exist",
                        "models present: " + (", ".join(sorted(names)) or "none"),
                    )
                )
        dirs = [d for d in dirs if d.name in wanted]
    if not dirs and not wanted:
        report.problems.append(
            Problem(
                REPOSITORY,
                str(path),
                "-",
                "no model directories found",
                "each model is a sub-directory with config.pbtxt and numeric version folders",
            )
        )
    for model_dir in dirs:
        checker = _ModelChecker(root, model_dir, load, triton_release)
        checker.run()
        report.models.append(checker.summary)
        report.problems.extend(checker.problems)
    return report
