"""Model repository validation and creation (``models init``) for the `tritonfil` package and CLI.

The validation code lives once, in the collection's ``plugins/module_utils/model_repository.py``, so
that the Ansible module ``tritonfil.eks.triton_model_repository`` and this package run the same checks;
``models init`` likewise runs ``plugins/module_utils/model_init.py``, as ``tritonfil.eks.triton_model_init`` does.
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
    "InitResult",
    "ModelInitError",
    "ModelRepositoryError",
    "Problem",
    "ValidationReport",
    "collection_root",
    "init",
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
_init = module_utils("model_init")
ModelInitError = _init.ModelInitError
InitResult = _init.InitResult


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


def init(
    model_files: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    names: list[str] | None = None,
    rows: list[str | os.PathLike[str]] | None = None,
    is_classifier: bool | None = None,
    predict_proba: bool = False,
    threshold: float = 0.5,
    max_batch_size: int = 32768,
    max_queue_delay_microseconds: int = 100,
    instance_kind: str = "KIND_GPU",
    instance_count: int = 1,
    reference_rows: int = 64,
    seed: int | None = None,
    allow_pickle: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> Any:
    """Write a FIL model repository at OUT from MODEL_FILES (one model each): ``config.pbtxt``, the model file and
    ``reference.json`` per model (docs/models.md). NAMES and ROWS (CSV/NPY reference inputs), when given, have one
    entry per model file. Returns an ``InitResult``; raises ``ModelInitError`` (nothing written) on bad input.
    With DRY_RUN nothing is written and the result says what would be."""
    files = [str(f) for f in model_files]
    for label, values in (("names", names), ("rows", rows)):
        if values and len(values) != len(files):
            raise ValueError(f"{len(values)} {label} for {len(files)} model file(s): give one per model file, in order")
    specs = [
        _init.ModelSpec(
            path=path,
            name=names[i] if names else None,
            rows=str(rows[i]) if rows else None,
            is_classifier=is_classifier,
            predict_proba=predict_proba,
            threshold=threshold,
            max_batch_size=max_batch_size,
            max_queue_delay_microseconds=max_queue_delay_microseconds,
            instance_kind=instance_kind,
            instance_count=instance_count,
            reference_rows=reference_rows,
            seed=seed,
            allow_pickle=allow_pickle,
        )
        for i, path in enumerate(files)
    ]
    return _init.init_repository(
        specs, out, force=force, check_mode=dry_run, triton_release=collection.pins()["TRITON_RELEASE"]
    )


def _init_cli(args: Any) -> int:
    import json

    try:
        result = init(
            args.model_files,
            args.out,
            names=args.name,
            rows=args.rows,
            is_classifier=args.is_classifier,
            predict_proba=args.predict_proba,
            threshold=args.threshold,
            max_batch_size=args.max_batch_size,
            max_queue_delay_microseconds=args.max_queue_delay_us,
            instance_kind=args.instance_kind,
            instance_count=args.instance_count,
            reference_rows=args.reference_rows,
            seed=args.seed,
            allow_pickle=args.allow_pickle,
            force=args.force,
            dry_run=args.dry_run,
        )
    except ValueError as exc:  # ModelInitError too: one line naming the file
        sys.stderr.write(f"tritonfil: models init: {exc}\n")
        return 2 if not isinstance(exc, ModelInitError) else 1
    if args.json:
        doc = result.to_dict()
        doc.pop("diff", None)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        for model in result.models:
            ref = model["reference"]
            sys.stdout.write(
                f"{model['name']}: {model['format_name']}, {model['kind']}, {model['num_feature']} features,"
                f" {model['num_tree']} trees -> output__0 {model['output_dims']}: {model['output']};"
                f" reference {ref['rows']} rows ({ref['library']}, atol {ref['atol']:g}, rtol {ref['rtol']:g})\n"
            )
        if result.check_mode:
            for entry in result.files:
                if entry["action"] != "unchanged":
                    sys.stdout.write(f"  {entry['action']} {entry['path']}\n")
        sys.stdout.write(result.summary() + "\n")
    for note in result.warnings:
        sys.stderr.write(f"tritonfil: warning: {note}\n")
    return 0


def run_cli(args: Any) -> int:
    """`tritonfil models validate` and `tritonfil models init` (argparse namespace from tritonfil.cli)."""
    import json

    if args.action == "init":
        return _init_cli(args)
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
