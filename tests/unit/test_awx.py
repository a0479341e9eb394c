"""awx/: job templates with surveys, and the playbook that registers them with awx.awx.

Every survey variable must be one the template's playbook accepts: playbooks/argument_specs.yml (`site` for
deploy/plan/verify, `teardown` for teardown) together with each role's meta/argument_specs.yml `main`. Types,
choices, bounds and defaults must agree with those specs, and AWX's own survey rules must hold.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN, ansible_env
from tritonfil.collection import pins

AWX = ROOT / "awx"
PLAYBOOK_SPECS = ROOT / "playbooks" / "argument_specs.yml"
TEARDOWN_CONFIRMATIONS = {"tritonfil_teardown_confirm_delete_bucket", "tritonfil_teardown_confirm_delete_repository"}
# AWX's JobTemplateSurveySpec.ALLOWED_TYPES (awx/api/views): question type -> Python type of its default.
AWX_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
SURVEYS = ["deploy", "verify", "teardown", "rollback"]


@functools.cache
def load(path: Path):
    """Parsed YAML of PATH (cached: callers must not modify it)."""
    return yaml.safe_load(path.read_text())


def survey(name: str) -> dict:
    return load(AWX / "surveys" / f"{name}.yml")


def controller_vars() -> dict:
    return load(AWX / "vars" / "main.yml")


def role_specs() -> dict[str, dict]:
    """Options of every role's `main` entry point, by variable."""
    options: dict[str, dict] = {}
    for path in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        options.update(load(path)["argument_specs"]["main"]["options"])
    return options


PIN = re.compile(r"^\{\{ lookup\('tritonfil\.eks\.pin', '([A-Z0-9_]+)'\) \}\}$")


def role_defaults() -> dict:
    """The roles' defaults as a run sees them: a default that looks up a pin is the pinned value (the survey,
    which cannot read scripts/versions.env, must hold that value)."""
    values: dict = {}
    for path in sorted((ROOT / "roles").glob("*/defaults/main.yml")):
        values.update(load(path) or {})
    pinned = pins()
    return {k: pinned[PIN.match(v).group(1)] if isinstance(v, str) and PIN.match(v) else v for k, v in values.items()}


def playbook_specs(entry: str) -> dict[str, dict]:
    """playbooks/argument_specs.yml options of ENTRY."""
    return load(PLAYBOOK_SPECS)["argument_specs"].get(entry, {}).get("options", {})


def accepted(template_survey: str) -> dict[str, list[dict]]:
    """Variable -> every spec entry that defines it, for the playbook of TEMPLATE_SURVEY."""
    specs: dict[str, list[dict]] = {}
    sources = [role_specs(), playbook_specs("site")]
    if template_survey == "teardown":
        sources.append(playbook_specs("teardown"))
    for source in sources:
        for var, spec in source.items():
            specs.setdefault(var, []).append(spec)
    if template_survey == "teardown":
        for var in TEARDOWN_CONFIRMATIONS:
            specs.setdefault(var, []).append({"type": "bool", "default": False})
    return specs


def inventory_literals() -> dict:
    """inventory/aws values that are plain values (not templates): what a shell run uses."""
    values = load(ROOT / "inventory" / "aws" / "group_vars" / "all" / "main.yml")
    return {k: v for k, v in values.items() if not (isinstance(v, str) and "{{" in v)}


def questions():
    for name in SURVEYS:
        for q in survey(name)["spec"]:
            yield name, q


QUESTIONS = list(questions())
IDS = [f"{name}:{q['variable']}" for name, q in QUESTIONS]


# --- AWX's own rules (awx/api/views JobTemplateSurveySpec._validate_spec_data and the launch-time checks) -----


def awx_element_errors(q: dict, value) -> list[str]:
    """Port of SurveyJobTemplateMixin._survey_element_validation for one answer."""
    kind = q["type"]
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{value!r} is not a string"]
        if q.get("min") not in ("", None) and len(value) < int(q["min"]):
            return [f"{value!r} shorter than {q['min']}"]
        if q.get("max") not in ("", None) and len(value) > int(q["max"]):
            return [f"{value!r} longer than {q['max']}"]
    elif kind == "integer":
        if type(value) is not int:
            return [f"{value!r} is not an integer"]
        if q.get("min") not in ("", None) and value < int(q["min"]):
            return [f"{value} below {q['min']}"]
        if q.get("max") not in ("", None) and value > int(q["max"]):
            return [f"{value} above {q['max']}"]
    elif kind == "multiplechoice" and value not in q["choices"]:
        return [f"{value!r} not one of {q['choices']}"]
    return []


@pytest.mark.parametrize("name", SURVEYS)
def test_survey_spec_is_accepted_by_awx(name):
    spec = survey(name)
    assert isinstance(spec["name"], str) and spec["name"]
    assert isinstance(spec["description"], str)
    assert isinstance(spec["spec"], list) and spec["spec"]
    seen = set()
    for idx, q in enumerate(spec["spec"]):
        for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            assert isinstance(q.get(field), kind), f"question {idx}: '{field}' missing or not {kind.__name__}"
        assert q["variable"] not in seen, f"'variable' '{q['variable']}' duplicated in survey question {idx}"
        seen.add(q["variable"])
        assert q["type"] in AWX_TYPES, q
        if q.get("default", "") != "":
            assert isinstance(q["default"], AWX_TYPES[q["type"]]), f"{q['variable']}: default of the wrong type"
        for key in ("min", "max"):
            assert q.get(key) is None or isinstance(q[key], int), f"{q['variable']}: {key} must be an integer"
        if q["type"] in ("multiplechoice", "multiselect"):
            assert isinstance(q.get("choices"), list) and q["choices"], f"{q['variable']}: must specify choices"
        if "default" in q:
            assert awx_element_errors(q, q["default"]) == [], f"{q['variable']}: AWX would drop this default"
        else:
            # Without a default AWX sends nothing, so the inventory's value (a placeholder) would be used.
            assert q["required"], f"{q['variable']}: optional question without a default"


def test_templates_run_the_right_playbooks_with_existing_surveys():
    templates = {t["name"]: t for t in controller_vars()["tritonfil_awx_job_templates"]}
    assert {n: (t["playbook"], t["job_type"], t["survey"]) for n, t in templates.items()} == {
        "tritonfil deploy": ("site.yml", "run", "deploy"),
        "tritonfil plan": ("site.yml", "check", "deploy"),
        "tritonfil verify": ("playbooks/verify.yml", "run", "verify"),
        "tritonfil teardown": ("playbooks/teardown.yml", "run", "teardown"),
        "tritonfil model history": ("playbooks/history.yml", "run", ""),
        "tritonfil rollback": ("playbooks/rollback.yml", "run", "rollback"),
    }
    assert templates["tritonfil plan"]["diff_mode"] is True
    for t in templates.values():
        assert (ROOT / t["playbook"]).is_file(), t
        assert not t["survey"] or (AWX / "surveys" / f"{t['survey']}.yml").is_file(), t


def test_playbook_specs_are_used_when_present():
    """Checked against both the roles' specs and the playbooks' own (playbooks/argument_specs.yml)."""
    roles_only = set(role_specs())
    assert roles_only <= set(accepted("deploy")) and roles_only <= set(accepted("teardown"))
    site, teardown = set(playbook_specs("site")), set(playbook_specs("teardown"))
    assert site - roles_only, "argument_specs.site declares nothing beyond the roles' variables"
    assert site <= set(accepted("deploy")) and (site | teardown) <= set(accepted("teardown"))


@pytest.mark.parametrize(("name", "q"), QUESTIONS, ids=IDS)
def test_survey_variable_is_accepted_by_the_playbook(name, q):
    specs = accepted(name)
    playbook = "playbooks/teardown.yml" if name == "teardown" else "site.yml"
    assert q["variable"] in specs, (
        f"survey {name}: {q['variable']} is not a variable {playbook} accepts (add it to playbooks/argument_specs.yml"
        f" `{'teardown' if name == 'teardown' else 'site'}` or a role's meta/argument_specs.yml, or drop the question)"
    )


@pytest.mark.parametrize(("name", "q"), QUESTIONS, ids=IDS)
def test_survey_question_agrees_with_the_argument_specs(name, q):
    specs = accepted(name).get(q["variable"])
    assert specs, f"{name}: survey variable {q['variable']} is accepted by no argument spec"
    types = {s.get("type", "str") for s in specs}
    if q["type"] == "integer":
        assert types == {"int"}, (q["variable"], types)
    elif q["type"] in ("text", "textarea", "password"):
        assert types <= {"str", "path", "raw"}, (q["variable"], types)
    elif q["type"] == "multiplechoice" and types == {"bool"}:
        # AWX has no boolean question: "true"/"false" strings, which Ansible's bool type accepts.
        assert sorted(q["choices"]) == ["false", "true"], q
    elif q["type"] == "multiplechoice":
        assert types <= {"str"}, (q["variable"], types)
        for s in specs:
            if "choices" in s:
                assert set(q["choices"]) <= set(s["choices"]), (q["variable"], q["choices"], s["choices"])
    else:
        pytest.fail(f"{q['variable']}: question type {q['type']} not handled")
    if q["type"] == "integer":
        assert q["min"] <= q["max"]
        for s in specs:
            if "default" in s:
                assert q["min"] <= s["default"] <= q["max"], f"{q['variable']}: spec default outside the survey bounds"


@pytest.mark.parametrize(("name", "q"), QUESTIONS, ids=IDS)
def test_survey_default_is_what_a_shell_run_uses(name, q):
    """Default = role default, else the playbook spec's default, else inventory/aws's literal value."""
    var = q["variable"]
    specs = accepted(name).get(var, [])
    defaults = role_defaults()
    if var in defaults:
        expected = defaults[var]
    elif [s for s in specs if "default" in s]:
        expected = next(s["default"] for s in specs if "default" in s)
    elif var in inventory_literals():
        expected = inventory_literals()[var]
    else:
        assert "default" not in q, f"{var}: nothing to take a default from, so the survey must not invent one"
        assert q["required"], f"{var}: no default anywhere, so the question must be required"
        return
    if isinstance(expected, bool):
        expected = str(expected).lower()
    assert q.get("default") == expected, f"{var}: survey default {q.get('default')!r}, role/spec/inventory {expected!r}"


# --- The answers, as AWX sends them, pass Ansible's own validation of the playbooks' specs ---------------------


def validation_play(entry: str | None, role_options: dict, derived: dict | None = None) -> str:
    """A play on inventory/aws that validates like the playbooks do (and like each role does on start)."""
    tasks = []
    if entry:
        specs = f"lookup('ansible.builtin.file', '{PLAYBOOK_SPECS}') | from_yaml"
        tasks.append(
            {
                "name": f"Validate entry point {entry}",
                "ansible.builtin.validate_argument_spec": {
                    "argument_spec": f"{{{{ ({specs}).argument_specs.{entry}.options }}}}"
                },
            }
        )
    tasks.append(
        {
            "name": "Validate against the role specs",
            "ansible.builtin.validate_argument_spec": {"argument_spec": role_options},
        }
    )
    if derived:
        tasks.append(
            {
                "name": "Check what the roles get",
                "ansible.builtin.assert": {"that": [f"{var} == {value!r}" for var, value in derived.items()]},
            }
        )
    play = {
        "hosts": "tritonfil",
        "gather_facts": False,
        # What every playbook loads: the connection settings and the wiring between the stages.
        "vars_files": [
            str(ROOT / "playbooks" / "vars" / "connection.yml"),
            str(ROOT / "playbooks" / "vars" / "wiring.yml"),
        ],
        "tasks": tasks,
    }
    return yaml.safe_dump([play], sort_keys=False)


def run_play(tmp_path: Path, play: str, extra_vars: dict) -> subprocess.CompletedProcess[str]:
    (tmp_path / "play.yml").write_text(play)
    (tmp_path / "answers.json").write_text(json.dumps(extra_vars))
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "inventory/aws", str(tmp_path / "play.yml")]
        + ["-e", f"@{tmp_path / 'answers.json'}"],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


ANSWERS = {
    "tritonfil_region": "eu-west-1",
    "tritonfil_name": "demo",
    "s3_models_bucket": "demo-models-123",
    "tritonfil_triton_url": "http://gateway.example.com",
    "tritonfil_teardown_confirm_delete_bucket": "true",
}
# What the playbooks' wiring and connection settings derive from the shared answers (playbooks/vars/).
DERIVED = {
    "tritonfil_aws_connection.region": "eu-west-1",
    "triton_release_aws_region": "eu-west-1",
    "eks_gpu_cluster_name": "demo",
    "eks_gpu_cluster_triton_namespace": "triton",
}


@pytest.mark.parametrize("name", SURVEYS)
def test_awx_answers_pass_the_playbook_validation(name, tmp_path):
    """Survey answers, typed as AWX sends them ("true" strings, ints), over inventory/aws, pass the specs."""
    answers = {q["variable"]: ANSWERS.get(q["variable"], q.get("default")) for q in survey(name)["spec"]}
    assert None not in answers.values(), answers
    # Role specs restricted to the answered variables (`required` ones the inventory derives are checked by the
    # entry point; the rest, e.g. triton_release_image, only exist once earlier stages ran).
    roles = {
        var: {k: v for k, v in spec.items() if k != "required"} for var, spec in role_specs().items() if var in answers
    }
    derived = DERIVED if "tritonfil_region" in answers else None
    proc = run_play(tmp_path, validation_play("teardown" if name == "teardown" else "site", roles, derived), answers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok={2 + bool(derived)} " in proc.stdout, proc.stdout


def test_wrong_answer_type_is_rejected_by_the_same_validation(tmp_path):
    """The check above can fail: an integer question answered with text is refused, naming the variable."""
    roles = {"eks_gpu_cluster_nodes_max": role_specs()["eks_gpu_cluster_nodes_max"]}
    proc = run_play(tmp_path, validation_play(None, roles), {"eks_gpu_cluster_nodes_max": "many"})
    assert proc.returncode != 0
    assert "eks_gpu_cluster_nodes_max" in proc.stdout, proc.stdout


# --- register.yml ---------------------------------------------------------------------------------------------


def test_register_playbook_syntax_checks():
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "awx/register.yml"],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: awx/register.yml" in proc.stdout


def test_register_playbook_uses_awx_modules_and_keeps_secrets_out():
    (play,) = load(AWX / "register.yml")
    modules = [next(k for k in task if "." in k and k not in ("ansible.builtin.assert",)) for task in play["tasks"][1:]]
    assert modules == [
        "awx.awx.execution_environment",
        "awx.awx.project",
        "awx.awx.inventory",
        "awx.awx.inventory_source",
        "awx.awx.inventory_source_update",
        "awx.awx.credential",
        "awx.awx.job_template",
    ]
    credential = play["tasks"][6]
    assert credential["no_log"] is True
    assert credential["awx.awx.credential"]["update_secrets"] is False
    assert credential["awx.awx.credential"]["credential_type"] == "Amazon Web Services"
    text = (AWX / "register.yml").read_text() + (AWX / "vars" / "main.yml").read_text()
    for secret in ("controller_password", "controller_oauthtoken", "AKIA"):
        assert secret not in text
    source = play["tasks"][4]["awx.awx.inventory_source"]
    assert (ROOT / controller_vars()["tritonfil_awx_inventory_source_path"]).is_file()
    assert source["source"] == "scm"


def test_register_playbook_module_arguments_exist_in_awx_awx():
    """ansible-lint cannot check awx.awx arguments (it does not flag unknown ones), so check them against the docs."""
    (play,) = load(AWX / "register.yml")
    calls = [(m, task[m]) for task in play["tasks"] for m in task if m.startswith("awx.awx.")]
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-j", *sorted({m for m, _ in calls})],
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    for module, args in calls:
        options = docs[module]["doc"]["options"]
        names = set(options) | {alias for o in options.values() for alias in o.get("aliases", [])}
        assert set(args) <= names, f"{module}: unknown arguments {sorted(set(args) - names)}"
        for key, value in args.items():
            choices = options.get(key, {}).get("choices")
            if choices and isinstance(value, str) and "{{" not in value:
                assert value in choices, f"{module} {key}={value!r} not one of {choices}"
    defaults = set(play["module_defaults"]["group/awx.awx.controller"])
    for module, _ in calls:
        assert defaults <= set(docs[module]["doc"]["options"]), module
    job_template = docs["awx.awx.job_template"]["doc"]["options"]
    for template in controller_vars()["tritonfil_awx_job_templates"]:
        assert template["job_type"] in job_template["job_type"]["choices"], template
    assert (
        controller_vars()["tritonfil_awx_ee_pull"]
        in docs["awx.awx.execution_environment"]["doc"]["options"]["pull"]["choices"]
    )
