"""Fault drills ([2.6], docs/faults.md): runs killed, interrupted and denied, and components restarted under them, at
known points of real runs of the playbooks against the session's local environment; each drill then checks what
moto, the registry and the cluster hold (against a snapshot taken before), what was reported, and that a rerun
converges.

One deployment (the sample repository, one replica, the HPA off: test_pods' Deployment) serves the drills in order,
each leaving it deployed and serving for the next, until the teardown drills remove it:

1. verify while the Triton process of the replica is SIGKILLed (the pod runner restarts it): verify names the replica
   and its restart, checks it again once it is back, and passes;
2. a rollout that cannot schedule (a node selector no node has): rolled back, the task names the Deployment and the
   scheduler's reason, the previous pod answers every request all along; a rerun with the good values changes nothing;
3. the run SIGKILLed (its whole process tree) while helm installs, then while helm upgrades - a webhook holds the
   API server's admission of the Deployment, so helm is caught after writing its pending release record: the
   rerun uninstalls the pending first install, rolls the pending upgrade back, and converges; the next run changes
   nothing;
4. an immutable ECR tag asked to move to another image: refused naming ecr_image_tag, the registry keeps the digest;
5. SIGINT during the image copy (a proxy holds the manifest PUT that ends skopeo's copy): the ECR login file is gone,
   no skopeo is left; the rerun pushes the same digest;
6. kube-apiserver restarted while the rollout is waited for: the wait rides it out;
7. an IAM denial (a moto of its own with authorization enforced, one action denied): the failure names the action,
   the bucket the run created without its protections is deleted again, nothing was uploaded; granted, it converges;
8. moto restarted (every AWS resource gone, the kubeconfig and the cluster kept): a stage run alone fails naming the
   missing state; site.yml re-creates it and the serving pod is untouched;
9. teardown SIGINTed during the cluster deletion (after a node group went), then during the bucket deletion (after
   the objects went): the rerun finishes, nothing is orphaned (no cluster, node group, IAM role, OIDC provider,
   revision); a second teardown changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.faults import (
    AdmissionStall,
    HttpStall,
    Prober,
    kill_tree,
    private_files,
    processes,
    run_during,
    tempdir_roots,
    wait_until,
)
from tests.integration.playbook_run import Run, run_playbook
from tests.integration.test_pods import CONFIRM, MODELS, NS, Deployment
from tests.integration.test_site import Site, inventory
from tritonfil.localenv.env import LocalEnv, free_port, http_ok, wait_for
from tritonfil.localenv.images import build_oci_image

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "model_repository" / "xgb_classifier" / "reference.json"
ROLLOUT = "Wait for the rollout (roll a failed one back, naming the pods and why)"
RECOVER = "Recover a release an interrupted run left pending (rollback, or uninstall of a first install)"
MIRROR = "TASK [tritonfil.eks.ecr_image : Mirror the image into the repository]"
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip


def assert_ok(run: Run) -> None:
    assert run.rc == 0 and run.recap.get("failures") == 0, run.tail()


def changed(run: Run) -> list[str]:
    # A result Ansible counts as skipped keeps the module's own "changed" (ecs_ecr in check mode answers skipped and
    # changed for a repository that is not there; changed_when is not applied to a skipped result): the recap's
    # changed count is the authority, and it does not count those.
    return [n for n, r in run.tasks if r.get("changed") and not r.get("skipped")]


class Drills:
    """The deployment the drills share, its runs, and what it owns (snapshots)."""

    def __init__(self, local: LocalEnv, work: Path) -> None:
        self.local, self.work = local, work
        repository = work / "model_repository"
        shutil.copytree(ROOT / "model_repository", repository)
        self.dep = Deployment(local, work, repository)
        # A rollout completes once the old pod is gone: 1 s of preStop sleep instead of 15 keeps the drills short.
        self.dep.values["triton_release_extra_values"]["preStopSleepSeconds"] = 1
        values = inventory()
        self.names = {"bucket": values["s3_models_bucket"], "prefix": values["s3_models_prefix"],
                      "repository": values["ecr_image_repository_name"], "cluster": values["tritonfil_name"],
                      "namespace": NS}  # fmt: skip
        self.site = Site(local, work / "site", self.dep.env, self.names)

    # -- runs -----------------------------------------------------------------------------------------------------
    def run(self, label: str, playbook: str, *args: str, **extra: Any) -> Run:
        # EXTRA deep-merged into the deployment's values (as run_during and interrupted do): a rerun "with the same
        # command" then sends exactly the values of the run it repeats.
        work, values = self.values_file(label, extra)
        return run_playbook(playbook, work, self.dep.env, "-e", f"@{values}", *args)

    def values_file(self, label: str, extra: dict) -> tuple[Path, Path]:
        self.dep.count += 1
        work = self.work / f"{self.dep.count:02d}-{label}"
        values = work.parent / f"{self.dep.count:02d}-values.json"
        values.write_text(json.dumps(merge(self.dep.values, extra)))
        return work, values

    def run_during(self, label: str, playbook: str, *args: str, during: Callable[[int], Any], **extra: Any):
        work, values = self.values_file(label, extra)
        return run_during(playbook, work, self.dep.env, "-e", f"@{values}", *args, during=during)

    def interrupted(self, label: str, playbook: str, *args: str, at: str, when: Callable[[], bool], **extra: Any):
        work, values = self.values_file(label, extra)
        run = run_playbook(playbook, work, self.dep.env, "-e", f"@{values}", *args, interrupt_at=at,
                           interrupt_when=when)  # fmt: skip
        assert "[playbook_run: SIGINT after" in run.output, run.output[-3000:]
        assert run.rc != 0, run.output[-3000:]
        return run

    # -- state ----------------------------------------------------------------------------------------------------
    def serving(self) -> dict:
        """The one ready Triton process of the release (pod, pid, http, restarts)."""
        [proc] = wait_until("one ready replica", lambda: len(self.dep.ready()) == 1 and self.dep.ready(), 180)
        return proc

    def history(self) -> list[dict]:
        """The release's helm revisions (revision, status, description), oldest first, read from its secrets."""
        secrets = json.loads(self.local.kubectl("get", "secrets", "-n", NS, "-l", "owner=helm,name=triton", "-o",
                                                "json", check=False).stdout or '{"items": []}')["items"]  # fmt: skip
        return sorted(
            ({"revision": int(s["metadata"]["labels"]["version"]), "status": s["metadata"]["labels"]["status"]}
             for s in secrets),
            key=lambda h: h["revision"],
        )  # fmt: skip

    def values_diff(self) -> str:
        """The release's user values of its last two revisions, where they differ (for a failure message)."""
        revisions = [h["revision"] for h in self.history()][-2:]
        values = []
        for rev in revisions:
            out = subprocess.run(["helm", "get", "values", "triton", "-n", NS, "--revision", str(rev), "-o", "json"],
                                 env={**os.environ, **self.dep.env}, capture_output=True, text=True)  # fmt: skip
            values.append(json.loads(out.stdout or "{}"))
        if len(values) < 2:
            return f"revisions {revisions}"
        flat = [dict(flatten(v)) for v in values]
        diff = {k: (flat[0].get(k), flat[1].get(k)) for k in sorted(set(flat[0]) | set(flat[1]))
                if flat[0].get(k) != flat[1].get(k)}  # fmt: skip
        return f"revisions {revisions} differ in {diff}"

    def template(self) -> dict:
        out = self.local.kubectl("get", "deployment", "triton", "-n", NS, "-o", "json")
        return json.loads(out.stdout)["spec"]["template"]

    def registry_digest(self, repository: str, tag: str, registry: str | None = None) -> str | None:
        url = f"http://{registry or self.local.endpoints()['registry']}/v2/{repository}/manifests/{tag}"
        request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (loopback)
                return resp.headers["Docker-Content-Digest"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def snapshot(self) -> dict:
        """What the deployment owns in moto, the registry and the cluster (test_site's snapshot), with the model
        objects by key (and content, for a revision's files), and the image digest in the registry."""
        state = self.site.snapshot()
        objects = state["objects"]
        if objects is not None:  # the manifests and the index hold times; a revision's files only their content
            revisions = f"{self.names['prefix']}/revisions/"
            state["objects"] = {k: (v if k.startswith(revisions) else "(metadata)") for k, v in objects.items()}
        # Revisions come and go with every upgrade and rollback: the drills check the history themselves.
        state.pop("helm_releases")
        state["image"] = self.registry_digest(self.names["repository"], self.tag())
        return state

    def tag(self) -> str:
        from tritonfil import collection

        return inventory().get("ecr_image_tag") or collection.pins()["TRITON_IMAGE_TAG"]

    def aws(self, service: str) -> Any:
        return self.site.aws(service)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def merge(base: dict, extra: dict) -> dict:
    out = json.loads(json.dumps(base))
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def drills(local_env: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drills]:
    d = Drills(local_env, tmp_path_factory.mktemp("faults"))
    assert_ok(d.run("clean-slate", "playbooks/teardown.yml", *CONFIRM))
    d.empty = d.snapshot()
    d.first = d.run("deploy", "site.yml")
    assert_ok(d.first)
    d.deployed = d.snapshot()
    yield d
    d.run("cleanup", "playbooks/teardown.yml", *CONFIRM)


# -- 1. a Triton process killed during verify -------------------------------------------------------------------
def test_verify_names_a_replica_killed_during_it_checks_it_again_once_back_and_passes(drills):
    before = drills.serving()
    pod = before["pod"].split("/", 1)[1]

    def kill(pid: int) -> dict:
        # While the inference checks run against the replica: its process dies as to the OOM killer.
        wait_until("the inference checks", lambda: processes("AnsiballZ_triton_infer.py", under=pid), 300, 0.1)
        os.kill(before["pid"], signal.SIGKILL)
        return {"killed": before["pid"], "checks_running": bool(processes("AnsiballZ_triton_infer.py", under=pid))}

    run, fault = drills.run_during("verify-killed", "playbooks/verify.yml", during=kill)
    assert fault["checks_running"], "the process was killed after the checks had ended"
    assert_ok(run)
    report = run.result("Inference check report")["msg"]
    line = next(i for i, text in enumerate(report) if text.startswith(f"replica {pod} "))
    assert report[line].endswith(f"{len(MODELS)} of {len(MODELS)} models predict as their references"), report
    assert report[line + 1] == (
        f"  RESTARTED during verify: {pod} restarts {before['restarts']} -> {before['restarts'] + 1}"
    ), report
    assert report[line + 2].startswith("  checked again once it answered, after "), report
    assert [t.split()[:2] for t in report[line + 3 :]] == [["PASS", m] for m in MODELS], report
    # The same pod, a new process (the runner's restart), serving; nothing else changed.
    after = drills.serving()
    assert (
        after["pod"] == before["pod"] and after["pid"] != before["pid"] and not Path(f"/proc/{before['pid']}").exists()
    )
    assert after["restarts"] == before["restarts"] + 1 and after["http"] == before["http"]
    [status] = [p["status"] for p in drills.dep.pods()]
    assert sum(c["restartCount"] for c in status["containerStatuses"]) == after["restarts"]
    assert drills.snapshot() == drills.deployed


# -- 2. a rollout that cannot schedule --------------------------------------------------------------------------
def test_a_rollout_that_cannot_schedule_is_rolled_back_naming_the_deployment_and_why_and_the_old_pod_serves(drills):
    before = drills.serving()
    history = drills.history()
    current = history[-1]["revision"]
    prober = Prober(lambda: before["http"], REFERENCE)
    prober.start()
    try:
        run = drills.run(
            "unschedulable", "site.yml", "--tags", "triton_release", triton_release_timeout="40s",
            triton_release_extra_values={"nodeSelector": {"tritonfil.io/drill": "no-such-node"}},
        )  # fmt: skip
    finally:
        prober.stop()
    assert run.rc != 0
    result = run.result(ROLLOUT)
    msg = result["msg"]
    assert msg.startswith("Deployment triton not rolled out: not complete after 40s; 1/1 ready, 1 updated"), msg
    assert "unschedulable: 0/" in msg and "didn't match Pod's node affinity/selector" in msg, msg
    assert msg.endswith(f"; rolled back release triton from revision {current + 1} to revision {current}"), msg
    assert result["deployment"] == "triton" and result["rolled_back_to"] == current
    # The previous revision's pod answered every request, correctly, throughout.
    assert prober.failures == [] and prober.answers.get(before["http"], 0) > 10, (prober.answers, prober.failures)
    wait_until("only the previous pod left", lambda: len(drills.dep.pods()) == 1, 120)
    assert drills.serving()["pid"] == before["pid"]
    assert "tritonfil.io/drill" not in (drills.template()["spec"].get("nodeSelector") or {})
    assert [h["status"] for h in drills.history()[-3:]] == ["superseded", "superseded", "deployed"]
    assert drills.snapshot() == drills.deployed
    # The good values again: the rollback already restored them, so nothing changes and the same pod serves.
    again = drills.run("unschedulable-fixed", "site.yml", "--tags", "triton_release")
    assert_ok(again)
    assert changed(again) == [], changed(again)
    assert drills.serving()["pid"] == before["pid"]


# -- 3. SIGKILL while helm installs / upgrades ------------------------------------------------------------------
def killed_in_helm(drills: Drills, label: str, operation: str, **extra: Any) -> tuple[Run, dict]:
    """site.yml --tags triton_release SIGKILLed (the whole process tree) while helm waits on the API server's
    admission of the Deployment (OPERATION: CREATE for an install, UPDATE for an upgrade)."""
    stall = AdmissionStall(drills.local.kubectl, drills.work)

    def kill(pid: int) -> dict:
        wait_until("helm at the Deployment", stall.held.is_set, 300, 0.1)
        helm = processes("helm", "upgrade", under=pid)
        killed = kill_tree(pid)
        stall.deny()  # the Deployment write of the killed helm never lands
        return {"helm": helm, "killed": killed}

    with stall.armed(NS, operations=(operation,)):
        run, fault = drills.run_during(label, "site.yml", "--tags", "triton_release", during=kill, **extra)
    assert run.rc == -signal.SIGKILL and fault["helm"], (run.rc, fault)
    assert stall.seen[0] == f"{operation} Deployment {NS}/triton", stall.seen
    assert not [p for p in fault["killed"] if Path(f"/proc/{p}").exists() and not zombie(p)], "a process survived"
    return run, fault


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_sigkill_during_the_first_helm_install_leaves_pending_install_and_the_rerun_uninstalls_it(drills):
    assert_ok(drills.run("uninstall", "playbooks/teardown.yml", "--tags", "triton_release"))
    # The uninstalled release's pod drains (preStop, SIGTERM) before it is gone: only then is "no pod" the install's.
    wait_until("the uninstalled release's pods gone", lambda: drills.dep.pods() == [], 180)
    killed_in_helm(drills, "killed-install", "CREATE")
    assert drills.history() == [{"revision": 1, "status": "pending-install"}]
    assert (
        drills.dep.pods() == []
        and drills.local.kubectl("get", "deployment", "triton", "-n", NS, check=False).returncode != 0
    )
    rerun = drills.run("after-killed-install", "site.yml", "--tags", "triton_release")
    assert_ok(rerun)
    assert rerun.result(RECOVER)["recovered"] == {
        "status": "pending-install",
        "revision": 1,
        "action": "uninstall",
        "to": 0,
    }
    assert drills.history() == [{"revision": 1, "status": "deployed"}]  # uninstalled, installed anew
    drills.serving()
    assert drills.snapshot() == drills.deployed


def test_sigkill_during_helm_upgrade_leaves_pending_upgrade_the_rerun_rolls_it_back_and_converges(drills):
    before = drills.serving()
    current = drills.history()[-1]["revision"]
    change = {"triton_release_extra_values": {"podAnnotations": {"tritonfil.io/drill": "sigkill"}}}
    killed_in_helm(drills, "killed-upgrade", "UPDATE", **change)
    assert drills.history()[-2:] == [
        {"revision": current, "status": "deployed"}, {"revision": current + 1, "status": "pending-upgrade"}
    ]  # fmt: skip
    # The Deployment update was never admitted: the previous pod still serves, unchanged.
    assert drills.serving()["pid"] == before["pid"]
    assert "tritonfil.io/drill" not in (drills.template()["metadata"].get("annotations") or {})
    # The user runs the same command again.
    rerun = drills.run("after-killed-upgrade", "site.yml", "--tags", "triton_release", **change)
    assert_ok(rerun)
    recovered = rerun.result(RECOVER)
    assert recovered["changed"] and recovered["recovered"] == {
        "status": "pending-upgrade", "revision": current + 1, "action": "rollback", "to": current,
    }  # fmt: skip
    # The pending revision stays in the history; the rollback and the upgrade after it are new revisions.
    assert drills.history()[-3:] == [
        {"revision": current + 1, "status": "pending-upgrade"}, {"revision": current + 2, "status": "superseded"},
        {"revision": current + 3, "status": "deployed"},
    ]  # fmt: skip
    assert drills.template()["metadata"]["annotations"]["tritonfil.io/drill"] == "sigkill"
    assert drills.serving()["pid"] != before["pid"]  # rolled to the new template
    drills.dep.values = merge(drills.dep.values, change)  # the deployment's values from now on
    again = drills.run("after-killed-upgrade-again", "site.yml", "--tags", "triton_release")
    assert_ok(again)
    assert changed(again) == [], changed(again)
    assert drills.snapshot() == drills.deployed


# -- 4. an immutable tag asked to move --------------------------------------------------------------------------
def test_an_immutable_ecr_tag_is_not_moved_to_another_digest(drills):
    tag = drills.tag()
    digest = drills.registry_digest(drills.names["repository"], tag)
    assert digest and drills.deployed["image"] == digest
    other = build_oci_image(drills.work / "other-image", tag, "another image under the same tag\n")
    run = drills.run("immutable-tag", "site.yml", "--tags", "ecr_image", ecr_image_source_image=other)
    assert run.rc != 0
    registry = drills.local.endpoints()["registry"]
    msg = run.result("Mirror the image into the repository")["msg"]
    assert msg.startswith(f"ecr_image_tag: {registry}/{drills.names['repository']}:{tag} holds {digest}, the source is"
                          " now sha256:"), msg  # fmt: skip
    assert msg.endswith("and the repository's tags are immutable: mirror it under a new ecr_image_tag"), msg
    assert digest not in msg.split("the source is now ")[1]
    assert drills.registry_digest(drills.names["repository"], tag) == digest
    assert drills.snapshot() == drills.deployed


# -- 5. SIGINT during the image copy ----------------------------------------------------------------------------
def test_sigint_during_the_image_copy_leaves_no_registry_token_and_the_rerun_pushes_the_same_digest(drills):
    repository, tag = "tritonfil-drill/sigint", drills.tag()
    registry = drills.local.endpoints()["registry"]
    stall = HttpStall(registry, lambda line: line.startswith("PUT ") and f"/v2/{repository}/manifests/" in line)
    tmp = drills.work / "sigint-tmp"  # the run's TMPDIR: where the module's private directory goes
    tmp.mkdir()
    drills.dep.env["TMPDIR"] = str(tmp)
    during: dict[str, Any] = {}

    def copying() -> bool:
        if stall.held.is_set():
            during["login"] = private_files(tmp, "tritonfil-ecr-")
            during["skopeo"] = skopeo_copies(stall.address)
            return True
        return False

    try:
        drills.interrupted("sigint-copy", "site.yml", "--tags", "ecr_image", at=MIRROR, when=copying,
                           ecr_image_repository_name=repository, ecr_image_registry_override=stall.address)  # fmt: skip
    finally:
        drills.dep.env.pop("TMPDIR")
        stall.close()
    # While skopeo copied, the login was in the module's private directory; after the SIGINT it is nowhere.
    assert len(during["login"]) == 1 and during["skopeo"], during
    assert private_files(tmp, "tritonfil-ecr-") == []
    for root in tempdir_roots():
        for path in private_files(root, "tritonfil-ecr-"):  # other runs on the machine have their own
            auth = Path(path) / "auth.json"
            assert not (auth.exists() and stall.address in auth.read_text()), path
    assert skopeo_copies(stall.address) == []
    assert drills.registry_digest(repository, tag) is None  # the blobs went, the tag did not
    rerun = drills.run("sigint-copy-rerun", "site.yml", "--tags", "ecr_image", ecr_image_repository_name=repository)
    assert_ok(rerun)
    mirror = rerun.result("Mirror the image into the repository")
    assert mirror["copied"] and mirror["previous_digest"] is None
    assert mirror["digest"] == drills.deployed["image"] and drills.registry_digest(repository, tag) == mirror["digest"]
    assert rerun.facts["ecr_image_uri"] == f"{registry}/{repository}@{drills.deployed['image']}"
    # The drill's repository goes again; the deployment's was never touched.
    assert_ok(drills.run("sigint-copy-cleanup", "playbooks/teardown.yml", "--tags", "ecr_image",
                         "-e", "tritonfil_teardown_confirm_delete_repository=true",
                         ecr_image_repository_name=repository))  # fmt: skip
    assert drills.registry_digest(repository, tag) is None
    assert repository not in [r["repositoryName"] for r in drills.aws("ecr").describe_repositories()["repositories"]]
    assert drills.snapshot() == drills.deployed


def skopeo_copies(address: str) -> list[int]:
    out = []
    for pid in processes("skopeo", "copy"):
        try:
            if address in Path(f"/proc/{pid}/cmdline").read_text():
                out.append(pid)
        except OSError:
            pass
    return out


# -- 6. kube-apiserver restarted while the rollout is waited for ------------------------------------------------
def test_the_rollout_wait_rides_out_a_kube_apiserver_restart(drills):
    before = drills.serving()
    current = drills.history()[-1]["revision"]
    apiserver_pid = drills.local.state / "kwok" / "clusters" / "tritonfil" / "pids" / "kube-apiserver.pid"

    def restart(pid: int) -> dict:
        # helm has upgraded (no wait) and the rollout wait is polling the Deployment: the API server goes away.
        wait_until("helm's upgrade", lambda: drills.history()[-1] == {"revision": current + 1, "status": "deployed"},
                   300)  # fmt: skip
        wait_until("the rollout wait", lambda: processes("AnsiballZ_triton_rollout.py", under=pid), 300, 0.2)
        old = apiserver_pid.read_text()
        waiting = bool(processes("AnsiballZ_triton_rollout.py", under=pid))  # the wait is on as the server goes
        drills.local.restart_kube_apiserver(down=5)
        # It may end during the restart's own readiness wait (the new pod turned Ready meanwhile): what counts is
        # that it was waiting when the server went away, and that the run then succeeds.
        return {"old": old, "new": apiserver_pid.read_text(), "waiting": waiting}

    change = {"triton_release_extra_values": {"podAnnotations": {"tritonfil.io/drill": "apiserver-restart"}}}
    run, fault = drills.run_during(
        "apiserver-restart", "site.yml", "--tags", "triton_release", during=restart, **change
    )
    assert fault["old"] != fault["new"] and fault["waiting"], fault  # restarted while the wait was on
    assert_ok(run)
    assert run.result(ROLLOUT)["replicas"] == {"desired": 1, "updated": 1, "ready": 1, "available": 1}
    after = drills.serving()
    assert after["pid"] != before["pid"]  # the new template's pod serves
    assert drills.template()["metadata"]["annotations"]["tritonfil.io/drill"] == "apiserver-restart"
    drills.dep.values = merge(drills.dep.values, change)
    assert drills.snapshot() == drills.deployed


# -- 7. an IAM denial -------------------------------------------------------------------------------------------
@pytest.fixture
def enforcing_moto(tmp_path: Path) -> Iterator[dict]:
    """A moto of its own with IAM authorization enforced after the 3 bootstrap calls: a user whose policy allows
    everything but s3:PutBucketVersioning."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    moto = Path(sys.executable).parent / "moto_server"
    with open(tmp_path / "moto.log", "wb") as log:
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3",
                                     "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}, start_new_session=True)  # fmt: skip
    try:
        wait_for("moto (authorization enforced)", lambda: http_ok(f"{url}/moto-api/"), 60, tmp_path / "moto.log")
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")  # fmt: skip
        iam.create_user(UserName="deployer")
        key = iam.create_access_key(UserName="deployer")["AccessKey"]
        iam.put_user_policy(UserName="deployer", PolicyName="deploy", PolicyDocument=policy("s3:PutBucketVersioning"))
        yield {"url": url, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        kill_tree(proc.pid)
        proc.wait()


def policy(denied: str | None) -> str:
    statements = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    if denied:
        statements.append({"Effect": "Deny", "Action": denied, "Resource": "*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def test_an_iam_denial_names_the_action_and_leaves_no_half_made_bucket(drills, enforcing_moto):
    moto, bucket = enforcing_moto, "tritonfil-drill-iam"
    env = {k: v for k, v in drills.dep.env.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=moto["key"], AWS_SECRET_ACCESS_KEY=moto["secret"], AWS_REGION="us-east-1")
    s3 = boto3.client("s3", endpoint_url=moto["url"], region_name="us-east-1", aws_access_key_id=moto["key"],
                      aws_secret_access_key=moto["secret"])  # fmt: skip
    args = ("--tags", "s3_models", "-e", f"tritonfil_aws_endpoint_url={moto['url']}",
            "-e", f"s3_models_bucket={bucket}", "-e", f"s3_models_repository_path={drills.dep.repository}")  # fmt: skip
    denied = run_playbook("site.yml", drills.work / "iam-denied", env, *args)
    assert denied.rc != 0
    msg = denied.result("Fail naming what was refused")["msg"]
    assert msg.startswith(f"s3_models: s3://{bucket} could not be set up with its protections"), msg
    assert "AccessDenied" in msg and "PutBucketVersioning operation" in msg, msg
    assert msg.endswith("Nothing was uploaded; the bucket this run created was deleted again."), msg
    assert not denied.ran("Store the model repository as a revision")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == []  # nothing half-made
    # Granted: the same run converges, the bucket with every protection and the revision in it.
    boto3.client("iam", endpoint_url=moto["url"], region_name="us-east-1", aws_access_key_id=moto["key"],
                 aws_secret_access_key=moto["secret"]).put_user_policy(
        UserName="deployer", PolicyName="deploy", PolicyDocument=policy(None))  # fmt: skip
    granted = run_playbook("site.yml", drills.work / "iam-granted", env, *args)
    assert_ok(granted)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    revision = granted.facts["s3_models_revision"]
    assert (
        f"{drills.names['prefix']}/index.json" in keys and f"{drills.names['prefix']}/manifests/{revision}.json" in keys
    )
    assert drills.snapshot() == drills.deployed  # the local environment's moto was never asked


# -- 8. moto restarted between runs -----------------------------------------------------------------------------
def test_moto_restarted_a_stage_alone_fails_naming_the_missing_state_and_site_converges(drills):
    before = drills.serving()
    drills.local.restart_moto()
    gone = drills.snapshot()
    assert gone["buckets"] == [] and gone["repositories"] == [] and gone["clusters"] == [] and gone["iam_roles"] == []
    # What moto does not hold stays: the kubeconfig eks_gpu_cluster wrote, the release, the registry's image.
    assert gone["eks_kubeconfig"] and gone["deployments"] == drills.deployed["deployments"] and gone["image"]
    alone = drills.run("moto-restarted-alone", "site.yml", "--tags", "triton_release")
    assert alone.rc != 0
    assert alone.failure == (
        f"s3_models_uri: s3://{drills.names['bucket']}/{drills.names['prefix']} holds no model revision yet: run the"
        " s3_models stage first (--tags s3_models)"
    ), alone.tail()
    assert drills.snapshot() == gone  # the failed run created nothing
    site = drills.run("moto-restarted-site", "site.yml")
    assert_ok(site)
    assert drills.snapshot() == drills.deployed  # same names, same revision, same image and IRSA role
    assert site.facts["s3_models_revision"] == drills.first.facts["s3_models_revision"]
    after = drills.serving()
    assert after["pid"] == before["pid"], drills.values_diff()  # the release did not change: its pod served on


# -- 9. teardown interrupted ------------------------------------------------------------------------------------
def test_teardown_interrupted_during_cluster_and_bucket_deletion_finishes_on_rerun_leaving_nothing(drills):
    moto = drills.local.endpoints()["aws_endpoint_url"].removeprefix("http://")
    cluster, bucket = drills.names["cluster"], drills.names["bucket"]
    # 1: inside `eksctl delete cluster`, once the first node group is deleted (its answer held).
    nodegroup = HttpStall(moto, lambda line: line.startswith(f"DELETE /clusters/{cluster}/node-groups/"), "response")
    try:
        drills.interrupted(
            "teardown-sigint-cluster", "playbooks/teardown.yml", *CONFIRM,
            "-e", f"tritonfil_aws_endpoint_url=http://{nodegroup.address}",
            at="TASK [tritonfil.eks.eks_gpu_cluster : Ensure the EKS cluster", when=nodegroup.held.is_set,
        )  # fmt: skip
    finally:
        nodegroup.close()
    half = drills.snapshot()
    assert (
        half["clusters"] == [cluster]
        and len(half["nodegroups"][cluster]) == len(drills.deployed["nodegroups"][cluster]) - 1
    )
    # The karpenter stage's teardown (before the cluster's) deleted its node role; the cluster's IRSA roles (the
    # controller's and Triton's, eksctl's to delete with the cluster) and the OIDC provider are still there.
    assert half["iam_roles"] == [r for r in drills.deployed["iam_roles"] if not r.endswith("-karpenter-node")], half
    assert half["oidc_providers"] == drills.deployed["oidc_providers"]
    assert not half["release_namespace"] and half["buckets"] == [bucket]  # the Kubernetes stages ran before
    # 2: the rerun goes on, and is interrupted in the bucket's deletion, once the objects are deleted.
    objects = HttpStall(moto, lambda line: line.startswith(f"POST /{bucket}?delete"), "response")
    try:
        drills.interrupted(
            "teardown-sigint-bucket", "playbooks/teardown.yml", *CONFIRM,
            "-e", f"tritonfil_aws_endpoint_url=http://{objects.address}",
            at="TASK [tritonfil.eks.s3_models : Delete every model revision", when=objects.held.is_set,
        )  # fmt: skip
    finally:
        objects.close()
    bare = drills.snapshot()
    assert bare["clusters"] == [] and bare["nodegroups"] == {} and bare["iam_roles"] == []
    assert bare["oidc_providers"] == drills.empty["oidc_providers"]
    assert bare["buckets"] == [bucket] and bare["objects"] == {}  # deleted, not yet reported
    # 3: the rerun finishes; nothing of the deployment is left; a second teardown changes nothing.
    finished = drills.run("teardown-finish", "playbooks/teardown.yml", *CONFIRM)
    assert_ok(finished)
    assert drills.snapshot() == drills.empty
    assert (
        drills.local.kubectl("get", "all", "-A", "-l", "app.kubernetes.io/instance=triton", "-o", "name").stdout == ""
    )
    again = drills.run("teardown-again", "playbooks/teardown.yml", *CONFIRM)
    assert_ok(again)
    assert changed(again) == [] and again.recap.get("changed") == 0, (changed(again), again.recap)
    assert drills.snapshot() == drills.empty
