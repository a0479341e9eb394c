#!/usr/bin/env python3
"""Model rollout ([2.3]): time and bytes of a new model revision for 1, 10 and 100 models, end to end.

    .venv/bin/python bench/rollout.py [--counts 1,10,100] [--sample xgb_classifier] [--replicas 1]

A local environment of its own (every component; two static GPU nodes, so Karpenter has nothing to add, and the
HPA/KEDA off: the replica count stays --replicas). For each COUNT, a repository of COUNT copies of one sample
model (distinct names in the directory, config.pbtxt and reference.json; the model file as is) is deployed by
site.yml (the first revision), then one model's config.pbtxt changes (a comment line: new content, same
predictions) and site.yml runs again: the new revision is stored (that one file uploaded, the other objects
copied server-side), the Deployment rolls (surge, no unavailable replica), verify checks every model's
reference on every replica.

Measured per COUNT, each from the run's own reports (ansible.posix.json callback, the s3_models_sync fact):
- the first deploy and the one-model change: wall time of site.yml, time in each stage (the sum of its
  tasks' durations), bytes uploaded, objects copied server-side, objects skipped;
- the rollout alone: the triton_release stage of the change run (helm upgrade + wait for the rolled pods:
  each new pod downloads the revision from moto and loads COUNT models) and the verify stage.

Results: bench/results/rollout.json and rollout.png. Every number is wall time on this machine (2 cores shared
by moto, the API server, kwok, Prometheus and the tritonserver processes): compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Recorder, pyplot, save_figure, say  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.integration.playbook_run import run_playbook  # noqa: E402
from tritonfil.localenv.env import LocalEnv  # noqa: E402

# Teardown after each count deletes the bucket (every revision): the next count starts from an empty bucket, so
# its bytes are not deduplicated against the previous count's revisions.
CONFIRM = [
    "-e", "tritonfil_teardown_confirm_delete_bucket=true", "-e", "tritonfil_teardown_confirm_delete_repository=true",
]  # fmt: skip
# Plays whose tasks have no role: their stage name.
PLAYS = {"Verify the Triton release": "verify", "Deploy Triton + FIL on EKS": "preflight"}


def generate(dest: Path, sample: Path, count: int) -> int:
    """COUNT copies of SAMPLE named m0000_<sample>...; returns the repository's bytes."""
    config = (sample / "config.pbtxt").read_text()
    reference = json.loads((sample / "reference.json").read_text())
    total = 0
    for i in range(count):
        name = f"m{i:04d}_{sample.name}"
        target = dest / name
        shutil.copytree(sample, target)
        (target / "config.pbtxt").write_text(config.replace(f'name: "{sample.name}"', f'name: "{name}"'))
        (target / "reference.json").write_text(json.dumps({**reference, "model": name}, indent=1))
        total += sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return total


def stage_seconds(stdout: str) -> dict[str, float]:
    """Seconds per stage (role name, else play name), the sum of its tasks' durations."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return {}
    out: dict[str, float] = {}
    for play in data.get("plays", []):
        for task in play["tasks"]:
            name = task["task"]["name"]
            if " : " in name:
                stage = name.split(" : ", 1)[0].removeprefix("tritonfil.eks.")
            else:
                stage = PLAYS.get(play["play"]["name"], play["play"]["name"])
            d = task["task"].get("duration", {})
            if "start" in d and "end" in d:
                start = datetime.fromisoformat(d["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(d["end"].replace("Z", "+00:00"))
                out[stage] = round(out.get(stage, 0.0) + (end - start).total_seconds(), 2)
    return out


def summary(run: Any, work: Path) -> dict[str, Any]:
    sync = run.facts.get("s3_models_sync", {})
    out = {
        "rc": run.rc,
        "seconds": round(run.seconds, 1),
        "recap": run.recap,
        "stages": stage_seconds((work / "stdout").read_text() if (work / "stdout").exists() else ""),
        "revision": sync.get("revision"),
        "uploaded_files": int(sync.get("uploaded", 0)) if sync else None,
        "bytes_uploaded": int(sync.get("bytes_uploaded", 0)) if sync else None,
        "copied_server_side": int(sync.get("copied", 0)) if sync else None,
        "skipped": int(sync.get("skipped", 0)) if sync else None,
        "changed_models": sync.get("changed_models"),
    }
    if run.rc != 0:
        out["failure"] = run.failure[-600:]
    return out


def measure(count: int, sample: Path, env: dict[str, str], work: Path, replicas: int) -> dict[str, Any]:
    repo = work / "repository"
    repo.mkdir(parents=True)
    size = generate(repo, sample, count)
    files = sum(1 for f in repo.rglob("*") if f.is_file())
    say(f"rollout: {count} models ({files} files, {size / 1e6:.1f} MB)")
    values = {
        "s3_models_repository_path": str(repo),
        "triton_release_extra_values": {"autoscaling": {"enabled": False}, "replicaCount": replicas},
        # One replica at a time loads COUNT Python-backend models on 2 shared cores: give it the time.
        "triton_release_timeout": "30m",
    }
    (work / "values.json").write_text(json.dumps(values))
    res: dict[str, Any] = {"models": count, "files": files, "bytes": size, "replicas": replicas}
    first = run_playbook("site.yml", work / "first", env, "-e", f"@{work / 'values.json'}", timeout=3600)
    res["first_deploy"] = summary(first, work / "first")
    say(f"rollout: {count} first deploy rc={first.rc} {first.seconds:.0f}s")
    if first.rc == 0:
        changed = repo / f"m0000_{sample.name}" / "config.pbtxt"
        changed.write_text(changed.read_text() + "# bench: a changed revision (same predictions)\n")
        change = run_playbook("site.yml", work / "change", env, "-e", f"@{work / 'values.json'}", timeout=3600)
        res["one_model_change"] = summary(change, work / "change")
        res["one_model_change"]["rollout_seconds"] = res["one_model_change"]["stages"].get("triton_release")
        say(f"rollout: {count} one-model change rc={change.rc} {change.seconds:.0f}s")
    down = run_playbook("playbooks/teardown.yml", work / "teardown", env, *CONFIRM, timeout=1800)
    res["teardown_rc"] = down.rc
    if down.rc != 0:
        raise SystemExit(f"rollout: teardown after {count} models failed: {down.failure}")
    return res


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    runs = [r for r in doc["runs"] if "one_model_change" in r]
    if plt is None or not runs:
        return
    n = [r["models"] for r in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ax1.plot(n, [r["first_deploy"]["stages"].get("triton_release", 0) for r in runs], marker="o",
             label="triton_release, first revision")  # fmt: skip
    ax1.plot(n, [r["one_model_change"]["stages"].get("triton_release", 0) for r in runs], marker="o",
             label="triton_release, one model changed (the rollout)")  # fmt: skip
    ax1.plot(n, [r["one_model_change"]["stages"].get("verify", 0) for r in runs], marker="x",
             label="verify after the change")  # fmt: skip
    ax1.plot(n, [r["one_model_change"]["seconds"] for r in runs], "k--", label="site.yml, one model changed")
    ax2.plot(n, [r["first_deploy"]["bytes_uploaded"] / 1e3 for r in runs], marker="o", label="first revision")
    ax2.plot(n, [r["one_model_change"]["bytes_uploaded"] / 1e3 for r in runs], marker="o",
             label="one model changed")  # fmt: skip
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("models in the repository")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_ylabel("seconds")
    ax1.set_title("rollout time vs model count")
    ax2.set_yscale("log")
    ax2.set_ylabel("kB uploaded to S3 for the revision")
    ax2.set_title("bytes uploaded per revision")
    save_figure(fig, doc, path, dpi=110)


def table(doc: dict[str, Any]) -> str:
    lines = ["models  first s  up kB  change s  rollout s  verify s  up B  copied"]
    for r in doc["runs"]:
        f, c = r["first_deploy"], r.get("one_model_change", {})
        lines.append(
            f"{r['models']:>6} {f['seconds']:>8} {f['bytes_uploaded'] / 1e3:>6.0f} {c.get('seconds', '-')!s:>9}"
            f" {c.get('rollout_seconds', '-')!s:>10} {c.get('stages', {}).get('verify', '-')!s:>9}"
            f" {c.get('bytes_uploaded', '-')!s:>5} {c.get('copied_server_side', '-')!s:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,100", help="model counts (default 1,10,100)")
    parser.add_argument("--sample", default="xgb_classifier", help="sample model copied (default xgb_classifier)")
    parser.add_argument("--replicas", type=int, default=1, help="Triton replicas (default 1)")
    parser.add_argument("--output", type=Path, default=RESULTS / "rollout.json")
    args = parser.parse_args(argv)
    rec = Recorder("rollout", argv)
    counts = [int(c) for c in args.counts.split(",")]
    sample = ROOT / "model_repository" / args.sample
    rec.doc.update(sample_model=args.sample, counts=counts, replicas=args.replicas, runs=[])
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        work = Path(tmp)
        local = LocalEnv(state_dir=work / "env", nodes=2)
        t0 = time.monotonic()
        local.up(progress=say)
        rec.doc["env_up_seconds"] = round(time.monotonic() - t0, 1)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(local.environ())
            for name in ("AWS_ENDPOINT_URL", "AWS_URL"):
                env.pop(name, None)
            for count in counts:
                rec.doc["runs"].append(measure(count, sample, env, work / f"n{count}", args.replicas))
                rec.write(args.output)  # partial results survive a later failure
        finally:
            local.down()
    path = rec.write(args.output)
    plot(rec.doc, path.with_suffix(".png"))
    sys.stdout.write(table(rec.doc) + f"\nwrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
