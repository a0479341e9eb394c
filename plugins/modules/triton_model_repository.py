#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: triton_model_repository
short_description: Validate a Triton model repository of FIL models before it is uploaded
description:
  - Parses every C(config.pbtxt) with protobuf text format against Triton's
    C(inference.ModelConfig) and checks it against the model files, reporting every problem at
    once, each naming the model, the file and the field, with a fix hint.
  - Checks directory/name agreement, numeric version folders and O(path)/<model>/<version> layout,
    C(version_policy), the model file the FIL backend opens for its C(model_type) (and that its
    content is that format), known, renamed (FIL 25.09) and unknown FIL parameters, C(input__0)
    dims against the model's feature count, C(output__0) dims against C(is_classifier),
    C(predict_proba) and the number of classes, instance group kinds and batching.
  - With O(load=true) it also loads every model file with Treelite and predicts one row.
  - Read-only; never reports a change; check mode runs the same validation.
version_added: 0.1.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
options:
  path:
    description:
      - The model repository directory (one sub-directory per model).
    type: path
    required: true
  models:
    description:
      - Validate only these models (directory names). Default is every model.
    type: list
    elements: str
    default: []
  load:
    description:
      - Also load each model file with Treelite (as the FIL backend does) and predict one row.
      - Needs the C(treelite) Python package.
    type: bool
    default: false
  fail_on_warnings:
    description:
      - Fail when there are warnings, not only errors.
    type: bool
    default: false
  triton_release:
    description:
      - The Triton release whose FIL backend the repository is for, named in the report and in its messages
        (the roles pass the pin, C(lookup('tritonfil.eks.pin', 'TRITON_RELEASE'))).
    type: str
attributes:
  check_mode:
    support: full
    description: Validation is read-only; check mode runs it unchanged.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
requirements:
  - tritonclient (for Triton's ModelConfig protobuf)
  - protobuf
  - treelite (only with O(load=true))
"""

EXAMPLES = r"""
- name: Validate the model repository before uploading it
  tritonfil.eks.triton_model_repository:
    path: "{{ playbook_dir }}/../model_repository"
  register: repository

- name: Validate one model and load it with Treelite
  tritonfil.eks.triton_model_repository:
    path: /srv/models
    models: [xgb_classifier]
    load: true
"""

RETURN = r"""
valid:
  description: True when there is no error (and, with O(fail_on_warnings), no warning).
  returned: always
  type: bool
  sample: true
summary:
  description: One line about the result.
  returned: always
  type: str
  sample: model repository model_repository is valid (lgb_multiclass, xgb_classifier)
error_count:
  description: Number of errors.
  returned: always
  type: int
  sample: 0
warning_count:
  description: Number of warnings.
  returned: always
  type: int
  sample: 0
target_triton_release:
  description: The Triton release whose FIL backend the checks target (O(triton_release)), null when not given.
  returned: always
  type: str
  sample: "25.12"
problems:
  description: Every problem found.
  returned: always
  type: list
  elements: dict
  contains:
    model:
      description: Model (directory) name.
      type: str
      sample: xgb_classifier
    file:
      description: File the problem is in, relative to O(path).
      type: str
      sample: xgb_classifier/config.pbtxt
    field:
      description: Configuration field or parameter.
      type: str
      sample: input[0].dims
    message:
      description: What is wrong.
      type: str
      sample: dims [15] but the model file has 16 features
    hint:
      description: How to fix it.
      type: str
      sample: "set dims: [ 16 ]"
    severity:
      description: C(error) or C(warning).
      type: str
      sample: error
models:
  description: What each model's configuration declares, and the facts read from its model file.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "xgb_classifier", "model_type": "xgboost_json", "versions": [1], "is_classifier": true,
            "facts": {"num_feature": 16, "kind": "binary", "writer": "XGBoost 3.2.0"}}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.model_repository import validate_repository

try:
    from tritonclient.grpc import model_config_pb2  # noqa: F401  # pylint: disable=unused-import

    HAS_MODEL_CONFIG = True
    MODEL_CONFIG_ERROR = None
except ImportError as exc:
    HAS_MODEL_CONFIG = False
    MODEL_CONFIG_ERROR = exc


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            models=dict(type="list", elements="str", default=[]),
            load=dict(type="bool", default=False),
            fail_on_warnings=dict(type="bool", default=False),
            triton_release=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if not HAS_MODEL_CONFIG:
        module.fail_json(msg=missing_required_lib("tritonclient[grpc]"), exception=str(MODEL_CONFIG_ERROR))
    params = module.params
    report = validate_repository(
        params["path"], load=params["load"], models=params["models"] or None, triton_release=params["triton_release"]
    )
    result = report.to_dict()
    result.pop("repository", None)
    result.pop("loaded", None)
    # `warnings` (and `errors`) would collide with the keys Ansible reserves in module results for
    # its own message lists (ansible-core 2.19 fails the task): return the counts as *_count.
    result["error_count"] = result.pop("errors")
    result["warning_count"] = result.pop("warnings")
    valid = report.ok and not (params["fail_on_warnings"] and report.warnings)
    result["valid"] = valid
    if not valid:
        listed = report.errors or report.warnings
        details = "; ".join(str(p) for p in listed)
        module.fail_json(msg=f"{report.summary()}: {details}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
