"""Live progress of a playbook run for the `tritonfil` CLI, and its final summary.

`Progress` takes the API's `RunEvent`s (``on_event``) and shows where the run is:

- the stage, as ``stage k/N NAME`` with its elapsed time, N the stages of the action (`STAGES`);
  what runs before the first stage (the inputs' validation and every stage's preflight, which
  ``site.yml`` runs up front) is the ``preflight`` phase;
- the running task, and a heartbeat line while it runs (``still waiting: Ensure the EKS cluster
  (4m10s)``) every `heartbeat_interval` seconds (``TRITONFIL_HEARTBEAT``);
- changed and failed tasks as they happen, each stage's time and counts when it ends.

On a terminal it uses rich: a spinner status line (stage, task, live times) under the lines it prints.
Elsewhere (a log file, an AWX job, a pipe) it prints plain timestamped lines only.

A stage is told from the events as ansible-runner reports them: a task of role ``tritonfil.eks.X``
belongs to stage X when it runs the role's ``main`` or ``teardown`` entry point (Ansible starts
every included entry point with a task named ``Validating arguments against arg spec 'ENTRY'``,
which says which); the ``preflight`` and ``facts`` entry points, and the playbooks' own tasks,
belong to the stage in progress. A task of ``playbooks/verify.yml`` belongs to the ``verify`` stage.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from tritonfil.api import RunEvent, RunResult

__all__ = [
    "HEARTBEAT_ENV",
    "PREFLIGHT",
    "STAGES",
    "STAGE_ROLES",
    "Progress",
    "StageReport",
    "format_duration",
    "format_summary",
    "heartbeat_interval",
    "render_summary",
    "summary_document",
]

#: The stage roles of the collection, in the order a deploy runs them (the one list: the tests that check the
#: roles, the collection tarball, the execution environment and the wheel read it from here).
STAGE_ROLES = (
    "ecr_image", "s3_models", "eks_gpu_cluster", "karpenter", "metrics_server", "keda", "istio", "triton_release",
)  # fmt: skip
#: The stages of each action, in the order they run (tests/unit/test_progress.py checks them against
#: playbooks/deploy.yml, playbooks/verify.yml, playbooks/teardown.yml and site.yml).
STAGES: dict[str, tuple[str, ...]] = {
    "deploy": (*STAGE_ROLES, "verify"),
    "plan": (*STAGE_ROLES, "verify"),
    "verify": ("verify",),
    "teardown": tuple(reversed(STAGE_ROLES)),
    "rollback": ("triton_release", "verify"),
}
#: The phase before the first stage: input validation and the stages' preflight checks.
PREFLIGHT = "preflight"
#: The role entry points that are the stage itself (the others, preflight and facts, belong to the current one).
STAGE_ENTRY_POINTS = ("main", "teardown")
#: The name Ansible gives the argument validation task it puts first in every role entry point.
VALIDATION_TASK = "Validating arguments against arg spec '"
#: Seconds between heartbeat lines while a task runs (default 15 on a terminal, 30 otherwise).
HEARTBEAT_ENV = "TRITONFIL_HEARTBEAT"
RESULT_KINDS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")


def heartbeat_interval(tty: bool, environ: dict[str, str] | None = None) -> float:
    """$TRITONFIL_HEARTBEAT seconds when set (a positive number), else 15 on a terminal and 30 otherwise."""
    env = os.environ if environ is None else environ
    value = env.get(HEARTBEAT_ENV, "").strip()
    if value:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{HEARTBEAT_ENV}={value!r}: expected a number of seconds") from None
        if seconds <= 0:
            raise ValueError(f"{HEARTBEAT_ENV}={value!r}: expected a positive number of seconds")
        return seconds
    return 15.0 if tty else 30.0


def format_duration(seconds: float) -> str:
    """41s, 4m10s, 1h02m05s (whole seconds; under 10 s with one decimal)."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def _entry_point(task: str) -> str | None:
    """The role entry point named by Ansible's argument validation task, else None."""
    if not task.startswith(VALIDATION_TASK):
        return None
    return task[len(VALIDATION_TASK) :].split("'", 1)[0]


def _task_file(event: RunEvent) -> str:
    """The file the task is defined in (event_data.task_path without its line number)."""
    data = event.raw.get("event_data") if isinstance(event.raw, Mapping) else None
    path = str((data or {}).get("task_path") or "")
    return path.rsplit(":", 1)[0] if path else ""


@dataclass
class StageReport:
    """One stage of the run (or the preflight phase, index 0): time, task counts, how it ended."""

    index: int
    name: str
    status: str = "not run"  # not run, running, ok, failed
    elapsed: float = 0.0
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def ran(self) -> bool:
        return self.status != "not run"

    def label(self, total: int) -> str:
        return f"stage {self.index}/{total} {self.name}" if self.index else self.name

    def counts(self) -> str:
        parts = [f"{k} {getattr(self, k)}" for k in ("ok", "changed", "failed", "skipped") if getattr(self, k)]
        return ", ".join(parts) or "no tasks ran"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ran": self.ran, "elapsed": round(self.elapsed, 3)}


class Progress:
    """Stage-by-stage progress of one run on STREAM (the CLI's stderr); call it with each `RunEvent`.

    ``tty`` (default: STREAM is a terminal and $TERM is not ``dumb``) chooses the rich status line or plain
    timestamped lines. ``clock`` (monotonic seconds) and ``wallclock`` (epoch seconds, for the plain lines'
    timestamps) can be replaced in tests; so can the heartbeat timer: `start` runs a thread calling `tick`
    every second or so, and a test calls `tick` itself after moving its clock.
    """

    def __init__(
        self,
        stream: TextIO,
        action: str = "deploy",
        *,
        verbose: bool = False,
        tty: bool | None = None,
        heartbeat: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.action = action
        self.verbose = verbose
        if tty is None:
            tty = bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"
        self.tty = tty
        self.heartbeat = heartbeat if heartbeat is not None else heartbeat_interval(tty)
        self.clock = clock
        self.wallclock = wallclock
        self.start_time = clock()
        self.stage_names = STAGES.get(action, ())
        self.reports: dict[str, StageReport] = {PREFLIGHT: StageReport(0, PREFLIGHT)}
        for i, name in enumerate(self.stage_names, 1):
            self.reports[name] = StageReport(i, name)
        self.stage: str | None = None
        self.stage_start = self.start_time
        self.task: str | None = None
        self.task_start = self.start_time
        self.next_beat = 0.0
        self.retry = ""
        self._entries: dict[str, str] = {}  # role -> the entry point its tasks run now
        #: (host, task) -> the stage it changed or failed in (the summary's failed tasks and changes).
        self.task_stages: dict[tuple[str, str], str] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._console: Any = None
        self._spinner: Any = None
        if tty:
            from rich.console import Console

            self._console = Console(file=stream, force_terminal=True, highlight=False, markup=False, emoji=False)

    # -- output -----------------------------------------------------------------------------------
    def _say(self, text: str, style: str | None = None) -> None:
        elapsed = format_duration(self.clock() - self.start_time)
        if self._console is not None:
            from rich.text import Text

            self._console.print(Text.assemble((f"[{elapsed:>8}] ", "dim"), (text, style or "")))
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.wallclock()))
            print(f"{stamp} [{elapsed:>8}] {text}", file=self.stream, flush=True)

    def _status_text(self, width: int = 10_000) -> str:
        """The status line's text, at most WIDTH characters (the task name is shortened first). Reads a snapshot
        of the state without the lock: rich's refresh thread calls it holding rich's own locks, which a thread
        printing under our lock takes the other way round."""
        now = self.clock()
        stage, stage_start, task, task_start, retry = (
            self.stage, self.stage_start, self.task, self.task_start, self.retry,
        )  # fmt: skip
        head = f"total {format_duration(now - self.start_time)}"
        if stage is not None:
            label = self.reports[stage].label(len(self.stage_names))
            head = f"{label} {format_duration(now - stage_start)} · {head}"
        if not task:
            return head[:width]
        tail = f" ({format_duration(now - task_start)}{retry})"
        room = width - len(head) - len(" · ") - len(tail)
        task = task if len(task) <= room else task[: max(room - 1, 0)] + "…"
        return f"{head} · {task}{tail}"[:width]

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        """The status line (rich calls this on each refresh): spinner, stage, task and times, on one line."""
        from rich.text import Text

        text = self._status_text(options.max_width - 2)
        yield Text.assemble(self._spinner.render(console.get_time()), " ", text, no_wrap=True)

    # -- the timer --------------------------------------------------------------------------------
    def start(self) -> Progress:
        """Start the heartbeat thread and, on a terminal, the status line."""
        if self._console is not None and self._live is None:
            from rich.live import Live
            from rich.spinner import Spinner

            self._spinner = Spinner("dots", style="cyan")
            self._live = Live(
                self, console=self._console, transient=True, refresh_per_second=4, redirect_stdout=False,
                redirect_stderr=False,
            )  # fmt: skip
            self._live.start()
        if self._thread is None:
            poll = min(1.0, self.heartbeat / 2)
            self._thread = threading.Thread(target=self._beat, args=(poll,), name="tritonfil-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _beat(self, poll: float) -> None:
        while not self._stop.wait(poll):
            self.tick()

    def tick(self) -> None:
        """Print a heartbeat line when the open task has run another heartbeat interval."""
        with self._lock:
            if self.task is None:
                return
            now = self.clock()
            if now < self.next_beat:
                return
            running = now - self.task_start
            self.next_beat = self.task_start + self.heartbeat * (int(running // self.heartbeat) + 1)
            self._say(f"  still waiting: {self.task} ({format_duration(running)}{self.retry})", style="yellow")

    def close(self) -> None:
        """Stop the heartbeat thread and the status line (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events -----------------------------------------------------------------------------------
    def _stage_of(self, event: RunEvent) -> str | None:
        """The stage this task starts, or None when it belongs to the stage in progress."""
        if event.role:
            role = event.stage
            entry = _entry_point(event.task)
            if entry is not None:
                self._entries[role] = entry
            if role in self.stage_names and self._entries.get(role, "main") in STAGE_ENTRY_POINTS:
                return role
            return None
        stem = Path(_task_file(event)).stem
        return stem if stem in self.stage_names else None

    def _enter(self, stage: str) -> None:
        self._close_stage()
        self.stage, self.stage_start = stage, self.clock()
        report = self.reports[stage]
        report.status = "running"
        what = " (the inputs and every stage's checks)" if stage == PREFLIGHT and self.stage_names else ""
        self._say(f"{report.label(len(self.stage_names))}{what} ...", style="bold")

    def _close_stage(self) -> None:
        if self.stage is None:
            return
        report = self.reports[self.stage]
        report.elapsed += self.clock() - self.stage_start
        report.status = "failed" if report.failed else "ok"
        label = report.label(len(self.stage_names))
        self._say(f"{label}: done in {format_duration(report.elapsed)} ({report.counts()})")
        self.stage = None

    def __call__(self, event: RunEvent) -> None:
        with self._lock:
            if event.kind == "playbook_on_task_start":
                stage = self._stage_of(event)
                if stage is None and self.stage is None:
                    stage = PREFLIGHT
                if stage is not None and stage != self.stage:
                    self._enter(stage)
                self.task, self.task_start, self.retry = event.task, self.clock(), ""
                self.next_beat = self.task_start + self.heartbeat
                if self.verbose:
                    self._say(f"  task: {event.task}", style="dim")
            elif event.kind == "runner_retry":
                data = event.raw.get("event_data") if isinstance(event.raw, Mapping) else None
                res = (data or {}).get("res") or {}
                attempts, retries = res.get("attempts"), res.get("retries")
                if attempts:
                    self.retry = f", attempt {attempts}" + (f" of {retries}" if retries else "")
            elif event.kind == "playbook_on_stats":
                self.task = None
                self._close_stage()
            elif event.kind in RESULT_KINDS:
                self.task = None
                self._count(event)

    def _count(self, event: RunEvent) -> None:
        if self.stage is None:  # a result with no task start before it (ansible-runner always sends one)
            self._enter(PREFLIGHT)
        report = self.reports[self.stage or PREFLIGHT]
        if (event.failed and not event.ignored) or event.changed:
            self.task_stages[(event.host, event.task)] = report.name
        if event.failed and not event.ignored:
            report.failed += 1
            reason = event.message.splitlines()[0] if event.message else ""
            self._say(f"  FAILED {event.task} on {event.host}: {reason}", style="bold red")
        elif event.skipped:
            report.skipped += 1
        elif event.changed:
            report.changed += 1
            self._say(f"  changed: {event.task} ({event.host})", style="green")
        else:
            report.ok += 1
            if self.verbose:
                self._say(f"  ok: {event.task} ({event.host})", style="dim")

    def finish(self, status: str) -> None:
        """Close the stage in progress, stop the timer and the status line, print the total. In a run that
        succeeded, a stage's failed tasks were rescued (or ignored): the stage is ok."""
        with self._lock:
            self.task = None
            self._close_stage()
            if status == "successful":
                for report in self.reports.values():
                    if report.status == "failed":
                        report.status = "ok"
        self.close()
        self._say(f"total {format_duration(self.clock() - self.start_time)} ({status})", style="bold")

    # -- reports ----------------------------------------------------------------------------------
    def stages(self) -> list[StageReport]:
        """The preflight phase and every stage of the action, in order (the ones that did not run included)."""
        with self._lock:
            return list(self.reports.values())


# -- the summary --------------------------------------------------------------------------------------
STAGE_COLUMNS = ("#", "stage", "time", "ok", "changed", "failed", "skipped", "result")


def _stage_rows(stages: list[StageReport], total: int) -> Iterator[tuple[str, ...]]:
    for s in stages:
        if s.index == 0 and not s.ran:
            continue
        number = f"{s.index}/{total}" if s.index else ""
        if not s.ran:
            yield (number, s.name, "-", "", "", "", "", "not run")
        else:
            yield (
                number, s.name, format_duration(s.elapsed), str(s.ok), str(s.changed), str(s.failed), str(s.skipped),
                s.status,
            )  # fmt: skip


def format_summary(result: RunResult, stages: list[StageReport] | None = None) -> str:
    """The final summary as plain text: the stages (when given), each host's recap, failed tasks with their
    message, the plan (check mode), the artifacts."""
    lines = [f"{result.action}: {result.status} (rc={result.rc}) in {result.elapsed:.1f}s"]
    if stages:
        total = sum(1 for s in stages if s.index)
        rows = [STAGE_COLUMNS, *_stage_rows(stages, total)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(STAGE_COLUMNS))]
        left = {1, 7}  # stage and result columns
        for r in rows:
            cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
            lines.append(("  " + "  ".join(cells)).rstrip())
    width = max((len(h) for h in result.stats), default=4)
    for host, s in result.stats.items():
        lines.append(
            f"  {host:<{width}}  ok={s.ok} changed={s.changed} failed={s.failed} unreachable={s.unreachable} "
            f"skipped={s.skipped} rescued={s.rescued} ignored={s.ignored}"
        )
    for f in result.failed_tasks:
        lines.append(f"  failed: {f.describe()}")
    if result.check:
        if result.plan:
            lines.append(f"  plan: {len(result.plan)} change(s)")
            lines += [f"    ~ [{c.stage}] {c.task} ({c.host})" for c in result.plan]
        elif result.ok:
            lines.append("  plan: nothing to do")
    lines.append(f"  artifacts: {result.artifact_dir}")
    return "\n".join(lines)


def render_summary(result: RunResult, stages: list[StageReport], stream: TextIO, *, tty: bool) -> None:
    """The final summary on STREAM: a rich table of the stages and the recap on a terminal, else
    `format_summary`'s plain text."""
    if not tty:
        stream.write(format_summary(result, stages) + "\n")
        stream.flush()
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, force_terminal=True, highlight=False, markup=False, emoji=False)
    total = sum(1 for s in stages if s.index)
    table = Table(
        title=f"{result.action}: {result.status} (rc={result.rc}) in {format_duration(result.elapsed)}",
        title_style="bold green" if result.ok else "bold red",
    )
    for col in STAGE_COLUMNS:
        table.add_column(col, justify="left" if col in ("stage", "result") else "right")
    colours = {"ok": "green", "failed": "red", "not run": "dim", "running": "yellow"}
    for row in _stage_rows(stages, total):
        table.add_row(*row, style=colours.get(row[-1]))
    console.print(table)
    for line in format_summary(result).splitlines()[1:]:
        console.print(line, style="red" if line.lstrip().startswith("failed:") else None)


def summary_document(
    result: RunResult, stages: list[StageReport], task_stages: Mapping[tuple[str, str], str] | None = None
) -> dict[str, Any]:
    """The run as one JSON-serialisable document (`tritonfil ... --json`). TASK_STAGES (`Progress.task_stages`)
    names the stage of each failed or changed task; without it, its role (else its play)."""
    where = task_stages or {}
    return {
        "action": result.action,
        "playbook": result.playbook,
        "status": result.status,
        "ok": result.ok,
        "rc": result.rc,
        "elapsed": round(result.elapsed, 3),
        "check": result.check,
        "stages": [s.to_dict() for s in stages if s.index],
        "preflight": next((s.to_dict() for s in stages if s.index == 0), None),
        "hosts": {h: asdict(s) for h, s in result.stats.items()},
        "failed_tasks": [
            {
                "host": f.host,
                "task": f.task,
                "stage": where.get((f.host, f.task), f.stage),
                "role": f.role,
                "play": f.play,
                "action": f.action,
                "message": f.message,
                "unreachable": f.unreachable,
            }
            for f in result.failed_tasks
        ],
        "changes": [
            {"host": c.host, "task": c.task, "stage": where.get((c.host, c.task), c.stage)}
            for c in result.changed_tasks
        ],
        "artifact_dir": str(result.artifact_dir),
        "ident": result.ident,
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)
