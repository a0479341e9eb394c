"""pytest-testinfra checks of the control host after `site.yml` and after `playbooks/teardown.yml`.

One module-scoped deploy on the session's local environment (inventory/local, as a user runs it), then
one confirmed teardown. After each: the kubeconfig and env files are 0600 in a 0700 state directory; no
credentials file, ECR login or rendered secret is left in the checkout, the Ansible temp dirs or TMPDIR;
the fake secret key and moto's ECR token appear in no file the runs wrote; the tools on the environment's
PATH are the pinned versions of scripts/versions.env.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import testinfra

from tests.integration.playbook_run import Run, run_playbook
from tritonfil.localenv.env import LocalEnv, _versions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAKE_SECRET = "tritonfil-fake-secret-host-9Kd3"
CONFIRM = (
    "-e",
    "tritonfil_teardown_confirm_delete_bucket=true",
    "-e",
    "tritonfil_teardown_confirm_delete_repository=true",
)
# Names of files that hold credentials or logins, wherever they turn up.
CREDENTIAL_NAMES = ("credentials", "auth.json", "config.json", ".dockerconfigjson", "token")
SKIP_DIRS = {".git", ".venv", ".collections", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}


@dataclass
class Host:
    local: LocalEnv
    work: Path
    env: dict[str, str]
    started: float
    deploy: Run | None = None
    teardown: Run | None = None

    def files_written(self, root: Path) -> list[Path]:
        """Files under ROOT modified since the module started (the checkout: outside tool dirs)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    if path.is_file() and path.stat().st_mtime >= self.started:
                        found.append(path)
                except OSError:
                    continue
        return found

    def temp_dirs(self) -> list[Path]:
        return [self.work / "tmpdir", self.work / "remote-tmp", *(p / "tmp" for p in self.work.glob("run-*"))]


@pytest.fixture(scope="module")
def host():
    return testinfra.get_host("local://")


@pytest.fixture(scope="module")
def deployed(local_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    work = tmp_path_factory.mktemp("host")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(local_env.environ())
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
        TMPDIR=str(work / "tmpdir"),
        ANSIBLE_REMOTE_TEMP=str(work / "remote-tmp"),
        HELM_CACHE_HOME=str(work / "helm-cache"),
        HELM_CONFIG_HOME=str(work / "helm-config"),
        HELM_DATA_HOME=str(work / "helm-data"),
    )
    (work / "tmpdir").mkdir()
    state = Host(local_env, work, env, time.time() - 1)
    # A clean slate: earlier tests of the session may have run stages against the same names.
    assert run_playbook("playbooks/teardown.yml", work / "run-0", env, *CONFIRM).rc == 0
    state.deploy = run_playbook("site.yml", work / "run-1", env)
    assert state.deploy.rc == 0, state.deploy.tail()
    yield state


@pytest.fixture(scope="module")
def torn_down(deployed: Host) -> Host:
    deployed.teardown = run_playbook("playbooks/teardown.yml", deployed.work / "run-2", deployed.env, *CONFIRM)
    assert deployed.teardown.rc == 0, deployed.teardown.tail()
    return deployed


def secrets(local: LocalEnv) -> list[str]:
    """The fake secret key and moto's ECR login (as the token, and the password inside it)."""
    ecr = boto3.client(
        "ecr", endpoint_url=local.endpoints()["aws_endpoint_url"], region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key=FAKE_SECRET,
    )  # fmt: skip
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return [FAKE_SECRET, token, base64.b64decode(token).decode().split(":", 1)[1]]


def assert_private_state(host, local: LocalEnv) -> None:
    state = host.file(str(local.state))
    assert state.is_directory and state.mode == 0o700 and state.user == "root", oct(state.mode)
    for name in ("endpoints.json", "env", "kubeconfig"):
        f = host.file(str(local.state / name))
        assert f.exists and f.mode == 0o600 and f.user == "root", (name, oct(f.mode))


def assert_nothing_secret_left(host_state: Host) -> None:
    needles = secrets(host_state.local)
    written = host_state.files_written(ROOT)
    for path in [p for d in host_state.temp_dirs() if d.exists() for p in d.rglob("*") if p.is_file()]:
        written.append(path)
    leaks = [str(p) for p in written if any(n in p.read_text(errors="ignore") for n in needles)]
    assert leaks == [], f"a secret is in {leaks}"
    credential_files = [str(p) for p in written if p.name in CREDENTIAL_NAMES or p.suffix in {".pem", ".key"}]
    assert credential_files == []
    kubeconfigs = [str(p) for p in host_state.files_written(ROOT) if "kubeconfig" in p.name]
    assert kubeconfigs == [], "a kubeconfig was written into the checkout"


def assert_no_temp_leftovers(host_state: Host) -> None:
    """ansible's remote temp dirs, the ECR login dir (plugins/module_utils/ecr.py: tritonfil-ecr-*), eksctl's config
    file: all removed by the runs."""
    left = [
        str(p.relative_to(host_state.work))
        for d in host_state.temp_dirs()
        if d.exists()
        for p in d.iterdir()
        if p.name.startswith(("ansible-tmp-", "ansible-local-", "eksctl-", ".kubeconfig-", "tritonfil-ecr-"))
    ]
    assert left == []


def test_after_deploy_state_files_are_private(deployed: Host, host):
    assert_private_state(host, deployed.local)
    eks_kubeconfig = host.file(str(deployed.local.state / "eks-kubeconfig"))
    assert eks_kubeconfig.exists and eks_kubeconfig.mode == 0o600, oct(eks_kubeconfig.mode)


def test_after_deploy_no_secret_or_credentials_file_left(deployed: Host):
    assert FAKE_SECRET not in deployed.deploy.output
    assert_nothing_secret_left(deployed)


def test_after_deploy_no_temp_dirs_left(deployed: Host):
    assert_no_temp_leftovers(deployed)


@pytest.mark.parametrize(
    ("tool", "argv", "key"),
    [
        ("kubectl", ["version", "--client"], "KUBERNETES_VERSION"),
        ("kube-apiserver", ["--version"], "KUBERNETES_VERSION"),
        ("kube-controller-manager", ["--version"], "KUBERNETES_VERSION"),
        ("kube-scheduler", ["--version"], "KUBERNETES_VERSION"),
        ("etcd", ["--version"], "ETCD_VERSION"),
        ("kwok", ["--version"], "KWOK_VERSION"),
        ("kwokctl", ["--version"], "KWOK_VERSION"),
        ("helm", ["version", "--short"], "HELM_VERSION"),
        ("eksctl", ["version"], "EKSCTL_VERSION"),
    ],
)
def test_tools_on_the_environment_path_are_pinned(deployed: Host, host, tool, argv, key):
    path = shutil.which(tool, path=deployed.env["PATH"])
    assert path, f"{tool} not on {deployed.env['PATH']}"
    out = host.check_output(" ".join([path, *argv]))
    assert _versions()[key].lstrip("v") in out, (tool, path, out)


def test_after_teardown_the_cluster_kubeconfig_is_gone_and_state_stays_private(torn_down: Host, host):
    assert not host.file(str(torn_down.local.state / "eks-kubeconfig")).exists
    assert_private_state(host, torn_down.local)


def test_after_teardown_no_secret_credentials_file_or_temp_dir_left(torn_down: Host):
    assert FAKE_SECRET not in torn_down.teardown.output
    assert_nothing_secret_left(torn_down)
    assert_no_temp_leftovers(torn_down)
