"""Where the tritonfil.eks collection is: the one place the package finds its playbooks, roles and pins.

The collection is the Python namespace package ``ansible_collections.tritonfil.eks``, found the way
Ansible itself finds collections installed with Python packages (the ``ansible`` package ships
amazon.aws and the others the same way):

- installed from the wheel, it is ``site-packages/ansible_collections/tritonfil/eks`` (the wheel carries
  it: setup.py copies the collection's files there);
- in a checkout, ``make setup`` links ``.venv/.../site-packages/ansible_collections/tritonfil/eks`` to the
  checkout, so the package, ansible-playbook and the tests all use the working tree.

Nothing here edits ``sys.path`` or computes paths from this file's location.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from pathlib import Path
from types import ModuleType

PACKAGE = "ansible_collections.tritonfil.eks"

__all__ = ["PACKAGE", "CollectionNotFound", "module_utils", "pins", "root"]


class CollectionNotFound(ImportError):
    """The tritonfil.eks collection is not importable in this Python."""


@cache
def root() -> Path:
    """The collection's root directory (site.yml, playbooks/, roles/, plugins/, inventory/, helm/ ...)."""
    try:
        package = importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise CollectionNotFound(
            f"the tritonfil.eks collection is not importable ({exc}): install the tritonfil wheel, which carries"
            " it, or run `make setup` in a checkout (it links site-packages/ansible_collections/tritonfil/eks"
            " to the checkout)"
        ) from None
    paths = list(package.__path__)
    for path in paths:
        if os.path.isfile(os.path.join(path, "galaxy.yml")) or os.path.isfile(os.path.join(path, "MANIFEST.json")):
            return Path(path).resolve()
    raise CollectionNotFound(f"{PACKAGE} found at {paths}, but none of them holds galaxy.yml or MANIFEST.json")


def module_utils(name: str) -> ModuleType:
    """``plugins/module_utils/<name>.py`` of the collection (the code the modules run, shared with the package)."""
    root()
    return importlib.import_module(f"{PACKAGE}.plugins.module_utils.{name}")


def pins() -> dict[str, str]:
    """Every pinned version (the collection's scripts/versions.env)."""
    return module_utils("pins").load(str(root()))
