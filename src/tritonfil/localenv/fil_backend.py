"""The local stand-in for Triton's FIL backend: a Python-based backend serving FIL models with Treelite on CPU.

The local environment installs this file as ``BACKEND_DIR/fil/model.py``. Triton's Python-based backends
(python backend >= 23.x) then serve every model whose config says ``backend: "fil"`` with it, so the
unmodified FIL repository loads: same ``config.pbtxt``, same model files, same parameters. It reads the FIL
parameters (``model_type``, ``is_classifier``, ``predict_proba``, ``threshold``, ``cpu_nthread``,
``xgboost_allow_unknown_field``), loads the model file with the Treelite loader the FIL backend uses, and
answers with the FIL backend's output semantics:

* regressor: one value per row;
* binary classifier: ``1.0`` when P(class 1) > threshold else ``0.0``; with ``predict_proba``
  two columns ``[1 - p, p]``;
* multi-class classifier: the argmax class index; with ``predict_proba`` one probability per class.

What differs from the real backend (docs/local-environment.md): it predicts on CPU with Treelite's GTIL
(the FIL backend runs FIL on the GPU, or its CPU path); GPU-only parameters (``layout``, ``storage_type``,
``threads_per_tree``, ``use_experimental_optimizations``...) are accepted and ignored.

The semantics live in plain functions (`load_treelite_model`, `fil_predict`) so the sample generator, the
benchmark and the unit tests run exactly what the server runs. Only the class touches
``triton_python_backend_utils``, which exists inside the python backend stub alone. This file imports
nothing from tritonfil: the stub loads it as a standalone ``model.py``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

DEFAULT_FILENAMES = {
    "xgboost_ubj": "xgboost.ubj",
    "xgboost_json": "xgboost.json",
    "xgboost": "xgboost.model",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}


class FilSemanticsError(ValueError):
    """The configuration asks for an output the FIL backend would not produce."""


def load_treelite_model(path: str, model_type: str, allow_unknown_field: bool = False) -> Any:
    """Load PATH with the Treelite loader the FIL backend uses for MODEL_TYPE."""
    import treelite

    if model_type in ("xgboost_json", "xgboost_ubj"):
        choice = "json" if model_type == "xgboost_json" else "ubjson"
        return treelite.frontend.load_xgboost_model(path, format_choice=choice, allow_unknown_field=allow_unknown_field)
    if model_type == "xgboost":
        return treelite.frontend.load_xgboost_model_legacy_binary(path)
    if model_type == "lightgbm":
        return treelite.frontend.load_lightgbm_model(path)
    if model_type == "treelite_checkpoint":
        return treelite.Model.deserialize(path)
    raise FilSemanticsError(f"{model_type} not recognized as a valid serialization format.")


def model_classes(model: Any) -> int:
    """Treelite's class count: 1 for regressors and kBinaryClf models, k for k-class models."""
    return int(max(model.get_header_accessor().get_field("num_class")))


def _softmax(margin: np.ndarray) -> np.ndarray:
    shifted = margin - margin.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def fil_predict(
    model: Any,
    data: np.ndarray,
    *,
    is_classifier: bool,
    predict_proba: bool = False,
    threshold: float = 0.5,
    nthread: int = -1,
) -> np.ndarray:
    """Predict DATA (rows x features, float32) the way the FIL backend fills output__0."""
    import treelite

    data = np.ascontiguousarray(data, dtype=np.float32)
    num_class = model_classes(model)
    postprocessor = model.get_header_accessor().get_field("postprocessor")
    if predict_proba and num_class > 1 and postprocessor == "max_index":
        # FIL switches a max_index model to softmax when probabilities are requested.
        scores = _softmax(treelite.gtil.predict(model, data, nthread=nthread, pred_margin=True)[:, 0, :])
    else:
        scores = treelite.gtil.predict(model, data, nthread=nthread)[:, 0, :]
    scores = scores.astype(np.float32, copy=False)
    if not is_classifier:
        if predict_proba:
            raise FilSemanticsError("predict_proba is true but is_classifier is false")
        if num_class > 1:
            raise FilSemanticsError(
                f"is_classifier is false but the model has {num_class} classes: FIL cannot fit"
                " one score per class into a single output value"
            )
        return scores[:, :1].copy()
    if num_class == 1:
        positive = scores[:, 0]
        if predict_proba:
            return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)
        return (positive > np.float32(threshold)).astype(np.float32)[:, None]
    if predict_proba:
        return scores.copy()
    return np.argmax(scores, axis=1).astype(np.float32)[:, None]


class TritonPythonModel:
    """Triton python backend entry point."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb_utils = pb_utils
        config = json.loads(args["model_config"])
        params = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        model_type = params.get("model_type", "xgboost")
        if model_type not in DEFAULT_FILENAMES:
            raise FilSemanticsError(f"{model_type} not recognized as a valid serialization format.")
        if "is_classifier" not in params:
            raise FilSemanticsError("Required parameter is_classifier not found in config")
        self.is_classifier = params["is_classifier"] == "true"
        self.predict_proba = params.get("predict_proba", "false") == "true"
        if self.is_classifier and "threshold" not in params:
            raise FilSemanticsError("Required parameter threshold not found in config")
        self.threshold = float(params["threshold"]) if self.is_classifier else 0.5
        self.nthread = int(params.get("cpu_nthread", "-1"))
        filename = config.get("default_model_filename") or DEFAULT_FILENAMES[model_type]
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        try:
            self.model = load_treelite_model(
                path, model_type, params.get("xgboost_allow_unknown_field", "false") == "true"
            )
        except Exception as exc:  # what FIL reports: the file and Treelite's error
            detail = " ".join(str(exc).split("\n\n")[0].split())
            raise FilSemanticsError(
                f"failed to load '{filename}': Model failed to load into Treelite with error: {detail}"
            ) from None
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        # Fail at load time, like FIL, when the configuration cannot be served.
        fil_predict(
            self.model,
            np.zeros((1, self.model.num_feature), dtype=np.float32),
            is_classifier=self.is_classifier,
            predict_proba=self.predict_proba,
            threshold=self.threshold,
            nthread=self.nthread,
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = self.pb_utils
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        sizes = [a.shape[0] for a in arrays]
        batch = np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
        result = fil_predict(
            self.model,
            batch,
            is_classifier=self.is_classifier,
            predict_proba=self.predict_proba,
            threshold=self.threshold,
            nthread=self.nthread,
        )
        responses = []
        start = 0
        for size in sizes:
            part = np.ascontiguousarray(result[start : start + size])
            start += size
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output_name, part)]))
        return responses

    def finalize(self) -> None:
        self.model = None
