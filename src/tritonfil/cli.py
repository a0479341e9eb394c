"""The `tritonfil` command line.

Exit 0 on success; non-zero with a one-line reason on failure (details follow on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from tritonfil import __version__, api, completion
from tritonfil.progress import HEARTBEAT_ENV, STAGES, Progress, format_summary, render_summary, summary_document

__all__ = ["EXIT_CODES", "CliError", "Progress", "build_parser", "format_summary", "main", "parse_extravars"]

#: Exit status of the run commands (deploy, verify, teardown, plan), as `--help` lists them.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_CANCELED = 0, 1, 2, 124, 130
EXIT_CODES = {
    EXIT_OK: "the run succeeded",
    EXIT_FAILED: "a task failed or a host was unreachable (named on stderr), or the run could not start",
    EXIT_USAGE: "wrong arguments",
    EXIT_TIMEOUT: "--timeout passed: the run was stopped",
    EXIT_CANCELED: "canceled (Ctrl-C or SIGTERM)",
}


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
    env = localenv.LocalEnv(nodes=getattr(args, "nodes", None))
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


def _needs_local_netns(args: argparse.Namespace) -> bool:
    """True when the run targets the project's local inventory (the local environment)."""
    project = api.find_project(args.project)
    return api.is_local_inventory(api.resolve_inventory(args.inventory, project), project)


def _exit_status(result: api.RunResult) -> int:
    if result.ok:
        return EXIT_OK
    return {"canceled": EXIT_CANCELED, "timeout": EXIT_TIMEOUT}.get(result.status, EXIT_FAILED)


def cmd_run(args: argparse.Namespace) -> int:
    """deploy / verify / teardown / plan through the API: progress on stderr, the summary on stdout (a table on a
    terminal; with --json one JSON document and nothing else)."""
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
            "timeout": args.timeout,
            "raise_on_failure": False,
        }
        if args.command == "teardown":
            kwargs.update(delete_bucket=args.yes_delete_bucket, delete_repository=args.yes_delete_repository)
        if args.command == "rollback":
            kwargs.update(revision=args.revision)
        try:
            progress = Progress(sys.stderr, args.command, verbose=args.verbose > 0)
        except ValueError as e:  # a bad TRITONFIL_HEARTBEAT
            raise CliError(str(e)) from e
        with progress:
            result = getattr(api, args.command)(on_event=progress, **kwargs)
    except (api.TritonfilError, CliError) as e:
        if args.json:  # scripts read stdout: say why there is no run
            print(json.dumps({"action": args.command, "status": "error", "ok": False, "rc": None, "error": str(e)}))
        raise CliError(str(e)) from e
    assert isinstance(result, api.RunResult)
    progress.finish(result.status)
    stages = progress.stages()
    history = api.model_history(result) if args.command == "history" else None
    if args.json:
        doc = summary_document(result, stages, progress.task_stages)
        if history is not None:
            doc["model_history"] = history
        print(json.dumps(doc, indent=2))
    else:
        render_summary(result, stages, sys.stdout, tty=sys.stdout.isatty() and os.environ.get("TERM") != "dumb")
        if history is not None:
            print("\n".join(history_table(history)))
    if not result.ok:
        print(f"tritonfil: {result.summary_line()}", file=sys.stderr)
    return _exit_status(result)


def history_table(history: list[dict[str, Any]]) -> list[str]:
    """The revisions as the history playbook prints them (the collection's revision_table filter, one home)."""
    import importlib

    from tritonfil import collection

    collection.root()
    filters = importlib.import_module(f"{collection.PACKAGE}.plugins.filter.revisions")
    return filters.revision_table(history) if history else ["no model revision"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return value


RUN_HELP = {
    "deploy": "deploy and verify (site.yml)",
    "verify": "readiness and inference checks (playbooks/verify.yml)",
    "teardown": "remove everything deploy created (playbooks/teardown.yml)",
    "plan": "what deploy would change (site.yml --check --diff)",
    "rollback": "go back to an earlier model revision, verified like a deploy (playbooks/rollback.yml)",
    "history": "the model revisions in S3: deployed, live, serving, models (playbooks/history.yml, read-only)",
}
RUN_EXAMPLES = {
    "deploy": [
        ("tritonfil deploy", "against the local environment (inventory/local)"),
        ("tritonfil deploy -i aws -e s3_models_bucket=acme-models", "AWS (inventory/aws), one value overridden"),
        ("tritonfil deploy -i aws --tags triton_release", "one stage alone (it reads what the others published)"),
        ("tritonfil deploy -i aws --timeout 3600 --json > deploy.json", "stop after an hour; the summary as JSON"),
        ("TRITONFIL_HEARTBEAT=60 tritonfil deploy -i aws 2> deploy.log", "a heartbeat line a minute in the log"),
    ],
    "verify": [
        ("tritonfil verify", "check the local deployment"),
        ("tritonfil verify -i aws --json | jq .status", "in a script"),
    ],
    "teardown": [
        ("tritonfil teardown -i aws", "keeps the S3 bucket and the ECR repository"),
        ("tritonfil teardown -i aws --yes-delete-bucket --yes-delete-repository", "removes them too"),
        ("tritonfil teardown -i aws --tags triton_release", "the Triton release only"),
    ],
    "plan": [
        ("tritonfil plan -i aws", "what deploy would change (nothing once converged)"),
        ("tritonfil plan -i aws --json | jq '.changes'", "the changes as JSON"),
    ],
    "rollback": [
        ("tritonfil rollback -i aws", "back to the revision deployed before the live one"),
        ("tritonfil rollback -i aws 3f2a9c0d1e2b4a56", "back to that revision (tritonfil history lists them)"),
    ],
    "history": [
        ("tritonfil history -i aws", "the revisions, newest first, which is live and which is served"),
        ("tritonfil history -i aws --json | jq '.model_history'", "as JSON"),
    ],
}


def exit_codes_epilog() -> str:
    return "exit status:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


def _run_epilog(name: str) -> str:
    examples = RUN_EXAMPLES.get(name, [])
    width = max((len(cmd) for cmd, _ in examples), default=0)
    text = "".join(f"  {cmd:<{width}}  # {what}\n" for cmd, what in examples)
    stages = STAGES.get(name, ())
    return (
        (f"examples:\n{text}\n" if text else "")
        + (f"stages ({len(stages)}, each a tag): {', '.join(stages)}\n\n" if stages else "")
        + "progress goes to stderr: a status line on a terminal, timestamped lines otherwise, a heartbeat while a\n"
        f"task runs (every ${HEARTBEAT_ENV} seconds; 15 on a terminal, 30 otherwise). The summary goes to stdout.\n\n"
        f"{exit_codes_epilog()}"
    )


def _add_run_parsers(sub: Any) -> None:
    for name, text in RUN_HELP.items():
        p = sub.add_parser(
            name, help=text, description=text, epilog=_run_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        inv = p.add_argument("-i", "--inventory", default="local", help="local (default), aws, or an inventory path")
        inv.completer = completion.inventory_completer  # type: ignore[attr-defined]
        p.add_argument(
            "-e", "--extra-vars", action="append", default=[], metavar="VARS",
            help="k=v [k2=v2], a JSON mapping, or @FILE (repeatable)",
        )  # fmt: skip
        stages = STAGES.get(name, ())
        tags = p.add_argument("-t", "--tags", help=f"only these tags (comma-separated stages: {','.join(stages)})")
        tags.completer = completion.tags_completer(stages)  # type: ignore[attr-defined]
        skip = p.add_argument("--skip-tags", help="skip these tags")
        skip.completer = completion.tags_completer(stages)  # type: ignore[attr-defined]
        p.add_argument("-l", "--limit", help="limit to these hosts")
        p.add_argument(
            "--project",
            help=f"project directory with site.yml (default ${api.PROJECT_ENV}, else the installed tritonfil.eks"
            " collection)",
        )
        p.add_argument(
            "--timeout", type=_positive_int, metavar="SECONDS",
            help=f"stop the run after SECONDS (status timeout, exit {EXIT_TIMEOUT})",
        )  # fmt: skip
        p.add_argument(
            "--json", action="store_true",
            help="print the summary as one JSON document on stdout (status, rc, stages, failed tasks, changes)",
        )  # fmt: skip
        p.add_argument(
            "-v", "--verbose", action="count", default=0, help="every task in the progress; -vv... to ansible"
        )
        if name == "rollback":
            p.add_argument(
                "revision", nargs="?", default=None, metavar="REVISION",
                help="the revision to go back to (default: the one deployed before the live one)",
            )  # fmt: skip
        if name == "teardown":
            p.add_argument("--yes-delete-bucket", action="store_true", help="also delete the S3 model bucket")
            p.add_argument("--yes-delete-repository", action="store_true", help="also delete the ECR repository")
        p.set_defaults(func=cmd_run)


# -- doctor, completion --------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from tritonfil import doctor

    try:
        local = _needs_local_netns(args)
    except api.TritonfilError:
        local = False  # the inventory check reports it
    if local:
        from tritonfil.localenv.env import LocalEnv, LocalEnvError

        _reexec_in_local_netns("none")  # root: check from inside the local environment's namespace when it exists
        with contextlib.suppress(LocalEnvError):  # down: the "local environment" check says so
            os.environ.update(LocalEnv().environ())  # as `local exec` and the runs have it
    checks = doctor.run_checks(inventory=args.inventory, project=args.project, kubeconfig=args.kubeconfig)
    if args.json:
        print(json.dumps(doctor.document(checks), indent=2))
    else:
        print(doctor.format_checks(checks))
    return 0 if all(c.passed for c in checks) else 1


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion.script(args.shell))
    return 0


# -- parser --------------------------------------------------------------------------------------
MAIN_EPILOG = f"""examples:
  tritonfil doctor -i aws                 # what a deployment to AWS needs, each missing piece with its fix
  tritonfil plan -i aws                   # what deploy would change
  tritonfil deploy -i aws --timeout 7200  # deploy and verify (stage k/N, heartbeat, summary)
  tritonfil verify -i aws --json          # the checks, the summary as JSON
  tritonfil teardown -i aws               # reverse order; keeps the bucket and the ECR repository
  eval "$(tritonfil completion bash)"     # shell completion

{exit_codes_epilog()}
  (`tritonfil COMMAND --help` for each command's own)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tritonfil", description="Triton + FIL on EKS, by Ansible.", epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"tritonfil {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("version", help="print the version").set_defaults(
        func=lambda _a: print(f"tritonfil {__version__}") or 0
    )

    local = sub.add_parser("local", help="the offline local environment (moto, registry, KWOK cluster, tritonserver)")
    lsub = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = lsub.add_parser("up", help="start every component (idempotent)")
    up.add_argument(
        "--nodes", type=int, default=None,
        help="static simulated GPU nodes, a node group always there (default 0: Karpenter brings them with the pods)",
    )  # fmt: skip
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

    models = sub.add_parser("models", help="create (init) and validate FIL model repositories; their history")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    # `tritonfil models history ...` is `tritonfil history ...` (main() rewrites it; listed here for --help).
    msub.add_parser("history", help="the model revisions in S3 (the same as `tritonfil history`)", add_help=False)
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

    doctor = sub.add_parser(
        "doctor",
        help="check what a deployment needs: tools, collection, AWS credentials, kubeconfig, endpoints",
        description="Check what a deployment needs, each with its fix: the tools at their pinned versions, the"
        " tritonfil.eks collection, the AWS credential chain (its source, never a secret), the kubeconfig and the"
        " endpoints it reaches (the kube API's /readyz, the AWS endpoint override). As root, `doctor -i local` runs"
        " inside the local environment's network namespace.",
        epilog="examples:\n  tritonfil doctor               # the local environment\n"
        "  tritonfil doctor -i aws --json # AWS, as JSON\n\n"
        "exit status:\n  0    every check passed (or was skipped: nothing to check yet)\n  1    a check failed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dinv = doctor.add_argument("-i", "--inventory", default="local", help="local (default), aws, or an inventory path")
    dinv.completer = completion.inventory_completer  # type: ignore[attr-defined]
    doctor.add_argument("--project", help="project directory with site.yml (as the run commands)")
    doctor.add_argument("--kubeconfig", help="the kubeconfig to check (default: the inventory's tritonfil_kubeconfig)")
    doctor.add_argument("--json", action="store_true", help="print the checks as one JSON document")
    doctor.set_defaults(func=cmd_doctor)

    comp = sub.add_parser(
        "completion",
        help="print the shell completion script (bash or zsh)",
        description="Print the completion script of the tritonfil command for SHELL (argcomplete).",
        epilog='examples:\n  eval "$(tritonfil completion bash)"                       # this bash session\n'
        "  tritonfil completion bash > ~/.local/share/bash-completion/completions/tritonfil\n"
        '  tritonfil completion zsh > "${fpath[1]}/_tritonfil"        # zsh (then compinit)',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    comp.add_argument("shell", choices=completion.SHELLS, help="the shell")
    comp.set_defaults(func=cmd_completion)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    completion.autocomplete(parser)  # only when a shell's completion function runs us
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["models", "history"]:  # an alias: the model revisions are the history command's
        argv = ["history", *argv[2:]]
    args = parser.parse_args(argv)
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
