# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""The project's version pins: ``scripts/versions.env`` of the collection, the one pin file.

Every version the project depends on (the Triton release and image, Istio, the Go-built tools, the
charts) is a ``KEY=VALUE`` line there. scripts/tools.sh sources it; roles read it through the lookup
plugin ``tritonfil.eks.pin``; the Python package through ``tritonfil.collection.pins()``; tests check the
chart's appVersion, the AWX surveys and the execution environment against it.
"""

from __future__ import annotations

import os
import re

PIN_FILE = os.path.join("scripts", "versions.env")


def collection_root() -> str:
    """The collection's root directory (this file is plugins/module_utils/pins.py in it)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(text: str) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments and blank lines ignored; values may be quoted; ``${KEY}`` is replaced
    by an earlier line's value (as bash does when it sources the file)."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"{PIN_FILE} line {number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]

        def expand(match: re.Match[str], number: int = number) -> str:
            if match.group(1) not in pins:
                raise ValueError(f"{PIN_FILE} line {number}: ${{{match.group(1)}}} is not defined above")
            return pins[match.group(1)]

        pins[key.strip()] = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", expand, value)
    return pins


def load(root: str | None = None) -> dict[str, str]:
    path = os.path.join(root or collection_root(), PIN_FILE)
    with open(path, encoding="utf-8") as f:
        return parse(f.read())
