"""Model repository validation for the `tritonfil` package and CLI.

The validation code lives once, in the collection's
``plugins/module_utils/model_repository.py``, so that the Ansible module
``tritonfil.eks.triton_model_repository`` and this package run the same checks. The package
imports it under its collection name, ``ansible_collections.tritonfil.eks.plugins.module_utils``:

1. if ``ansible_collections.tritonfil.eks`` is importable already (an installed collection, or a
   caller that set up ``sys.path``), that copy is used;
2. otherwise, from a checkout, the repository's ``.collections`` directory (which ``make setup``
   links as ``.collections/ansible_collections/tritonfil/eks -> ..``) is appended to ``sys.path``;
3. otherwise the collection paths Ansible would search (``ANSIBLE_COLLECTIONS_PATH``,
   ``~/.ansible/collections``, ``/usr/share/ansible/collections``) are tried, in that order.

``sys.path`` is only appended to, never reordered, and only when step 1 fails.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

COLLECTION_PACKAGE = "ansible_collections.tritonfil.eks"
MODULE_UTILS = f"{COLLECTION_PACKAGE}.plugins.module_utils"

__all__ = [
    "ModelRepositoryError",
    "Problem",
    "ValidationReport",
    "collection_root",
    "module_utils",
    "run_cli",
    "validate",
    "validate_or_raise",
]


def _candidate_paths() -> list[Path]:
    checkout = Path(__file__).resolve().parents[2]
    candidates = [checkout / ".collections"]
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    candidates += [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    candidates += [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]
    return candidates


def _import_collection() -> ModuleType:
    try:
        return importlib.import_module(COLLECTION_PACKAGE)
    except ImportError:
        pass
    for base in _candidate_paths():
        if (base / "ansible_collections" / "tritonfil" / "eks" / "plugins" / "module_utils").is_dir():
            if str(base) not in sys.path:
                sys.path.append(str(base))
            importlib.invalidate_caches()
            # The namespace package may have been cached without the new path entry.
            for name in ("ansible_collections", "ansible_collections.tritonfil"):
                module = sys.modules.get(name)
                if module is not None and hasattr(module, "__path__"):
                    entry = str(base / Path(*name.split(".")))
                    if entry not in list(module.__path__):
                        module.__path__.append(entry)
            try:
                return importlib.import_module(COLLECTION_PACKAGE)
            except ImportError:
                continue
    raise ImportError(
        "the tritonfil.eks collection is not importable: run `make setup` in the checkout (it links"
        " .collections/ansible_collections/tritonfil/eks) or install the collection with ansible-galaxy"
    )


def module_utils(name: str) -> ModuleType:
    """Import ``plugins/module_utils/<name>.py`` of the tritonfil.eks collection."""
    _import_collection()
    return importlib.import_module(f"{MODULE_UTILS}.{name}")


def collection_root() -> Path:
    """The directory of the collection in use (the repository root from a checkout)."""
    return Path(_import_collection().__path__[0])


_repo = module_utils("model_repository")
Problem = _repo.Problem
ValidationReport = _repo.ValidationReport
ModelRepositoryError = _repo.ModelRepositoryError


def validate(path: str | os.PathLike[str], *, load: bool = False, models: list[str] | None = None) -> Any:
    """Validate the model repository at PATH; returns a ``ValidationReport`` (``.ok``, ``.problems``)."""
    return _repo.validate_repository(path, load=load, models=models)


def validate_or_raise(path: str | os.PathLike[str], *, load: bool = False) -> Any:
    """Like `validate`, but raise ``ModelRepositoryError`` (carrying the report) when it has errors."""
    report = validate(path, load=load)
    if not report.ok:
        raise ModelRepositoryError(report)
    return report


def run_cli(args: Any) -> int:
    """`tritonfil models validate|twin` (argparse namespace from tritonfil.cli)."""
    import json

    if args.action == "validate":
        report = validate(args.path, load=args.load)
        if args.json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        else:
            sys.stdout.write(report.format_text() + "\n")
        if not report.ok:
            sys.stderr.write(f"tritonfil: {report.summary()}\n")
            return 1
        return 0
    if args.action == "twin":
        from tritonfil.twin import TwinError, build_twin

        try:
            result = build_twin(args.src, args.dest)
        except ModelRepositoryError as exc:
            sys.stdout.write(exc.report.format_text() + "\n")
            sys.stderr.write(f"tritonfil: no twin written: {exc.report.summary()}\n")
            return 1
        except TwinError as exc:
            sys.stderr.write(f"tritonfil: {exc}\n")
            return 1
        sys.stdout.write(f"wrote CPU twin of {result.source} to {result.destination}: {', '.join(result.models)}\n")
        return 0
    sys.stderr.write(f"tritonfil: unknown models action {args.action}\n")
    return 2
