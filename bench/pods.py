#!/usr/bin/env python3
"""Process-backed Triton pods of the local environment: time from scheduled to Ready, and memory per pod.

    .venv/bin/python bench/pods.py [--replicas 3] [--rounds 2] [--output bench/results/pods.json]

Brings up a local environment of its own (moto, registry, cluster, pods), deploys the sample repository
with site.yml (the HPA off, so the replica count is the benchmark's), then scales the Deployment
0 -> REPLICAS, ROUNDS times, and for every new pod records, from the API server's and the runner's
timestamps:

- scheduled -> process started (the runner's poll and the process spawn),
- process started -> live (tritonserver up),
- live -> Ready (the revision downloaded from moto's S3 and the 4 sample models loaded, KIND_GPU ones
  through the model control API with KIND_CPU configs, then the readiness probe),
- scheduled -> Ready in total;

and the resident memory of each pod: the tritonserver process plus its python backend stubs (one per model
instance), summed over the process group, read from /proc once the pod is Ready.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, VENV_BIN, host, isolation, loadavg, now, say  # noqa: E402

from tritonfil.localenv.env import LocalEnv  # noqa: E402
from tritonfil.localenv.pods import condition_true  # noqa: E402


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def group_rss_mib(pid: int) -> float:
    """Resident memory of PID's process group (the server and its python backend stubs), MiB."""
    pgid = os.getpgid(pid)
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return round(total / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "pods.json")
    args = parser.parse_args(argv)
    doc: dict[str, Any] = {
        "generated_at": now(),
        "command": "bench/pods.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "host": host(),
        "isolation": isolation(),
        "load": {"start": loadavg()},
        "pods": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as tmp:
        state = Path(tmp) / "env"
        env = LocalEnv(state_dir=state, nodes=2)
        t0 = time.monotonic()
        env.up(components=("moto", "registry", "cluster", "pods"))
        doc["environment_up_seconds"] = round(time.monotonic() - t0, 1)
        try:
            doc["pods"], doc["deploy_seconds"] = run(env, Path(tmp), args.replicas, args.rounds)
        finally:
            env.down()
    pods = doc["pods"]
    if pods:
        for key in ("scheduled_to_started", "started_to_live", "live_to_ready", "scheduled_to_ready", "rss_mib"):
            values = sorted(p[key] for p in pods if p.get(key) is not None)
            if values:
                doc.setdefault("summary", {})[key] = {
                    "min": values[0], "median": values[len(values) // 2], "max": values[-1], "n": len(values)
                }  # fmt: skip
    doc["load"]["end"] = loadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"pods: {json.dumps(doc.get('summary', {}))}")
    return 0


def run(env: LocalEnv, tmp: Path, replicas: int, rounds: int) -> tuple[list[dict], float]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    child_env.update(env.environ())
    for name in ("AWS_ENDPOINT_URL", "AWS_URL"):
        child_env.pop(name)
    child_env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{child_env['PATH']}")
    values = tmp / "values.json"
    values.write_text(json.dumps({"triton_release_extra_values": {"autoscaling": {"enabled": False}}}))
    started = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "inventory/local", "playbooks/deploy.yml", "-e", f"@{values}"],
        cwd=ROOT, env=child_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    deploy = round(time.monotonic() - started, 1)
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed:\n{proc.stdout[-3000:]}")
    out: list[dict] = []
    for round_no in range(rounds):
        scale(env, 0)
        wait(lambda: not pods(env), 180)
        scale(env, replicas)
        wait(lambda: len([p for p in pods(env) if condition_true(p)]) == replicas, 600)
        rows = {r["pod"].split("/", 1)[1]: r for r in env.pod_processes()}
        for pod in pods(env):
            name = pod["metadata"]["name"]
            cond = {c["type"]: c for c in pod["status"]["conditions"]}
            scheduled = ts(cond["PodScheduled"]["lastTransitionTime"])
            ready_at = ts(cond["Ready"]["lastTransitionTime"])
            row = rows.get(name, {})
            timing = row.get("timing", {})
            entry = {
                "round": round_no + 1,
                "pod": name,
                "scheduled_to_ready": round(ready_at - scheduled, 2),
                "rss_mib": group_rss_mib(row["pid"]) if row.get("pid") else None,
            }
            if timing.get("started") and timing.get("live"):
                entry["scheduled_to_started"] = round(timing["started"] - scheduled, 2)
                entry["started_to_live"] = round(timing["live"] - timing["started"], 2)
                entry["live_to_ready"] = round(ready_at - timing["live"], 2)
            out.append(entry)
            say(f"pods: {entry}")
    return out, deploy


def pods(env: LocalEnv) -> list[dict]:
    raw = env.kubectl("get", "pods", "-n", "triton", "-l", "app.kubernetes.io/component=inference-server", "-o", "json")
    return [p for p in json.loads(raw.stdout)["items"] if not p["metadata"].get("deletionTimestamp")]


def scale(env: LocalEnv, n: int) -> None:
    env.kubectl("scale", "deployment", "-n", "triton", "-l", "app.kubernetes.io/instance=triton", f"--replicas={n}")


def wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout}s")


if __name__ == "__main__":
    sys.exit(main())
