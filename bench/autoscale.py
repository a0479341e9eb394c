#!/usr/bin/env python3
"""HPA simulation on a KWOK cluster of 50 simulated GPU nodes: replicas over time under a load step and ramp.

    .venv/bin/python bench/autoscale.py [--nodes 50] [--timeout 420] [--scenarios default_step,...]

A cluster-only local environment (`LocalEnv(nodes=50)`, its own state directory) gets the Triton
chart (helm/triton, installed with the pinned helm) once per scenario, each in its own namespace,
all scenarios running at the same time on the same clock:

- `default_step`, `default_ramp`: the chart's default `autoscaling.behavior` (values.yaml);
- `tuned_step`, `tuned_ramp`: a tuned behavior (TUNED below: no stabilization, 4 pods or 100% per
  15 s up; 30 s stabilization, 100% per 15 s down). `tuned_step` also steps the load back down.

Load model: a total load of L cores spread evenly over the Running pods, as a load balancer would.
Each pod's simulated CPU usage (`kwok.x-k8s.io/usage-cpu`, what kwok's metrics emulation reports
to metrics-server) is set to L/pods on the *pod* (not the pod template: patching the template
would roll every pod, and re-applying the Deployment resets the HPA's replicas). New pods start at
the template's baseline and get their share on the next tick (2 s). With the chart's 2-CPU request
and 60% target one pod carries 1.2 cores, so the target replica count is ceil(L / 1.2).

Step: L from BASE (0.6) to HIGH (9.5: 8 replicas) at t=0. Ramp: L from BASE to HIGH linearly over RAMP seconds. Per
scenario the JSON has the timeline (t, load, target, HPA desired, Deployment replicas, ready) and
the time from the load change to the target replica count Ready (step), from the ramp's start and
from its end (ramp), the replica-seconds short of the target, and the scale-in time (tuned_step).

Results: bench/results/autoscale.json and autoscale.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Recorder, pyplot, save_figure, say  # noqa: E402

from tritonfil.localenv.env import LocalEnv  # noqa: E402

USAGE = "kwok.x-k8s.io/usage-cpu"
DIGEST = "sha256:" + "0123456789abcdef" * 4
REQUEST_CORES = 2.0  # chart default resources.requests.cpu
TARGET_UTILIZATION = 0.60  # chart default autoscaling.targetCPUUtilizationPercentage
PER_POD = REQUEST_CORES * TARGET_UTILIZATION
TUNED = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 30, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
}  # fmt: skip


def chart_default_behavior() -> dict[str, Any]:
    """autoscaling.behavior from helm/triton/values.yaml (read, not copied, so the bench follows the chart)."""
    import yaml

    return yaml.safe_load((ROOT / "helm" / "triton" / "values.yaml").read_text())["autoscaling"]["behavior"]


@dataclass
class Scenario:
    name: str
    behavior: str  # "default" | "tuned"
    shape: str  # "step" | "ramp"
    base: float
    high: float
    ramp: float
    step_down: bool = False
    namespace: str = ""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    done: bool = False

    def __post_init__(self) -> None:
        self.namespace = f"bench-{self.name.replace('_', '-')}"

    def load(self, t: float) -> float:
        if "down_at" in self.marks and t >= self.marks["down_at"]:
            return self.base
        if t < 0:
            return self.base
        if self.shape == "step":
            return self.high
        return self.base + (self.high - self.base) * min(1.0, t / self.ramp)

    def target(self, t: float) -> int:
        return max(1, math.ceil(round(self.load(t) / PER_POD, 6)))


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.hpa = client.AutoscalingV2Api(api)

    def pods(self, ns: str) -> list[Any]:
        items = self.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/instance=triton").items
        return [p for p in items if p.metadata.deletion_timestamp is None]

    def set_usage(self, ns: str, pods: list[Any], millicores: int) -> int:
        value = f"{millicores}m"
        patched = 0
        for p in pods:
            if (p.metadata.annotations or {}).get(USAGE) != value:
                body = {"metadata": {"annotations": {USAGE: value}}}
                try:
                    self.core.patch_namespaced_pod(p.metadata.name, ns, body)
                    patched += 1
                except Exception:  # noqa: BLE001 (a pod deleted between list and patch)
                    pass
        return patched

    def state(self, ns: str) -> dict[str, Any]:
        d = self.apps.read_namespaced_deployment("triton", ns)
        h = self.hpa.read_namespaced_horizontal_pod_autoscaler("triton", ns)
        util = None
        for m in h.status.current_metrics or []:
            cr = getattr(m, "container_resource", None)
            if cr is not None and cr.current is not None:
                util = cr.current.average_utilization
        return {
            "spec": d.spec.replicas,
            "ready": d.status.ready_replicas or 0,
            "hpa_desired": h.status.desired_replicas,
            "hpa_utilization": util,
        }


def helm_install(env: LocalEnv, sc: Scenario, work: Path, max_replicas: int) -> float:
    values = {
        "image": {"repository": "127.0.0.1:5000/tritonserver", "digest": DIGEST},
        "modelRepository": "s3://tritonfil-bench-models/models",
        "models": ["xgb_classifier"],
        "serviceAccount": {"irsaRoleArn": "arn:aws:iam::123456789012:role/tritonfil-triton"},
        "podAnnotations": {USAGE: f"{int(sc.base * 1000)}m"},
        "autoscaling": {"maxReplicas": max_replicas},
    }
    if sc.behavior == "tuned":
        values["autoscaling"]["behavior"] = TUNED
    vfile = work / f"{sc.name}-values.json"
    vfile.write_text(json.dumps(values))
    helm_env = {
        **os.environ,
        "KUBECONFIG": str(env.kubeconfig),
        "HELM_CACHE_HOME": str(work / "helm-cache"),
        "HELM_CONFIG_HOME": str(work / "helm-config"),
        "HELM_DATA_HOME": str(work / "helm-data"),
    }
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(env.tools.path("helm")), "upgrade", "--install", "triton", str(ROOT / "helm" / "triton"),
         "-n", sc.namespace, "--create-namespace", "-f", str(vfile), "--wait", "--timeout", "3m"],
        env=helm_env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"helm install {sc.name} failed: {proc.stderr.strip()[-800:]}")
    return round(time.monotonic() - t0, 1)


def first_reach(timeline: list[dict[str, Any]], after: float, pred) -> float | None:
    for row in timeline:
        if row["t"] >= after and pred(row):
            return row["t"]
    return None


def summarize(sc: Scenario) -> dict[str, Any]:
    tl = sc.timeline
    high_target = max(1, math.ceil(round(sc.high / PER_POD, 6)))
    out: dict[str, Any] = {
        "behavior": sc.behavior,
        "shape": sc.shape,
        "load_cores": {"base": sc.base, "high": sc.high},
        "ramp_seconds": sc.ramp if sc.shape == "ramp" else None,
        "target_replicas": high_target,
        "max_ready": max((r["ready"] for r in tl), default=0),
    }
    reached = first_reach(tl, 0, lambda r: r["ready"] >= high_target and r["spec"] >= high_target)
    first_move = first_reach(tl, 0, lambda r: (r["hpa_desired"] or 0) > 1)
    out["seconds_to_first_scale_decision"] = first_move
    if sc.shape == "step":
        out["seconds_from_step_to_target_ready"] = reached
    else:
        out["seconds_from_ramp_start_to_target_ready"] = reached
        out["seconds_from_ramp_end_to_target_ready"] = round(reached - sc.ramp, 1) if reached is not None else None
    short = 0.0
    for a, b in zip(tl, tl[1:], strict=False):
        if 0 <= a["t"] < sc.marks.get("down_at", math.inf):
            short += max(0, a["target"] - a["ready"]) * (b["t"] - a["t"])
    out["replica_seconds_short_of_target"] = round(short, 1)
    if "down_at" in sc.marks:
        down = sc.marks["down_at"]
        back = first_reach(tl, down, lambda r: r["spec"] == 1 and r["ready"] == 1)
        out["step_down_at"] = down
        out["seconds_from_step_down_to_1_replica"] = round(back - down, 1) if back is not None else None
    if reached is None:
        out["note"] = f"target {high_target} Ready not reached within the run (max ready {out['max_ready']})"
    return out


def run(args: argparse.Namespace, rec: Recorder) -> None:
    all_scenarios = {
        "default_step": Scenario("default_step", "default", "step", args.base, args.high, args.ramp),
        "default_ramp": Scenario("default_ramp", "default", "ramp", args.base, args.high, args.ramp),
        "tuned_step": Scenario("tuned_step", "tuned", "step", args.base, args.high, args.ramp, step_down=True),
        "tuned_ramp": Scenario("tuned_ramp", "tuned", "ramp", args.base, args.high, args.ramp),
    }
    scenarios = [all_scenarios[n] for n in args.scenarios.split(",")]
    rec.doc.update(
        nodes=args.nodes,
        per_pod_cores_at_target=PER_POD,
        max_replicas=args.max_replicas,
        tick_seconds=args.tick,
        behaviors={"default": chart_default_behavior(), "tuned": TUNED},
        scenarios={},
    )
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as tmp:
        work = Path(tmp)
        env = LocalEnv(state_dir=work / "state", nodes=args.nodes)
        t0 = time.monotonic()
        env.up(components=("cluster",), progress=lambda m: say(f"autoscale: {m}"))
        rec.doc["env_up_seconds"] = round(time.monotonic() - t0, 1)
        try:
            kube = Kube(env.kubeconfig)
            rec.doc["gpu_nodes"] = len(env.kubectl("get", "nodes", "-l", "nvidia.com/gpu.present=true",
                                                    "-o", "name").stdout.split())  # fmt: skip
            installs = {}
            for sc in scenarios:
                installs[sc.name] = helm_install(env, sc, work, args.max_replicas)
                say(f"autoscale: {sc.name} installed in {installs[sc.name]}s")
            rec.doc["helm_install_seconds"] = installs
            # The HPA acts only once metrics-server has scraped the pods: wait for a utilization reading.
            warm = time.monotonic()
            while time.monotonic() - warm < 240:
                states = {sc.name: kube.state(sc.namespace) for sc in scenarios}
                if all(s["hpa_utilization"] is not None for s in states.values()):
                    break
                time.sleep(2)
            rec.doc["metrics_warmup_seconds"] = round(time.monotonic() - warm, 1)
            say(f"autoscale: metrics seen after {rec.doc['metrics_warmup_seconds']}s; load changes now")
            drive(kube, scenarios, args)
        finally:
            env.down()
    for sc in scenarios:
        rec.doc["scenarios"][sc.name] = {"summary": summarize(sc), "timeline": sc.timeline}


def drive(kube: Kube, scenarios: list[Scenario], args: argparse.Namespace) -> None:
    start = time.monotonic() + args.baseline
    last_report = -math.inf
    while True:
        t = time.monotonic() - start
        active = [sc for sc in scenarios if not sc.done]
        if not active or t > args.timeout:
            break
        if t - last_report >= 30:
            last_report = t
            states = [
                f"{sc.name} load {sc.timeline[-1]['load']} desired {sc.timeline[-1]['hpa_desired']}"
                f" ready {sc.timeline[-1]['ready']}"
                for sc in active
                if sc.timeline
            ]
            say(f"autoscale: t={t:.0f}s " + "; ".join(states))
        for sc in active:
            pods = [p for p in kube.pods(sc.namespace) if p.status.phase in ("Running", "Pending")]
            running = [p for p in pods if p.status.phase == "Running"] or pods
            load = sc.load(t)
            share = int(round(load / max(1, len(running)) * 1000 / 10) * 10)
            kube.set_usage(sc.namespace, running, share)
            s = kube.state(sc.namespace)
            row = {"t": round(t, 1), "load": round(load, 3), "target": sc.target(t), "pods": len(pods), **s}
            sc.timeline.append(row)
            high = sc.target(max(t, sc.ramp + 1))
            at_target = t >= 0 and s["ready"] >= high and s["spec"] >= high
            if at_target and "reached" not in sc.marks and (sc.shape == "step" or t >= sc.ramp):
                sc.marks["reached"] = t
            if "reached" in sc.marks and t - sc.marks["reached"] >= args.hold:
                if sc.step_down and "down_at" not in sc.marks:
                    sc.marks["down_at"] = round(t, 1)
                elif not sc.step_down or (s["spec"] == 1 and s["ready"] == 1 and t - sc.marks["down_at"] > 5):
                    sc.done = True
        time.sleep(max(0.0, args.tick - ((time.monotonic() - start) - t)))


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None or not doc["scenarios"]:
        return
    names = list(doc["scenarios"])
    cols = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.2 * rows), squeeze=False)
    for ax, name in zip([a for r in axes for a in r], names, strict=False):
        sc = doc["scenarios"][name]
        tl, s = sc["timeline"], sc["summary"]
        t = [r["t"] for r in tl]
        ax.step(t, [r["target"] for r in tl], where="post", color="gray", ls=":", label="target ceil(load/1.2)")
        ax.step(t, [r["hpa_desired"] for r in tl], where="post", color="C1", label="HPA desired")
        ax.step(t, [r["spec"] for r in tl], where="post", color="C0", ls="--", label="Deployment replicas")
        ax.step(t, [r["ready"] for r in tl], where="post", color="C2", lw=2, label="Ready")
        ax.set_ylabel("replicas")
        ax.set_xlabel("seconds since the load change")
        load_ax = ax.twinx()
        load_ax.plot(t, [r["load"] for r in tl], color="C3", alpha=0.5, label="load (cores)")
        load_ax.set_ylabel("load, cores", color="C3")
        key = "seconds_from_step_to_target_ready" if s["shape"] == "step" else "seconds_from_ramp_start_to_target_ready"
        title = f"{name}: {s['target_replicas']} Ready after {s.get(key)} s"
        if s.get("seconds_from_step_down_to_1_replica") is not None:
            title += f"; back to 1 in {s['seconds_from_step_down_to_1_replica']} s"
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    save_figure(fig, doc, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50, help="simulated GPU nodes (default 50)")
    parser.add_argument("--scenarios", default="default_step,default_ramp,tuned_step,tuned_ramp")
    parser.add_argument("--base", type=float, default=0.6, help="baseline load, cores (default 0.6: 1 replica)")
    parser.add_argument(
        "--high",
        type=float,
        default=9.5,
        help="high load, cores (default 9.5: 8 replicas; pick L with ceil(L/1.2) == ceil(L/1.32), or the HPA's"
        " 10%% tolerance can leave it one replica short of ceil(L/1.2) for good)",
    )
    parser.add_argument("--ramp", type=float, default=120.0, help="ramp duration, s (default 120)")
    parser.add_argument("--max-replicas", type=int, default=12)
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds recorded before the change")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds recorded after reaching the target")
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds after the load change (default 420)")
    parser.add_argument("--tick", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "autoscale.json")
    args = parser.parse_args(argv)
    rec = Recorder("autoscale", argv)
    run(args, rec)
    path = rec.write(args.output)
    plot(rec.doc, path.with_suffix(".png"))
    for name, sc in rec.doc["scenarios"].items():
        s = {k: v for k, v in sc["summary"].items() if k.startswith("seconds") or k in ("target_replicas", "note")}
        sys.stdout.write(f"{name:<13} {json.dumps(s)}\n")
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
