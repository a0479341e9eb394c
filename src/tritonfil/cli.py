"""The `tritonfil` command line.

Exit 0 on success; non-zero with a one-line reason on failure (details follow on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tritonfil import __version__, api
from tritonfil.api import RunEvent, RunResult


class CliError(Exception):
    """A failure the CLI reports as one line and exit status 1."""


# -- network namespaces (tritonfil.localenv.netns decides) ---------------------------------------
def _reexec_in_local_netns(if_missing: str) -> None:
    """As root outside an isolated namespace, re-run this very command inside the `tritonfil` netns."""
    from tritonfil.localenv import netns

    try:
        netns.exec_isolated(netns.LOCAL, [sys.executable, "-m", "tritonfil.cli", *sys.argv[1:]], if_missing=if_missing)
    except netns.IsolationError as e:
        raise CliError(str(e)) from e


def _command(args: argparse.Namespace, name: str) -> list[str]:
    """The CMD of `tritonfil NAME -- CMD [ARGS...]`."""
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CliError(f"{name} needs a command: tritonfil {name} -- CMD [ARGS...]")
    return cmd


def cmd_isolate(args: argparse.Namespace) -> int:
    """`tritonfil isolate -- CMD`: CMD in a fresh network namespace that has only `lo` (as root)."""
    from tritonfil.localenv import netns

    cmd = _command(args, "isolate")
    argv = [*netns.isolation_prefix(netns.FRESH), *cmd]
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError as e:
        raise CliError(f"isolate: command not found: {argv[0]}") from e
    return 127  # not reached: execvp returns only by raising


# -- local ---------------------------------------------------------------------------------------
def cmd_local(args: argparse.Namespace) -> int:
    from tritonfil.localenv import env as localenv
    from tritonfil.localenv import netns

    # up creates the namespace; exec needs it; down/status with no namespace have nothing isolated to enter.
    _reexec_in_local_netns({"up": "create", "exec": "error"}.get(args.action, "none"))
    env = localenv.LocalEnv(nodes=getattr(args, "nodes", 2))
    if args.action == "up":
        ep = env.up(progress=lambda m: print(f"[local] {m}", file=sys.stderr))
        print(json.dumps({k: ep[k] for k in sorted(ep) if k != "versions"}, indent=2))
        return 0
    if args.action == "status":
        health = env.status()
        if not health:
            print("local environment: down")
            return 3
        width = max(len(n) for n in health)
        for name, h in health.items():
            extra = " ".join(f"{k}={v}" for k, v in h.items() if k != "ok")
            print(f"{name:<{width}}  {'ok  ' if h['ok'] else 'FAIL'}  {extra}")
        return 0 if all(h["ok"] for h in health.values()) else 1
    if args.action == "down":
        stopped = env.down()
        # Remove the named namespace only from inside it (where `down` re-ran itself): a `down` in
        # another namespace (a test's, say) must never touch the user's environment.
        if netns.is_root() and netns.current_netns_is(netns.LOCAL_NETNS):
            netns.delete_netns(netns.LOCAL_NETNS)
            stopped.append(f"netns {netns.LOCAL_NETNS}")
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "exec":
        cmd = _command(args, "local exec")
        os.environ.update(env.environ())
        sys.stdout.flush()
        try:
            os.execvp(cmd[0], cmd)
        except FileNotFoundError as e:
            raise CliError(f"local exec: command not found: {cmd[0]}") from e
    raise CliError(f"unknown local action {args.action}")


# -- models --------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from tritonfil import models

    return models.run_cli(args)


# -- deploy / verify / teardown / plan --------------------------------------------------------------
def parse_extravars(items: list[str]) -> dict[str, Any]:
    """``-e`` values as ansible-playbook takes them: ``k=v [k2=v2 ...]`` (strings), a JSON/YAML mapping,
    or ``@FILE`` (JSON or YAML). Later values win."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            path = Path(text[1:]).expanduser()
            try:
                data = yaml.safe_load(path.read_text())
            except OSError as e:
                raise CliError(f"-e {item}: cannot read {path}: {e.strerror}") from e
            except yaml.YAMLError as e:
                raise CliError(f"-e {item}: {path} is not JSON or YAML: {str(e).splitlines()[0]}") from e
            if not isinstance(data, dict):
                raise CliError(f"-e {item}: {path} does not hold a mapping")
            out.update(data)
        elif text.startswith("{"):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise CliError(f"-e {item}: not a JSON mapping: {str(e).splitlines()[0]}") from e
            if not isinstance(data, dict):
                raise CliError(f"-e {item}: not a mapping")
            out.update(data)
        else:
            for pair in shlex.split(text):
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise CliError(f"-e {pair}: expected key=value, a JSON mapping or @FILE")
                out[key] = value
    return out


class Progress:
    """Stage-by-stage progress on a stream: each stage (a role, else a play) with its elapsed time and
    counts, failed tasks as they happen, and the total."""

    def __init__(self, stream: TextIO, verbose: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.verbose = verbose
        self.clock = clock
        self.start = clock()
        self.stage: str | None = None
        self.stage_start = self.start
        self.counts: dict[str, int] = {}

    def _say(self, text: str) -> None:
        print(f"[{self.clock() - self.start:7.1f}s] {text}", file=self.stream, flush=True)

    def _close_stage(self) -> None:
        if self.stage is None:
            return
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v) or "no tasks ran"
        self._say(f"{self.stage}: done in {self.clock() - self.stage_start:.1f}s ({counts})")
        self.stage = None

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "playbook_on_task_start" and event.stage != self.stage:
            self._close_stage()
            self.stage, self.stage_start = event.stage, self.clock()
            self.counts = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0}
            self._say(f"{self.stage} ...")
        elif event.kind == "playbook_on_stats":
            self._close_stage()
        elif event.kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
            if event.failed and not event.ignored:
                self.counts["failed"] = self.counts.get("failed", 0) + 1
                self._say(
                    f"  FAILED {event.task} on {event.host}: {event.message.splitlines()[0] if event.message else ''}"
                )
            elif event.skipped:
                self.counts["skipped"] = self.counts.get("skipped", 0) + 1
            elif event.changed:
                self.counts["changed"] = self.counts.get("changed", 0) + 1
                self._say(f"  changed: {event.task} ({event.host})")
            else:
                self.counts["ok"] = self.counts.get("ok", 0) + 1
                if self.verbose:
                    self._say(f"  ok: {event.task} ({event.host})")

    def finish(self, status: str) -> None:
        self._close_stage()
        self._say(f"total {self.clock() - self.start:.1f}s ({status})")


def format_summary(result: RunResult) -> str:
    """The final summary: per-host recap, failed tasks with their message, the plan, the artifacts."""
    lines = [f"{result.action}: {result.status} (rc={result.rc}) in {result.elapsed:.1f}s"]
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


def _needs_local_netns(args: argparse.Namespace) -> bool:
    """True when the run targets the project's local inventory (the local environment)."""
    project = api.find_project(args.project)
    return api.is_local_inventory(api.resolve_inventory(args.inventory, project), project)


def cmd_run(args: argparse.Namespace) -> int:
    """deploy / verify / teardown / plan through the API, with progress on stderr and the summary on stdout."""
    try:
        if _needs_local_netns(args):
            _reexec_in_local_netns("error")  # root outside the namespace: run this command inside it
        kwargs: dict[str, Any] = {
            "inventory": args.inventory,
            "extravars": parse_extravars(args.extra_vars),
            "tags": args.tags,
            "skip_tags": args.skip_tags,
            "limit": args.limit,
            "project_dir": args.project,
            "verbosity": args.verbose,
            "raise_on_failure": False,
        }
        if args.command == "teardown":
            kwargs.update(delete_bucket=args.yes_delete_bucket, delete_repository=args.yes_delete_repository)
        progress = Progress(sys.stderr, verbose=args.verbose > 0)
        result = getattr(api, args.command)(on_event=progress, **kwargs)
    except api.TritonfilError as e:
        raise CliError(str(e)) from e
    assert isinstance(result, api.RunResult)
    progress.finish(result.status)
    print(format_summary(result))
    if not result.ok:
        print(f"tritonfil: {result.summary_line()}", file=sys.stderr)
        return 130 if result.status == "canceled" else 1
    return 0


def _add_run_parsers(sub: Any) -> None:
    helps = {
        "deploy": "deploy and verify (site.yml)",
        "verify": "readiness and inference checks (playbooks/verify.yml)",
        "teardown": "remove everything deploy created (playbooks/teardown.yml)",
        "plan": "what deploy would change (site.yml --check --diff)",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("-i", "--inventory", default="local", help="local (default), aws, or an inventory path")
        p.add_argument(
            "-e", "--extra-vars", action="append", default=[], metavar="VARS",
            help="k=v [k2=v2], a JSON mapping, or @FILE (repeatable)",
        )  # fmt: skip
        p.add_argument("-t", "--tags", help="only these tags (comma-separated stages: ecr_image,s3_models,...)")
        p.add_argument("--skip-tags", help="skip these tags")
        p.add_argument("-l", "--limit", help="limit to these hosts")
        p.add_argument(
            "--project",
            help=f"project directory with site.yml (default ${api.PROJECT_ENV}, else the installed tritonfil.eks"
            " collection)",
        )
        p.add_argument(
            "-v", "--verbose", action="count", default=0, help="every task in the progress; -vv... to ansible"
        )
        if name == "teardown":
            p.add_argument("--yes-delete-bucket", action="store_true", help="also delete the S3 model bucket")
            p.add_argument("--yes-delete-repository", action="store_true", help="also delete the ECR repository")
        p.set_defaults(func=cmd_run)


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tritonfil", description="Triton + FIL on EKS, by Ansible.")
    parser.add_argument("--version", action="version", version=f"tritonfil {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("version", help="print the version").set_defaults(
        func=lambda _a: print(f"tritonfil {__version__}") or 0
    )

    local = sub.add_parser("local", help="the offline local environment (moto, registry, KWOK cluster, tritonserver)")
    lsub = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = lsub.add_parser("up", help="start every component (idempotent)")
    up.add_argument("--nodes", type=int, default=2, help="simulated GPU nodes (default 2)")
    lsub.add_parser("down", help="stop everything `up` started")
    lsub.add_parser("status", help="health of each component (exit 0 all ok, 1 some failing, 3 down)")
    ex = lsub.add_parser("exec", help="run CMD inside the environment's network namespace with its variables")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    local.set_defaults(func=cmd_local)

    isolate = sub.add_parser(
        "isolate",
        help="run CMD in a fresh network namespace that has only `lo` (as root; as is otherwise)",
        description="Run CMD in a fresh network namespace that has only `lo` when root and not isolated yet"
        " (the tests and benchmarks run this way); otherwise run it as is.",
    )
    isolate.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    isolate.set_defaults(func=cmd_isolate)

    models = sub.add_parser("models", help="create (init) and validate FIL model repositories")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = msub.add_parser("validate", help="check every config.pbtxt and model file (exit 1 on errors)")
    validate.add_argument("path", help="model repository directory")
    validate.add_argument("--load", action="store_true", help="also load each model file with Treelite")
    validate.add_argument("--json", action="store_true", help="print the full report as JSON")
    init = msub.add_parser(
        "init",
        help="write REPO/<model>/{config.pbtxt,1/<model file>,reference.json} from model files",
        description="Detect each MODEL_FILE's format (XGBoost JSON/UBJSON/legacy binary, LightGBM text, Treelite"
        " checkpoint, a pickled scikit-learn forest with --allow-pickle), read its features, classes and objective,"
        " and write a FIL model directory with a reference file (docs/models.md). Nothing is written on an error.",
    )
    init.add_argument("model_files", nargs="+", metavar="MODEL_FILE", help="model files, one model each")
    init.add_argument("--out", required=True, metavar="REPO", help="model repository to write (new or empty)")
    init.add_argument("--name", action="append", default=[], help="model name, once per MODEL_FILE in order")
    task = init.add_mutually_exclusive_group()
    task.add_argument(
        "--classifier", dest="is_classifier", action="store_const", const=True,
        help="is_classifier true (default: from the model's objective)",
    )  # fmt: skip
    task.add_argument(
        "--regressor", dest="is_classifier", action="store_const", const=False,
        help="is_classifier false: the raw score (P(class 1) for a binary model)",
    )  # fmt: skip
    init.add_argument("--predict-proba", action="store_true", help="classifiers: one probability per class")
    init.add_argument("--threshold", type=float, default=0.5, help="binary classifiers' threshold (0.5)")
    init.add_argument("--max-batch-size", type=int, default=32768, help="max_batch_size (32768)")
    init.add_argument("--max-queue-delay-us", type=int, default=100, help="dynamic batching queue delay (100)")
    init.add_argument("--instance-kind", default="KIND_GPU", choices=["KIND_GPU", "KIND_CPU", "KIND_AUTO"])
    init.add_argument("--instance-count", type=int, default=1, help="instances per device (1)")
    init.add_argument(
        "--rows", action="append", default=[], metavar="CSV_OR_NPY",
        help="reference input rows, once per MODEL_FILE in order (default: random rows in the training range)",
    )  # fmt: skip
    init.add_argument("--reference-rows", type=int, default=64, help="reference rows per model (64)")
    init.add_argument("--seed", type=int, help="seed for the random reference rows (default: from the file)")
    init.add_argument("--allow-pickle", action="store_true", help="load pickled scikit-learn models (runs code!)")
    init.add_argument("--force", action="store_true", help="write into a non-empty REPO (replaces init's files only)")
    init.add_argument("--dry-run", action="store_true", help="report what would be written, write nothing")
    init.add_argument("--json", action="store_true", help="print the result as JSON")
    models.set_defaults(func=cmd_models)
    _add_run_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"tritonfil: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # one line for the user; the type says where to look
        from tritonfil.localenv.env import LocalEnvError

        if isinstance(e, LocalEnvError):
            first, _, rest = str(e).partition("\n")
            print(f"tritonfil: {first}", file=sys.stderr)
            if rest:
                print(rest, file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
