"""Shell completion of the `tritonfil` command (argcomplete).

`tritonfil completion bash|zsh` prints the script; the shell's completion function then runs
``tritonfil`` itself with argcomplete's variables set, and `autocomplete` answers from the argparse
parser (subcommands, options, stage names for ``--tags``, ``local``/``aws``/paths for ``-i``).
argcomplete is imported only then, so a normal run does not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["PROG", "SHELLS", "autocomplete", "inventory_completer", "script", "tags_completer"]

PROG = "tritonfil"
SHELLS = ("bash", "zsh")


def script(shell: str) -> str:
    """The completion script of `tritonfil` for SHELL (bash or zsh)."""
    import argcomplete

    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}: choose from {', '.join(SHELLS)}")
    return argcomplete.shellcode([PROG], shell=shell)


def autocomplete(parser: Any) -> None:
    """Answer a completion request (and exit) when the shell's completion function runs us; else nothing."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


def inventory_completer(prefix: str, **_kwargs: Any) -> list[str]:
    """``-i``: the project's inventories by name, else paths."""
    from argcomplete.completers import FilesCompleter

    names = [n for n in ("local", "aws") if n.startswith(prefix)]
    return names + list(FilesCompleter()(prefix))


def tags_completer(stages: Sequence[str]) -> Callable[..., list[str]]:
    """``--tags``: comma-separated stage names (each completed after the last comma)."""

    def complete(prefix: str, **_kwargs: Any) -> list[str]:
        done, _, last = prefix.rpartition(",")
        chosen = set(done.split(",")) if done else set()
        head = f"{done}," if done else ""
        return [head + s for s in stages if s.startswith(last) and s not in chosen]

    return complete
