"""tritonfil.eks.triton_model_repository run through ansible-playbook (not only its library)."""

from __future__ import annotations

import json
import shutil

from tests.conftest import ROOT

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Validate
      tritonfil.eks.triton_model_repository:
        path: {path}
      register: result
    - name: Save the result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: {out}
        mode: "0600"
"""


def test_valid_repository_reports_counts_not_reserved_keys(run_playbook, tmp_path):
    out = tmp_path / "result.json"
    proc = run_playbook(PLAY.format(path=ROOT / "model_repository", out=out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["valid"] is True and result["changed"] is False
    assert result["error_count"] == 0 and result["warning_count"] == 0
    assert "warnings" not in result or isinstance(result["warnings"], list)


def test_broken_repository_fails_naming_model_and_field(run_playbook, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "model_repository", repo)
    (repo / "xgb_classifier" / "1" / "xgboost.json").unlink()
    proc = run_playbook(PLAY.format(path=repo, out=tmp_path / "result.json"))
    assert proc.returncode != 0
    assert "xgb_classifier" in proc.stdout and "xgboost.json" in proc.stdout, proc.stdout
