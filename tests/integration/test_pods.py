"""The local Triton pods really serve: each pod of the release is a tritonserver loading its models from S3.

site.yml deploys the sample repository (a copy, so the test can change it) against the session's local
environment; then, in order: what every pod's process loaded and with which credentials; Prometheus scrapes it;
scaling the Deployment 1 -> 3 -> 1 gives three processes, then one; a model changed in the working tree but not
deployed changes nothing that is served; a model that fails to load fails the rollout naming the model, is
rolled back, and the running replica keeps serving; the IRSA role's policy, enforced by moto in process, lets a
pod read its revisions and nothing else. The release runs without the HPA here, so the test alone sets the
replica count.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration import faults
from tests.integration.playbook_run import Run, run_playbook
from tritonfil.localenv import pods as podlib
from tritonfil.localenv.env import LocalEnv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted(p.name for p in (ROOT / "model_repository").iterdir() if (p / "config.pbtxt").exists())
CONFIRM = (
    "-e",
    "tritonfil_teardown_confirm_delete_bucket=true",
    "-e",
    "tritonfil_teardown_confirm_delete_repository=true",
)
NS = "triton"


# The fault drills' polling helper, at this module's 1 s interval.
wait_until = functools.partial(faults.wait_until, interval=1.0)


def get_json(url: str, body: bytes | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read() or b"null")


class Deployment:
    def __init__(self, local: LocalEnv, work: Path, repository: Path) -> None:
        self.local, self.work, self.repository = local, work, repository
        self.count = 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(local.environ())
        for name in ("AWS_ENDPOINT_URL", "AWS_URL"):
            env.pop(name)
        env.update(HELM_CACHE_HOME=str(work / "helm-cache"), HELM_CONFIG_HOME=str(work / "helm-config"),
                   HELM_DATA_HOME=str(work / "helm-data"))  # fmt: skip
        self.env = env
        self.values = {
            "s3_models_repository_path": str(repository),
            # The test sets the replica count itself.
            "triton_release_extra_values": {"autoscaling": {"enabled": False}, "replicaCount": 1},
        }

    def run(self, label: str, playbook: str, *args: str, **extra: Any) -> Run:
        self.count += 1
        work = self.work / f"{self.count:02d}-{label}"
        values = work.parent / f"{self.count:02d}-values.json"
        values.write_text(json.dumps({**self.values, **extra}))
        return run_playbook(playbook, work, self.env, "-e", f"@{values}", *args)

    def processes(self) -> list[dict]:
        return [r for r in self.local.pod_processes() if r["pod"].startswith(f"{NS}/")]

    def ready(self) -> list[dict]:
        return [r for r in self.processes() if r["ready"] and r["pid"]]

    def pods(self) -> list[dict]:
        out = self.local.kubectl("get", "pods", "-n", NS, "-l", "app.kubernetes.io/component=inference-server",
                                 "-o", "json", check=False)  # fmt: skip
        return json.loads(out.stdout)["items"] if out.returncode == 0 else []

    def scale(self, replicas: int) -> None:
        self.local.kubectl("scale", "deployment", "-n", NS, "-l", "app.kubernetes.io/instance=triton",
                           f"--replicas={replicas}")  # fmt: skip


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


def client(service: str, keys: dict[str, str], **kwargs: Any) -> Any:
    """A boto3 client with the AWS_* keys of KEYS (a process environment, or irsa_credentials' result)."""
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"], aws_session_token=keys["AWS_SESSION_TOKEN"], **kwargs,
    )  # fmt: skip


def admin(service: str, local: LocalEnv) -> Any:
    """A client of the local environment's moto with its (fake) admin keys."""
    env = local.environ()
    return boto3.client(
        service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.fixture(scope="module")
def deployment(local_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("pods")
    repository = work / "model_repository"
    shutil.copytree(ROOT / "model_repository", repository)
    dep = Deployment(local_env, work, repository)
    dep.run("clean-slate", "playbooks/teardown.yml", *CONFIRM)
    dep.first = dep.run("deploy", "site.yml")
    yield dep
    dep.run("cleanup", "playbooks/teardown.yml", *CONFIRM)


def test_each_pod_is_a_tritonserver_loading_its_revision_from_s3_with_the_irsa_role(deployment, local_env):
    assert_ok(deployment.first)
    [proc] = deployment.ready()
    [pod] = deployment.pods()
    assert proc["pod"] == f"{NS}/{pod['metadata']['name']}"
    annotations = pod["metadata"]["annotations"]
    assert annotations[podlib.ANN_READY] == "true" and annotations[podlib.ANN_HTTP] == proc["http"]
    # Its repository index: every model READY, loaded by that process.
    index = get_json(f"http://{proc['http']}/v2/repository/index", b"{}")
    assert sorted((m["name"], m["state"]) for m in index) == [(m, "READY") for m in MODELS]
    # Loaded from the revision the release points at, in moto's bucket: the log names the s3:// path.
    revision_uri = deployment.first.facts["s3_models_uri"]
    moto = local_env.endpoints()["aws_endpoint_url"]
    log = Path(proc["log"]).read_text()
    assert f"--model-repository={revision_uri.replace('s3://', f's3://{moto}/')}" in log, log[:2000]
    assert "model_repository_path[0]" in log and revision_uri.split("/", 2)[2] in log
    # The credentials the pod has: the IRSA role's temporary keys, never the environment's.
    env = process_env(proc["pid"])
    role = deployment.first.facts["eks_gpu_cluster_triton_role_arn"]
    assert env["AWS_ROLE_ARN"] == role
    assert env["AWS_ACCESS_KEY_ID"] not in ("testing", local_env.environ()["AWS_ACCESS_KEY_ID"])
    assert env["AWS_SESSION_TOKEN"] and env["AWS_SECRET_ACCESS_KEY"] != "testing"
    assert env["AWS_REGION"] == "us-east-1" and "KUBECONFIG" not in env
    sts = client("sts", env, endpoint_url=moto)
    assert sts.get_caller_identity()["Arn"].startswith(
        role.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
    )


def test_verify_checked_the_replica_at_its_own_address(deployment):
    report = deployment.first.result("Inference check report")["msg"]
    [proc] = deployment.ready()
    pod = proc["pod"].split("/", 1)[1]
    # The first line names the model revision the replicas serve (and that it is live); then each endpoint.
    assert report[0].startswith("model revision ") and report[0].endswith(" (live)"), report
    assert (
        report[1]
        == f"replica {pod} (http://{proc['http']}): {len(MODELS)} of {len(MODELS)} models predict as their references"
    ), report
    assert [line.split()[:2] for line in report[2:]] == [["PASS", m] for m in MODELS], report


def test_prometheus_scrapes_the_pod_through_kubernetes_discovery(deployment, local_env):
    prometheus = local_env.endpoints()["prometheus"]

    def scraped():
        result = get_json(f"{prometheus}/api/v1/query?query=up%7Bjob%3D%22triton%22%7D")["data"]["result"]
        return result if result and result[0]["value"][1] == "1" else None

    [series] = wait_until("Prometheus scraping the Triton pod", scraped, 60)
    [pod] = deployment.pods()
    assert series["metric"]["pod"] == pod["metadata"]["name"]
    assert series["metric"]["namespace"] == NS and series["metric"]["release"] == "triton"
    # Scraped at the address the runner published, not at the pod's simulated 10.x IP.
    assert series["metric"]["instance"] == pod["metadata"]["annotations"][podlib.ANN_METRICS]


def test_scaling_1_to_3_gives_three_serving_processes_and_back_to_1_stops_two(deployment):
    [first] = deployment.ready()
    deployment.scale(3)
    three = wait_until("3 ready processes", lambda: len(deployment.ready()) == 3 and deployment.ready(), 180)
    assert len({p["pid"] for p in three}) == 3 and len({p["http"] for p in three}) == 3
    verify = deployment.run("verify-3", "playbooks/verify.yml")
    assert_ok(verify)
    lines = [line for line in verify.result("Inference check report")["msg"] if line.startswith("replica ")]
    assert len(lines) == 3 and all(
        line.endswith(f"{len(MODELS)} of {len(MODELS)} models predict as their references") for line in lines
    )
    deployment.scale(1)
    wait_until("1 pod left", lambda: len(deployment.pods()) == 1 and len(deployment.processes()) == 1, 180)
    [left] = deployment.ready()
    stopped = [p["pid"] for p in three if p["pid"] != left["pid"]]
    assert len(stopped) == 2 and not [pid for pid in stopped if Path(f"/proc/{pid}").exists()]
    assert first["pid"] in {p["pid"] for p in three}


def test_a_model_changed_in_the_working_tree_but_not_deployed_changes_nothing_served(deployment):
    config = deployment.repository / "xgb_classifier" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "0.5"', 'string_value: "0.99"'))
    try:
        verify = deployment.run("verify-undeployed", "playbooks/verify.yml")
        assert_ok(verify)  # the references still hold: what serves is what the bucket holds
        [proc] = deployment.ready()
        served = get_json(f"http://{proc['http']}/v2/models/xgb_classifier/config")
        threshold = served["parameters"]["threshold"]["string_value"]
        assert threshold == "0.5", threshold
    finally:
        config.write_text(config.read_text().replace('string_value: "0.99"', 'string_value: "0.5"'))


def test_a_model_that_fails_to_load_fails_the_rollout_naming_it_and_the_replica_keeps_serving(deployment, local_env):
    """A revision whose model file Triton cannot load (the validator stops such a file before upload, so the
    revision is made here, as a bucket changed behind the deployment's back would be): the new pod never gets
    ready, the rollout fails naming the model, is rolled back, and the replica that was serving goes on."""
    [before] = deployment.ready()
    uri = deployment.first.facts["s3_models_uri"]
    bucket, prefix = uri.split("/")[2], uri.split("/", 3)[3]
    broken = prefix.rsplit("/", 1)[0] + "/0badc0de0badc0de"
    s3 = admin("s3", local_env)
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]:
        key = broken + obj["Key"][len(prefix) :]
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": obj["Key"]})
    s3.put_object(Bucket=bucket, Key=f"{broken}/xgb_regressor/1/xgboost.ubj", Body=b"{Lnot a model" + b"\x00" * 64)
    run = deployment.run(
        "broken", "site.yml", "--tags", "triton_release",
        triton_release_model_repository=f"s3://{bucket}/{broken}", triton_release_timeout="240s",
    )  # fmt: skip
    assert run.rc != 0
    msg = run.result("Wait for the rollout (roll a failed one back, naming the pods and why)")["msg"]
    assert msg.startswith("Deployment triton not rolled out: pods keep failing"), msg
    assert "failed to load xgb_regressor" in msg and "rolled back release triton from revision" in msg, msg
    # The replica that was serving still serves, untouched; nothing else was disturbed.
    wait_until("only the previous pod left", lambda: len(deployment.pods()) == 1, 120)
    [after] = deployment.ready()
    assert (after["pid"], after["http"]) == (before["pid"], before["http"])
    assert_ok(deployment.run("verify-after-rollback", "playbooks/verify.yml"))


def test_the_irsa_policy_lets_a_pod_read_its_revisions_and_nothing_else(deployment, local_env):
    """The role's own policy (read from IAM of the deployment), enforced by moto in process with authorization on."""
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    iam = admin("iam", local_env)
    role = deployment.first.facts["eks_gpu_cluster_triton_role_arn"].rsplit("/", 1)[1]
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    bucket = deployment.first.facts["s3_models_uri"].split("/")[2]
    revision_key = deployment.first.facts["s3_models_uri"].split("/", 3)[3] + "/xgb_classifier/config.pbtxt"

    @set_initial_no_auth_action_count(6)
    @mock_aws
    def reads() -> dict[str, str]:
        keys = dict(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        s3, iam_, sts = boto3.client("s3", **keys), boto3.client("iam", **keys), boto3.client("sts", **keys)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=revision_key, Body=b"config")
        s3.put_object(Bucket=bucket, Key="models/index.json", Body=b"{}")
        iam_.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
        iam_.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(policy))
        creds = podlib.irsa_credentials(sts, f"arn:aws:iam::123456789012:role/{role}", NS, "triton", "pod-1")
        pod = client("s3", creds)
        out = {}
        for key in (revision_key, "models/index.json"):
            try:
                pod.get_object(Bucket=bucket, Key=key)
                out[key] = "allowed"
            except Exception as exc:
                out[key] = getattr(exc, "response", {}).get("Error", {}).get("Code", str(exc))
        return out

    assert reads() == {revision_key: "allowed", "models/index.json": "AccessDenied"}
