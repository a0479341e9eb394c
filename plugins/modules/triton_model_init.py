#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: triton_model_init
short_description: Write a FIL model repository (config, model file, reference) from model files
description:
  - For each model file, detects the format from its content (XGBoost JSON, UBJSON or legacy binary, LightGBM text,
    a Treelite checkpoint; a pickled scikit-learn forest with O(allow_pickle=true), converted into a Treelite
    checkpoint with C(treelite.sklearn.import_model)), reads the feature count, the classes and the objective from
    the model and loads it with Treelite, as the FIL backend does.
  - Writes O(dest)/<name>/config.pbtxt in the pinned FIL parameter format (C(backend "fil"), C(max_batch_size),
    C(input__0) TYPE_FP32 with the feature count, C(output__0) TYPE_FP32 with the dims FIL returns for a classifier,
    a regressor or C(predict_proba), instance group, dynamic batching, C(model_type), C(is_classifier),
    C(predict_proba), C(threshold)), O(dest)/<name>/1/<the file name FIL opens for the model type>, and
    O(dest)/<name>/reference.json, which M(tritonfil.eks.triton_infer) reads with C(reference_dir=<dest>).
  - The reference holds input rows (random within the training range read from the model, or O(models[].rows) /
    O(models[].rows_data)) and the output the training library computes for them in FIL's output semantics
    (Treelite's output for a Treelite checkpoint, or when the library is not installed), with the tolerance to
    compare with. The module fails when Treelite, what FIL runs, disagrees with the library beyond that tolerance.
  - Everything is computed first, written into a temporary directory beside O(dest), validated there with
    M(tritonfil.eks.triton_model_repository)'s checks (loading every model with Treelite), and only then moved into
    place. On any error nothing is written.
  - A non-empty O(dest) is written into only with O(force=true); even then only the model directories being
    written are replaced, and the module fails rather than delete a file init did not write (each model directory
    holds C(.tritonfil-init.json) listing its files and their digests; hidden files are not uploaded by
    M(tritonfil.eks.s3_model_sync)).
  - Idempotent, the same inputs give byte-identical files (random rows are seeded from the model file), so a rerun
    reports no change and writes nothing.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
options:
  dest:
    description:
      - The model repository to write (created when absent; one sub-directory per model).
    type: path
    required: true
  models:
    description:
      - The model files, one model each. Options left unset take the module-level value.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description:
          - The model file.
        type: path
        required: true
      name:
        description:
          - The model name (its directory). Default is the file name without its suffix.
        type: str
      is_classifier:
        description:
          - Per-model O(is_classifier).
        type: bool
      predict_proba:
        description:
          - Per-model O(predict_proba).
        type: bool
      threshold:
        description:
          - Per-model O(threshold).
        type: float
      rows:
        description:
          - A CSV (numbers, an optional header line) or NPY (rows x features) file with the reference input rows,
            in the model's feature order. Default is random rows within the training range.
        type: path
      rows_data:
        description:
          - The reference input rows inline, a list of rows of numbers.
        type: list
        elements: list
      reference_rows:
        description:
          - Per-model O(reference_rows).
        type: int
      seed:
        description:
          - Per-model O(seed).
        type: int
  is_classifier:
    description:
      - Serve the models as classifiers (C(true)) or return the raw score (C(false); for a binary classifier that
        is the class-1 probability). Default is from each model's objective. A regressor cannot be served as a
        classifier, nor a multi-class model as a regressor.
    type: bool
  predict_proba:
    description:
      - Classifiers return one probability per class (two for a binary classifier) instead of the class.
    type: bool
    default: false
  threshold:
    description:
      - The decision threshold on the class-1 probability of binary classifiers.
    type: float
    default: 0.5
  max_batch_size:
    description:
      - C(max_batch_size) of every model.
    type: int
    default: 32768
  max_queue_delay_microseconds:
    description:
      - C(dynamic_batching.max_queue_delay_microseconds).
    type: int
    default: 100
  instance_kind:
    description:
      - The instance group kind. C(KIND_GPU) matches the FIL documentation and the GPU nodes; C(KIND_AUTO) falls
        back to the CPU silently when no GPU is visible.
    type: str
    choices: [KIND_GPU, KIND_CPU, KIND_AUTO]
    default: KIND_GPU
  instance_count:
    description:
      - Instances per device.
    type: int
    default: 1
  reference_rows:
    description:
      - Rows in each reference (the first ones of O(models[].rows) when more are given).
    type: int
    default: 64
  seed:
    description:
      - Seed of the random reference rows. Default is derived from the model file.
    type: int
  allow_pickle:
    description:
      - Load pickled (pickle or joblib) scikit-learn models. Unpickling runs code from the file, so set this only
        for files you trust.
    type: bool
    default: false
  force:
    description:
      - Write into a non-empty O(dest), replacing the directories of the models being written (never deleting a
        file init did not write).
    type: bool
    default: false
  triton_release:
    description:
      - The Triton release the repository is for, passed to the validation (the roles pass the pin,
        C(lookup('tritonfil.eks.pin', 'TRITON_RELEASE'))).
    type: str
attributes:
  check_mode:
    support: full
    description: Reads and converts the models and reports what would be written (RV(files)), writing nothing.
  diff_mode:
    support: partial
    description: Shows each C(config.pbtxt) that would change; model files and references are listed in RV(files).
requirements:
  - numpy
  - treelite >= 4.6.1
  - tritonclient and protobuf (for Triton's ModelConfig)
  - xgboost, lightgbm, scikit-learn to compute references with the training library (Treelite otherwise)
notes:
  - Triton reads only C(config.pbtxt) and the numeric version directories of a model directory, so
    C(reference.json) beside them travels with the repository and is ignored by the server.
seealso:
  - module: tritonfil.eks.triton_model_repository
  - module: tritonfil.eks.triton_infer
"""

EXAMPLES = r"""
- name: Create the repository from freshly trained models
  tritonfil.eks.triton_model_init:
    dest: "{{ playbook_dir }}/../model_repository"
    models:
      - path: /srv/train/fraud.json
      - path: /srv/train/churn.txt
        predict_proba: true
      - path: /srv/train/forest.joblib
        name: risk_forest
        rows: /srv/train/holdout.csv
    allow_pickle: true
  register: init

- name: Replace one retrained model in an existing repository
  tritonfil.eks.triton_model_init:
    dest: /srv/models
    models:
      - path: /srv/train/fraud.json
    force: true

- name: Check the served outputs against the references written with the repository
  tritonfil.eks.triton_infer:
    url: http://127.0.0.1:8000
    reference_dir: /srv/models
    require_reference: true
"""

RETURN = r"""
dest:
  description: The model repository.
  returned: always
  type: str
  sample: /srv/models
summary:
  description: One line about the result.
  returned: always
  type: str
  sample: wrote 8 file(s) in /srv/models (fraud, churn)
validation:
  description: The validator's summary of what was written (or why it did not run).
  returned: always
  type: str
  sample: model repository /srv/models is valid (churn, fraud)
files:
  description: Every file of the models, relative to O(dest), with what the run does to it.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      sample: fraud/config.pbtxt
    action:
      description: C(create), C(update), C(delete) (an earlier init's file that is no longer written) or C(unchanged).
      type: str
      sample: create
models:
  description: What was read from each model file and what was written for it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name (directory).
      type: str
      sample: fraud
    source:
      description: The model file.
      type: str
      sample: /srv/train/fraud.json
    format:
      description: The detected format (a FIL C(model_type), or C(sklearn_pickle)).
      type: str
      sample: xgboost_json
    model_type:
      description: The FIL C(model_type) written.
      type: str
      sample: xgboost_json
    kind:
      description: C(binary), C(multiclass), C(regressor) or C(other), from the model.
      type: str
      sample: binary
    objective:
      description: The objective (or estimator) as the model file states it.
      type: str
      sample: objective binary:logistic
    num_feature:
      description: Feature count (C(input__0) dims).
      type: int
      sample: 16
    num_class:
      description: Classes (2 for binary, 1 for regressors).
      type: int
      sample: 2
    is_classifier:
      description: The C(is_classifier) written.
      type: bool
      sample: true
    predict_proba:
      description: The C(predict_proba) written.
      type: bool
      sample: false
    output_dims:
      description: C(output__0) dims.
      type: list
      elements: int
      sample: [1]
    output:
      description: What C(output__0) holds.
      type: str
      sample: 1.0 if P(class 1) > 0.5 else 0.0
    changed:
      description: Whether this model's directory is (or would be) written.
      type: bool
      sample: true
    reference:
      description: The reference written (rows, how the inputs were made, library, C(atol), C(rtol), Treelite's
        largest difference from the library, seed).
      type: dict
      sample: {"rows": 64, "library": "xgboost 3.2.0", "atol": 0.0, "rtol": 0.0, "treelite_max_abs_diff": 0.0}
diff:
  description: Each C(config.pbtxt) that changes (with C(--diff)).
  returned: when diff mode is on
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.model_init import (
    INSTANCE_KINDS,
    ModelInitError,
    ModelSpec,
    init_repository,
)

try:
    from tritonclient.grpc import model_config_pb2  # noqa: F401  # pylint: disable=unused-import

    HAS_MODEL_CONFIG = True
    MODEL_CONFIG_ERROR = None
except ImportError as exc:
    HAS_MODEL_CONFIG = False
    MODEL_CONFIG_ERROR = exc

PER_MODEL = ("is_classifier", "predict_proba", "threshold", "reference_rows", "seed")


def build_specs(params):
    specs = []
    for entry in params["models"]:
        values = {key: entry[key] if entry.get(key) is not None else params[key] for key in PER_MODEL}
        specs.append(
            ModelSpec(
                path=entry["path"],
                name=entry.get("name"),
                rows=entry.get("rows"),
                rows_data=entry.get("rows_data"),
                max_batch_size=params["max_batch_size"],
                max_queue_delay_microseconds=params["max_queue_delay_microseconds"],
                instance_kind=params["instance_kind"],
                instance_count=params["instance_count"],
                allow_pickle=params["allow_pickle"],
                **values,
            )
        )
    return specs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            models=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    path=dict(type="path", required=True),
                    name=dict(type="str"),
                    is_classifier=dict(type="bool"),
                    predict_proba=dict(type="bool"),
                    threshold=dict(type="float"),
                    rows=dict(type="path"),
                    rows_data=dict(type="list", elements="list"),
                    reference_rows=dict(type="int"),
                    seed=dict(type="int"),
                ),
                mutually_exclusive=[("rows", "rows_data")],
            ),
            is_classifier=dict(type="bool"),
            predict_proba=dict(type="bool", default=False),
            threshold=dict(type="float", default=0.5),
            max_batch_size=dict(type="int", default=32768),
            max_queue_delay_microseconds=dict(type="int", default=100),
            instance_kind=dict(type="str", choices=list(INSTANCE_KINDS), default="KIND_GPU"),
            instance_count=dict(type="int", default=1),
            reference_rows=dict(type="int", default=64),
            seed=dict(type="int"),
            allow_pickle=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            triton_release=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if not HAS_MODEL_CONFIG:
        module.fail_json(msg=missing_required_lib("tritonclient[grpc]"), exception=str(MODEL_CONFIG_ERROR))
    params = module.params
    try:
        result = init_repository(
            build_specs(params),
            params["dest"],
            force=params["force"],
            check_mode=module.check_mode,
            triton_release=params["triton_release"],
        )
    except ModelInitError as exc:
        module.fail_json(msg=str(exc), file=exc.file, changed=False)
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib(getattr(exc, "name", None) or str(exc)), exception=str(exc))
    out = result.to_dict()
    # `warnings` is reserved in module results (ansible-core fails the task): report them as Ansible warnings.
    for note in out.pop("warnings"):
        module.warn(note)
    out.pop("check_mode", None)
    diff = out.pop("diff")
    if module._diff:
        out["diff"] = diff
    module.exit_json(**out)


if __name__ == "__main__":
    main()
