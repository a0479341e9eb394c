# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Mask every value of a structure in a text (documented in plugins/filter/redact.yml)."""

from __future__ import annotations

MASK = "********"
MIN_LENGTH = 4  # shorter values (true, 1, ...) would mask ordinary words


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def redact(text, values):
    """TEXT with each scalar of VALUES (a mapping or list, any depth) of at least MIN_LENGTH characters replaced by
    a mask, longest first (a value that contains another is masked whole)."""
    out = str(text)
    for leaf in sorted({v for v in _leaves(values) if len(v) >= MIN_LENGTH}, key=len, reverse=True):
        out = out.replace(leaf, MASK)
    return out


class FilterModule:
    def filters(self):
        return {"redact": redact}
