"""Model repository validation for the `tritonfil` package and CLI.

The validation code lives once, in the collection's ``plugins/module_utils/model_repository.py``, so
that the Ansible module ``tritonfil.eks.triton_model_repository`` and this package run the same checks.
The package imports it under its collection name through `tritonfil.collection` (the installed wheel's
copy of the collection, or the checkout that `make setup` links into site-packages).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tritonfil import collection

COLLECTION_PACKAGE = collection.PACKAGE

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

#: ``plugins/module_utils/<name>.py`` of the collection (`tritonfil.collection.module_utils`).
module_utils = collection.module_utils


def collection_root() -> Path:
    """The directory of the collection in use (`tritonfil.collection.root`)."""
    return collection.root()


_repo = module_utils("model_repository")
Problem = _repo.Problem
ValidationReport = _repo.ValidationReport
ModelRepositoryError = _repo.ModelRepositoryError


def validate(path: str | os.PathLike[str], *, load: bool = False, models: list[str] | None = None) -> Any:
    """Validate the model repository at PATH against the FIL backend of the pinned Triton release; returns a
    ``ValidationReport`` (``.ok``, ``.problems``)."""
    return _repo.validate_repository(path, load=load, models=models, triton_release=collection.pins()["TRITON_RELEASE"])


def validate_or_raise(path: str | os.PathLike[str], *, load: bool = False) -> Any:
    """Like `validate`, but raise ``ModelRepositoryError`` (carrying the report) when it has errors."""
    report = validate(path, load=load)
    if not report.ok:
        raise ModelRepositoryError(report)
    return report


def run_cli(args: Any) -> int:
    """`tritonfil models validate` (argparse namespace from tritonfil.cli)."""
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
    sys.stderr.write(f"tritonfil: unknown models action {args.action}\n")
    return 2
