"""Shared pieces of the benchmarks: host facts, load, measured subprocesses, results, plots.

Every benchmark writes one JSON document to bench/results/<name>.json with the same envelope
(`generated_at`, `command`, `host`, `load`: os.getloadavg() at start and end, `isolation`) and
its own payload, plus PNG plots next to it. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent

if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def host() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "memory_gib": memory_gib(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def isolation() -> str:
    from tritonfil.localenv import netns

    if netns.loopback_only():
        return "loopback-only network namespace"
    return "host network (not root or not isolated: every service still binds 127.0.0.1)"


class Recorder:
    """Collects one benchmark's result and writes it with the common envelope."""

    def __init__(self, name: str, argv: Sequence[str] | None = None) -> None:
        self.name = name
        self.started = time.monotonic()
        self.doc: dict[str, Any] = {
            "benchmark": name,
            "generated_at": now(),
            "command": " ".join([f"bench/{name}.py", *(argv if argv is not None else sys.argv[1:])]),
            "host": host(),
            "isolation": isolation(),
            "load": {"start": loadavg()},
        }

    def write(self, output: Path | None = None) -> Path:
        self.doc["load"]["end"] = loadavg()
        self.doc["wall_seconds"] = round(time.monotonic() - self.started, 1)
        path = output or RESULTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        return path


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Measured:
    rc: int
    seconds: float
    user_seconds: float
    sys_seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        return {
            "rc": self.rc,
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.user_seconds + self.sys_seconds, 2),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
        }


def run_measured(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> Measured:
    """Run ARGV; wall time, CPU time and peak RSS of it and its descendants (wait4 rusage).

    ru_maxrss from wait4 is the largest resident set of the process or any descendant it waited
    for (ansible-playbook's workers, the module processes they run).
    """
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out_path}.out", "w+b") as out, open(f"{out_path}.err", "w+b") as err:
        start = time.monotonic()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env or os.environ), cwd=cwd or ROOT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    return Measured(proc.returncode, seconds, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024, stdout, stderr)


def ansible_env(work: Path, extra: Mapping[str, str] | None = None, callback: str = "ansible.posix.json") -> dict:
    """Environment of an ansible-playbook run from the checkout: our ansible.cfg, the venv first."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK=callback,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
        HELM_CACHE_HOME=str(work / "helm-cache"),
        HELM_CONFIG_HOME=str(work / "helm-config"),
        HELM_DATA_HOME=str(work / "helm-data"),
    )
    env.update(extra or {})
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    return env


def pyplot():
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is missing (JSON still written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("matplotlib not installed (pip install -r requirements/bench.txt): no plots\n")
        return None
    return plt


def footer(fig, doc: dict[str, Any]) -> None:
    h = doc["host"]
    text = (
        f"{doc['generated_at']}  {h['nproc']} CPU {h['cpu_model']}, {h['memory_gib']} GiB;"
        f" load {doc['load']['start'][0]} -> {doc['load'].get('end', loadavg())[0]}"
    )
    fig.text(0.01, 0.005, text, fontsize=7, color="gray")


def save_figure(fig, doc: dict[str, Any], path: Any, dpi: int = 100) -> None:
    """Footer (machine, load), layout, write PATH, free the figure: the end of every plot."""
    import matplotlib.pyplot as plt

    footer(fig, doc)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def say(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()
