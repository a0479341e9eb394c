#!/usr/bin/env python3
"""Convergence of site.yml on the local environment: first run, no-op rerun, plan.

    .venv/bin/python bench/converge.py [--playbook site.yml] [--keep-state DIR]

Starts a fresh local environment (moto, registry, kwok cluster with 2 GPU nodes, tritonserver) in
its own state directory, then runs `ansible-playbook site.yml -i inventory/local` three times:

1. first run (everything created),
2. no-op rerun (should report changed=0),
3. plan: `--check --diff`.

Every run has the ansible.posix.profile_tasks callback enabled (all tasks, sorted by time). Per run
the JSON has the wall time, the PLAY RECAP, the number and names of the changed tasks, the
slowest tasks and the time summed per role; plus the ratio rerun/first-run. A failed run is
recorded (rc, failed task) and the next runs still happen. `--variant-env KEY=VALUE` adds a second no-op rerun
(noop_rerun_variant) in the same environment with those variables (e.g. the Mitogen strategy): a paired comparison.

Last, in the same environment (`--floor-tasks N`, default 10; 0 skips it), the module-task floor: a generated
playbook of N tasks each of `ansible.builtin.ping` (a module process that does nothing), `kubernetes.core.k8s_info`
(one namespace) and `amazon.aws.aws_caller_info` (one call to moto). Its mean per task, times the no-op rerun's
tasks that ran a module (those over 0.25 s; asserts and set_fact take less), is what the rerun costs under
Ansible's execution model (a new Python process per module task) even if every task were as cheap as the
cheapest; `floor` compares it with 0.35 of the first run.

Results: bench/results/converge.json and converge.png.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, VENV_BIN, Recorder, ansible_env, pyplot, run_measured, save_figure, say  # noqa: E402

from tritonfil.localenv.env import LocalEnv  # noqa: E402

TASK_RE = re.compile(r"^(TASK|RUNNING HANDLER) \[(?P<name>.*)\] \**$")
RESULT_RE = re.compile(r"^(?P<status>changed|ok|skipping|failed|fatal|included)[:!]? \[(?P<host>[^\]]+)\]")
RECAP_RE = re.compile(r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                      r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
                      r"\s+ignored=(?P<ignored>\d+)")  # fmt: skip
# profile_tasks pads a name with dashes to a fixed width: a long name gets one (greedy: a name may hold " - ").
PROFILE_RE = re.compile(r"^(?P<name>.+) -+ (?P<seconds>\d+\.\d+)s$")


def parse_output(text: str) -> dict[str, Any]:
    """Changed/failed task names, PLAY RECAP and the profile_tasks summary from the default callback."""
    changed: list[str] = []
    failed: list[str] = []
    recap: dict[str, dict[str, int]] = {}
    profile: list[dict[str, Any]] = []
    messages: list[str] = []
    task = ""
    in_recap = False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = TASK_RE.match(line)
        if m:
            task = m.group("name")
            continue
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        m = RESULT_RE.match(line)
        if m and not in_recap:
            if m.group("status") == "changed" and (not changed or changed[-1] != task):
                changed.append(task)
            elif m.group("status") in ("failed", "fatal"):
                block = lines[i : i + 12]
                end = next((j for j, b in enumerate(block[1:], 1) if not b.startswith((" ", "\t"))), len(block))
                if any("...ignoring" in b for b in lines[i + end : i + end + 1]):
                    continue
                if not failed or failed[-1] != task:
                    failed.append(task)
                    messages.append(f"{task}: " + " ".join(b.strip() for b in block[:end])[:800])
            continue
        m = RECAP_RE.match(line)
        if m:
            recap[m.group("host")] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
            continue
        m = PROFILE_RE.match(line.strip())
        if m and in_recap:
            profile.append({"task": m.group("name").strip(), "seconds": float(m.group("seconds"))})
    by_role: dict[str, float] = defaultdict(float)
    count_by_role: dict[str, int] = defaultdict(int)
    for p in profile:
        role = p["task"].split(" : ", 1)[0] if " : " in p["task"] else "(playbook tasks)"
        by_role[role.removeprefix("tritonfil.eks.")] += p["seconds"]
        count_by_role[role.removeprefix("tritonfil.eks.")] += 1
    return {
        "recap": recap,
        "changed_tasks": changed,
        "failed_tasks": failed,
        "failure_messages": messages,
        "tasks_started": sum(1 for line in lines if TASK_RE.match(line)),
        "profile": sorted(profile, key=lambda p: -p["seconds"]),
        "seconds_by_role": {k: round(v, 2) for k, v in sorted(by_role.items(), key=lambda kv: -kv[1])},
        "tasks_by_role": dict(sorted(count_by_role.items(), key=lambda kv: -by_role[kv[0]])),
    }


def run_playbook(label: str, playbook: str, work: Path, environ: dict[str, str], *args: str) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    env = ansible_env(
        work,
        {
            **environ,
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
            "PROFILE_TASKS_SORT_ORDER": "descending",
        },
        callback="default",
    )
    argv = [str(VENV_BIN / "ansible-playbook"), playbook, "-i", "inventory/local", *args]
    say(f"converge: {label}: {' '.join(argv[1:])}")
    m = run_measured(argv, env=env, timeout=1200)
    (work / f"{label}.log").write_text(m.stdout + m.stderr)
    parsed = parse_output(m.stdout)
    total = {k: sum(h.get(k, 0) for h in parsed["recap"].values()) for k in ("ok", "changed", "failed", "skipped")}
    out = {
        "command": "ansible-playbook " + " ".join(argv[2:]),
        **m.summary(),
        "recap_total": total,
        "changed_task_count": len(parsed["changed_tasks"]),
        "changed_tasks": parsed["changed_tasks"],
        "failed_tasks": parsed["failed_tasks"],
        "failure_messages": parsed["failure_messages"],
        "tasks_started": parsed["tasks_started"],
        "seconds_by_role": parsed["seconds_by_role"],
        "tasks_by_role": parsed["tasks_by_role"],
        "top_tasks": parsed["profile"][:15],
        "all_tasks": parsed["profile"],
        "profiled_tasks": len(parsed["profile"]),
        "profiled_seconds": round(sum(p["seconds"] for p in parsed["profile"]), 2),
    }
    if m.rc != 0 and not parsed["failure_messages"]:
        out["output_tail"] = (m.stdout + m.stderr)[-2500:]
    say(
        f"converge: {label}: rc={m.rc} {m.seconds:.1f}s changed={total['changed']} "
        f"(tasks {len(parsed['changed_tasks'])}) failed={total['failed']}"
    )
    return out


FLOOR_PROBES = {
    "ping": {"ansible.builtin.ping": {}},
    "k8s_info": {"kubernetes.core.k8s_info": {"kind": "Namespace", "name": "default"}},
    "aws_caller_info": {"amazon.aws.aws_caller_info": {}},
}
MODULE_TASK_SECONDS = 0.25  # a no-op rerun task over this ran a module process (asserts, set_fact: ~0.1 s)


def floor_playbook(path: Path, count: int) -> Path:
    tasks = [{"name": f"floor {kind} {i:02d}", **probe} for kind, probe in FLOOR_PROBES.items() for i in range(count)]
    play = [{"name": "Module-task floor", "hosts": "tritonfil", "gather_facts": False, "tasks": tasks}]
    path.write_text(json.dumps(play, indent=1))  # JSON is YAML
    return path


def floor_summary(run: dict[str, Any], runs: dict[str, Any]) -> dict[str, Any]:
    """Mean seconds per probe task, and the no-op rerun's module tasks priced at the cheapest of them."""
    means: dict[str, float] = {}
    for kind in FLOOR_PROBES:
        secs = [t["seconds"] for t in run["all_tasks"] if t["task"].startswith(f"floor {kind} ")]
        if secs:
            means[kind] = round(sum(secs) / len(secs), 3)
    out: dict[str, Any] = {"mean_seconds_per_task": means}
    if means and "noop_rerun" in runs:
        module_tasks = [t for t in runs["noop_rerun"]["all_tasks"] if t["seconds"] > MODULE_TASK_SECONDS]
        cheapest = min(means.values())
        out.update(
            rerun_module_tasks=len(module_tasks),
            rerun_module_task_seconds=round(sum(t["seconds"] for t in module_tasks), 2),
            rerun_floor_seconds=round(len(module_tasks) * cheapest, 1),
        )
        if "first_run" in runs:
            out["target_seconds"] = round(0.35 * runs["first_run"]["seconds"], 1)
    return out


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    runs = {label: r for label, r in doc.get("runs", {}).items() if label != "floor"}
    if plt is None or not runs:
        return
    labels = list(runs)
    roles: list[str] = []
    for r in runs.values():
        roles += [k for k in r["seconds_by_role"] if k not in roles]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.4]})
    bottom = [0.0] * len(labels)
    for role in roles:
        vals = [runs[lb]["seconds_by_role"].get(role, 0.0) for lb in labels]
        ax1.bar(labels, vals, bottom=bottom, label=role)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    for i, lb in enumerate(labels):
        r = runs[lb]
        ax1.text(i, r["seconds"] * 1.01, f"{r['seconds']:.0f}s wall\nchanged={r['recap_total']['changed']}",
                 ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax1.plot([i - 0.4, i + 0.4], [r["seconds"]] * 2, "k-", lw=1)
    ax1.set_ylabel("seconds (bars: task time per role; line: wall time)")
    ax1.set_title("site.yml on the local environment")
    ax1.legend(fontsize=7)
    ax1.set_ylim(0, max(r["seconds"] for r in runs.values()) * 1.25)
    rerun = runs.get("noop_rerun") or runs[labels[-1]]
    top = rerun["top_tasks"][:12][::-1]
    ax2.barh([t["task"].replace("tritonfil.eks.", "")[:70] for t in top], [t["seconds"] for t in top], color="C1")
    ax2.set_xlabel("seconds")
    ax2.set_title("no-op rerun: slowest tasks (profile_tasks)")
    ax2.tick_params(axis="y", labelsize=7)
    save_figure(fig, doc, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playbook", default="site.yml")
    parser.add_argument("--runs", default="first_run,noop_rerun,plan", help="subset of first_run,noop_rerun,plan")
    parser.add_argument(
        "--ansible-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra ansible-playbook argument for every run (repeatable), e.g. --ansible-arg=--skip-tags=istio",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for every run (repeatable), e.g. --env ANSIBLE_PIPELINING=true",
    )
    parser.add_argument(
        "--variant-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="after the no-op rerun, one more no-op rerun (noop_rerun_variant) with these variables added, in the same"
        " environment: a paired comparison, e.g. --variant-env ANSIBLE_STRATEGY=mitogen_linear",
    )
    parser.add_argument("--floor-tasks", type=int, default=10, metavar="N",
                        help="tasks per probe of the module-task floor (0: no floor run)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS / "converge.json")
    args = parser.parse_args(argv)
    rec = Recorder("converge", argv)
    wanted = args.runs.split(",")
    rec.doc.update(
        playbook=args.playbook,
        inventory="inventory/local",
        extra_ansible_args=args.ansible_arg,
        extra_env=args.env,
        variant_env=args.variant_env,
        runs={},
    )
    with tempfile.TemporaryDirectory(prefix="bench-converge-") as tmp:
        work = Path(tmp)
        env = LocalEnv(state_dir=work / "state")
        rec.doc["env_up_seconds"] = None
        try:
            t0 = time.monotonic()
            env.up(progress=lambda m: say(f"converge: {m}"))
            rec.doc["env_up_seconds"] = round(time.monotonic() - t0, 1)
            environ = {**env.environ(), **dict(e.split("=", 1) for e in args.env)}
            plan = {
                "first_run": (),
                "noop_rerun": (),
                "plan": ("--check", "--diff"),
            }
            variant = {**environ, **dict(e.split("=", 1) for e in args.variant_env)}
            for label in ("first_run", "noop_rerun", "noop_rerun_variant", "plan"):
                if label == "noop_rerun_variant" and args.variant_env:
                    rec.doc["runs"][label] = run_playbook(
                        label, args.playbook, work / label, variant, *args.ansible_arg
                    )
                    rec.write(args.output)
                elif label in wanted:
                    rec.doc["runs"][label] = run_playbook(
                        label, args.playbook, work / label, environ, *args.ansible_arg, *plan[label]
                    )
                    rec.write(args.output)
            if args.floor_tasks > 0:
                probe = floor_playbook(work / "floor.yml", args.floor_tasks)
                rec.doc["runs"]["floor"] = run_playbook("floor", str(probe), work / "floor", environ)
                rec.write(args.output)
        finally:
            env.down()
    runs = rec.doc["runs"]
    if "first_run" in runs and "noop_rerun" in runs:
        rec.doc["rerun_over_first_run"] = round(runs["noop_rerun"]["seconds"] / runs["first_run"]["seconds"], 3)
    if "first_run" in runs and "noop_rerun_variant" in runs:
        rec.doc["variant_rerun_over_first_run"] = round(
            runs["noop_rerun_variant"]["seconds"] / runs["first_run"]["seconds"], 3
        )
    if "floor" in runs:
        rec.doc["floor"] = floor_summary(runs["floor"], runs)
    if "noop_rerun" in runs:
        rec.doc["noop_rerun_biggest_costs"] = runs["noop_rerun"]["top_tasks"][:3]
    path = rec.write(args.output)
    plot(rec.doc, path.with_suffix(".png"))
    for label, r in runs.items():
        sys.stdout.write(
            f"{label:<11} rc={r['rc']} {r['seconds']:>7.1f}s changed={r['recap_total']['changed']}"
            f" ({r['changed_task_count']} tasks) failed={r['recap_total']['failed']}\n"
        )
        for role, secs in r["seconds_by_role"].items():
            sys.stdout.write(f"    {role:<28} {r['tasks_by_role'].get(role, 0):>4} tasks {secs:>7.2f}s\n")
    if "floor" in rec.doc:
        sys.stdout.write(f"module-task floor: {json.dumps(rec.doc['floor'])}\n")
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
