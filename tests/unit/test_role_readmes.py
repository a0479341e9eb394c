"""Each role's README mirrors its argument spec and names every fact the role publishes.

- The "Variables" table lists exactly the `main` options of meta/argument_specs.yml, each with the spec's type
  (``list of <elements>`` for a list), its default (``**required**`` for a required option) and the spec's
  description (the README may add to it).
- The "Published facts" section names every fact the role's tasks set (set_fact keys, except private ``__*``
  ones and the preflight's own ``<role>_preflight_passed`` / ``<role>_aws_caller``); the facts are also listed
  here (PUBLISHED), so a new one is a deliberate change, and the contract facts are named in the spec's `main`
  description too.
- The "Entry points" section names every entry point of the spec, and each has its tasks file.
- The README names the module_defaults group(s) through which its modules get their connection settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tritonfil.progress import STAGE_ROLES

ROOT = Path(__file__).resolve().parents[2]
ROLES = list(STAGE_ROLES)

# What each role publishes: the stage's contract (playbooks/vars/wiring.yml wires it into later stages), and the
# teardown entry point's result.
PUBLISHED = {
    "ecr_image": {"ecr_image_uri", "ecr_image_teardown"},
    "s3_models": {
        "s3_models_uri",
        "s3_models_repository_uri",
        "s3_models_revision",
        "s3_models_kms_key_arn",
        "s3_models_sync",
        "s3_models_teardown",
    },
    "eks_gpu_cluster": {
        "eks_gpu_cluster_kubeconfig_path",
        "eks_gpu_cluster_triton_role_arn",
        "eks_gpu_cluster_karpenter_role_arn",
    },
    "karpenter": {"karpenter_node_role_arn", "karpenter_interruption_queue_arn", "karpenter_nodepool"},
    "metrics_server": set(),
    "keda": set(),
    "istio": {"istio_gateway_address", "istio_gateway"},
    "triton_release": {"triton_release_endpoint"},
}
TEARDOWN_RESULTS = {"ecr_image_teardown", "s3_models_teardown"}
ENTRY_POINTS = {"main", "preflight", "facts", "teardown"}

# The connection groups of meta/runtime.yml and the modules whose connection settings they carry.
AWS_MODULES = re.compile(
    r"^(amazon\.aws\.|community\.aws\.|tritonfil\.eks\.(eksctl_cluster|ecr_mirror|ecr_mirror_info|s3_model_sync"
    r"|s3_model_revision_info)$)"
)
K8S_MODULES = re.compile(r"^kubernetes\.core\.")


def spec(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def readme(role: str) -> str:
    return (ROOT / "roles" / role / "README.md").read_text()


def section(text: str, heading: str) -> str:
    """The body of the first `## HEADING...` section (up to the next `## ` heading)."""
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def plain(text: object) -> str:
    """Description text without markup: C()/O()/I()/V() of the specs, backticks and bold of the READMEs."""
    if isinstance(text, list):
        text = " ".join(text)
    text = re.sub(r"\b[COIV]\(([^)]*)\)", r"\1", str(text))
    text = text.replace("`", "").replace("**", "")
    return re.sub(r"\s+", " ", text).strip()


def table(role: str) -> dict[str, dict[str, str]]:
    """The Variables table: name -> {type, default, description} (cells as written)."""
    rows = {}
    for line in section(readme(role), "Variables").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 4, f"{role} README: not 4 cells (a '|' inside a cell?): {line}"
        name = cells[0].strip("`")
        assert name not in rows, f"{role} README: {name} listed twice"
        rows[name] = {"type": cells[1], "default": cells[2], "description": cells[3]}
    return rows


def spec_type(option: dict) -> str:
    return f"list of {option['elements']}" if option["type"] == "list" else option["type"]


def walk(task_list: list) -> list[dict]:
    """Every task of a tasks file, those inside block/rescue/always included."""
    out = []
    for task in task_list or []:
        out.append(task)
        for key in ("block", "rescue", "always"):
            out.extend(walk(task.get(key) or []))
    return out


def tasks(role: str) -> list[dict]:
    out = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        out.extend(walk(yaml.safe_load(path.read_text())))
    return out


def set_facts(role: str) -> set[str]:
    keys = set()
    for task in tasks(role):
        for action in ("ansible.builtin.set_fact", "set_fact"):
            if isinstance(task.get(action), dict):
                keys |= {k for k in task[action] if k != "cacheable"}
    return {k for k in keys if not k.startswith("__") and not k.endswith(("_preflight_passed", "_aws_caller"))}


def modules(role: str) -> set[str]:
    return {key for task in tasks(role) for key in task if "." in key}


@pytest.mark.parametrize("role", ROLES)
def test_variables_table_mirrors_the_main_options(role):
    options = spec(role)["main"]["options"]
    rows = table(role)
    assert set(rows) == set(options), (
        f"{role} README Variables table vs meta/argument_specs.yml main: only in the README "
        f"{sorted(set(rows) - set(options))}, only in the spec {sorted(set(options) - set(rows))}"
    )
    for name, option in options.items():
        row = rows[name]
        assert row["type"] == spec_type(option), (
            f"{role} README: {name} is {row['type']}, the spec says {spec_type(option)}"
        )
        if option.get("required"):
            assert row["default"] == "**required**", (
                f"{role} README: {name} is required, the README says {row['default']}"
            )
            continue
        default = option["default"]
        cell = row["default"]
        assert cell.startswith("`") and cell.endswith("`"), f"{role} README: {name} default {cell} is not `code`"
        inner = cell[1:-1]
        matches = inner == default or (not inner.startswith("{{") and yaml.safe_load(inner) == default)
        assert matches, f"{role} README: {name} default {inner!r}, the spec says {default!r}"
        assert plain(option["description"]) in plain(row["description"]), (
            f"{role} README: {name}'s description does not contain the spec's: {plain(option['description'])!r}"
        )


@pytest.mark.parametrize("role", ROLES)
def test_published_facts_are_the_ones_the_tasks_set_and_the_readme_names_them(role):
    assert set_facts(role) == PUBLISHED[role], (
        f"{role}: the tasks set {sorted(set_facts(role))}; update PUBLISHED here, the README and the spec"
    )
    published = section(readme(role), "Published facts")
    for fact in PUBLISHED[role]:
        assert f"`{fact}`" in published, f"{role} README: the Published facts section does not name {fact}"
    description = plain(spec(role)["main"].get("description", ""))
    for fact in PUBLISHED[role] - TEARDOWN_RESULTS:
        assert fact in description, f"{role} meta/argument_specs.yml: the main description does not name {fact}"


@pytest.mark.parametrize("role", ROLES)
def test_every_entry_point_is_documented_and_has_its_tasks_file(role):
    entry_points = set(spec(role))
    assert entry_points <= ENTRY_POINTS and {"main", "preflight", "teardown"} <= entry_points, entry_points
    documented = section(readme(role), "Entry points")
    for entry_point in entry_points:
        assert (ROOT / "roles" / role / "tasks" / f"{entry_point}.yml").is_file(), entry_point
        assert f"`{entry_point}`" in documented, f"{role} README: the Entry points section does not name {entry_point}"


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_the_connection_groups_its_modules_use(role):
    used = modules(role)
    text = readme(role)
    if any(AWS_MODULES.match(m) for m in used):
        assert "group/tritonfil.eks.aws" in text, (
            f"{role} README: its AWS modules get region/endpoint from module_defaults"
        )
    if any(K8S_MODULES.match(m) for m in used):
        assert "group/tritonfil.eks.k8s" in text, (
            f"{role} README: its Kubernetes modules get the kubeconfig from module_defaults"
        )
    assert "module_defaults" in section(text, "Connection settings")


def test_the_fact_walk_finds_facts():
    """The walk above reaches set_fact inside blocks and in every tasks file (a guard against a vacuous pass)."""
    assert "ecr_image_uri" in set_facts("ecr_image")
    assert {"istio_gateway", "istio_gateway_address"} <= set_facts("istio")
    assert "__istio_manifest" not in set_facts("istio")
