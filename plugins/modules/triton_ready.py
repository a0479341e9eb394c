#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: triton_ready
short_description: Wait until a Triton server and its models are READY
description:
  - Polls a Triton Inference Server until it is live and ready and every model version in its
    repository index (or each model listed in O(models)) is C(READY).
  - Read-only; never reports a change. In check mode it waits and checks exactly as in a normal run.
  - "On timeout it fails naming each model that is not READY with the state and reason from the
    repository index, for example C(model xgb_classifier version 1 not READY (state UNAVAILABLE: failed to load ...))."
version_added: 0.1.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - tritonfil.eks.triton
options:
  models:
    description:
      - Models that must be READY, as C(name) (every version in the index) or C(name:version).
      - When empty, every model in the repository index must be READY and the server ready
        (Triton's strict readiness).
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Seconds to wait before failing.
    type: float
    default: 120
  interval:
    description:
      - Seconds between polls.
    type: float
    default: 1.0
attributes:
  check_mode:
    support: full
    description: Runs the same read-only checks in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
requirements:
  - tritonclient
"""

EXAMPLES = r"""
- name: Wait for every model behind the ingress gateway
  tritonfil.eks.triton_ready:
    url: "https://{{ triton_host }}"
    ca_cert: /etc/pki/ingress-ca.pem
    headers:
      Host: triton.example.com
    timeout: 300

- name: Wait for two models over gRPC
  tritonfil.eks.triton_ready:
    url: "grpc://127.0.0.1:8001"
    models:
      - xgb_classifier
      - lgb_multiclass:1
  register: ready

- name: Show how long it took
  ansible.builtin.debug:
    msg: "{{ ready.models | map(attribute='name') | list }} ready after {{ ready.elapsed }}s"
"""

RETURN = r"""
live:
  description: Whether the server answered its liveness check.
  returned: always
  type: bool
  sample: true
ready:
  description: Server readiness (with strict readiness, false while any model is not READY).
  returned: always
  type: bool
  sample: true
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 2.417
server:
  description: Server metadata.
  returned: success
  type: dict
  sample: {"name": "triton", "version": "2.51.0", "extensions": ["model_repository"]}
models:
  description: State of each checked model version, from the repository index.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name.
      type: str
      sample: xgb_classifier
    version:
      description: Model version (empty when the model is not in the index).
      type: str
      sample: "1"
    state:
      description: C(READY), C(UNAVAILABLE), C(LOADING), C(UNLOADING) or C(MISSING) (not in the index).
      type: str
      sample: READY
    reason:
      description: Why the version is not READY, as the server reports it.
      type: str
      sample: ""
    ready:
      description: Whether the version is READY.
      type: bool
      sample: true
"""

from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.triton import (
    TRITON_COMMON_ARGS,
    TRITON_REQUIRED_TOGETHER,
    TritonClient,
    TritonError,
    parse_model_spec,
    wait_ready,
)

try:
    import tritonclient  # noqa: F401  # pylint: disable=unused-import

    HAS_TRITONCLIENT = True
    TRITONCLIENT_ERROR = None
except ImportError as exc:
    HAS_TRITONCLIENT = False
    TRITONCLIENT_ERROR = exc


def main():
    argument_spec = dict(TRITON_COMMON_ARGS)
    argument_spec.update(
        models=dict(type="list", elements="str", default=[]),
        timeout=dict(type="float", default=120.0),
        interval=dict(type="float", default=1.0),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_together=TRITON_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    if not HAS_TRITONCLIENT:
        module.fail_json(msg=missing_required_lib("tritonclient"), exception=str(TRITONCLIENT_ERROR))
    params = module.params
    result = dict(changed=False, live=False, ready=False, elapsed=0.0, models=[])
    try:
        wanted = [parse_model_spec(spec) for spec in params["models"]] or None
        with TritonClient.from_params(params) as client:
            state = wait_ready(client, wanted, timeout=params["timeout"], interval=params["interval"])
    except TritonError as exc:
        partial = exc.result
        if partial is not None:
            result.update(
                live=partial.live,
                ready=partial.ready,
                elapsed=partial.elapsed,
                models=[asdict(m) for m in partial.models],
            )
        module.fail_json(msg=exc.message, url=params["url"], **result)
    result.update(
        live=state.live,
        ready=state.ready,
        elapsed=state.elapsed,
        server=state.server,
        models=[asdict(m) for m in state.models],
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
