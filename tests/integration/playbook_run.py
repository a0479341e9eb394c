"""One ansible-playbook run, read from the ansible.posix.json stdout callback (shared by role tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def role_play(role: str, aws: dict | None = None, kubeconfig: str | None = None, tasks_from: str = "main") -> str:
    """A play that runs tritonfil.eks.ROLE (entry point TASKS_FROM) alone, with the connection settings the
    playbooks give every stage through module_defaults (playbooks/vars/connection.yml)."""
    defaults: dict = {}
    if aws is not None:
        defaults["group/tritonfil.eks.aws"] = aws
    if kubeconfig is not None:
        defaults["group/tritonfil.eks.k8s"] = {"kubeconfig": kubeconfig}
    play = {
        "name": "Role under test",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "module_defaults": defaults,
        "tasks": [
            {
                "name": f"Run tritonfil.eks.{role}",
                "ansible.builtin.include_role": {"name": f"tritonfil.eks.{role}", "tasks_from": tasks_from},
                # Runs whatever --tags says; the role's tasks keep their own tags.
                "tags": ["always"],
            }
        ],
    }
    return json.dumps([play], indent=1)


def aws_env(key_id: str, secret: str, region: str, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """os.environ without any AWS_* (but AWS_CA_BUNDLE), plus fake keys and REGION; minus DROP.

    No credentials or endpoints come from files or instance metadata: only what the test sets.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
        AWS_CONFIG_FILE="/nonexistent/config",
        AWS_EC2_METADATA_DISABLED="true",
    )
    for name in drop:
        env.pop(name)
    return env


@dataclass
class Run:
    rc: int
    output: str  # stdout (the JSON document) + stderr: everything the run printed
    recap: dict[str, int]
    tasks: list[tuple[str, dict]]
    seconds: float = 0.0

    @classmethod
    def parse(cls, proc: subprocess.CompletedProcess[str], seconds: float = 0.0) -> Run:
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            data = {}
        # Task names without the "tritonfil.eks.<role> : " prefix.
        tasks = [
            (t["task"]["name"].split(" : ", 1)[-1], t["hosts"].get("localhost", {}))
            for p in data.get("plays", [])
            for t in p["tasks"]
        ]
        recap = data.get("stats", {}).get("localhost", {})
        return cls(proc.returncode, proc.stdout + proc.stderr, recap, tasks, seconds)

    def result(self, name: str) -> dict:
        found = [r for n, r in self.tasks if n == name]
        assert found, f"no task {name!r} in {[n for n, _ in self.tasks]}"
        return found[-1]

    def ran(self, name: str) -> bool:
        return any(n == name and not r.get("skipped") for n, r in self.tasks)

    @property
    def failure(self) -> str:
        """The messages of the failed tasks (those not ignored), joined with ' | '."""
        return " | ".join(
            r.get("msg", "") for _, r in self.tasks if r.get("failed") and not r.get("_ansible_ignore_errors")
        )

    @property
    def facts(self) -> dict:
        out: dict = {}
        for _, r in self.tasks:
            out.update(r.get("ansible_facts", {}))
        return out

    def tail(self) -> str:
        return f"rc={self.rc} recap={self.recap} failure={self.failure}\n{self.output[-3000:]}"


def run_role(
    role: str,
    work: Path,
    variables: dict,
    env: dict[str, str],
    *args: str,
    path: Sequence[str] = (),
    parse: type[Run] = Run,
    aws: dict | None = None,
    kubeconfig: str | None = None,
    tasks_from: str = "main",
) -> Run:
    """Run tritonfil.eks.ROLE alone on localhost with VARIABLES (an extra-vars file) in WORK.

    AWS ({"region", "endpoint_url"}) and KUBECONFIG become the play's module_defaults, as the playbooks set
    them. ENV is the caller's base environment (which AWS or KUBECONFIG variables it holds is the test's
    choice); the Ansible settings, the venv (and PATH entries) are added here, and TMPDIR points at
    WORK/tmpdir (what a module leaves in its temporary directory shows there). The JSON callback output is
    parsed into PARSE.
    """
    work.mkdir(parents=True)
    (work / "tmpdir").mkdir()
    (work / "play.yml").write_text(role_play(role, aws, kubeconfig, tasks_from))
    (work / "vars.json").write_text(json.dumps(variables))
    full = {
        **env,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "TMPDIR": str(work / "tmpdir"),
        "PATH": os.pathsep.join([str(VENV_BIN), *path, env.get("PATH", "")]),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(work / "play.yml"),
         "-e", f"@{work / 'vars.json'}", *args],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return parse.parse(proc, time.monotonic() - start)


def run_playbook(
    playbook: str,
    work: Path,
    env: dict[str, str],
    *args: str,
    inventory: str | Sequence[str] = "inventory/local",
    parse: type[Run] = Run,
    interrupt_at: str | None = None,
    interrupt_when: Callable[[], bool] | None = None,
    timeout: int = 900,
) -> Run:
    """Run PLAYBOOK (relative to the checkout) against INVENTORY (one source, or several: -i each), as a user
    would, in WORK.

    ENV as for run_role. With INTERRUPT_AT, the run uses the default callback (it prints each task as it
    starts) and gets SIGINT, sent to its whole process group like a Ctrl-C, as soon as a line containing
    INTERRUPT_AT appears; the result then has the printed text only (no parsed tasks). INTERRUPT_WHEN,
    if given, delays that SIGINT until it returns true (polled every 0.2 s for up to 120 s), e.g. until
    a resource the running task creates exists.
    """
    work.mkdir(parents=True)
    full = {
        **env,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "default" if interrupt_at else "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
    }
    sources = [inventory] if isinstance(inventory, str) else list(inventory)
    argv = [str(VENV_BIN / "ansible-playbook"), *[a for s in sources for a in ("-i", s)], playbook, *args]
    start = time.monotonic()
    if interrupt_at is None:
        proc = subprocess.run(argv, cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout)
        # Kept beside the run for whoever reads a failure later (pytest shows only the tail).
        (work / "stdout").write_text(proc.stdout)
        (work / "stderr").write_text(proc.stderr)
        return parse.parse(proc, time.monotonic() - start)
    child = subprocess.Popen(
        argv, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines = []
    assert child.stdout is not None
    for line in child.stdout:
        lines.append(line)
        if interrupt_at in line:
            deadline = time.monotonic() + 120
            while interrupt_when is not None and not interrupt_when() and time.monotonic() < deadline:
                time.sleep(0.2)
            os.killpg(child.pid, signal.SIGINT)
            lines.append(f"[playbook_run: SIGINT after {time.monotonic() - start:.1f}s]\n")
            break
    # ansible-core 2.19 occasionally hangs after one SIGINT (main process waiting on a lock, its worker
    # already gone); a user then presses Ctrl-C again, and so does this.
    for attempt in range(3):
        try:
            rest, _ = child.communicate(timeout=60)
            lines.append(rest or "")
            break
        except subprocess.TimeoutExpired:
            if attempt == 2:
                child.kill()
                lines.append("[playbook_run: killed, still running after 2 more SIGINTs]\n")
                rest, _ = child.communicate()
                lines.append(rest or "")
            else:
                os.killpg(child.pid, signal.SIGINT)
                lines.append(f"[playbook_run: still running 60s after SIGINT: SIGINT again ({attempt + 2})]\n")
    return parse.parse(
        subprocess.CompletedProcess(argv, child.returncode, "".join(lines), ""), time.monotonic() - start
    )
