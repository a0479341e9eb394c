"""The tritonfil wheel carries the tritonfil.eks collection exactly as `ansible-galaxy collection build` makes
it, and the package finds the collection (playbooks, module_utils, pins) as a Python package, without path
arithmetic: the installed copy from the wheel, the checkout through the link `make setup` makes."""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN, ansible_env
from tests.wheel_build import COLLECTION_IN_WHEEL, build_wheel, collection_files_in
from tritonfil import api, collection, models
from tritonfil.localenv import eksctl_sim


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def galaxy_build(tmp_path_factory: pytest.TempPathFactory) -> tarfile.TarFile:
    out = tmp_path_factory.mktemp("galaxy")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
        cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("tritonfil-eks-*.tar.gz")
    return tarfile.open(tarball)


def test_wheel_carries_exactly_the_files_of_the_galaxy_build(wheel, galaxy_build):
    galaxy = {m.name for m in galaxy_build.getmembers() if not m.isdir()}
    assert "site.yml" in galaxy and "scripts/versions.env" in galaxy  # what the package runs and reads
    carried = collection_files_in(wheel)
    assert sorted(carried - galaxy) == [] and sorted(galaxy - carried) == []


def test_wheel_manifest_and_files_json_are_the_galaxy_builds(wheel, galaxy_build):
    """The copy is an installed collection: MANIFEST.json (not galaxy.yml) and FILES.json whose checksums are the
    wheel's own files (what `ansible-galaxy collection verify` checks)."""
    with zipfile.ZipFile(wheel) as z:
        manifest = json.loads(z.read(COLLECTION_IN_WHEEL + "MANIFEST.json"))
        files = json.loads(z.read(COLLECTION_IN_WHEEL + "FILES.json"))
        for entry in files["files"]:
            if entry["ftype"] == "file":
                content = z.read(COLLECTION_IN_WHEEL + entry["name"])
                assert hashlib.sha256(content).hexdigest() == entry["chksum_sha256"], entry["name"]
        files_json = z.read(COLLECTION_IN_WHEEL + "FILES.json")
    galaxy_manifest = json.load(galaxy_build.extractfile("MANIFEST.json"))
    galaxy_files = json.load(galaxy_build.extractfile("FILES.json"))
    assert manifest["collection_info"] == galaxy_manifest["collection_info"]
    assert manifest["file_manifest_file"]["chksum_sha256"] == hashlib.sha256(files_json).hexdigest()
    assert sorted((e["name"], e["ftype"]) for e in files["files"]) == sorted(
        (e["name"], e["ftype"]) for e in galaxy_files["files"]
    )


def test_wheel_keeps_the_executable_bits_of_the_galaxy_build(wheel, galaxy_build):
    executable = {m.name for m in galaxy_build.getmembers() if m.isfile() and m.mode & 0o100}
    with zipfile.ZipFile(wheel) as z:
        carried = {
            i.filename.removeprefix(COLLECTION_IN_WHEEL)
            for i in z.infolist()
            if i.filename.startswith(COLLECTION_IN_WHEEL) and (i.external_attr >> 16) & 0o100
        }
    assert carried == executable


def test_wheel_holds_the_package_the_collection_and_the_console_scripts_only(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = z.read(entry_points).decode()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"tritonfil", "tritonfil-0.1.0.dist-info", "ansible_collections"}
    assert {n for n in names if n.startswith("ansible_collections/")} == {
        n for n in names if n.startswith(COLLECTION_IN_WHEEL)
    }
    assert "tritonfil/localenv/eksctl_sim.py" in names and "tritonfil/collection.py" in names
    assert "tritonfil = tritonfil.cli:main" in scripts
    assert "tritonfil-eksctl-sim = tritonfil.localenv.eksctl_sim:main" in scripts


def test_checkout_collection_is_the_link_make_setup_makes_and_editable_install_copies_nothing():
    link = Path(sysconfig.get_path("purelib")) / "ansible_collections" / "tritonfil" / "eks"
    assert link.is_symlink() and link.resolve() == ROOT
    (dist,) = Path(sysconfig.get_path("purelib")).glob("tritonfil-*.dist-info")
    record = (dist / "RECORD").read_text()
    assert "__editable__" in record and "ansible_collections" not in record


def test_collection_locator_finds_the_checkout_its_module_utils_and_pins(monkeypatch):
    monkeypatch.delenv(api.PROJECT_ENV, raising=False)
    assert collection.root() == ROOT and api.find_project() == ROOT
    pins_module = collection.module_utils("pins")
    assert pins_module.__name__ == "ansible_collections.tritonfil.eks.plugins.module_utils.pins"
    assert Path(pins_module.__file__).resolve() == ROOT / "plugins" / "module_utils" / "pins.py"
    assert collection.pins() == pins_module.parse((ROOT / "scripts" / "versions.env").read_text())
    assert collection.pins()["KUBERNETES_VERSION"].startswith("v1.")
    assert models.module_utils is collection.module_utils and models.collection_root() == ROOT


def test_missing_collection_names_both_ways_to_get_it(monkeypatch):
    real = importlib.import_module

    def import_module(name: str, *args: object) -> object:
        if name == collection.PACKAGE:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(collection.importlib, "import_module", import_module)
    monkeypatch.delenv(api.PROJECT_ENV, raising=False)
    collection.root.cache_clear()
    try:
        with pytest.raises(collection.CollectionNotFound, match=r"install the tritonfil wheel.*or run `make setup`"):
            collection.root()
        with pytest.raises(api.ProjectNotFound, match=r"not importable.*set TRITONFIL_PROJECT"):
            api.find_project()
    finally:
        collection.root.cache_clear()


def test_package_does_no_path_arithmetic_and_no_sys_path_edits():
    """The package finds its files through tritonfil.collection only: no Path(__file__).parents[N], no sys.path."""
    offences = []
    for path in sorted((ROOT / "src" / "tritonfil").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            value = getattr(node, "value", None)
            if isinstance(node, ast.Subscript) and isinstance(value, ast.Attribute) and value.attr == "parents":
                offences.append(f"{where} .parents[...]")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(value, ast.Name)
                and value.id == "sys"
            ):
                offences.append(f"{where} sys.path")
    assert offences == []


def test_eksctl_simulator_is_a_console_script_and_scripts_eksctl_sim_runs_it(tmp_path):
    path = os.environ["PATH"].split(os.pathsep)
    without_venv = os.pathsep.join(p for p in path if Path(p) != VENV_BIN)
    for argv, env in [
        ([str(VENV_BIN / "tritonfil-eksctl-sim"), "version"], {}),
        ([str(ROOT / "scripts" / "eksctl-sim"), "version"], {"PATH": without_venv}),  # the checkout's .venv
        ([str(ROOT / "scripts" / "eksctl-sim"), "version"], {"TRITONFIL_PYTHON": sys.executable}),
    ]:
        proc = subprocess.run(argv, env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True)
        assert (proc.returncode, proc.stdout.strip()) == (0, eksctl_sim.SIM_VERSION), proc.stderr


def test_eksctl_sim_shim_says_what_is_missing(tmp_path):
    shim = tmp_path / "scripts" / "eksctl-sim"  # a copy with no .venv next to it and none on PATH
    shim.parent.mkdir()
    shim.write_text((ROOT / "scripts" / "eksctl-sim").read_text())
    shim.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([str(shim), "version"], env=env, capture_output=True, text=True)
    assert proc.returncode == 127
    assert proc.stderr == "eksctl-sim: tritonfil-eksctl-sim not found: install the tritonfil package (make setup)\n"
