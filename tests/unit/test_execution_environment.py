"""execution-environment.yml: `ansible-builder create` works offline and every pin comes from its source.

Sources: requirements/lock.txt (Python, ansible-core, ansible-runner), the `ansible` package's collections
(amazon.aws, community.aws, kubernetes.core), scripts/versions.env (helm, kubectl, eksctl) and the istio
role's istio_version (istioctl).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.conftest import ROOT, VENV_BIN
from tritonfil.collection import pins
from tritonfil.progress import STAGE_ROLES

EE_FILE = ROOT / "execution-environment.yml"
INSTALL_TOOLS = ROOT / "awx" / "ee" / "install-tools.sh"
COLLECTIONS = Path(yaml.__file__).parents[1] / "ansible_collections"


def ee() -> dict:
    return yaml.safe_load(EE_FILE.read_text())


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def versions_env() -> dict[str, str]:
    return dict(
        re.match(r"^([A-Z0-9_]+)=(\S+)$", line).groups()
        for line in (ROOT / "scripts" / "versions.env").read_text().splitlines()
        if re.match(r"^[A-Z0-9_]+=", line)
    )


def istio_version() -> str:
    """The pinned Istio release (scripts/versions.env ISTIO_VERSION), the istio role's default."""
    return pins()["ISTIO_VERSION"]


def ee_build_arg(name: str) -> str:
    steps = ee()["additional_build_steps"]["append_final"]
    (value,) = [s.split("=", 1)[1] for s in steps if s.startswith(f"ARG {name}=")]
    return value


def offline(argv: list[str]) -> list[str]:
    """Run ARGV without any network when we may (root: a new network namespace with nothing in it)."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "--net", *argv]
    return argv


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """`awx/ee/build.sh create`: collection tarball + `ansible-builder create`, with no network."""
    ctx = tmp_path_factory.mktemp("ee") / "context"
    env = dict(
        os.environ,
        TRITONFIL_EE_CONTEXT=str(ctx),
        TRITONFIL_VENV_BIN=str(VENV_BIN),
        # Belt and braces where unshare is unavailable: any HTTP(S) attempt goes to a closed port.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
    )
    proc = subprocess.run(
        offline([str(ROOT / "awx" / "ee" / "build.sh"), "create", "--output-filename", "Containerfile"]),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Complete! The build context can be found at" in proc.stdout, proc.stdout
    assert "No matches for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return ctx


def test_create_writes_containerfile_with_pinned_base_ansible_and_tools(context):
    containerfile = (context / "Containerfile").read_text()
    pins = lock()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert (
        f'ARG ANSIBLE_INSTALL_REFS="ansible-core=={pins["ansible-core"]} ansible-runner=={pins["ansible-runner"]}"'
        in containerfile
    )
    # Every pip install is constrained by the lock: ansible refs (base), wheels (builder), final install.
    base = containerfile.split("FROM base AS galaxy")[0]
    assert base.index("ARG PIP_CONSTRAINT=/output/upper-constraints.txt") < base.index(
        "RUN $PYCMD -m pip install --no-cache-dir $ANSIBLE_INSTALL_REFS"
    )
    builder = containerfile.split("FROM base AS builder")[1].split("FROM base AS final")[0]
    assert builder.index("COPY _build/constraints/lock.txt /tmp/src/upper-constraints.txt") < builder.index(
        "RUN /output/scripts/assemble"
    )
    # The tools are installed in the final image, after the system packages (tar, gzip) are there.
    final = containerfile.split("FROM base AS final")[1]
    assert f"ARG ISTIO_VERSION={istio_version()}" in final
    install = (
        "RUN bash /tmp/tritonfil-tools/install-tools.sh /tmp/tritonfil-tools/versions.env /usr/local/bin"
        " && rm -rf /tmp/tritonfil-tools"
    )
    assert final.index("RUN /output/scripts/install-from-bindep") < final.index(install)
    assert (
        "RUN ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1 ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"
        ' -r requirements.yml --collections-path "/usr/share/ansible/collections"'
    ) in containerfile.split("FROM base AS galaxy")[1].split("FROM base AS builder")[0]


def test_context_holds_the_requirement_files_and_the_tools_inputs(context):
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == (ROOT / "requirements" / "ee-python.txt").read_text()
    assert (build / "bindep.txt").read_text() == (ROOT / "requirements" / "ee-bindep.txt").read_text()
    assert (build / "constraints" / "lock.txt").read_bytes() == (ROOT / "requirements" / "lock.txt").read_bytes()
    # helm/kubectl/eksctl versions are read at build time from the very versions.env of the repository.
    assert (build / "tools" / "versions.env").read_bytes() == (ROOT / "scripts" / "versions.env").read_bytes()
    assert (build / "tools" / "install-tools.sh").read_bytes() == INSTALL_TOOLS.read_bytes()


def test_context_galaxy_requirements_pin_the_dependencies_and_ship_this_collection(context):
    reqs = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    named = {r["name"]: r["version"] for r in reqs if r.get("type") != "file"}
    assert named == {
        "amazon.aws": "==10.1.2",
        "community.aws": "==10.0.0",
        "kubernetes.core": "==6.2.0",
    }
    (local,) = [r for r in reqs if r.get("type") == "file"]
    # The galaxy stage runs in /build, which is the context's _build directory.
    tarball = context / "_build" / local["name"]
    assert tarball.is_file(), local
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("tritonfil", "eks", galaxy["version"])
    assert manifest["dependencies"] == galaxy["dependencies"]
    for role in STAGE_ROLES:
        assert f"roles/{role}/tasks/main.yml" in names
    assert "helm/triton/Chart.yaml" in names  # triton_release's default chart path is inside the collection
    assert {"plugins/modules/eksctl_cluster.py", "plugins/modules/triton_ready.py"} <= names
    assert not [n for n in names if n.startswith((".venv", ".collections", "build/"))]


def test_collection_tarball_in_the_context_installs_offline(context, tmp_path):
    req = tmp_path / "requirements.yml"
    req.write_text(yaml.safe_dump({"collections": [{"name": "./collections/tritonfil-eks.tar.gz", "type": "file"}]}))
    proc = subprocess.run(
        offline(
            [str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-r", str(req)]
            + ["-p", str(tmp_path / "cols")]
        ),
        # As in the image's galaxy stage: the relative path resolves against the working directory (/build).
        cwd=context / "_build",
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert f"tritonfil.eks:{version} was installed successfully" in proc.stdout, proc.stdout
    installed = tmp_path / "cols" / "ansible_collections" / "tritonfil" / "eks"
    assert (installed / "roles" / "triton_release" / "meta" / "argument_specs.yml").is_file()
    assert (installed / "helm" / "triton" / "values.schema.json").is_file()


def test_python_pins_equal_the_lock():
    """Every pin equals requirements/lock.txt; below the `# -- EE only` marker, exact pins of what the lock lacks."""
    pins = lock()
    definition = ee()["dependencies"]
    for key in ("ansible_core", "ansible_runner"):
        req = Requirement(definition[key]["package_pip"])
        assert str(req.specifier) == f"=={pins[canonicalize_name(req.name)]}", req
    text = (ROOT / definition["python"]).read_text()
    shared, marker, ee_only = text.partition("\n# -- EE only")
    assert marker, "requirements/ee-python.txt lost its '# -- EE only' section"
    ee_only = ee_only.split("\n", 1)[1]  # the rest of the marker line is its comment

    def requirements(part: str) -> list[Requirement]:
        lines = [line.split("#", 1)[0].strip() for line in part.splitlines()]
        return [Requirement(line) for line in lines if line]

    assert requirements(shared)
    for req in requirements(shared):
        assert str(req.specifier) == f"=={pins[canonicalize_name(req.name)]}", f"{req}: lock.txt pins another version"
    for req in requirements(ee_only):
        assert canonicalize_name(req.name) not in pins, f"{req.name} is in lock.txt: list it above the EE-only marker"
        assert re.fullmatch(r"==[0-9][0-9.]*", str(req.specifier)), f"{req}: EE-only packages need an exact pin"
    # The kubeconfig eksctl writes authenticates with `aws eks get-token`: the image must have the AWS CLI.
    assert "awscli" in {canonicalize_name(r.name) for r in requirements(ee_only) + requirements(shared)}


def test_ansible_package_collections_are_the_ee_pins_and_satisfy_galaxy_yml():
    galaxy_deps = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    ee_pins = {c["name"]: c["version"] for c in ee()["dependencies"]["galaxy"]["collections"] if "type" not in c}
    assert set(ee_pins) == set(galaxy_deps)
    for name, pin in ee_pins.items():
        namespace, coll = name.split(".")
        manifest = json.loads((COLLECTIONS / namespace / coll / "MANIFEST.json").read_text())
        installed = manifest["collection_info"]["version"]
        assert pin == f"=={installed}", f"{name}: EE pins {pin}, the tested ansible package carries {installed}"
        assert installed in SpecifierSet(galaxy_deps[name]), (
            f"{name} {installed} outside galaxy.yml {galaxy_deps[name]}"
        )


def test_dependency_collections_python_requirements_are_met_by_the_lock():
    """ansible-builder adds each collection's requirements.txt; the lock (pip constraints) must satisfy them."""
    pins = lock()
    for name in ("amazon/aws", "community/aws", "kubernetes/core"):
        for line in (COLLECTIONS / name / "requirements.txt").read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            req = Requirement(line)
            pinned = pins.get(canonicalize_name(req.name))
            assert pinned, f"{name} needs {req.name}, which requirements/lock.txt does not pin"
            assert pinned in req.specifier, f"{name} needs {line}; lock.txt pins {pinned}"


def test_bindep_lists_skopeo_for_the_rpm_base():
    text = (ROOT / ee()["dependencies"]["system"]).read_text()
    assert re.search(r"^skopeo \[platform:rpm\]", text, re.M)
    assert ee()["options"]["tags"] == [
        f"tritonfil/eks-ee:{yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']}"
    ]


def run_install_tools(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL_TOOLS), *args],
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_tools_are_the_versions_env_pins(arch):
    v = versions_env()
    istio = ee_build_arg("ISTIO_VERSION")
    assert istio == istio_version(), (
        "execution-environment.yml ISTIO_VERSION must equal the pin (scripts/versions.env ISTIO_VERSION)"
    )
    proc = run_install_tools(
        "--print", str(ROOT / "scripts" / "versions.env"), env={"ISTIO_VERSION": istio, "TARGETARCH": arch}
    )
    assert proc.returncode == 0, proc.stderr
    helm, kube, eks = v["HELM_VERSION"], v["KUBERNETES_VERSION"], v["EKSCTL_VERSION"]
    gh = "https://github.com"
    assert proc.stdout.splitlines() == [
        f"helm {helm} https://get.helm.sh/helm-{helm}-linux-{arch}.tar.gz"
        f" https://get.helm.sh/helm-{helm}-linux-{arch}.tar.gz.sha256sum",
        f"kubectl {kube} https://dl.k8s.io/release/{kube}/bin/linux/{arch}/kubectl"
        f" https://dl.k8s.io/release/{kube}/bin/linux/{arch}/kubectl.sha256",
        f"eksctl {eks} {gh}/eksctl-io/eksctl/releases/download/{eks}/eksctl_Linux_{arch}.tar.gz"
        f" {gh}/eksctl-io/eksctl/releases/download/{eks}/eksctl_checksums.txt",
        f"istioctl {istio} {gh}/istio/istio/releases/download/{istio}/istioctl-{istio}-linux-{arch}.tar.gz"
        f" {gh}/istio/istio/releases/download/{istio}/istioctl-{istio}-linux-{arch}.tar.gz.sha256",
    ]


def test_install_tools_refuses_a_missing_istio_version(tmp_path: Path):
    # versions.env holds the pin (it wins over the environment); without it, and without ISTIO_VERSION set, refused.
    pins = (ROOT / "scripts" / "versions.env").read_text().splitlines()
    versions = tmp_path / "versions.env"
    versions.write_text("\n".join(line for line in pins if not line.startswith("ISTIO_VERSION=")) + "\n")
    proc = run_install_tools("--print", str(versions), env={"ISTIO_VERSION": ""})
    assert proc.returncode != 0
    assert "ISTIO_VERSION not set" in proc.stderr


# --- install-tools.sh against a fake release server (a `curl` on PATH that serves local files) ----------------


def fake_binary(path: Path, output: str) -> None:
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)


def tarball(dest: Path, members: dict[str, str]) -> None:
    with tarfile.open(dest, "w:gz") as tar:
        for arcname, output in members.items():
            src = dest.parent / "src" / arcname
            src.parent.mkdir(parents=True, exist_ok=True)
            fake_binary(src, output)
            tar.add(src, arcname=arcname)


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def release_server(tmp_path):
    """Every URL install-tools.sh fetches, served from tmp_path/srv by basename; returns (env, srv, versions)."""
    v = versions_env()
    istio = "1.28.0"
    srv = tmp_path / "srv"
    srv.mkdir()
    helm = srv / f"helm-{v['HELM_VERSION']}-linux-amd64.tar.gz"
    tarball(helm, {"linux-amd64/helm": f"{v['HELM_VERSION']}+gabc"})
    (srv / f"{helm.name}.sha256sum").write_text(f"{sha256(helm)}  {helm.name}\n")
    kubectl = srv / "kubectl"
    fake_binary(kubectl, f"Client Version: {v['KUBERNETES_VERSION']}")
    (srv / "kubectl.sha256").write_text(sha256(kubectl))
    eksctl = srv / "eksctl_Linux_amd64.tar.gz"
    tarball(eksctl, {"eksctl": v["EKSCTL_VERSION"].lstrip("v")})
    (srv / "eksctl_checksums.txt").write_text(
        f"{'0' * 64}  eksctl_Linux_arm64.tar.gz\n{sha256(eksctl)}  {eksctl.name}\n"
    )
    istioctl = srv / f"istioctl-{istio}-linux-amd64.tar.gz"
    tarball(istioctl, {"istioctl": f"client version: {istio}"})
    (srv / f"{istioctl.name}.sha256").write_text(f"{sha256(istioctl)}  {istioctl.name}\n")
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    curl = fakebin / "curl"
    curl.write_text(
        "#!/bin/bash\n"
        "out=; url=\nwhile [[ $# -gt 0 ]]; do case $1 in -o) out=$2; shift 2;; --proto) shift 2;; -*) shift;;"
        " *) url=$1; shift;; esac; done\n"
        f'echo "$url" >> {tmp_path}/fetched\n'
        f'cp "{srv}/${{url##*/}}" "$out"\n'
    )
    curl.chmod(curl.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{fakebin}:{os.environ['PATH']}", "ISTIO_VERSION": istio, "TARGETARCH": "amd64"}
    return env, srv, v


def test_install_tools_installs_verified_binaries(release_server, tmp_path):
    env, _srv, v = release_server
    dest = tmp_path / "bin"
    proc = run_install_tools(str(ROOT / "scripts" / "versions.env"), str(dest), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["eksctl", "helm", "istioctl", "kubectl"]
    assert f"install-tools: helm {v['HELM_VERSION']} (amd64) sha256 " in proc.stdout
    fetched = (tmp_path / "fetched").read_text().splitlines()
    assert len(fetched) == 8  # an archive and its published checksum per tool


def test_install_tools_rejects_an_archive_that_differs_from_the_published_checksum(release_server, tmp_path):
    env, srv, v = release_server
    eksctl = srv / "eksctl_Linux_amd64.tar.gz"
    published = sha256(eksctl)
    tarball(eksctl, {"eksctl": "tampered"})
    proc = run_install_tools(str(ROOT / "scripts" / "versions.env"), str(tmp_path / "bin"), env=env)
    assert proc.returncode != 0
    assert (
        f"install-tools: eksctl {v['EKSCTL_VERSION']}: sha256 {sha256(eksctl)} of eksctl_Linux_amd64.tar.gz"
        f" differs from the published {published}"
    ) in proc.stderr


def test_install_tools_enforces_a_sha256_pinned_in_versions_env(release_server, tmp_path):
    env, srv, v = release_server
    pinned_env = tmp_path / "versions.env"
    pinned_env.write_text((ROOT / "scripts" / "versions.env").read_text() + f"HELM_SHA256_AMD64={'a' * 64}\n")
    proc = run_install_tools(str(pinned_env), str(tmp_path / "bin"), env=env)
    assert proc.returncode != 0
    helm = srv / f"helm-{v['HELM_VERSION']}-linux-amd64.tar.gz"
    assert f"differs from HELM_SHA256_AMD64={'a' * 64}" in proc.stderr
    assert sha256(helm) in proc.stderr
