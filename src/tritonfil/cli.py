"""The `tritonfil` command line.

Exit 0 on success; non-zero with a one-line reason on failure (details follow on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from tritonfil import __version__

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure the CLI reports as one line and exit status 1."""


# -- local ---------------------------------------------------------------------------------------
def _enter_netns_if_needed(args: argparse.Namespace) -> None:
    """As root outside an isolated namespace, re-run this very command inside the `tritonfil` netns."""
    from tritonfil.localenv import env as localenv
    from tritonfil.localenv import netns

    if not netns.is_root() or netns.loopback_only():
        return
    if args.action == "up":
        netns.ensure_netns(localenv.NETNS)
    elif not netns.netns_exists(localenv.NETNS):
        if args.action == "exec":
            raise CliError(
                "the local environment is not up (no network namespace 'tritonfil'): run `tritonfil local up`"
            )
        return  # down/status with no namespace: nothing isolated to enter
    argv = netns.wrap([sys.executable, "-m", "tritonfil.cli", *sys.argv[1:]], localenv.NETNS)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def cmd_local(args: argparse.Namespace) -> int:
    from tritonfil.localenv import env as localenv
    from tritonfil.localenv import netns

    _enter_netns_if_needed(args)
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
        if netns.is_root() and netns.current_netns_is(localenv.NETNS):
            netns.delete_netns(localenv.NETNS)
            stopped.append(f"netns {localenv.NETNS}")
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            raise CliError("local exec needs a command: tritonfil local exec -- CMD [ARGS...]")
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

    models = sub.add_parser("models", help="validate a FIL model repository; build its CPU twin")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = msub.add_parser("validate", help="check every config.pbtxt and model file (exit 1 on errors)")
    validate.add_argument("path", help="model repository directory")
    validate.add_argument("--load", action="store_true", help="also load each model file with Treelite")
    validate.add_argument("--json", action="store_true", help="print the full report as JSON")
    twin = msub.add_parser("twin", help="write the CPU twin (python backend + Treelite) of a FIL repository")
    twin.add_argument("src", help="FIL model repository")
    twin.add_argument("dest", help="twin repository to (re)write")
    models.set_defaults(func=cmd_models)
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
