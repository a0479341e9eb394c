"""`tritonfil deploy` as an operator sees it, against the session's local environment.

1. In a terminal (a pseudo-terminal of 150x45, TERM=xterm-256color): `tritonfil deploy --tags
   ecr_image,s3_models` with a heartbeat every 0.2 s (TRITONFIL_HEARTBEAT=0.2: shorter than an Ansible
   module's start-up, so a fast machine, whose every task ends within a second, still shows one). The screen
   output shows the stage counter (``stage 1/9 ecr_image``, ``stage 2/9 s3_models``), the spinner status line with the
   running task, at least one ``still waiting: TASK (…)`` heartbeat line during a task that runs longer
   than the interval, and the final rich summary table. The transcript is kept in the test's directory.
2. The same run again with ``--json``, stdout a pipe: stdout is one JSON document (the converged rerun
   changes nothing); stderr, not a terminal, carries the plain timestamped progress lines.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN
from tritonfil.localenv.env import LocalEnv

pytestmark = pytest.mark.integration

TAGS = "ecr_image,s3_models"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def environ(local_env: LocalEnv, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTEST_"))}
    env.update(local_env.environ())
    env.update(TRITONFIL_HEARTBEAT="0.2", TRITONFIL_RUNS=str(tmp_path / "runs"), TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    return env


def run_in_terminal(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """ARGV with stdin, stdout and stderr on a pseudo-terminal (150 columns); (exit status, what it wrote)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 150, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    f"{argv} still running after {timeout}s:\n{b''.join(chunks).decode(errors='replace')[-4000:]}"
                )
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_deploy_in_a_terminal_shows_the_stage_counter_and_heartbeats_then_json(local_env, tmp_path):
    env = environ(local_env, tmp_path)
    argv = [str(VENV_BIN / "tritonfil"), "deploy", "-i", "local", "--tags", TAGS]
    rc, screen = run_in_terminal(argv, env, timeout=1500)
    (tmp_path / "terminal.txt").write_text(screen)  # the raw transcript, escape sequences and all
    text = ANSI.sub("", screen).replace("\r", "")
    assert rc == 0, text[-6000:]
    assert "\x1b[" in screen  # rich styled it: a terminal was detected

    # The stage counter, in order, each stage closed with its time and counts.
    assert re.search(r"\[ *[0-9.ms]+\] stage 1/9 ecr_image \.\.\.", text), text[-6000:]
    assert re.search(r"\[ *[0-9.ms]+\] stage 2/9 s3_models \.\.\.", text), text[-6000:]
    assert text.index("stage 1/9 ecr_image ...") < text.index("stage 2/9 s3_models ...")
    assert re.search(r"stage 1/9 ecr_image: done in [0-9.ms]+ \(ok \d+", text), text[-6000:]
    before = text[: text.index("stage 1/9 ecr_image ...")]  # validation and preflight: not numbered
    assert "preflight (the inputs and every stage's checks) ..." in before
    assert not re.search(r"stage \d/9 \w+ \.\.\.", before), before
    # The status line: spinner, stage with its time, the running task with its time.
    assert re.search(rf"[{SPINNER}] stage 2/9 s3_models [0-9.ms]+ · total [0-9.ms]+ · .+ \([0-9.ms]+\)", text), text[
        -6000:
    ]
    # At least one heartbeat during a task that ran longer than the 0.2 s interval.
    beats = re.findall(r"still waiting: (.+?) \(([0-9.]+s|\d+m\d+s)(?:, attempt [^)]*)?\)", text)
    assert beats, text[-6000:]
    # The summary: a rich table with both stages and the five not run.
    assert re.search(r"deploy: successful \(rc=0\) in ", text)
    assert re.search(r"│\s+1/9\s+│\s+ecr_image\s+│\s+[0-9.ms]+\s+│", text), text[-4000:]
    assert len(re.findall(r"│\s+[3-9]/9\s+│\s+\w+\s+│\s+-\s+│.*not run", text)) == 7, text[-4000:]

    # Again, for a script: --json on a pipe.
    proc = subprocess.run(
        [*argv, "--json"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    doc = json.loads(proc.stdout)  # stdout is the document and nothing else
    assert (doc["action"], doc["status"], doc["rc"], doc["ok"]) == ("deploy", "successful", 0, True)
    ran = {s["name"]: s for s in doc["stages"] if s["ran"]}
    assert sorted(ran) == ["ecr_image", "s3_models"]
    assert [s["index"] for s in doc["stages"]] == list(range(1, 10))
    assert all(s["status"] == "ok" and s["ok"] > 0 and s["elapsed"] > 0 for s in ran.values()), ran
    assert doc["changes"] == [] and doc["failed_tasks"] == []  # a converged rerun changes nothing
    assert Path(doc["artifact_dir"]).is_dir() and Path(doc["artifact_dir"]).parent.parent == tmp_path / "runs"
    assert doc["hosts"]["localhost"]["changed"] == 0
    # stderr is no terminal: plain timestamped lines, no escape sequences.
    assert "\x1b[" not in proc.stderr
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[ *[0-9.ms]+\] stage 2/9 s3_models \.\.\.$", proc.stderr, re.M)
