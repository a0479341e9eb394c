"""The repository root is at once a collection, an AWX project and a Python package."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from tests.conftest import ROOT, VENV_BIN, ansible_env
from tritonfil.progress import STAGE_ROLES


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=ansible_env(), capture_output=True, text=True, timeout=300)


def test_site_syntax_check_against_local_inventory():
    proc = run(str(VENV_BIN / "ansible-playbook"), "site.yml", "--syntax-check", "-i", "inventory/local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: site.yml" in proc.stdout


def test_collection_build_holds_what_users_need_and_nothing_else(tmp_path):
    """galaxy.yml's build_ignore decides: everything a collection user runs or reads is in the tarball, the Python
    package, its tests, the benchmarks, the development scripts and local state are not."""
    proc = run(str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = tmp_path / "tritonfil-eks-0.1.0.tar.gz"
    assert tarball.exists(), proc.stdout
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert "galaxy.yml" not in names and {"MANIFEST.json", "FILES.json"} <= names
    for role in STAGE_ROLES:
        assert f"roles/{role}/meta/argument_specs.yml" in names
    needed = {
        "site.yml", "README.md", "ansible.cfg", "meta/runtime.yml", "playbooks/deploy.yml", "inventory/aws/hosts.yml",
        "helm/triton/Chart.yaml", "scripts/versions.env", "plugins/lookup/pin.py", "plugins/filter/rules.py",
        "plugins/filter/arn.yml", "plugins/test/aws_region.yml", "plugins/modules/ecr_mirror.py",
        "changelogs/changelog.yaml", "changelogs/config.yaml", "tests/sanity/ignore-2.19.txt",
        "execution-environment.yml", "requirements/ee-python.txt", "requirements/ee-bindep.txt",
        "requirements/lock.txt", "docs/development.md",
    }  # fmt: skip
    assert sorted(needed - names) == []
    assert any(n.startswith("model_repository/") for n in names) and any(n.startswith("awx/") for n in names)
    tops = {".venv", ".collections", ".ansible", ".ci", ".git", "src", "bench", "examples", "build", "dist"}
    leaked = [n for n in names if n.split("/")[0] in tops]
    leaked += [n for n in names if n.split("/")[:2] in (["tests", "unit"], ["tests", "integration"], ["tests", "e2e"])]
    leaked += [n for n in names if "__pycache__" in n or n.startswith("tests/output") or n.endswith(".egg-info")]
    gone = {"pyproject.toml", "setup.py", "Makefile", "tests/conftest.py", "scripts/sanity.sh", "scripts/run-pytest.sh"}
    gone |= {"requirements/base.in", "requirements/bench.txt", ".ansible-lint", ".yamllint", ".gitignore"}
    leaked += sorted(gone & names)
    assert leaked == []


def test_galaxy_metadata_points_at_shipped_files():
    """No public URL exists: repository/documentation/issues name files the collection ships (no placeholders)."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    for key in ("repository", "documentation", "issues"):
        path, _, anchor = galaxy[key].partition("#")
        assert (ROOT / path).is_file(), (key, galaxy[key])
        if anchor:
            lines = (ROOT / path).read_text().splitlines()
            headings = [line.lstrip("#").strip().lower().replace(" ", "-") for line in lines if line.startswith("#")]
            assert anchor in headings, (key, galaxy[key])


def test_galaxy_dependencies_match_requirements_yml():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    reqs = yaml.safe_load((ROOT / "requirements.yml").read_text())
    assert {c["name"]: c["version"] for c in reqs["collections"]} == galaxy["dependencies"]


def test_bundled_collections_satisfy_galaxy_dependencies():
    """The `ansible` PyPI package provides every dependency at a version inside galaxy.yml's range."""
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements

    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    site = Path(sys.executable).parents[1] / "lib" / "python3.11" / "site-packages" / "ansible_collections"
    for fqcn, spec in galaxy["dependencies"].items():
        ns, name = fqcn.split(".")
        manifest = site / ns / name / "MANIFEST.json"
        version = yaml.safe_load(manifest.read_text())["collection_info"]["version"]
        assert meets_requirements(version, spec), f"{fqcn} {version} not in {spec}"


def test_cli_entry_point_runs():
    proc = run(str(VENV_BIN / "tritonfil"), "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "tritonfil 0.1.0"
