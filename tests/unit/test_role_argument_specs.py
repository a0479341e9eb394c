"""Every role validates its variables against meta/argument_specs.yml before any task runs."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tritonfil.progress import STAGE_ROLES

ROLES = list(STAGE_ROLES)

# Valid values for every required variable of each role, so one case can break exactly one thing. Connection
# settings (region, endpoint, kubeconfig) are module_defaults, not role variables, and the inputs from earlier
# stages default to '' (checked when the stage starts), so four roles have no required variable.
REQUIRED = {
    "ecr_image": {},
    "s3_models": {"s3_models_bucket": "models-bucket"},
    "eks_gpu_cluster": {"eks_gpu_cluster_name": "c1"},
    "karpenter": {},
    "metrics_server": {},
    "keda": {},
    "istio": {},
    "triton_release": {},
}
# One variable per role given a value of the wrong type.
WRONG_TYPE = {
    "ecr_image": ("ecr_image_scan_on_push", "sometimes"),
    "s3_models": ("s3_models_versioning", "maybe"),
    "eks_gpu_cluster": ("eks_gpu_cluster_nodes_max", "lots"),
    "karpenter": ("karpenter_gpu_limit", "plenty"),
    "metrics_server": ("metrics_server_wait_timeout", "soon"),
    "keda": ("keda_wait_timeout", "later"),
    "istio": ("istio_profile", "fancy"),
    "triton_release": ("triton_release_models", {"not": "a list"}),
}

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: tritonfil.eks.{role}
"""


def specs(root, role):
    return yaml.safe_load((root / "roles" / role / "meta" / "argument_specs.yml").read_text())


def assert_failed_in_validation(result, role, variable):
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Validating arguments against arg spec" in out, out
    assert variable in out, out
    # Nothing after the validation task ran: no other task of the role shows up.
    tasks = re.findall(rf"TASK \[tritonfil\.eks\.{role} : ([^\]]+)\]", out)
    assert tasks and all(t.startswith("Validating arguments") for t in tasks), tasks


@pytest.mark.parametrize("role", [r for r in ROLES if REQUIRED[r]])
def test_missing_required_variable_fails_before_any_task(run_playbook, role):
    required = dict(REQUIRED[role])
    missing = next(iter(required))
    del required[missing]
    result = run_playbook(PLAY.format(role=role), "-e", json.dumps(required))
    assert_failed_in_validation(result, role, missing)
    assert f"missing required arguments: {missing}" in result.stdout


@pytest.mark.parametrize("role", ROLES)
def test_wrong_type_fails_before_any_task(run_playbook, role):
    variable, value = WRONG_TYPE[role]
    result = run_playbook(PLAY.format(role=role), "-e", json.dumps({**REQUIRED[role], variable: value}))
    assert_failed_in_validation(result, role, variable)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_mirror_argument_specs(root, role):
    """defaults/main.yml and meta/argument_specs.yml agree key for key and value for value."""
    options = specs(root, role)["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((root / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    with_default = {k: o["default"] for k, o in options.items() if "default" in o}
    assert defaults == with_default
    for name, option in options.items():
        assert name.startswith(f"{role}_"), name
        assert "type" in option and option.get("description"), name
        assert not (option.get("required") and "default" in option), name
        if option["type"] == "list":
            assert "elements" in option, name
