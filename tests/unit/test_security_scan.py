"""A security scan of the rendered Triton chart: checkov's Kubernetes checks, against a committed baseline.

The chart is rendered as the triton_release role installs it (namespace triton, the image by digest, an IRSA role,
every other value at its default: NetworkPolicies on, hardened security contexts). checkov 3.3.30 runs from its own
venv (scripts/scanner.sh, `make scanner`; `make test` installs it) with --skip-download, inside the loopback-only
namespace like every test, so it calls no vendor API. Every failed check must be in tests/security/checkov-baseline.json
with its reason (docs/security.md lists them): a new finding fails, and so does a baseline entry checkov no longer
reports (the baseline stays exact). A second render with the opt-outs a user could choose shows the scan has teeth.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tritonfil.localenv.env import Tools, cache_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "triton"
BASELINE = ROOT / "tests" / "security" / "checkov-baseline.json"
DIGEST = "sha256:" + "0123456789abcdef" * 4
AS_INSTALLED = (
    "--set", f"image.digest={DIGEST}",
    "--set", "serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/tritonfil-triton",
)  # fmt: skip


def checkov() -> str:
    path = cache_dir() / "bin" / "checkov"
    assert os.access(path, os.X_OK), f"checkov not found ({path}): install it with `make scanner` (scripts/scanner.sh)"
    return str(path)


def scan(tmp_path: Path, *sets: str) -> dict:
    rendered = subprocess.run(
        [str(Tools().path("helm")), "template", "triton", str(CHART), "-n", "triton",
         "-f", str(CHART / "ci" / "default-values.yaml"), *AS_INSTALLED, *sets],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    manifest = tmp_path / "triton.yaml"
    manifest.write_text(rendered)
    proc = subprocess.run(
        [checkov(), "--file", str(manifest), "--framework", "kubernetes", "--skip-download", "--output", "json",
         "--quiet", "--compact"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr  # 1: there are failed checks
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def findings(report: dict) -> set[tuple[str, str]]:
    return {(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]}


@pytest.fixture(scope="module")
def baseline() -> dict[tuple[str, str], str]:
    data = json.loads(BASELINE.read_text())
    return {(f["check_id"], f["resource"]): f["reason"] for f in data["findings"]}


def test_the_rendered_chart_has_no_finding_beyond_the_baseline(tmp_path, baseline):
    report = scan(tmp_path)
    found = findings(report)
    summary = report["summary"]
    print(f"checkov {summary['checkov_version']}: {summary['passed']} passed, {summary['failed']} failed "
          f"(the baseline's), {summary['resource_count']} resources")  # fmt: skip
    names = {f["check_id"]: f["check_name"] for f in report["results"]["failed_checks"]}
    new = sorted(found - set(baseline))
    hint = "new checkov findings (fix them, or add them with a reason to the baseline and docs/security.md):\n"
    assert not new, hint + (
        "\n".join(f"  {cid} {res}: {names[cid]}" for cid, res in new)
    )  # fmt: skip
    assert not sorted(set(baseline) - found), (
        f"baseline entries checkov no longer reports: {sorted(set(baseline) - found)}"
    )
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100  # the checks ran on every object (Deployment, Service, NetworkPolicy, ...)


def test_each_baseline_finding_is_explained_in_docs_security(baseline):
    doc = (ROOT / "docs" / "security.md").read_text()
    for (check_id, resource), reason in baseline.items():
        assert reason.strip(), (check_id, resource)
        assert f"`{check_id}`" in doc and f"`{resource}`" in doc, (
            f"docs/security.md does not list {check_id} {resource}"
        )


def test_the_scan_has_teeth(tmp_path, baseline):
    """The opt-outs show up as new findings: a tag instead of a digest, NetworkPolicies off, a writable root
    filesystem, privilege escalation allowed."""
    report = scan(
        tmp_path, "--set", "image.digest=", "--set", "networkPolicy.enabled=false",
        "--set", "securityContext.readOnlyRootFilesystem=false",
        "--set", "securityContext.allowPrivilegeEscalation=true",
    )  # fmt: skip
    new = {cid for cid, _ in findings(report) - set(baseline)}
    assert {"CKV_K8S_43", "CKV_K8S_20", "CKV_K8S_22"} <= new, sorted(new)  # digest, privilege escalation, read-only fs
