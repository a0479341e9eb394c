"""Run a command with environment variables read from a private file: how the API hands secret-looking variables to
ansible-playbook without ansible-runner writing them into ``artifacts/<ident>/command``.

    python -m tritonfil.secretenv FILE -- COMMAND [ARG...]

FILE is a JSON object of name -> value (mode 0600, written by `tritonfil.api` in its private work directory and
removed when the run ends). The variables are added to this process's environment, then COMMAND replaces this
process (``os.execvp``), so signals and the exit status are COMMAND's own.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m tritonfil.secretenv FILE -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    path, command = args[0], args[2:]
    try:
        with open(path, encoding="utf-8") as f:
            variables = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"tritonfil.secretenv: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(variables, dict):
        print(f"tritonfil.secretenv: {path} does not hold a JSON object", file=sys.stderr)
        return 2
    os.environ.update({str(k): str(v) for k, v in variables.items()})
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"tritonfil.secretenv: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
