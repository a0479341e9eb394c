#!/usr/bin/env python3
"""Model repository scale: validation and the s3_models sync for 10, 100 and 500 models.

    .venv/bin/python bench/model_scale.py [--counts 10,100,500] [--sample xgb_classifier]

For each COUNT it generates a repository of COUNT copies of one sample model under distinct
names (directory and `name:` in config.pbtxt; the model file is copied as is), then measures, each
as a separate process (wall time, CPU time, peak RSS of the process tree from wait4):

- `tritonfil models validate PATH --json` (the CLI), and the module
  `tritonfil.eks.triton_model_repository` through `ansible localhost -m` (what s3_models' preflight runs);
- role `tritonfil.eks.s3_models` against moto (a moto-only local environment): the first revision,
  a no-op resync (same content: same revision) and a resync after one config.pbtxt changed (a new
  revision). The uploaded/copied/skipped counts and bytes come from the role's `s3_models_sync` fact;
  the no-op resync must upload 0 files (0 bytes) and the one-file change exactly 1, the revision's
  other files copied server-side (recorded as `expected_ok`, never asserted).

Results: bench/results/model_scale.json and model_scale.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, VENV_BIN, Recorder, ansible_env, pyplot, run_measured, save_figure, say  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.integration.playbook_run import Run, role_play  # noqa: E402
from tritonfil.localenv.env import LocalEnv  # noqa: E402

SYNC_TASK = "Store the model repository as a revision"


def generate(dest: Path, sample: Path, count: int) -> int:
    """COUNT copies of the SAMPLE model directory named m0000_<sample>...; returns total bytes."""
    config = (sample / "config.pbtxt").read_text()
    reference = json.loads((sample / "reference.json").read_text()) if (sample / "reference.json").exists() else None
    total = 0
    for i in range(count):
        name = f"m{i:04d}_{sample.name}"
        target = dest / name
        shutil.copytree(sample, target)
        text = config.replace(f'name: "{sample.name}"', f'name: "{name}"')
        (target / "config.pbtxt").write_text(text)
        if reference is not None:
            (target / "reference.json").write_text(json.dumps({**reference, "model": name}, indent=1))
        total += sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return total


def task_seconds(stdout: str, name: str) -> float | None:
    """Duration of task NAME from the ansible.posix.json callback output."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    for play in data.get("plays", []):
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ", 1)[-1] == name:
                d = task["task"].get("duration", {})
                if "start" in d and "end" in d:
                    start = datetime.fromisoformat(d["start"].replace("Z", "+00:00"))
                    end = datetime.fromisoformat(d["end"].replace("Z", "+00:00"))
                    return round((end - start).total_seconds(), 2)
    return None


def moto_rss_mib(env: LocalEnv) -> float | None:
    pid = env._pid("moto")
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def run_role(work: Path, variables: dict[str, Any], environ: dict[str, str]) -> tuple[dict[str, Any], Run]:
    work.mkdir(parents=True)
    # Region and endpoint through module_defaults (group/tritonfil.eks.aws), as the playbooks give them.
    aws = {"region": "us-east-1", "endpoint_url": environ["AWS_ENDPOINT_URL"]}
    (work / "play.yml").write_text(role_play("s3_models", aws=aws))
    (work / "vars.json").write_text(json.dumps(variables))
    argv = [
        str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(work / "play.yml"), "-e", f"@{work / 'vars.json'}",
    ]  # fmt: skip
    m = run_measured(argv, env=ansible_env(work, environ))
    run = Run.parse(_Completed(m.rc, m.stdout, m.stderr), m.seconds)
    out = m.summary()
    out["sync_task_seconds"] = task_seconds(m.stdout, SYNC_TASK)
    sync = run.facts.get("s3_models_sync", {})
    out["uploaded_files"] = int(sync.get("uploaded", -1)) if sync else None
    out["uploaded_bytes"] = int(sync.get("bytes_uploaded", -1)) if sync else None
    out["copied_files"] = int(sync.get("copied", -1)) if sync else None
    out["skipped_files"] = int(sync.get("skipped", -1)) if sync else None
    out["revision"] = sync.get("revision") if sync else None
    out["recap"] = run.recap
    if m.rc != 0:
        out["failure"] = run.failure or m.stderr[-500:]
    return out, run


class _Completed:
    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = rc, stdout, stderr


def measure(count: int, sample: Path, env: LocalEnv, work: Path) -> dict[str, Any]:
    repo = work / "repository"
    repo.mkdir(parents=True)
    size = generate(repo, sample, count)
    files = sum(1 for f in repo.rglob("*") if f.is_file())
    say(f"model_scale: {count} models ({files} files, {size / 1e6:.1f} MB)")
    res: dict[str, Any] = {"models": count, "files": files, "bytes": size}

    cli = run_measured([str(VENV_BIN / "tritonfil"), "models", "validate", str(repo), "--json"])
    res["validate_cli"] = cli.summary()
    try:
        report = json.loads(cli.stdout)
        res["validate_cli"]["errors"] = report.get("errors")
        res["validate_cli"]["warnings"] = report.get("warnings")
    except json.JSONDecodeError:
        res["validate_cli"]["output"] = (cli.stdout + cli.stderr)[-300:]

    mod_work = work / "module"
    mod_work.mkdir()
    module = run_measured(
        [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "tritonfil.eks.triton_model_repository", "-a", f"path={repo} fail_on_warnings=true"],
        env=ansible_env(mod_work, callback="default"),
    )  # fmt: skip
    res["validate_module"] = module.summary()

    environ = env.environ()
    variables = {
        "ansible_python_interpreter": sys.executable,
        "s3_models_bucket": f"bench-models-{count}",
        "s3_models_prefix": "models",
        "s3_models_repository_path": str(repo),
        "s3_models_tls_only_policy": False,
    }
    first, _first_run = run_role(work / "first", variables, environ)
    say(f"model_scale: {count} first sync {first['seconds']}s uploaded {first['uploaded_files']}")
    noop, _noop_run = run_role(work / "noop", variables, environ)
    noop["expected_ok"] = (
        noop["uploaded_files"] == 0 and noop["uploaded_bytes"] == 0 and noop["recap"].get("changed") == 0
    )
    say(f"model_scale: {count} no-op resync {noop['seconds']}s uploaded {noop['uploaded_files']}")
    changed = repo / f"m0000_{sample.name}" / "config.pbtxt"
    changed.write_text(changed.read_text() + "# bench: one changed file\n")
    one, one_run = run_role(work / "one", variables, environ)
    one["uploaded_keys"] = one_run.facts.get("s3_models_sync", {}).get("uploaded_keys", [])
    # The changed config.pbtxt is uploaded; the revision's other objects are copied server-side, not re-sent.
    one["expected_ok"] = one["uploaded_files"] == 1 and one["copied_files"] == files - 1
    say(f"model_scale: {count} one-file change {one['seconds']}s uploaded {one['uploaded_files']}")
    res.update(first_sync=first, noop_resync=noop, one_file_change=one, moto_rss_mib_after=moto_rss_mib(env))
    return res


def plot(doc: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None or not doc["runs"]:
        return
    runs = doc["runs"]
    n = [r["models"] for r in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = [
        ("validate (CLI)", "validate_cli"),
        ("validate (module via ansible)", "validate_module"),
        ("s3_models first sync", "first_sync"),
        ("s3_models no-op resync", "noop_resync"),
        ("s3_models one-file change", "one_file_change"),
    ]
    for label, key in series:
        ax1.plot(n, [r[key]["seconds"] for r in runs], marker="o", label=label)
        ax2.plot(n, [r[key]["peak_rss_mib"] for r in runs], marker="o", label=label)
    ax1.plot(n, [r["first_sync"].get("sync_task_seconds") or 0 for r in runs], "k:", marker="x",
             label="  of which s3_sync task (first)")  # fmt: skip
    ax1.plot(n, [r["noop_resync"].get("sync_task_seconds") or 0 for r in runs], "k--", marker="x",
             label="  of which s3_sync task (no-op)")  # fmt: skip
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("models in the repository (2 files each)")
        ax.grid(True, alpha=0.3)
    ax1.set_ylabel("wall time, s")
    ax1.set_title("time vs model count")
    ax2.set_ylabel("peak RSS of the process tree, MiB")
    ax2.set_title("peak memory vs model count")
    ax1.legend(fontsize=7)
    save_figure(fig, doc, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,100,500", help="model counts (default 10,100,500)")
    parser.add_argument("--sample", default="xgb_classifier", help="sample model copied (default xgb_classifier)")
    parser.add_argument("--output", type=Path, default=RESULTS / "model_scale.json")
    args = parser.parse_args(argv)
    rec = Recorder("model_scale", argv)
    counts = [int(c) for c in args.counts.split(",")]
    sample = ROOT / "model_repository" / args.sample
    rec.doc.update(sample_model=args.sample, counts=counts, runs=[])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        env = LocalEnv(state_dir=Path(tmp) / "state")
        env.up(components=("moto",), progress=say)
        try:
            for count in counts:
                rec.doc["runs"].append(measure(count, sample, env, Path(tmp) / f"n{count}"))
                rec.write(args.output)  # partial results survive a later failure
        finally:
            env.down()
    path = rec.write(args.output)
    plot(rec.doc, path.with_suffix(".png"))
    sys.stdout.write(table(rec.doc) + f"\nwrote {path}\n")
    return 0


def table(doc: dict[str, Any]) -> str:
    head = ("models", "validate s", "MiB", "first s", "no-op s", "up", "1-file s", "up")
    lines = [" ".join(f"{h:>{w}}" for h, w in zip(head, (6, 10, 6, 8, 8, 4, 8, 4), strict=True))]
    for r in doc["runs"]:
        v, f, n, o = r["validate_cli"], r["first_sync"], r["noop_resync"], r["one_file_change"]
        lines.append(
            f"{r['models']:>6} {v['seconds']:>10} {v['peak_rss_mib']:>6} {f['seconds']:>8} {n['seconds']:>8}"
            f" {n['uploaded_files']!s:>4} {o['seconds']:>8} {o['uploaded_files']!s:>4}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
