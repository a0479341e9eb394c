"""Preflight of the AWS roles (ecr_image, s3_models): invalid inputs fail naming the field, before AWS.

Every problem of a role's inputs is reported at once, each naming its variable, in the words of the one rule
(plugins/module_utils/rules.py). The region and the endpoint are module_defaults, checked by site.yml.

No environment: one ansible-playbook run includes each role once per case inside a block whose
rescue records the failed task and its message, so every case costs a role include, not a run.
The AWS endpoint points at a closed loopback port and there are no credentials, so a check that
wrongly passed would fail later on a different task (and could not reach AWS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEAD_ENDPOINT = "http://127.0.0.1:9"

ECR: dict = {}
S3 = {"s3_models_bucket": "tritonfil-models", "s3_models_repository_path": str(ROOT / "model_repository")}
ECR_TASK = "Check the ecr_image inputs"
S3_TASK = "Check the s3_models inputs"

# id -> (role, variables on top of the valid ones, failing task, exact message or its start)
CASES: dict[str, tuple[str, dict, str, str]] = {
    "ecr-repository-name": (
        "ecr_image", {"ecr_image_repository_name": "Triton/Server"}, ECR_TASK,
        "ecr_image_repository_name: 'Triton/Server' is not a valid ECR repository name",
    ),
    "ecr-tag": (
        "ecr_image", {"ecr_image_tag": ".26.02"}, ECR_TASK, "ecr_image_tag: '.26.02' is not a valid image tag",
    ),
    "ecr-keep-images": (
        "ecr_image", {"ecr_image_lifecycle_keep_images": 0}, ECR_TASK,
        "ecr_image_lifecycle_keep_images: 0 must be at least 1",
    ),
    "ecr-kms-without-key": (
        "ecr_image", {"ecr_image_encryption": "KMS"}, ECR_TASK,
        "ecr_image_kms_key: required when ecr_image_encryption is KMS",
    ),
    "ecr-key-without-kms": (
        "ecr_image", {"ecr_image_kms_key": "alias/triton"}, ECR_TASK,
        "ecr_image_kms_key: 'alias/triton' is only used with ecr_image_encryption: KMS (it is AES256)",
    ),
    "ecr-registry-override": (
        "ecr_image", {"ecr_image_registry_override": "http://127.0.0.1:5000"}, ECR_TASK,
        "ecr_image_registry_override: 'http://127.0.0.1:5000' is not a registry host[:port]",
    ),
    "ecr-source-image": (
        "ecr_image", {"ecr_image_source_image": ""}, ECR_TASK, "ecr_image_source_image: '' is not an image reference",
    ),
    "ecr-two-problems": (
        "ecr_image", {"ecr_image_tag": "-x", "ecr_image_lifecycle_keep_images": 0}, ECR_TASK,
        "ecr_image_tag: '-x' is not a valid image tag (at most 128 letters, digits, _ . -, not starting with . or -);"
        " ecr_image_lifecycle_keep_images: 0 must be at least 1",
    ),
    "s3-bucket-uppercase": (
        "s3_models", {"s3_models_bucket": "Tritonfil-Models"}, S3_TASK,
        "s3_models_bucket: 'Tritonfil-Models' is not a valid S3 bucket name",
    ),
    "s3-bucket-placeholder": (
        "s3_models", {"s3_models_bucket": "tritonfil-models-CHANGE-ME"}, S3_TASK,
        "s3_models_bucket: 'tritonfil-models-CHANGE-ME' is not a valid S3 bucket name (3-63 characters of lowercase"
        " letters, digits, '.' and '-', starting and ending with a letter or digit) (replace the CHANGE-ME"
        " placeholder of inventory/aws)",
    ),
    "s3-bucket-short": (
        "s3_models", {"s3_models_bucket": "tf"}, S3_TASK, "s3_models_bucket: 'tf' is not a valid S3 bucket name",
    ),
    "s3-bucket-ip": (
        "s3_models", {"s3_models_bucket": "192.168.10.1"}, S3_TASK,
        "s3_models_bucket: '192.168.10.1' is not a valid S3 bucket name (it must not look like an IP address)",
    ),
    "s3-bucket-dots": (
        "s3_models", {"s3_models_bucket": "models..bucket"}, S3_TASK,
        "s3_models_bucket: 'models..bucket' is not a valid S3 bucket name (no two adjacent periods)",
    ),
    "s3-prefix": (
        "s3_models", {"s3_models_prefix": "models/"}, S3_TASK,
        "s3_models_prefix: 'models/' must not start or end with '/'",
    ),
    "s3-keep": (
        "s3_models", {"s3_models_keep_revisions": 1}, S3_TASK,
        "s3_models_keep_revisions: 1 must be at least 2 (the new revision and the one to roll back to)",
    ),
    "s3-key-without-kms": (
        "s3_models", {"s3_models_kms_key_id": "alias/models"}, S3_TASK,
        "s3_models_kms_key_id: 'alias/models' is only used with s3_models_encryption: aws:kms (it is AES256)",
    ),
    "s3-kms-key-alias": (
        "s3_models", {"s3_models_encryption": "aws:kms", "s3_models_kms_key_id": "alias/models"}, S3_TASK,
        "s3_models_kms_key_id: 'alias/models' is not a KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID; not an"
        " alias or a key id) (the Triton IRSA role is granted kms:Decrypt on this ARN)",
    ),
    "s3-repository-path": (
        "s3_models", {"s3_models_repository_path": "/nonexistent/model_repository"},
        "Report the model repository problems",
        "s3_models_repository_path: model repository /nonexistent/model_repository has 1 error(s)",
    ),
}  # fmt: skip


PASSED = "{{ results | combine({case_id: None}) }}"
FAILED = "{{ results | combine({case_id: {'task': ansible_failed_task.name, 'msg': ansible_failed_result.msg}}) }}"


def playbook(out: Path) -> str:
    tasks = []
    for case, (role, extra, _task, _msg) in CASES.items():
        base = ECR if role == "ecr_image" else S3
        tasks.append(
            {
                "name": f"Case {case}",
                "vars": {"case_id": case},
                "block": [
                    {
                        "name": f"Include {role} ({case})",
                        "ansible.builtin.include_role": {"name": f"tritonfil.eks.{role}"},
                        "vars": {**base, **extra},
                    },
                    {"name": f"Passed {case}", "ansible.builtin.set_fact": {"results": PASSED}},
                ],
                "rescue": [{"name": f"Record {case}", "ansible.builtin.set_fact": {"results": FAILED}}],
            }
        )
    tasks.append(
        {
            "name": "Save the results",
            "ansible.builtin.copy": {"content": "{{ results | to_json }}", "dest": str(out), "mode": "0600"},
        }
    )
    play = {
        "name": "Preflight cases",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", "results": {}},
        # As the playbooks set them: every AWS module goes to a closed loopback port.
        "module_defaults": {"group/tritonfil.eks.aws": {"region": "us-east-1", "endpoint_url": DEAD_ENDPOINT}},
        "tasks": tasks,
    }
    return yaml.safe_dump([play], sort_keys=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("aws-preflight")
    out = work / "results.json"
    (work / "play.yml").write_text(playbook(out))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
        AWS_CONFIG_FILE="/nonexistent/config",
        AWS_EC2_METADATA_DISABLED="true",
    )
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(work / "play.yml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", CASES)
def test_invalid_input_fails_in_preflight_naming_the_field(results: dict, case: str) -> None:
    role, _extra, task, message = CASES[case]
    got = results[case]
    assert got is not None, f"{case}: the {role} role ran to the end"
    assert got["task"] == task, got
    assert got["msg"].startswith(message), got["msg"]
