"""No AWS secret reaches ansible-runner's artifacts when a role runs through it (issue [4/7]).

ansible-runner 2.4 writes the child's whole environment into artifacts/<ident>/command (and,
unless suppress_env_files, into env/envvars): credentials must therefore never travel as
environment variables. They go in a 0600 shared-credentials file outside the private data
dir, named by AWS_SHARED_CREDENTIALS_FILE/AWS_PROFILE. The second test shows the leak that the
first guards against, so the first can fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
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


# -- through the tritonfil API ([2.5]): every secret-looking variable, and values the helm task would return ----------

ENV_PLAY = """---
- name: What the playbook sees of the secret-looking variables (hashes only)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Hash the variables
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.env', 'K8S_AUTH_API_KEY') | hash('sha256') }}
          {{ lookup('ansible.builtin.env', 'CONTROLLER_OAUTH_TOKEN') | hash('sha256') }}"
"""
K8S_KEY = "tritonfil-fake-k8s-api-key-Vq27"
AWX_TOKEN = "tritonfil-fake-awx-oauth-token-Lm93"


def api_project(tmp_path: Path, play: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "site.yml").write_text(play)  # what the API takes for a project directory
    return project


def everything_recorded(data: Path, events: list, result) -> str:
    """The run's stdout, every event the API delivered and every file under the private data directory."""
    texts = [result.artifact_dir.joinpath("stdout").read_text(errors="ignore")]
    texts += [json.dumps(e.raw, default=str) for e in events]
    texts += [p.read_text(errors="ignore") for p in data.rglob("*") if p.is_file()]
    return "\n".join(texts)


def test_secret_environment_variables_reach_the_playbook_but_no_artifact(tmp_path, monkeypatch):
    from tritonfil import api

    monkeypatch.setenv("K8S_AUTH_API_KEY", K8S_KEY)
    monkeypatch.setenv("CONTROLLER_OAUTH_TOKEN", AWX_TOKEN)
    data = tmp_path / "runs"
    events: list = []
    result = api.run_playbook(
        "site.yml", project_dir=api_project(tmp_path, ENV_PLAY), private_data_dir=data, inventory="localhost,",
        use_local_env=False, on_event=events.append,
    )  # fmt: skip
    assert result.status == "successful"
    # The playbook got both (their hashes), and nothing recorded either value.
    want = f"{hashlib.sha256(K8S_KEY.encode()).hexdigest()} {hashlib.sha256(AWX_TOKEN.encode()).hexdigest()}"
    assert want in result.artifact_dir.joinpath("stdout").read_text()
    recorded = everything_recorded(data, events, result)
    assert K8S_KEY not in recorded and AWX_TOKEN not in recorded
    command = json.loads((result.artifact_dir / "command").read_text())
    assert "K8S_AUTH_API_KEY" not in command["env"] and "CONTROLLER_OAUTH_TOKEN" not in command["env"]
    assert command["command"][1:3] == ["-m", "tritonfil.secretenv"], command["command"]
    assert not list(tmp_path.glob("tritonfil-*")), "the private work directory outlived the run"


STATIC_KEY_ID = "AKIATRITONFILSTATIC7"
STATIC_SECRET = "tritonfil-static-secret-in-extra-values-Pq40"
RELEASE_PLAY = """---
- name: triton_release with static keys in its extra values
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/tritonfil.eks.k8s:
      kubeconfig: "{{ kubeconfig }}"
  roles:
    - role: tritonfil.eks.triton_release
"""


def test_a_static_key_in_extra_values_appears_in_no_output_event_or_artifact(tmp_path):
    """helm's result holds the release's values; with no_log the key passed through triton_release_extra_values
    reaches the cluster's Secret but not the output, the callback events or the runner's artifacts."""
    from tritonfil import api

    local = LocalEnv(state_dir=tmp_path / "env", nodes=2)
    local.up(components=("cluster",))
    try:
        extravars = {
            "kubeconfig": str(local.kubeconfig),
            "triton_release_namespace": "triton-static",
            "triton_release_image": "127.0.0.1:5000/tritonserver@sha256:" + "0123456789abcdef" * 4,
            "triton_release_model_repository": "s3://tritonfil-it-models/models",
            "triton_release_aws_region": "us-east-1",
            "triton_release_istio_enabled": False,
            "triton_release_timeout": "2m",
            "triton_release_autoscaler": "hpa",  # CPU: no Prometheus here
            "triton_release_extra_values": {
                "aws": {"staticCredentials": {"enabled": True, "accessKeyId": STATIC_KEY_ID,
                                              "secretAccessKey": STATIC_SECRET}},
            },
        }  # fmt: skip
        data = tmp_path / "runs"
        events: list = []
        envvars = {
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
            "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
            "PATH": f"{local.tools.bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        result = api.run_playbook(
            "site.yml", project_dir=api_project(tmp_path, RELEASE_PLAY), private_data_dir=data,
            inventory="localhost,", use_local_env=False, extravars=extravars, envvars=envvars,
            on_event=events.append, raise_on_failure=False,
        )  # fmt: skip
        assert result.status == "successful", result.artifact_dir.joinpath("stdout").read_text()[-3000:]
        secret = json.loads(local.kubectl("get", "secret", "-n", "triton-static", "triton-aws", "-o", "json").stdout)
        assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == STATIC_SECRET  # it went through
        recorded = everything_recorded(data, events, result)
        assert STATIC_SECRET not in recorded
        assert STATIC_KEY_ID not in recorded
        assert "Report the helm result (values masked)" in recorded  # the run was recorded, the key was not
    finally:
        local.down()
