#!/usr/bin/env python3
"""Run every benchmark (or a subset) and write bench/results/*.json, *.png and summary.{json,md}.

    make bench                                   # everything, ~20 min on 2 cores
    make bench BENCH_ARGS="--quick"              # a few minutes, results in bench/results/quick/
    make bench BENCH_ARGS="--only infer,model_scale"
    .venv/bin/python bench/run_all.py --list

`make bench` runs this under `tritonfil isolate`: as root, in a fresh network namespace that has
only `lo`, so every byte of benchmark traffic stays on loopback. Each benchmark runs as its own
process (one failing does not stop the others; its rc is in summary.json). Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, host, isolation, loadavg, now, say  # noqa: E402

BENCH = ROOT / "bench"
# name -> (script, full arguments, --quick arguments). Order: the quiet, CPU-bound ones first.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "infer_local": ("infer_local.py", ["--requests", "200"], ["--requests", "30", "--repeats", "3"]),
    "pods": ("pods.py", ["--replicas", "3", "--rounds", "2"], ["--replicas", "2", "--rounds", "1"]),
    "infer": ("infer_sweep.py", ["--seconds", "4"], ["--seconds", "1", "--concurrency", "1,4,16"]),
    "model_scale": ("model_scale.py", ["--counts", "10,100,500"], ["--counts", "10,50"]),
    "rollout": ("rollout.py", ["--counts", "1,10,100"], ["--counts", "1,10"]),
    "converge": ("converge.py", [], []),
    "autoscale": (
        "autoscale.py",
        [],
        ["--scenarios", "step", "--hold", "60", "--join-seconds", "30", "--timeout", "420"],
    ),
}


def headline(name: str, doc: dict[str, Any]) -> list[str]:
    """Markdown table rows (| benchmark | measure | value |) for one result document."""
    rows: list[str] = []

    def row(measure: str, value: Any) -> None:
        rows.append(f"| {name} | {measure} | {value} |")

    if name == "converge":
        for label, r in doc.get("runs", {}).items():
            if label == "floor":  # the probe playbook, summarised below
                continue
            failed = f", FAILED: {'; '.join(r['failed_tasks'])}" if r["rc"] else ""
            row(f"site.yml {label}", f"{r['seconds']:.1f} s, changed={r['recap_total']['changed']}{failed}")
        if "rerun_over_first_run" in doc:
            row("no-op rerun / first run", f"{doc['rerun_over_first_run']:.2f}")
        for i, t in enumerate(doc.get("noop_rerun_biggest_costs", []), 1):
            row(f"no-op rerun cost #{i}", f"{t['seconds']:.2f} s {t['task']}")
        floor = doc.get("floor", {})
        if floor.get("mean_seconds_per_task"):
            means = ", ".join(f"{k} {v:.2f} s" for k, v in floor["mean_seconds_per_task"].items())
            row("module-task floor (mean per task)", means)
        if "rerun_floor_seconds" in floor:
            row(
                "no-op rerun at the floor / 0.35 of the first run",
                f"{floor['rerun_module_tasks']} module tasks x the cheapest = {floor['rerun_floor_seconds']} s"
                f" / {floor.get('target_seconds', '?')} s",
            )
    elif name == "model_scale":
        for r in doc.get("runs", []):
            v, f, n, o = r["validate_cli"], r["first_sync"], r["noop_resync"], r["one_file_change"]
            row(
                f"{r['models']} models ({r['bytes'] / 1e6:.0f} MB)",
                f"validate {v['seconds']} s / {v['peak_rss_mib']} MiB; sync first {f['seconds']} s"
                f" ({f['uploaded_files']} files), no-op {n['seconds']} s ({n['uploaded_files']} files,"
                f" {n.get('uploaded_bytes')} B), 1-file {o['seconds']} s ({o['uploaded_files']} file);"
                f" peak {max(f['peak_rss_mib'], n['peak_rss_mib'])} MiB",
            )
    elif name == "rollout":
        for r in doc.get("runs", []):
            f, c = r["first_deploy"], r.get("one_model_change")
            if c is None:
                row(f"{r['models']} models", f"first deploy FAILED: {f.get('failure', '')[:200]}")
                continue
            row(
                f"{r['models']} models, one changed ({r['replicas']} replica)",
                f"rollout (triton_release) {c['rollout_seconds']} s, verify {c['stages'].get('verify')} s,"
                f" site.yml {c['seconds']} s; uploaded {c['uploaded_files']} file ({c['bytes_uploaded']} B),"
                f" {c['copied_server_side']} copied server-side; first revision {f['bytes_uploaded']} B"
                f" in {f['seconds']} s",
            )
    elif name == "autoscale":
        if doc.get("error"):
            row("autoscale", f"FAILED: {doc['error']}")
        for sc, d in doc.get("scenarios", {}).items():
            s = d["summary"]
            enough = s["seconds_from_change_to_enough_ready"]
            ready = f"enough ready {enough} s after the change" if enough is not None else "not all ready in the load"
            row(
                f"{sc} (KEDA + Karpenter, process-backed pods)",
                f"{s['most_replicas_wanted']} replicas wanted, "
                + ready
                + f"; queue > {s['objective_ms']} ms for {s['seconds_queue_above_objective']} s;"
                f" {s['gpu_node_hours']} GPU-node-h vs {s['static_peak_node_hours']} static at the peak"
                f" ({s['peak_gpu_nodes']} nodes)",
            )
    elif name == "infer":
        for model, m in doc.get("models", {}).items():
            for protocol in ("http", "grpc"):
                if protocol in m:
                    p = m[protocol]
                    c1 = p["points"][0]
                    row(
                        f"{model} {protocol}",
                        f"best {p['best_rows_per_second']:,.0f} rows/s at c={p['best_at_concurrency']}"
                        f" ({p['served_over_in_process_best']:.0%} of in-process); c=1 p50/p99"
                        f" {c1['p50_ms']}/{c1['p99_ms']} ms ({p['served_over_in_process_c1']:.0%} of in-process,"
                        f" {p.get('served_over_in_process_c1_at_p50') or 0:.0%} by median call time)",
                    )
    elif name == "infer_local":
        for model, m in doc.get("models", {}).items():
            p = m["in_process_treelite"]
            spread = " ({:.0%}-{:.0%})".format(*m["served_share_range"]) if "served_share_range" in m else ""
            shape = f" at {p['batch_rows']} rows, {p['nthread']} threads" if "nthread" in p else ""
            row(
                f"{model} sequential http",
                f"{m['served']['rows_per_second']:,.0f} rows/s = {m['served_share_of_in_process']:.0%}{spread}"
                f" of the best in-process ({p['rows_per_second']:,.0f} rows/s{shape})",
            )
    elif name == "pods":
        s = doc.get("summary", {})
        labels = {
            "scheduled_to_ready": "pod scheduled -> Ready",
            "started_to_live": "process start -> live",
            "live_to_ready": "live -> Ready (S3 download + 4 model loads)",
            "rss_mib": "memory per pod",
        }
        for key, label in labels.items():
            if key in s:
                unit = "MiB" if key == "rss_mib" else "s"
                row(
                    label,
                    f"median {s[key]['median']} {unit} (min {s[key]['min']}, max {s[key]['max']}, n={s[key]['n']})",
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs, into bench/results/quick/")
    parser.add_argument("--results", type=Path, default=None, help="results directory (default bench/results)")
    parser.add_argument(
        "--converge-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra ansible-playbook argument for the converge runs (repeatable), e.g. --converge-arg=-eFOO=1",
    )
    parser.add_argument(
        "--table-only", action="store_true", help="only rewrite summary.md from the results present (no runs)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (script, full, quick) in BENCHMARKS.items():
            print(f"{name:<12} bench/{script} {' '.join(full)}   (--quick: {' '.join(quick)})")
        return 0
    if args.table_only:
        results = args.results or (RESULTS / "quick" if args.quick else RESULTS)
        write_table(results, json.loads((results / "summary.json").read_text()))
        return 0
    chosen = [n for n in (args.only.split(",") if args.only else BENCHMARKS) if n]
    unknown = [n for n in chosen + [s for s in args.skip.split(",") if s] if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    chosen = [n for n in chosen if n not in args.skip.split(",")]
    results = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and "loopback-only" not in isolation():
        say("WARNING: running as root outside a loopback-only namespace: use `make bench` (tritonfil isolate)")
    summary: dict[str, Any] = {
        "generated_at": now(),
        "command": "bench/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "host": host(),
        "isolation": isolation(),
        "load": {"start": loadavg()},
        "benchmarks": {},
    }
    started = time.monotonic()
    for name in chosen:
        script, full, quick = BENCHMARKS[name]
        out = results / f"{Path(script).stem}.json"
        cmd = [sys.executable, str(BENCH / script), *(quick if args.quick else full), "--output", str(out)]
        if name == "converge":
            cmd += [f"--ansible-arg={a}" for a in args.converge_arg]
        say(f"run_all: {name}: {' '.join(cmd[1:])}")
        t0 = time.monotonic()
        load0 = loadavg()
        rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        entry = {"rc": rc, "seconds": round(time.monotonic() - t0, 1), "load": {"start": load0, "end": loadavg()}}
        entry["result"] = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
        summary["benchmarks"][name] = entry
        say(f"run_all: {name}: rc={rc} in {entry['seconds']}s")
    summary["load"]["end"] = loadavg()
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_table(results, summary)
    failed = [n for n, e in summary["benchmarks"].items() if e["rc"] != 0]
    say(f"run_all: done in {summary['wall_seconds']}s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def write_table(results: Path, summary: dict[str, Any]) -> None:
    """summary.md: the machine, the load and one table of headline numbers from every result present."""
    h = summary["host"]
    lines = [
        f"Machine: {h['nproc']} CPUs ({h['cpu_model']}), {h['memory_gib']} GiB RAM, {h['kernel']},"
        f" Python {h['python']}; {summary['isolation']}.",
        f"Run {summary['generated_at']} (`{summary['command']}`), {summary.get('wall_seconds', 0) / 60:.1f} min;"
        f" load average {summary['load']['start']} at start, {summary['load']['end']} at end.",
        "",
        "Each result file records its own run time and load (a benchmark rerun alone keeps the others' files):",
        "",
    ]
    table = ["| benchmark | measure | value |", "|---|---|---|"]
    for name, (script, _full, _quick) in BENCHMARKS.items():
        path = results / f"{Path(script).stem}.json"
        if path.exists():
            try:
                doc = json.loads(path.read_text())
                load = doc.get("load", {})
                lines.append(
                    f"- `{path.name}`: {doc.get('generated_at')}, load average (1 min)"
                    f" {load.get('start', ['?'])[0]} -> {load.get('end', ['?'])[0]}"
                )
                table += headline(name, doc)
            except (KeyError, TypeError, ValueError) as exc:
                table.append(f"| {name} | (unreadable result: {exc}) | |")
    lines += ["", *table]
    (results / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
