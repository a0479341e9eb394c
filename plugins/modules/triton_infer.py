#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: triton_infer
short_description: Run inference on Triton models and check the answers
description:
  - For each model, builds inputs from the model's metadata or from a reference file, runs
    inference, and checks output names, shapes, data types and value ranges (class indices for
    classifiers, probabilities in [0, 1] summing to 1 with C(predict_proba), finite values).
  - With a reference file it compares the served output with the output the training library
    computed, within O(atol) and O(rtol).
  - Then it measures latency over O(requests) sequential requests of O(batch_size) rows and
    reports p50/p99 and rows per second.
  - With O(retry_timeout), a check that got no answer (the server went away or was not ready - e.g. its process
    restarted - rather than answered wrongly) is made again, from the first model, once the server and its models
    are ready again, until O(retry_timeout) seconds have passed; RV(retried) lists every attempt that got no answer.
    A wrong answer is never asked again.
  - Read-only; never reports a change. In check mode it runs exactly as in a normal run
    (inference does not modify the server).
version_added: 0.1.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - tritonfil.eks.triton
options:
  models:
    description:
      - Models to check, as C(name) or C(name:version).
      - When empty, every READY model version in the repository index.
    type: list
    elements: str
    default: []
  reference_dir:
    description:
      - Directory with one C(<model>/reference.json) per model (as written by
        C(scripts/gen_models.py)) holding C(input) rows, the C(expected) output and the
        tolerances C(atol)/C(rtol).
      - Models without a reference file get random inputs from their metadata and only the
        name, shape, type and range checks.
    type: path
  require_reference:
    description:
      - Fail for a model that has no reference file in O(reference_dir).
    type: bool
    default: false
  rows:
    description:
      - Rows per request when inputs come from metadata.
    type: int
    default: 64
  batch_size:
    description:
      - Rows per request in the latency measurement.
    type: int
    default: 1024
  requests:
    description:
      - Number of sequential requests in the latency measurement (after one warm-up request);
        C(0) skips it.
    type: int
    default: 20
  atol:
    description:
      - Absolute tolerance for the reference comparison; defaults to the reference file's value.
    type: float
  rtol:
    description:
      - Relative tolerance for the reference comparison; defaults to the reference file's value.
    type: float
  seed:
    description:
      - Seed for the random inputs built from metadata.
    type: int
    default: 0
  retry_timeout:
    description:
      - Seconds within which checks that got no answer are made again once the server is ready again (see the
        description); C(0) fails at the first one.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description: Inference is read-only; check mode runs the same checks.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
requirements:
  - tritonclient
  - numpy
"""

EXAMPLES = r"""
- name: Check every model against the references shipped with the repository
  tritonfil.eks.triton_infer:
    url: "http://127.0.0.1:8000"
    reference_dir: "{{ playbook_dir }}/../model_repository"
    require_reference: true
  register: infer

- name: Report throughput
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.latency.rows_per_second }} rows/s, p99 {{ item.latency.p99_ms }} ms"
  loop: "{{ infer.models }}"

- name: Smoke-test one model over gRPC through the gateway, without a reference
  tritonfil.eks.triton_infer:
    url: "grpcs://{{ gateway_host }}:443"
    ca_cert: /etc/pki/ingress-ca.pem
    models: [xgb_classifier]
    requests: 0
"""

RETURN = r"""
models:
  description: One report per checked model version.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name.
      type: str
      sample: xgb_classifier
    version:
      description: Model version checked.
      type: str
      sample: "1"
    platform:
      description: Platform or backend the server reports.
      type: str
      sample: python
    inputs:
      description: Input tensors from the model metadata (name, datatype, shape).
      type: list
      elements: dict
    outputs:
      description: Output tensors from the model metadata (name, datatype, shape).
      type: list
      elements: dict
    checks:
      description: Checks that passed, in words.
      type: list
      elements: str
      sample: ["output output__0: FP32 [64, 1]", "output output__0: class indices [0, 1]"]
    failures:
      description: Checks that failed, in words (empty when the model passed).
      type: list
      elements: str
      sample: []
    reference:
      description: Result of the reference comparison (null without a reference file).
      type: dict
      sample: {"rows": 64, "atol": 0.0, "rtol": 0.0, "max_abs_diff": 0.0, "mismatched_rows": 0, "match": true}
    latency:
      description: Latency measurement (empty when skipped or when a check failed).
      type: dict
      sample: {"requests": 20, "batch_rows": 1024, "p50_ms": 6.1, "p99_ms": 9.8, "mean_ms": 6.4,
               "rows_per_second": 160000.0}
failed_models:
  description: Names of the models that failed a check.
  returned: always
  type: list
  elements: str
  sample: []
retried:
  description: Why each attempt that was made again got no answer (with O(retry_timeout)); empty when none was.
  returned: always
  type: list
  elements: str
  sample: ["inference on model lgb_multiclass on http://127.0.0.1:8000 failed: connection closed."]
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.triton import (
    TRITON_COMMON_ARGS,
    TRITON_REQUIRED_TOGETHER,
    TritonClient,
    TritonError,
    check_model,
    parse_model_spec,
    wait_ready,
)

try:
    import numpy  # noqa: F401  # pylint: disable=unused-import
    import tritonclient  # noqa: F401  # pylint: disable=unused-import

    HAS_LIBS = True
    LIBS_ERROR = None
except ImportError as exc:
    HAS_LIBS = False
    LIBS_ERROR = exc


def load_reference(reference_dir, name):
    """The model's reference document, or None when REFERENCE_DIR has none for it."""
    if not reference_dir:
        return None
    path = os.path.join(reference_dir, name, "reference.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    for key in ("input", "expected"):
        if key not in doc:
            raise ValueError(f"{path} has no '{key}' key")
    return doc


def targets(client, specs):
    """(name, version) pairs to check: the listed ones, or every READY version in the index."""
    if specs:
        return [parse_model_spec(spec) for spec in specs]
    ready = [(e["name"], e["version"]) for e in client.repository_index() if e["state"] == "READY"]
    if not ready:
        raise TritonError(f"no READY model in the repository index of {client.url}", url=client.url)
    return ready


def main():
    argument_spec = dict(TRITON_COMMON_ARGS)
    argument_spec.update(
        models=dict(type="list", elements="str", default=[]),
        reference_dir=dict(type="path"),
        require_reference=dict(type="bool", default=False),
        rows=dict(type="int", default=64),
        batch_size=dict(type="int", default=1024),
        requests=dict(type="int", default=20),
        atol=dict(type="float"),
        rtol=dict(type="float"),
        seed=dict(type="int", default=0),
        retry_timeout=dict(type="int", default=0),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_together=TRITON_REQUIRED_TOGETHER,
        required_if=[("require_reference", True, ["reference_dir"])],
        supports_check_mode=True,
    )
    if not HAS_LIBS:
        module.fail_json(msg=missing_required_lib("tritonclient and numpy"), exception=str(LIBS_ERROR))
    params = module.params
    for key in ("rows", "batch_size"):
        if params[key] < 1:
            module.fail_json(msg=f"{key} must be at least 1, got {params[key]}")
    if params["requests"] < 0:
        module.fail_json(msg=f"requests must be 0 or more, got {params['requests']}")
    if params["reference_dir"] and not os.path.isdir(params["reference_dir"]):
        module.fail_json(msg=f"reference_dir {params['reference_dir']} is not a directory")
    deadline = time.monotonic() + params["retry_timeout"]
    retried = []
    while True:
        try:
            reports, failed = check_all(module, params)
            break
        except TritonError as exc:
            left = deadline - time.monotonic()
            if left <= 0 or exc.operation in ("parse url", "connect", "parse"):  # a setting, not a moment
                module.fail_json(msg=exc.message, url=params["url"], models=exc.result or [], retried=retried,
                                 failed_models=[r["name"] for r in exc.result or [] if r["failures"]])  # fmt: skip
            retried.append(exc.message)
            try:  # until the server answers again (a restarted process loads its models first)
                with TritonClient.from_params(params) as client:
                    wait_ready(client, timeout=left)
            except TritonError:
                pass  # the next attempt fails and says why, or the deadline has passed
    if failed:
        reasons = "; ".join(f"model {r['name']}: {', '.join(r['failures'])}" for r in failed)
        module.fail_json(
            msg=f"inference check failed for {len(failed)} of {len(reports)} model(s): {reasons}",
            models=reports,
            failed_models=[r["name"] for r in failed],
            retried=retried,
        )
    module.exit_json(changed=False, models=reports, failed_models=[], retried=retried)


def check_all(module, params):
    """(reports, failed reports) of every model; a TritonError carries the reports made so far as its result."""
    reports = []
    failed = []
    try:
        with TritonClient.from_params(params) as client:
            for name, version in targets(client, params["models"]):
                try:
                    reference = load_reference(params["reference_dir"], name)
                except (OSError, ValueError) as exc:
                    module.fail_json(msg=f"model {name}: cannot read its reference: {exc}", models=reports)
                if reference is None and params["require_reference"]:
                    report = {"name": name, "version": version, "checks": [], "reference": None, "latency": {}}
                    report["failures"] = [f"no reference file {params['reference_dir']}/{name}/reference.json"]
                else:
                    report = check_model(
                        client,
                        name,
                        version,
                        reference=reference,
                        rows=params["rows"],
                        batch_size=params["batch_size"],
                        requests=params["requests"],
                        atol=params["atol"],
                        rtol=params["rtol"],
                        seed=params["seed"],
                    )
                reports.append(report)
                if report["failures"]:
                    failed.append(report)
    except TritonError as exc:
        exc.result = reports
        raise
    return reports, failed


if __name__ == "__main__":
    main()
