"""Python API: deploy, verify, tear down and plan Triton + FIL on EKS through ansible-runner.

One thin facade over ansible-runner (the same `init_runner` that `ansible_runner.run` and
`ansible_runner.run_async` are built on), so that it can take the secrets out of the child's
environment before ansible-runner writes it to ``artifacts/<ident>/command``::

    from tritonfil import deploy, plan, verify, teardown

    result = deploy(inventory="local")          # raises PlaybookFailed naming the failed task
    print(result.status, result.rc, result.stats, result.artifact_dir)
    handle = verify(inventory="aws", wait=False)  # a RunHandle: .cancel(), .wait()

Playbooks (relative to the project directory, the repository root where ``site.yml`` is):
deploy = ``site.yml`` (deploy + verify), verify = ``playbooks/verify.yml``, teardown =
``playbooks/teardown.yml``, plan = ``site.yml`` with ``--check --diff``.

Secrets never reach the artifacts: env files are suppressed, extra vars travel in a 0600 file
outside the private data directory (``-e @file``), and AWS keys found in the environment are
moved into a 0600 shared-credentials file named by ``AWS_SHARED_CREDENTIALS_FILE`` /
``AWS_PROFILE`` (ansible-runner records the child's whole environment in
``artifacts/<ident>/command``). Both temporary files are removed when the run ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ACTIONS",
    "HostStats",
    "PlannedChange",
    "PlaybookCanceled",
    "PlaybookFailed",
    "PlaybookTimedOut",
    "ProjectNotFound",
    "RunEvent",
    "RunHandle",
    "RunResult",
    "TaskFailure",
    "TritonfilError",
    "deploy",
    "find_project",
    "is_local_inventory",
    "local_netns_wrapper",
    "move_aws_keys",
    "move_secret_variables",
    "plan",
    "model_history",
    "resolve_inventory",
    "rollback",
    "run_playbook",
    "teardown",
    "verify",
]

#: Action name -> playbook (relative to the project directory).
ACTIONS: dict[str, str] = {
    "deploy": "site.yml",
    "verify": "playbooks/verify.yml",
    "teardown": "playbooks/teardown.yml",
    "plan": "site.yml",
    "rollback": "playbooks/rollback.yml",
    "history": "playbooks/history.yml",
}
PROJECT_ENV = "TRITONFIL_PROJECT"
#: Environment variables moved from the child's environment into a shared-credentials file.
AWS_KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
CREDENTIALS_PROFILE = "tritonfil"
#: Secret-looking environment variables (besides the AWS keys above): kept out of the child's recorded environment
#: and handed to ansible-playbook through a 0600 file by ``python -m tritonfil.secretenv`` (`move_secret_variables`).
#: A name matches when it contains one of these words, case-insensitively, and does not name a file (``*_FILE``,
#: ``*_PATH``, ``*_DIR``: AWS_SHARED_CREDENTIALS_FILE stays visible); a false match costs nothing (the variable
#: still reaches the playbook), a miss would put a secret into ``artifacts/<ident>/command``.
SECRET_NAME_WORDS = ("TOKEN", "SECRET", "PASSW", "PASSPHRASE", "CREDENTIAL", "API_KEY", "APIKEY", "PRIVATE_KEY",
                     "COOKIE")  # fmt: skip
#: Named for the record (each matches a word above): Kubernetes (kubernetes.core), AWX/Tower (awx.awx), Vault.
SECRET_VARIABLES = ("K8S_AUTH_API_KEY", "K8S_AUTH_PASSWORD", "CONTROLLER_OAUTH_TOKEN", "CONTROLLER_PASSWORD",
                    "TOWER_OAUTH_TOKEN", "TOWER_PASSWORD", "VAULT_TOKEN", "TRITONFIL_VERIFY_TOKEN")  # fmt: skip
COLLECTION_PREFIX = "tritonfil.eks."

EventCallback = Callable[["RunEvent"], None]
StatusCallback = Callable[[str], None]


# -- errors ---------------------------------------------------------------------------------------
class TritonfilError(Exception):
    """Base class of every error this API raises."""


class ProjectNotFound(TritonfilError):
    """No project directory (with site.yml) or no such inventory."""


class PlaybookFailed(TritonfilError):
    """The run did not end "successful". Carries the `RunResult` (status, rc, failed tasks, artifacts)."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__(result.summary_line())

    @property
    def failed_tasks(self) -> list[TaskFailure]:
        return self.result.failed_tasks

    @property
    def failed_task(self) -> TaskFailure | None:
        """The first task that failed (None when the run failed before any task, e.g. a syntax error)."""
        return self.result.failed_tasks[0] if self.result.failed_tasks else None

    @property
    def artifact_dir(self) -> Path:
        return self.result.artifact_dir


class PlaybookCanceled(PlaybookFailed):
    """The run was canceled (RunHandle.cancel(), the cancel event, or SIGINT/SIGTERM)."""


class PlaybookTimedOut(PlaybookFailed):
    """The run exceeded its ``timeout`` and was stopped."""


# -- results --------------------------------------------------------------------------------------
def _stage_of(role: str | None, play: str | None) -> str:
    """The stage a task belongs to: its role without the collection prefix, else its play."""
    if role:
        return role.removeprefix(COLLECTION_PREFIX)
    return play or ""


def _task_name(event_data: Mapping[str, Any]) -> str:
    """The task name without Ansible's ``role : `` prefix."""
    name = str(event_data.get("task") or "")
    return name.split(" : ", 1)[-1]


def _message(res: Mapping[str, Any]) -> str:
    """A one-paragraph reason from a task result (msg, else stderr/stdout, else the result)."""
    for key in ("msg", "reason", "stderr", "stdout", "module_stderr"):
        value = res.get(key)
        if value:
            return str(value).strip()
    results = res.get("results")
    if isinstance(results, list):  # a loop: the failed items' messages
        msgs = [_message(r) for r in results if isinstance(r, Mapping) and r.get("failed")]
        if msgs:
            return " | ".join(msgs)
    visible = {k: v for k, v in res.items() if not k.startswith("_ansible")}
    return json.dumps(visible, default=str)[:500]


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed (not ignored, not rescued) or a host that was unreachable."""

    host: str
    task: str
    role: str
    play: str
    message: str
    action: str = ""
    unreachable: bool = False

    @property
    def stage(self) -> str:
        return _stage_of(self.role, self.play)

    def describe(self) -> str:
        where = f" (role {self.stage})" if self.role else ""
        kind = "unreachable" if self.unreachable else "failed"
        return f"task '{self.task}'{where} {kind} on {self.host}: {self.message}"


@dataclass(frozen=True)
class PlannedChange:
    """A task that reported changed (in a plan: would change), with its diff when it has one."""

    host: str
    task: str
    role: str
    play: str
    diff: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return _stage_of(self.role, self.play)


@dataclass(frozen=True)
class HostStats:
    """The play recap of one host."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @classmethod
    def from_runner(cls, stats: Mapping[str, Mapping[str, int]] | None) -> dict[str, HostStats]:
        """Per-host stats from ansible-runner's ``Runner.stats`` ({'ok': {host: n}, 'failures': ...})."""
        if not stats:
            return {}
        keys = {
            "ok": "ok",
            "changed": "changed",
            "failed": "failures",
            "unreachable": "dark",
            "skipped": "skipped",
            "rescued": "rescued",
            "ignored": "ignored",
        }
        hosts = sorted({h for counts in stats.values() if isinstance(counts, Mapping) for h in counts})
        return {
            h: cls(**{mine: int((stats.get(theirs) or {}).get(h, 0)) for mine, theirs in keys.items()}) for h in hosts
        }


@dataclass(frozen=True)
class RunEvent:
    """One ansible-runner event, reduced to what progress reporting needs; ``raw`` has everything."""

    kind: str  # the runner event: playbook_on_task_start, runner_on_ok, runner_on_failed, ...
    host: str
    task: str
    role: str
    play: str
    changed: bool
    failed: bool
    skipped: bool
    ignored: bool
    message: str
    raw: Mapping[str, Any]

    @property
    def stage(self) -> str:
        return _stage_of(self.role, self.play)

    @classmethod
    def from_runner(cls, event: Mapping[str, Any]) -> RunEvent:
        data = event.get("event_data") or {}
        kind = str(event.get("event") or "")
        res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
        failed = kind in ("runner_on_failed", "runner_on_unreachable")
        return cls(
            kind=kind,
            host=str(data.get("host") or ""),
            task=_task_name(data),
            role=str(data.get("role") or ""),
            play=str(data.get("play") or ""),
            changed=bool(res.get("changed")) and kind == "runner_on_ok",
            failed=failed,
            skipped=kind == "runner_on_skipped",
            ignored=bool(data.get("ignore_errors")) and failed,
            message=_message(res) if failed else "",
            raw=event,
        )


@dataclass
class RunResult:
    """The outcome of one playbook run."""

    action: str
    playbook: str
    status: str  # successful, failed, canceled, timeout
    rc: int | None
    stats: dict[str, HostStats]
    failed_tasks: list[TaskFailure]
    changed_tasks: list[PlannedChange]
    artifact_dir: Path
    ident: str
    elapsed: float
    check: bool = False
    stage_times: dict[str, float] = field(default_factory=dict)
    output_tail: str = ""
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> facts the run set (set_fact, ...)

    @property
    def ok(self) -> bool:
        return self.status == "successful"

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.stats.values())

    @property
    def plan(self) -> list[PlannedChange]:
        """In a plan (check mode): the tasks that would change something. Empty = nothing to do."""
        return self.changed_tasks

    def summary_line(self) -> str:
        """One line: what ran, how it ended, the first failed task and where the artifacts are."""
        head = f"{self.action} ({self.playbook}) {self.status} (rc={self.rc})"
        if self.failed_tasks:
            more = f" (+{len(self.failed_tasks) - 1} more)" if len(self.failed_tasks) > 1 else ""
            head += f": {self.failed_tasks[0].describe()}{more}"
        elif not self.ok and self.output_tail:
            head += f": {self.output_tail.strip().splitlines()[-1]}"
        return f"{head}; artifacts: {self.artifact_dir}"

    def raise_for_status(self) -> RunResult:
        """Return self when successful, else raise the typed error for its status."""
        if self.status == "successful":
            return self
        if self.status == "canceled":
            raise PlaybookCanceled(self)
        if self.status == "timeout":
            raise PlaybookTimedOut(self)
        raise PlaybookFailed(self)


class _Collector:
    """Reduces runner events to failures, changes and per-stage times; forwards them to callbacks."""

    def __init__(self, on_event: EventCallback | None) -> None:
        self.on_event = on_event
        self.failures: list[TaskFailure] = []
        self.changes: list[PlannedChange] = []
        self.stage_times: dict[str, float] = {}
        self.facts: dict[str, dict[str, Any]] = {}
        self._stage: str | None = None
        self._stage_start = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> bool:
        ev = RunEvent.from_runner(event)
        with self._lock:
            if ev.kind == "playbook_on_task_start":
                self._enter(ev.stage)
            elif ev.kind in ("runner_on_failed", "runner_on_unreachable") and not ev.ignored:
                self.failures.append(
                    TaskFailure(
                        host=ev.host,
                        task=ev.task,
                        role=ev.role,
                        play=ev.play,
                        message=ev.message,
                        action=str((event.get("event_data") or {}).get("task_action") or ""),
                        unreachable=ev.kind == "runner_on_unreachable",
                    )
                )
            if ev.kind == "runner_on_ok":
                facts = ((event.get("event_data") or {}).get("res") or {}).get("ansible_facts")
                if isinstance(facts, Mapping):
                    self.facts.setdefault(ev.host, {}).update(facts)
            if ev.changed:
                res = (event.get("event_data") or {}).get("res") or {}
                diff = res.get("diff") or []
                self.changes.append(
                    PlannedChange(ev.host, ev.task, ev.role, ev.play, diff if isinstance(diff, list) else [diff])
                )
            elif ev.kind == "playbook_on_stats":
                self._enter(None)
        if self.on_event is not None:
            self.on_event(ev)
        return True  # write the event to artifacts/<ident>/job_events as usual

    def _enter(self, stage: str | None) -> None:
        now = time.monotonic()
        if self._stage is not None and stage != self._stage:
            self.stage_times[self._stage] = self.stage_times.get(self._stage, 0.0) + now - self._stage_start
        if stage != self._stage:
            self._stage, self._stage_start = stage, now

    def final_failures(self, stats: Mapping[str, HostStats]) -> list[TaskFailure]:
        """Failures that ended a host: a rescued failure is followed by the rescue, so per host the last one
        counts, and only on hosts the recap marks failed or unreachable."""
        last: dict[str, TaskFailure] = {}
        for f in self.failures:
            last[f.host] = f
        bad = {h for h, s in stats.items() if s.failed or s.unreachable}
        return [f for h, f in last.items() if not stats or h in bad]


# -- project, inventory, environment ---------------------------------------------------------------
def find_project(project_dir: str | os.PathLike[str] | None = None) -> Path:
    """The project directory: PROJECT_DIR, else $TRITONFIL_PROJECT, else the tritonfil.eks collection this
    Python has (`tritonfil.collection.root()`: the installed wheel's copy, or the checkout `make setup`
    linked); it must contain site.yml."""
    from tritonfil import collection

    if project_dir:
        candidates = [Path(project_dir)]
    elif os.environ.get(PROJECT_ENV):
        candidates = [Path(os.environ[PROJECT_ENV])]
    else:
        try:
            candidates = [collection.root()]
        except collection.CollectionNotFound as e:
            raise ProjectNotFound(f"no project directory: {e}; or pass project_dir or set {PROJECT_ENV}") from None
    for c in candidates:
        if (c / "site.yml").is_file():
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ProjectNotFound(f"no project directory with site.yml (tried {tried}); pass project_dir or set {PROJECT_ENV}")


def resolve_inventory(inventory: str | os.PathLike[str] | None, project: Path) -> Path | str:
    """'local' / 'aws' (or None = local) name the project's inventories; anything else is a path
    (or a comma-separated host list such as 'localhost,')."""
    name = str(inventory) if inventory is not None else "local"
    if name in ("local", "aws"):
        return project / "inventory" / name
    if "," in name and not Path(name).exists():
        return name
    path = Path(name).expanduser()
    if not path.is_absolute() and not path.exists() and (project / path).exists():
        path = project / path
    if not path.exists():
        raise ProjectNotFound(f"inventory {name} not found (nor {project / name})")
    return path.resolve()


def is_local_inventory(inventory: Path | str, project: Path) -> bool:
    return isinstance(inventory, Path) and inventory == (project / "inventory" / "local").resolve()


def local_environ() -> dict[str, str]:
    """The local environment's client variables (KUBECONFIG, AWS endpoint, fake keys, PATH)."""
    from tritonfil.localenv.env import LocalEnv, LocalEnvError

    try:
        return LocalEnv().environ()
    except LocalEnvError as e:
        raise TritonfilError(str(e)) from e


def local_netns_wrapper() -> list[str]:
    """The argv prefix that runs a command inside the local environment's network namespace: empty
    unless root outside an isolated (loopback-only) namespace (`tritonfil.localenv.netns` decides)."""
    from tritonfil.localenv import netns

    try:
        return netns.isolation_prefix(netns.LOCAL)
    except netns.IsolationError as e:
        raise TritonfilError(str(e)) from e


def move_aws_keys(env: dict[str, str], workdir: Path) -> Path | None:
    """Move AWS keys out of ENV (in place) into WORKDIR/credentials (0600), named by
    AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE. Returns the file, or None when ENV held no keys."""
    keys = {k: env.pop(k) for k in AWS_KEY_VARIABLES if k in env}
    access, secret = keys.get("AWS_ACCESS_KEY_ID"), keys.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:  # none, or a partial set boto could not use either: dropped
        return None
    token = keys.get("AWS_SESSION_TOKEN") or keys.get("AWS_SECURITY_TOKEN")
    lines = [f"[{CREDENTIALS_PROFILE}]", f"aws_access_key_id = {access}", f"aws_secret_access_key = {secret}"]
    if token:
        lines.append(f"aws_session_token = {token}")
    path = workdir / "credentials"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(path)
    env["AWS_PROFILE"] = CREDENTIALS_PROFILE
    env.pop("AWS_DEFAULT_PROFILE", None)
    return path


def is_secret_name(name: str) -> bool:
    """Whether environment variable NAME looks like it holds a secret (SECRET_NAME_WORDS)."""
    upper = name.upper()
    if upper.endswith(("_FILE", "_PATH", "_DIR")):
        return False
    return any(word in upper for word in SECRET_NAME_WORDS)


def move_secret_variables(env: dict[str, str], workdir: Path) -> Path | None:
    """Move every secret-looking variable out of ENV (in place) into WORKDIR/secret-env.json (0600), which
    ``python -m tritonfil.secretenv FILE -- ansible-playbook ...`` puts back into the playbook's environment.
    Returns the file, or None when ENV held none."""
    moved = {k: env.pop(k) for k in [k for k in env if is_secret_name(k)]}
    if not moved:
        return None
    path = workdir / "secret-env.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(moved, f)
    return path


def build_cmdline(extravars_file: Path | None, check: bool, diff: bool) -> str:
    """The ansible-playbook arguments ansible-runner takes as a string (``cmdline``)."""
    args: list[str] = []
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if extravars_file is not None:
        args += ["-e", f"@{extravars_file}"]
    return shlex.join(args)


def default_private_data_dir() -> Path:
    """Where runs keep their artifacts: ${TRITONFIL_RUNS:-${XDG_CACHE_HOME:-~/.cache}/tritonfil/runs}."""
    if os.environ.get("TRITONFIL_RUNS"):
        return Path(os.environ["TRITONFIL_RUNS"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "tritonfil" / "runs"


# -- running --------------------------------------------------------------------------------------
class RunHandle:
    """A run in progress (``wait=False``): cancel it, wait for it, or poll its status."""

    def __init__(
        self,
        action: str,
        playbook: str,
        check: bool,
        runner: Any,
        collector: _Collector,
        cancel_event: threading.Event,
        workdir: Path,
        raise_on_failure: bool,
    ) -> None:
        self.action = action
        self.playbook = playbook
        self.check = check
        self.runner = runner
        self._collector = collector
        self._cancel = cancel_event
        self._workdir = workdir
        self._raise = raise_on_failure
        self._start = time.monotonic()
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"tritonfil-{action}", daemon=True)

    @property
    def ident(self) -> str:
        return str(self.runner.config.ident)

    @property
    def artifact_dir(self) -> Path:
        return Path(self.runner.config.artifact_dir)

    @property
    def status(self) -> str:
        """ansible-runner's status: unstarted, starting, running, successful, failed, canceled, timeout."""
        return str(self.runner.status)

    @property
    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def start(self) -> RunHandle:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the run to stop: ansible-runner terminates ansible-playbook (status 'canceled')."""
        self._cancel.set()

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as e:  # reported by wait()
            self._error = e
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the run ends (TimeoutError if TIMEOUT passes first); return its `RunResult`,
        or raise `PlaybookFailed` / `PlaybookCanceled` / `PlaybookTimedOut` (unless raise_on_failure=False)."""
        if self._thread.ident is None:
            self.start()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.action} still running after {timeout}s (artifacts: {self.artifact_dir})")
        if self._error is not None:
            raise TritonfilError(f"{self.action}: ansible-runner failed: {self._error}") from self._error
        if self._result is None:
            self._result = self._build_result()
        return self._result.raise_for_status() if self._raise else self._result

    def _build_result(self) -> RunResult:
        runner = self.runner
        stats = HostStats.from_runner(runner.stats)
        tail = ""
        stdout = Path(runner.config.artifact_dir) / "stdout"
        if stdout.exists():
            tail = "\n".join(stdout.read_text(errors="replace").strip().splitlines()[-15:])
        return RunResult(
            action=self.action,
            playbook=self.playbook,
            status=str(runner.status),
            rc=runner.rc,
            stats=stats,
            failed_tasks=self._collector.final_failures(stats),
            changed_tasks=list(self._collector.changes),
            artifact_dir=Path(runner.config.artifact_dir),
            ident=self.ident,
            elapsed=time.monotonic() - self._start,
            check=self.check,
            stage_times=dict(self._collector.stage_times),
            output_tail=tail,
            facts={h: dict(f) for h, f in self._collector.facts.items()},
        )


def run_playbook(
    playbook: str,
    *,
    action: str | None = None,
    inventory: str | os.PathLike[str] | None = None,
    extravars: Mapping[str, Any] | None = None,
    tags: Sequence[str] | str | None = None,
    skip_tags: Sequence[str] | str | None = None,
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    project_dir: str | os.PathLike[str] | None = None,
    private_data_dir: str | os.PathLike[str] | None = None,
    envvars: Mapping[str, str] | None = None,
    use_local_env: bool | None = None,
    on_event: EventCallback | None = None,
    on_status: StatusCallback | None = None,
    cancel_event: threading.Event | None = None,
    timeout: int | None = None,
    verbosity: int = 0,
    quiet: bool = True,
    wait: bool = True,
    raise_on_failure: bool = True,
) -> RunResult | RunHandle:
    """Run PLAYBOOK (relative to the project directory) through ansible-runner.

    inventory: 'local' (default), 'aws', or a path. use_local_env (default: when the inventory is the
    project's local one) adds the local environment's variables and, as root outside an isolated
    namespace, runs ansible-playbook inside its network namespace. envvars override both.
    on_event gets every `RunEvent` (in the runner's thread), on_status every status change.
    cancel_event (or RunHandle.cancel(), or SIGINT/SIGTERM when called from the main thread with
    wait=True) stops the run. wait=False returns a started `RunHandle`; else the `RunResult`, or a raised
    `PlaybookFailed` subclass when the run did not succeed (unless raise_on_failure=False).
    """
    import ansible_runner

    project = find_project(project_dir)
    book = project / playbook
    if not book.is_file():
        raise ProjectNotFound(f"playbook {book} not found")
    inv = resolve_inventory(inventory, project)
    local = is_local_inventory(inv, project) if use_local_env is None else use_local_env
    action = action or Path(playbook).stem

    data_dir = Path(private_data_dir) if private_data_dir else default_private_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ident = f"{action}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"tritonfil-{action}-"))  # 0700, outside the data dir
    try:
        extravars_file = None
        if extravars:
            extravars_file = workdir / "extravars.json"
            fd = os.open(extravars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(dict(extravars), f)
        if isinstance(inv, str):  # a host list: ansible-runner would dump it as an INI file's content
            inv = workdir / "hosts"
            inv.write_text("".join(f"{h.strip()}\n" for h in str(inventory).split(",") if h.strip()))
        wrapper = local_netns_wrapper() if local else []
        child_env: dict[str, str] = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        if (project / "ansible.cfg").is_file():
            child_env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
        if local:
            child_env.update(local_environ())
        child_env.update(envvars or {})
        venv_bin = str(Path(sys.executable).parent)
        path = child_env.get("PATH", os.environ.get("PATH", ""))
        if venv_bin not in path.split(os.pathsep):  # ansible-playbook of this interpreter
            child_env["PATH"] = os.pathsep.join([venv_bin, path])
        elif "PATH" in child_env:
            child_env["PATH"] = path

        cancel = cancel_event or threading.Event()

        def is_canceled() -> bool:
            return cancel.is_set()

        def status_handler(data: dict[str, Any], runner_config: Any = None) -> None:
            if on_status is not None:
                on_status(str(data.get("status")))

        collector = _Collector(on_event)
        kwargs: dict[str, Any] = {
            "private_data_dir": str(data_dir),
            "project_dir": str(project),
            "playbook": str(book),
            "inventory": str(inv),
            "ident": ident,
            "envvars": child_env,
            "cmdline": build_cmdline(extravars_file, check, diff),
            "suppress_env_files": True,
            "quiet": quiet,
            "verbosity": verbosity or None,
            "event_handler": collector,
            "status_handler": status_handler,
            "cancel_callback": is_canceled,
            "rotate_artifacts": 100,
            # How often ansible-runner polls the cancel callback while the playbook is silent.
            "settings": {"pexpect_timeout": 1},
        }
        if tags:
            kwargs["tags"] = tags if isinstance(tags, str) else ",".join(tags)
        if skip_tags:
            kwargs["skip_tags"] = skip_tags if isinstance(skip_tags, str) else ",".join(skip_tags)
        if limit:
            kwargs["limit"] = limit
        if timeout:
            kwargs["timeout"] = timeout
        runner = ansible_runner.interface.init_runner(**kwargs)
        # ansible-runner copied os.environ into config.env and writes it to artifacts/<ident>/command:
        # move the AWS keys out of it into a 0600 credentials file before anything is written.
        move_aws_keys(runner.config.env, workdir)
        # ... and every other secret-looking variable (K8S_AUTH_API_KEY, CONTROLLER_OAUTH_TOKEN, *TOKEN*, ...), which
        # the playbook still gets, from a 0600 file, through the tritonfil.secretenv launcher.
        secret_env = move_secret_variables(runner.config.env, workdir)
        if secret_env is not None:
            launcher = [sys.executable, "-m", "tritonfil.secretenv", str(secret_env), "--"]
            runner.config.command = [*launcher, *runner.config.command]
        if wrapper:
            runner.config.command = [*wrapper, *runner.config.command]
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    handle = RunHandle(action, playbook, check, runner, collector, cancel, workdir, raise_on_failure)
    if not wait:
        return handle.start()
    with _cancel_on_signals(cancel):
        handle.start()
        return handle.wait()


@contextlib.contextmanager
def _cancel_on_signals(cancel: threading.Event) -> Iterator[None]:
    """In the main thread: SIGINT/SIGTERM set CANCEL (the run ends 'canceled'); handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _n, _f: cancel.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _common(kwargs: dict[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if extra:
        kwargs["extravars"] = {**(kwargs.get("extravars") or {}), **extra}
    return kwargs


def _endpoint_access(token: str | None, ca_bundle: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The verify stage's credentials as extra vars (they travel in the private 0600 extra-vars file): the bearer
    token the gateway's JWT policy asks for, the CA bundle its certificate is checked against."""
    extra: dict[str, Any] = {}
    if token:
        extra["tritonfil_verify_token"] = str(token)
    if ca_bundle:
        extra["tritonfil_verify_ca_bundle"] = str(Path(ca_bundle).expanduser().resolve())
    return extra


def deploy(*, token: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
           **kwargs: Any) -> RunResult | RunHandle:  # fmt: skip
    """Deploy and verify: ``site.yml``. TOKEN (a JWT of the gateway's issuer) and CA_BUNDLE (PEM of the CAs of the
    gateway's certificate) are what verify presents and checks. Other keyword arguments as `run_playbook`
    (inventory, extravars, tags, skip_tags, limit, on_event, on_status, cancel_event, wait, ...)."""
    return run_playbook(ACTIONS["deploy"], action="deploy", **_common(kwargs, _endpoint_access(token, ca_bundle)))


def verify(*, token: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
           **kwargs: Any) -> RunResult | RunHandle:  # fmt: skip
    """Readiness and inference checks: ``playbooks/verify.yml`` (read-only); TOKEN and CA_BUNDLE as for `deploy`."""
    return run_playbook(ACTIONS["verify"], action="verify", **_common(kwargs, _endpoint_access(token, ca_bundle)))


def teardown(*, delete_bucket: bool = False, delete_repository: bool = False, **kwargs: Any) -> RunResult | RunHandle:
    """Tear down in reverse order: ``playbooks/teardown.yml``. The S3 bucket and the ECR repository
    (data that outlives the cluster) are deleted only when DELETE_BUCKET / DELETE_REPOSITORY say so."""
    confirm = {
        "tritonfil_teardown_confirm_delete_bucket": bool(delete_bucket),
        "tritonfil_teardown_confirm_delete_repository": bool(delete_repository),
    }
    return run_playbook(ACTIONS["teardown"], action="teardown", **_common(kwargs, confirm))


def plan(**kwargs: Any) -> RunResult | RunHandle:
    """What deploy would change: ``site.yml`` with ``--check --diff``. ``result.plan`` lists the tasks
    that would change (empty after a converged deploy)."""
    kwargs.setdefault("check", True)
    kwargs.setdefault("diff", True)
    return run_playbook(ACTIONS["plan"], action="plan", **kwargs)


def rollback(revision: str | None = None, *, token: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
             **kwargs: Any) -> RunResult | RunHandle:  # fmt: skip
    """Go back to an earlier model revision: ``playbooks/rollback.yml`` - the release deployed with REVISION (default
    the one deployed before the live one), then verified against that revision's own references and made live. A
    revision that is not in the index is refused naming the ones there are. TOKEN and CA_BUNDLE as for `deploy`."""
    extra = {**_endpoint_access(token, ca_bundle), "tritonfil_rollback_revision": str(revision or "")}
    return run_playbook(ACTIONS["rollback"], action="rollback", **_common(kwargs, extra))


def history(**kwargs: Any) -> RunResult | RunHandle:
    """The model revisions in S3 (read-only): ``playbooks/history.yml``; ``model_history(result)`` is the list."""
    return run_playbook(ACTIONS["history"], action="history", **kwargs)


def model_history(result: RunResult) -> list[dict[str, Any]]:
    """The revisions a `history` run read, newest first: {revision, created, deployed, models, size, live, serving}."""
    for facts in result.facts.values():
        if "tritonfil_model_history" in facts:
            return list(facts["tritonfil_model_history"])
    return []
