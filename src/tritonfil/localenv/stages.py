"""The kwok Stages of the local environment (stages.yaml next to this file).

With process-backed pods (the ``pods`` component runs), pods whose container runs tritonserver get their
status from the pod runner (tritonfil.localenv.pods); without it, kwok's own pod stages make every pod Ready
at once, as before. The node stages (kwok's, plus the delayed readiness of Karpenter's nodes) are the same
in both.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SOURCE = Path(__file__).with_name("stages.yaml")
# The process-backed predicate, as kwok's jq sees it (tritonfil.localenv.pods.is_process_backed in Python).
PREDICATE = (
    '[.spec.containers[]? | (((.command // []) + (.args // [])) | first // "")]'
    ' | any(. == "tritonserver" or endswith("/tritonserver"))'
)


def stages(process_pods: bool) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(SOURCE.read_text()) if d]
    if process_pods:
        return docs
    out = []
    for doc in docs:
        if doc["metadata"]["name"].startswith("process-pod-"):
            continue
        terms = doc["spec"].get("selector", {}).get("matchExpressions", [])
        if terms:
            doc["spec"]["selector"]["matchExpressions"] = [t for t in terms if t.get("key") != PREDICATE]
        out.append(doc)
    return out


def manifest(process_pods: bool) -> str:
    return yaml.safe_dump_all(stages(process_pods), sort_keys=False)
