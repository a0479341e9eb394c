"""The Triton and model modules' DOCUMENTATION (with the tritonfil.eks.triton fragment) matches their argument spec.

This is the part of ansible-test's validate-modules that matters here (it cannot bootstrap
offline): every option documented, with the same type, default, choices, elements and
required flag; check mode supported; the doc renders with ansible-doc.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tritonfil.models import module_utils

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["triton_ready", "triton_infer", "triton_model_repository", "triton_model_init"]
module_utils("triton")  # puts the collection on sys.path when running from a checkout


class Captured(Exception):
    pass


def argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    module = importlib.import_module(f"ansible_collections.tritonfil.eks.plugins.modules.{name}")
    seen: dict = {}

    def fake(**kwargs: object) -> None:
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(module, "AnsibleModule", fake)
    with pytest.raises(Captured):
        module.main()
    return seen


def documented_options(name: str) -> dict:
    module = importlib.import_module(f"ansible_collections.tritonfil.eks.plugins.modules.{name}")
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment", []):
        assert fragment == "tritonfil.eks.triton"
        frag = importlib.import_module("ansible_collections.tritonfil.eks.plugins.doc_fragments.triton")
        options.update(yaml.safe_load(frag.ModuleDocFragment.DOCUMENTATION)["options"])
    for section in ("EXAMPLES", "RETURN"):
        assert yaml.safe_load(getattr(module, section)), section
    return options


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = argument_spec(name, monkeypatch)
    assert spec["supports_check_mode"] is True
    args = spec["argument_spec"]
    docs = documented_options(name)
    assert sorted(docs) == sorted(args)
    for option, arg in args.items():
        doc = docs[option]
        assert doc["type"] == arg["type"], option
        assert doc.get("required", False) == arg.get("required", False), option
        assert doc.get("default") == arg.get("default"), option
        assert doc.get("choices") == arg.get("choices"), option
        assert doc.get("elements") == arg.get("elements"), option
        assert doc["description"], option
        if arg["type"] == "list":
            assert "elements" in arg, option


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name: str) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), f"tritonfil.eks.{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"tritonfil.eks.{name}" in proc.stdout
    assert "EXAMPLES:" in proc.stdout and "RETURN VALUES:" in proc.stdout
