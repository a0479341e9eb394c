"""No AWS secret reaches ansible-runner's artifacts when a role runs through it (issue [4/7]).

ansible-runner 2.4 writes the child's whole environment into artifacts/<ident>/command (and,
unless suppress_env_files, into env/envvars): credentials must therefore never travel as
environment variables. They go in a 0600 shared-credentials file outside the private data
dir, named by AWS_SHARED_CREDENTIALS_FILE/AWS_PROFILE. The second test shows the leak that the
first guards against, so the first can fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import ansible_runner
import pytest

from tests.conftest import ROOT
from tritonfil.localenv.env import LocalEnv

pytestmark = pytest.mark.integration

SECRET = "tritonfil-runner-secret-Zk81wQ"
PLAY = """---
- name: s3_models through ansible-runner
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/tritonfil.eks.aws:
      region: us-east-1
      endpoint_url: "{{ aws_endpoint }}"
  roles:
    - role: tritonfil.eks.s3_models
"""


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory, isolated: bool) -> Iterator[str]:
    env = LocalEnv(state_dir=tmp_path_factory.mktemp("runner-env"))
    endpoints = env.up(components=("moto",))
    try:
        yield endpoints["aws_endpoint_url"]
    finally:
        env.down()


def run(tmp_path: Path, endpoint: str, bucket: str, credentials_in_env: bool) -> tuple[ansible_runner.Runner, Path]:
    data = tmp_path / f"runner-{bucket}"
    (data / "project").mkdir(parents=True)
    (data / "project" / "play.yml").write_text(PLAY)
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    }
    if credentials_in_env:
        envvars.update(AWS_ACCESS_KEY_ID="AKIATRITONFILRUNNER1", AWS_SECRET_ACCESS_KEY=SECRET)
    else:
        creds = tmp_path / f"credentials-{bucket}"
        creds.write_text(f"[tritonfil]\naws_access_key_id = AKIATRITONFILRUNNER1\naws_secret_access_key = {SECRET}\n")
        creds.chmod(0o600)
        envvars.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_PROFILE="tritonfil")
    runner = ansible_runner.run(
        private_data_dir=str(data),
        playbook="play.yml",
        inventory="localhost,",
        extravars={
            "aws_endpoint": endpoint,
            "s3_models_bucket": bucket,
            "s3_models_repository_path": str(ROOT / "model_repository"),
            "s3_models_tls_only_policy": False,  # moto ignores policy Conditions (README)
        },
        envvars=envvars,
        suppress_env_files=True,
        quiet=True,
    )
    return runner, data


def files_containing(root: Path, needle: str) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_text(errors="ignore")
    )


@pytest.fixture(autouse=True)
def venv_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible-runner finds ansible-playbook on this process's PATH and passes the whole process
    environment on: keep AWS variables out of it so each test decides where credentials come from."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for name in [n for n in os.environ if n.startswith("AWS_") and n != "AWS_CA_BUNDLE"]:
        monkeypatch.delenv(name)


def test_role_run_leaves_no_secret_in_artifacts(tmp_path, moto):
    runner, data = run(tmp_path, moto, "runner-bucket-a", credentials_in_env=False)
    assert runner.status == "successful", runner.stdout.read()
    assert any((data / "artifacts").rglob("job_events/*.json")), "no events were recorded"
    assert "s3_models" in runner.stdout.read()
    assert files_containing(data, SECRET) == []


def test_credentials_in_the_environment_leak_into_the_command_artifact(tmp_path, moto):
    runner, data = run(tmp_path, moto, "runner-bucket-b", credentials_in_env=True)
    assert runner.status == "successful"
    assert files_containing(data, SECRET) == [f"artifacts/{runner.config.ident}/command"]
