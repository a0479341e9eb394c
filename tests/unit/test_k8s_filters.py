"""plugins/filter/k8s.py: k8s_drifted, which lets the istio role leave out the CRD apply of a converged rerun."""

from __future__ import annotations

import copy
import importlib

import pytest
from ansible.errors import AnsibleFilterError

from tritonfil.collection import PACKAGE, root

root()  # the collection is importable (make setup links it into site-packages)
k8s = importlib.import_module(f"{PACKAGE}.plugins.filter.k8s")

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gateways.networking.istio.io", "labels": {"app.kubernetes.io/part-of": "istio"}},
    "spec": {
        "group": "networking.istio.io",
        "names": {"kind": "Gateway", "plural": "gateways"},
        "scope": "Namespaced",
        "versions": [
            {"name": "v1", "served": True, "storage": True,
             "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
        ],
    },
}  # fmt: skip


def live_of(obj: dict, established: bool = True) -> dict:
    """What the API server returns for obj: its metadata, defaults inside list items, a status."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="u-1", resourceVersion="42", generation=1, annotations={"kept": "by-someone"})
    live["spec"]["conversion"] = {"strategy": "None"}
    live["spec"]["versions"][0]["subresources"] = {}
    live["status"] = {"conditions": [{"type": "Established", "status": "True" if established else "False"}]}
    return live


def test_a_converged_object_is_not_drifted():
    assert k8s.k8s_drifted([CRD], [live_of(CRD)], "Established") == []
    assert k8s.k8s_drifted([CRD], [live_of(CRD)]) == []


def test_absent_changed_or_not_established_objects_are_drifted():
    assert k8s.k8s_drifted([CRD], []) == [CRD]
    changed = live_of(CRD)
    changed["spec"]["scope"] = "Cluster"  # changed by hand
    assert k8s.k8s_drifted([CRD], [changed]) == [CRD]
    label = live_of(CRD)
    label["metadata"]["labels"]["app.kubernetes.io/part-of"] = "other"
    assert k8s.k8s_drifted([CRD], [label]) == [CRD]
    more_versions = live_of(CRD)
    more_versions["spec"]["versions"].append({"name": "v2", "served": True, "storage": False})
    assert k8s.k8s_drifted([CRD], [more_versions]) == [CRD]  # a merge patch replaces the list whole
    assert k8s.k8s_drifted([CRD], [live_of(CRD, established=False)], "Established") == [CRD]


@pytest.mark.parametrize(
    ("want", "have", "same"),
    [
        (True, 1, False),
        (1, 1.0, True),
        ("1", 1, False),
        (None, None, True),
        ({"a": None}, {}, True),
        ({"a": None}, {"a": 1}, False),
        ([1, 2], [1, 2, 3], False),
    ],
)
def test_scalars_keep_their_kind(want, have, same):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": want}
    live = {**obj, "data": have}
    assert (k8s.k8s_drifted([obj], [live]) == []) is same


def test_objects_match_by_namespace_too_and_a_bad_input_is_an_error():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}
    other_ns = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "b"}}
    assert k8s.k8s_drifted([obj], [other_ns]) == [obj]
    with pytest.raises(AnsibleFilterError, match="not a Kubernetes object"):
        k8s.k8s_drifted([{"kind": "ConfigMap"}], [])
    with pytest.raises(AnsibleFilterError, match="must both be lists"):
        k8s.k8s_drifted(obj, [])
