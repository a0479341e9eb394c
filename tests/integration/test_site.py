"""site.yml and playbooks/teardown.yml end to end on inventory/local, against the session's local environment.

One module-scoped scenario, run in order, each test asserting on one step of it:

1. invalid inputs stop site.yml / teardown.yml in their validation, before any stage runs;
2. site.yml: every stage in order, verify reports correct predictions for every sample model;
3. site.yml again: changed=0;  4. site.yml --check --diff: changed=0;
5. teardown.yml without confirmations: the cluster and the Kubernetes objects go, bucket and repository are
   kept and the run says so;  6. teardown.yml with both confirmations: nothing the deployment created is
   left (moto: no bucket, repository, cluster, IAM role; the cluster: no release or namespace objects);
7. teardown.yml again: changed=0;
8. site.yml interrupted by SIGINT (process group, as a Ctrl-C) while s3_models uploads into the new
   bucket, then interrupted again inside `eksctl create cluster` once the control plane exists (the
   simulator pauses there, as real eksctl waits minutes for CloudFormation), leaving a cluster without
   node groups, IRSA role or OIDC provider; then site.yml again, this time from a third inventory that holds
   only the user's values (no wiring, no emulator switch: those come from inventory/local/emulator.yml as a
   second inventory source): converges to the state of step 2, and its rerun is changed=0.
Between 4 and 5, each stage alone (`--tags STAGE`, no -e) after the full deploy: changed=0.

The playbooks run as a user runs them (`ansible-playbook site.yml -i inventory/local`), with the
environment `tritonfil local exec` gives, minus AWS_ENDPOINT_URL/AWS_URL (only the inventory's endpoint
variables may lead to moto) and with a distinctive fake secret key that must never appear in any output.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.integration.playbook_run import Run, run_playbook
from tritonfil.localenv.env import LocalEnv
from tritonfil.progress import STAGE_ROLES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAKE_SECRET = "tritonfil-fake-secret-site-7Qx2"
CONFIRM = (
    "-e",
    "tritonfil_teardown_confirm_delete_bucket=true",
    "-e",
    "tritonfil_teardown_confirm_delete_repository=true",
)
STAGES = list(STAGE_ROLES)
# The third inventory: the user's values and nothing else (cf. inventory/local/group_vars/all/main.yml).
MODELS = sorted(p.name for p in (ROOT / "model_repository").iterdir() if (p / "config.pbtxt").exists())


def inventory() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "inventory" / "local" / "group_vars" / "all" / "main.yml").read_text())


class SiteRun(Run):
    """A Run that also keeps the role of every task (the json callback names them "<role> : <task>")."""

    roles: list[str]

    @classmethod
    def parse(cls, proc, seconds: float = 0.0) -> SiteRun:
        run = super().parse(proc, seconds)
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            data = {}
        names = [t["task"]["name"] for p in data.get("plays", []) for t in p["tasks"]]
        run.roles = [n.split(" : ", 1)[0].removeprefix("tritonfil.eks.") for n in names if " : " in n]
        return run

    def stage_order(self) -> list[str]:
        order: list[str] = []
        for role in self.roles:
            if role not in order:
                order.append(role)
        return order


@dataclass
class Site:
    local: LocalEnv
    work: Path
    env: dict[str, str]
    names: dict[str, Any]
    count: int = 0
    runs: dict[str, SiteRun] = field(default_factory=dict)

    def run(
        self,
        label: str,
        playbook: str,
        *args: str,
        interrupt_at: str | None = None,
        interrupt_when: Callable[[], bool] | None = None,
        inventory: str | list[str] = "inventory/local",
    ) -> SiteRun:
        self.count += 1
        run = run_playbook(
            playbook,
            self.work / f"{self.count:02d}-{label}",
            self.env,
            *args,
            inventory=inventory,
            parse=SiteRun,
            interrupt_at=interrupt_at,
            interrupt_when=interrupt_when,
        )
        assert FAKE_SECRET not in run.output, f"{label}: the AWS secret key appears in the ansible output"
        self.runs[label] = run
        return run

    def aws(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.local.endpoints()["aws_endpoint_url"], region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key=FAKE_SECRET,
        )  # fmt: skip

    def third_inventory(self) -> str:
        """An inventory of the user's values only: one YAML file, the values inventory/local holds (no wiring,
        no emulator switch, no group_vars)."""
        values = inventory()
        path = self.work / "third-inventory.yml"
        hosts = {
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
        }
        path.write_text(yaml.safe_dump({"tritonfil": {"hosts": hosts, "vars": values}}))
        return str(path)

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.local.kubectl(*args, "-o", "json").stdout)

    def snapshot(self) -> dict[str, Any]:
        """What the deployment owns, in moto, the local registry and the cluster (no ids or timestamps)."""
        s3, ecr, eks, iam = self.aws("s3"), self.aws("ecr"), self.aws("eks"), self.aws("iam")
        bucket, cluster = self.names["bucket"], self.names["cluster"]
        # Only what carries the deployment's names: other tests of the session may own other resources.
        buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] == bucket]
        objects = (
            {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
            if bucket in buckets
            else None
        )
        clusters = [c for c in eks.list_clusters()["clusters"] if c == cluster]
        nodegroups = {
            c: {
                n: eks.describe_nodegroup(clusterName=c, nodegroupName=n)["nodegroup"]["scalingConfig"]
                for n in eks.list_nodegroups(clusterName=c)["nodegroups"]
            }
            for c in clusters
        }
        registry = self.local.endpoints()["registry"]
        try:
            with urllib.request.urlopen(f"http://{registry}/v2/{self.names['repository']}/tags/list") as resp:  # noqa: S310
                tags = json.load(resp).get("tags") or []
        except urllib.error.HTTPError as e:  # 404 NAME_UNKNOWN: nothing was ever pushed
            tags = [f"HTTP {e.code}"] if e.code != 404 else []
        ns = self.names["namespace"]
        namespaces = [n["metadata"]["name"] for n in self.kubectl_json("get", "namespaces")["items"]]
        releases = sorted(
            f"{s['metadata']['namespace']}/{s['metadata']['name']}"
            for s in self.kubectl_json("get", "secrets", "-A", "-l", "owner=helm")["items"]
        )
        deployments = (
            {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
             for d in self.kubectl_json("get", "deployments", "-n", ns)["items"]}
            if ns in namespaces
            else {}
        )  # fmt: skip
        return {
            "buckets": buckets,
            "objects": objects,
            "repositories": [
                r["repositoryName"]
                for r in ecr.describe_repositories()["repositories"]
                if r["repositoryName"] == self.names["repository"]
            ],
            "registry_tags": tags,
            "clusters": clusters,
            "nodegroups": nodegroups,
            "iam_roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"] if cluster in r["RoleName"]),
            "oidc_providers": len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]),
            "release_namespace": ns in namespaces,
            "helm_releases": releases,
            "deployments": deployments,
            "eks_kubeconfig": (self.local.state / "eks-kubeconfig").exists(),
        }


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


@pytest.fixture(scope="module")
def site(local_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(local_env.environ())
    for name in ("AWS_ENDPOINT_URL", "AWS_URL"):
        env.pop(name)
    env["AWS_SECRET_ACCESS_KEY"] = FAKE_SECRET
    env.pop("AWS_SESSION_TOKEN", None)
    work = tmp_path_factory.mktemp("site")
    env.update(HELM_CACHE_HOME=str(work / "helm-cache"), HELM_CONFIG_HOME=str(work / "helm-config"),
               HELM_DATA_HOME=str(work / "helm-data"))  # fmt: skip
    names = inventory()
    site = Site(
        local_env,
        work,
        env,
        {
            "bucket": names["s3_models_bucket"],
            "prefix": names["s3_models_prefix"],
            "repository": names["ecr_image_repository_name"],
            "cluster": names["tritonfil_name"],
            "namespace": "triton",
        },
    )
    yield site
    # Leave the session environment as it was found (not asserted: step 6 is the assertion).
    site.run("cleanup", "playbooks/teardown.yml", *CONFIRM)


@pytest.fixture(scope="module")
def scenario(site: Site) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # A clean slate: earlier tests of the session may have run stages against the same names.
    out["clean_slate"] = site.run("clean-slate", "playbooks/teardown.yml", *CONFIRM)
    out["invalid_type"] = site.run("invalid-type", "site.yml", "-e", "eks_gpu_cluster_nodes_max=lots")
    out["invalid_bounds"] = site.run(
        "invalid-bounds", "site.yml", "-e", "triton_release_replicas_min=5", "-e", "triton_release_replicas_max=2"
    )
    out["invalid_teardown"] = site.run(
        "invalid-teardown", "playbooks/teardown.yml", "-e", "tritonfil_teardown_confirm_delete_bucket=perhaps"
    )
    out["snapshot_before"] = site.snapshot()
    out["first"] = site.run("first", "site.yml")
    out["deployed"] = site.snapshot()
    out["second"] = site.run("second", "site.yml")
    out["plan"] = site.run("plan", "site.yml", "--check", "--diff")
    out["after_plan"] = site.snapshot()
    out["alone"] = {stage: site.run(f"alone-{stage}", "site.yml", "--tags", stage) for stage in [*STAGES, "verify"]}
    out["after_alone"] = site.snapshot()
    out["teardown_plan"] = site.run("teardown-plan", "playbooks/teardown.yml", "--check", "--diff", *CONFIRM)
    out["after_teardown_plan"] = site.snapshot()
    out["teardown_keep"] = site.run("teardown-keep", "playbooks/teardown.yml")
    out["kept"] = site.snapshot()
    out["teardown"] = site.run("teardown", "playbooks/teardown.yml", *CONFIRM)
    out["torn_down"] = site.snapshot()
    out["chart_leftovers"] = site.local.kubectl(
        "get", "all,serviceaccounts,configmaps,secrets,hpa,pdb,clusterroles,clusterrolebindings", "-A",
        "-l", "app.kubernetes.io/instance=triton", "-o", "name",
    ).stdout.split()  # fmt: skip
    out["teardown_again"] = site.run("teardown-again", "playbooks/teardown.yml", *CONFIRM)
    out["interrupted"] = site.run(
        "interrupted",
        "site.yml",
        interrupt_at="TASK [tritonfil.eks.s3_models : Store the model repository as a revision]",
    )
    out["after_interrupt"] = site.snapshot()
    site.env["EKSCTL_SIM_CONTROL_PLANE_PAUSE"] = "300"
    try:
        # SIGINT once moto has the cluster: inside `eksctl create cluster`, after the control plane and
        # before the node groups (the simulator pauses there).
        out["interrupted_eks"] = site.run(
            "interrupted-eks",
            "site.yml",
            interrupt_at="TASK [tritonfil.eks.eks_gpu_cluster : Ensure the EKS cluster",
            interrupt_when=lambda: site.names["cluster"] in site.aws("eks").list_clusters()["clusters"],
        )
    finally:
        site.env.pop("EKSCTL_SIM_CONTROL_PLANE_PAUSE")
    out["after_eks_interrupt"] = site.snapshot()
    third = site.third_inventory()
    emulator = "inventory/local/emulator.yml"
    out["resumed"] = site.run("resumed-third", "site.yml", inventory=[third, emulator])
    out["resumed_state"] = site.snapshot()
    out["third_again"] = site.run("third-again", "site.yml", inventory=[third, emulator])
    timed = (
        "first",
        "second",
        "plan",
        "teardown_plan",
        "teardown_keep",
        "teardown",
        "teardown_again",
        "interrupted",
        "interrupted_eks",
        "resumed",
        "third_again",
    )
    print("wall times: " + ", ".join(f"{k} {out[k].seconds:.0f}s" for k in timed))
    return out


def test_invalid_inputs_fail_in_validation_before_any_stage(scenario):
    bad_type = scenario["invalid_type"]
    assert bad_type.rc != 0
    result = bad_type.result("Validate the site variables (playbooks/argument_specs.yml, entry point site)")
    assert result["argument_errors"] == [
        "argument 'eks_gpu_cluster_nodes_max' is of type str and we were unable to convert to int: "
        "\"'lots'\" cannot be converted to an int"
    ], bad_type.tail()
    assert bad_type.roles == [], bad_type.roles  # no role task ran
    bounds = scenario["invalid_bounds"]
    # The stage's own preflight, run up front (not restated by site.yml): refused before any stage ran.
    assert bounds.rc != 0 and not [s for s in STAGES if bounds.ran(f"Stage {s}")], bounds.tail()
    assert bounds.result("Check the release settings")["msg"] == (
        "triton_release: triton_release_replicas_min (5) must not exceed triton_release_replicas_max (2)"
    )
    teardown = scenario["invalid_teardown"]
    assert teardown.rc != 0 and teardown.roles == []
    assert "tritonfil_teardown_confirm_delete_bucket" in teardown.failure, teardown.tail()
    assert_ok(scenario["clean_slate"])
    before = scenario["snapshot_before"]
    assert before["buckets"] == [] and before["clusters"] == [] and before["repositories"] == []
    assert before["iam_roles"] == [] and before["deployments"] == {} and not before["eks_kubeconfig"]


def test_site_runs_every_stage_in_order_and_verify_checks_every_model(scenario, site):
    run = scenario["first"]
    assert_ok(run)
    assert run.recap["changed"] > 0
    assert run.stage_order() == STAGES, run.stage_order()
    # verify runs the references on every endpoint (each replica; a loop): every one checked every model.
    endpoints = run.result("Run every model against its reference")["results"]
    assert endpoints, run.result("Run every model against its reference")
    for endpoint in endpoints:
        assert sorted(m["name"] for m in endpoint["models"]) == MODELS, endpoint["item"]
    for model in (m for endpoint in endpoints for m in endpoint["models"]):
        assert model["reference"]["match"] is True and model["reference"]["mismatched_rows"] == 0, model
        assert model["reference"]["rows"] > 0, model
    state = scenario["deployed"]
    assert state["buckets"] == [site.names["bucket"]]
    prefix = site.names["prefix"]
    revision = run.facts["s3_models_revision"]
    assert sorted(state["objects"]) == sorted(
        [f"{prefix}/index.json", f"{prefix}/manifests/{revision}.json"]
        + [
            f"{prefix}/revisions/{revision}/{p.relative_to(ROOT / 'model_repository')}"
            for p in (ROOT / "model_repository").rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
    )
    # The release serves that revision, by the image's digest.
    assert run.facts["s3_models_uri"] == f"s3://{site.names['bucket']}/{prefix}/revisions/{revision}"
    assert state["repositories"] == [site.names["repository"]] and state["registry_tags"]
    assert state["clusters"] == [site.names["cluster"]]
    assert state["release_namespace"] and state["helm_releases"] and state["eks_kubeconfig"]
    [image] = state["deployments"].values()
    assert "@sha256:" in image, image


def test_second_run_changes_nothing(scenario):
    run = scenario["second"]
    assert_ok(run)
    assert run.recap["changed"] == 0, [n for n, r in run.tasks if r.get("changed")]
    assert run.stage_order() == STAGES


def test_check_diff_after_deploy_is_an_empty_plan(scenario):
    run = scenario["plan"]
    assert_ok(run)
    assert run.recap["changed"] == 0, [n for n, r in run.tasks if r.get("changed")]
    assert run.stage_order() == STAGES  # every stage planned, none skipped
    assert scenario["after_plan"] == scenario["deployed"]


@pytest.mark.parametrize("stage", [*STAGES, "verify"])
def test_each_stage_alone_after_deploy_changes_nothing_without_extra_vars(scenario, stage):
    """`--tags STAGE` with no -e: what the skipped stages published is read from the real state."""
    run = scenario["alone"][stage]
    assert_ok(run)
    assert run.recap["changed"] == 0, [n for n, r in run.tasks if r.get("changed")]
    # The stage, and the facts entry points of the stages whose published facts it needs.
    producers = {
        "eks_gpu_cluster": {"s3_models"},
        "karpenter": {"eks_gpu_cluster"},  # the cluster's Karpenter IRSA role ARN
        "triton_release": {"s3_models", "ecr_image", "eks_gpu_cluster"},
        "verify": {"triton_release", "istio"},  # the release's endpoint and selector, the gateway's address
    }
    expected = ({stage} if stage != "verify" else set()) | producers.get(stage, set())
    assert set(run.stage_order()) == expected, run.stage_order()
    if stage == "triton_release":  # it got the image, the revision and the IRSA role from their stages' state
        for loader in ("What ecr_image published", "What s3_models published", "What eks_gpu_cluster published"):
            assert run.ran(f"{loader} (the stage is not in this run)"), loader
    assert scenario["after_alone"] == scenario["deployed"]


def test_teardown_check_mode_predicts_and_removes_nothing(scenario):
    run = scenario["teardown_plan"]
    assert_ok(run)
    changed = [n for n, r in run.tasks if r.get("changed")]
    for task in ("Uninstall the Triton release", "Delete the release namespace", "Remove the kubeconfig the role wrote",
                 "Report the bucket teardown", "Report the repository teardown"):  # fmt: skip
        assert task in changed, (task, changed)
    assert any(n.startswith("Ensure the EKS cluster") for n in changed), changed  # the module's plan: delete
    msg = run.result("Report the bucket teardown")["msg"]
    assert msg.endswith("model object versions would be deleted, then the bucket if that empties it"), msg
    assert scenario["after_teardown_plan"] == scenario["deployed"]


def test_teardown_without_confirmation_keeps_bucket_and_repository_and_says_so(scenario, site):
    run = scenario["teardown_keep"]
    assert_ok(run)
    assert run.stage_order() == list(reversed(STAGES)), run.stage_order()
    assert run.result("Report what was kept")["msg"] == (
        f"KEPT s3://{site.names['bucket']} (the model repository): pass"
        " -e tritonfil_teardown_confirm_delete_bucket=true to delete it;"
        f" KEPT ECR repository {site.names['repository']} and its images: pass"
        " -e tritonfil_teardown_confirm_delete_repository=true to delete it. Everything else the deployment created"
        " is removed."
    )
    kept = scenario["kept"]
    assert kept["buckets"] == [site.names["bucket"]] and kept["objects"] == scenario["deployed"]["objects"]
    assert kept["repositories"] == [site.names["repository"]] and kept["registry_tags"]
    assert kept["clusters"] == [] and kept["helm_releases"] == [] and not kept["release_namespace"]


def test_confirmed_teardown_removes_everything_the_deployment_created(scenario, site):
    run = scenario["teardown"]
    assert_ok(run)
    assert run.recap["changed"] > 0
    assert run.result("Report what was kept")["msg"] == "Everything the deployment created is removed."
    gone = scenario["torn_down"]
    assert gone == scenario["snapshot_before"]  # the state before the first deploy, OIDC provider count included
    assert gone["buckets"] == [] and gone["repositories"] == [] and gone["registry_tags"] == []
    assert gone["clusters"] == [] and gone["iam_roles"] == [] and gone["helm_releases"] == []
    assert not gone["release_namespace"] and not gone["eks_kubeconfig"]
    assert scenario["chart_leftovers"] == []  # nothing the chart labels, anywhere in the cluster


def test_second_teardown_is_a_clean_noop(scenario):
    run = scenario["teardown_again"]
    assert_ok(run)
    assert run.recap["changed"] == 0, [n for n, r in run.tasks if r.get("changed")]
    assert run.result("Note that there is no cluster to remove Kubernetes objects from")["msg"].endswith(
        "absent: nothing to remove from Kubernetes"
    )


def test_site_interrupted_mid_run_converges_on_rerun(scenario, site):
    interrupted = scenario["interrupted"]
    assert interrupted.rc != 0, interrupted.output[-2000:]
    assert "[playbook_run: SIGINT after" in interrupted.output
    # It stopped before the cluster: the next stage's marker task may print before the SIGINT lands (seen once on an
    # idle machine, where the revision upload ends within the signal's delivery), its cluster task never starts.
    assert "TASK [tritonfil.eks.eks_gpu_cluster : Ensure the EKS cluster" not in interrupted.output
    assert scenario["after_interrupt"]["clusters"] == []
    interrupted_eks = scenario["interrupted_eks"]
    assert interrupted_eks.rc != 0, interrupted_eks.output[-2000:]
    assert "[playbook_run: SIGINT after" in interrupted_eks.output
    # What an interrupted `eksctl create cluster` leaves (on AWS too): the control plane only.
    bare = scenario["after_eks_interrupt"]
    cluster = site.names["cluster"]
    assert bare["clusters"] == [cluster] and bare["nodegroups"] == {cluster: {}}, bare
    assert bare["iam_roles"] == [] and bare["oidc_providers"] == scenario["snapshot_before"]["oidc_providers"], bare
    resumed = scenario["resumed"]
    assert_ok(resumed)
    actions = resumed.result("Ensure the EKS cluster and its GPU and system node groups (eksctl)")["actions"]
    assert f"associate IAM OIDC provider with cluster {cluster}" in actions, actions
    # The system node group only: GPU nodes come from Karpenter (the managed GPU node group is off by default).
    assert [a.split(" (")[0] for a in actions if a.startswith("create node group")] == [
        "create node group system",
    ], actions
    endpoints = resumed.result("Run every model against its reference")["results"]
    assert endpoints and all(m["reference"]["match"] for e in endpoints for m in e["models"]), endpoints
    # The same revision (same keys, same file contents); its manifest and the index were written anew after the
    # teardown, so they hold other times: compared by presence only.
    assert without_written_times(scenario["resumed_state"]) == without_written_times(scenario["deployed"])


def without_written_times(state: dict[str, Any]) -> dict[str, Any]:
    """STATE with the ETags of the revision index and manifests (they record when they were written) masked."""
    objects = state.get("objects")
    if not objects:
        return state
    masked = {k: ("(written)" if k.endswith("/index.json") or "/manifests/" in k else v) for k, v in objects.items()}
    return {**state, "objects": masked}


def test_an_inventory_of_user_values_only_deploys_and_reruns_unchanged(scenario, site):
    """The third inventory (user values only, plus inventory/local/emulator.yml) resumed the deployment above to
    the same state as inventory/local's; its rerun changes nothing."""
    text = Path(site.third_inventory()).read_text()
    assert "{{" not in text.replace("{{ ansible_playbook_python }}", ""), text  # no wiring line
    again = scenario["third_again"]
    assert_ok(again)
    assert again.recap["changed"] == 0, [n for n, r in again.tasks if r.get("changed")]
    assert again.stage_order() == STAGES


def test_site_spec_repeats_the_role_spec_types():
    """A variable validated up front has the type (and choices) its role validates it with."""
    site = yaml.safe_load((ROOT / "playbooks" / "argument_specs.yml").read_text())["argument_specs"]
    role_options: dict[str, dict] = {}
    for spec in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        role_options.update(yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"])
    for entry in ("site", "teardown"):
        for name, option in site[entry]["options"].items():
            assert option.get("description") and option.get("type"), name
            if name in role_options:
                assert option["type"] == role_options[name]["type"], name
                assert option.get("choices") == role_options[name].get("choices"), name
            else:
                assert name.startswith("tritonfil_"), name
