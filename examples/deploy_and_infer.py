#!/usr/bin/env python3
"""Deploy Triton + FIL with the Python API, then send a batch of rows to every model and print the predictions.

    tritonfil local up                                   # once: the offline local environment
    .venv/bin/python examples/deploy_and_infer.py        # deploy (site.yml) on inventory/local, then infer
    .venv/bin/python examples/deploy_and_infer.py --skip-deploy --rows 4
    .venv/bin/python examples/deploy_and_infer.py -i aws --url http://GATEWAY   # a real EKS deployment

The models are the directories of model_repository/ (a config.pbtxt each); the rows come from
model_repository/<model>/reference.json (inputs the models were generated with, and the outputs they
must give), or random rows shaped by the model's metadata when a model has no reference. Requests go
through the same client as the tritonfil.eks.triton_infer module (plugins/module_utils/triton.py).

As root, the local environment lives in the network namespace `tritonfil`: this script re-runs itself
inside it (like `tritonfil local exec`), because the Triton endpoint is on that namespace's 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tritonfil import api
from tritonfil.models import module_utils

ROOT = Path(__file__).resolve().parents[1]
triton = module_utils("triton")


def enter_local_netns() -> None:
    """As root outside the local environment's namespace, re-run this script inside it."""
    wrapper = api.local_netns_wrapper()
    if wrapper:
        argv = [*wrapper, sys.executable, *sys.argv]
        sys.stdout.flush()
        os.execvp(argv[0], argv)


def progress(event: api.RunEvent) -> None:
    """Print each stage as it starts and each failed task (the `tritonfil` CLI prints more)."""
    if event.kind == "playbook_on_task_start" and event.stage != getattr(progress, "stage", None):
        progress.stage = event.stage  # type: ignore[attr-defined]
        print(f"  stage: {event.stage}", file=sys.stderr, flush=True)
    elif event.failed and not event.ignored:
        print(f"  FAILED {event.task}: {event.message}", file=sys.stderr, flush=True)


def endpoint(args: argparse.Namespace, result: api.RunResult | None) -> str:
    """The Triton URL: --url, else the local environment's tritonserver, else the gateway the deploy found."""
    if args.url:
        return args.url
    if args.inventory == "local":
        from tritonfil.localenv.env import LocalEnv

        return str(LocalEnv().endpoints()["triton_http"])
    for facts in (result.facts if result else {}).values():
        if facts.get("istio_gateway_address"):
            return f"http://{facts['istio_gateway_address']}"
    raise SystemExit("no Triton endpoint known for this inventory: pass --url http://GATEWAY")


def model_names(repository: Path) -> list[str]:
    return sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))


def batch_for(client: Any, name: str, rows: int, references: Path) -> tuple[dict[str, Any], str, Any]:
    """(inputs, output name, expected output or None) for ROWS rows of model NAME."""
    ref_file = references / name / "reference.json"
    if ref_file.is_file():
        ref = json.loads(ref_file.read_text())
        x = np.asarray(ref["input"][:rows], dtype=np.float32)
        return {ref["input_name"]: x}, ref["output_name"], np.asarray(ref["expected"][:rows])
    meta = client.model_metadata(name)
    tensor = meta["inputs"][0]
    features = [d for d in tensor["shape"] if d > 0][-1:] or [1]
    dtype = triton.DATATYPE_TO_NUMPY[tensor["datatype"]]
    x = np.random.default_rng(0).normal(size=(rows, *features)).astype(dtype)
    return {tensor["name"]: x}, meta["outputs"][0]["name"], None


def infer_all(url: str, rows: int, repository: Path, references: Path) -> int:
    """Send ROWS rows to each model; print predictions next to the expected values. Returns mismatches."""
    mismatches = 0
    with triton.TritonClient(url) as client:
        for name in model_names(repository):
            inputs, output, expected = batch_for(client, name, rows, references)
            t0 = time.perf_counter()
            got = client.infer(name, inputs, [output])[output]
            ms = (time.perf_counter() - t0) * 1000
            print(f"\n{name}: {rows} rows -> {output} {list(got.shape)} in {ms:.1f} ms")
            for i in range(min(rows, len(got))):
                line = f"  row {i}: {np.array2string(np.asarray(got[i]), precision=4)}"
                if expected is not None:
                    same = np.allclose(got[i], expected[i], atol=1e-5)
                    mismatches += not same
                    line += f"   expected {np.array2string(np.asarray(expected[i]), precision=4)}"
                    line += "" if same else "   MISMATCH"
                print(line)
    return mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--inventory", default="local", help="local (default), aws, or an inventory path")
    parser.add_argument("--skip-deploy", action="store_true", help="only infer (the deployment is already there)")
    parser.add_argument("-t", "--tags", help="deploy only these stages (comma-separated role names)")
    parser.add_argument("--skip-tags", help="deploy without these stages")
    parser.add_argument("--url", help="Triton endpoint (default: the local tritonserver, or the deployed gateway)")
    parser.add_argument("--rows", type=int, default=8, help="rows per model (default 8)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--references", type=Path, default=ROOT / "model_repository")
    args = parser.parse_args(argv)

    if args.inventory == "local":
        enter_local_netns()
    result = None
    if not args.skip_deploy:
        print(f"deploying (site.yml, inventory {args.inventory}) ...", file=sys.stderr)
        try:
            result = api.deploy(inventory=args.inventory, tags=args.tags, skip_tags=args.skip_tags, on_event=progress)
        except api.PlaybookFailed as e:
            print(f"deploy failed: {e}", file=sys.stderr)
            return 1
        assert isinstance(result, api.RunResult)
        print(f"deployed in {result.elapsed:.0f}s (artifacts: {result.artifact_dir})", file=sys.stderr)
    url = endpoint(args, result)
    print(f"Triton at {url}")
    mismatches = infer_all(url, args.rows, args.repository, args.references)
    print(f"\n{mismatches} prediction(s) differ from the references")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
