"""The local Prometheus: what it scrapes and how it finds it.

Every process-backed Triton pod (tritonfil.localenv.pods) publishes its metrics endpoint as the annotation
``tritonfil.io/metrics-address``; Prometheus discovers the pods through the local API server (Kubernetes pod
discovery, as it would on EKS) and scrapes that address instead of the pod IP (a simulated 10.x address that
nothing can reach). The series get the labels a PodMonitor would give them: namespace, pod, and the release
and deployment of the pod.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ANNOTATION = "tritonfil.io/metrics-address"
SCRAPE_INTERVAL = "5s"


def _meta(annotation: str) -> str:
    """Prometheus' name for a pod annotation's meta label."""
    return "__meta_kubernetes_pod_annotation_" + "".join(c if c.isalnum() else "_" for c in annotation)


def config(kubeconfig: Path, scrape_interval: str = SCRAPE_INTERVAL) -> str:
    address = _meta(ANNOTATION)
    scrape = {
        "job_name": "triton",
        "scrape_interval": scrape_interval,
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
        "relabel_configs": [
            {"action": "keep", "source_labels": [address], "regex": ".+"},
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running"},
            {"source_labels": [address], "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"], "target_label": "release"},
            {
                # ReplicaSet <deployment>-<hash> -> the Deployment's name.
                "source_labels": ["__meta_kubernetes_pod_controller_name"],
                "regex": "(.+)-[a-z0-9]+",
                "target_label": "deployment",
            },
        ],
    }
    intervals = {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval}
    return yaml.safe_dump({"global": intervals, "scrape_configs": [scrape]}, sort_keys=False)
