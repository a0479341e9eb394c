# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja filters over Kubernetes objects: which desired objects the live ones do not match."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _contained(want, have) -> bool:
    """Every field ``want`` sets has that value in ``have`` (what a merge patch of ``want`` would not change).

    Mappings: each key of ``want`` in ``have`` with a contained value (a null in ``want`` asks for the key to be
    absent or null). Lists: the same length, each item contained in the item at its place (a merge patch replaces a
    list whole; the API server may add defaults inside its items). Scalars: equal and of the same kind (true is not 1).
    """
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        for key, value in want.items():
            if value is None:
                if have.get(key) is not None:
                    return False
            elif key not in have or not _contained(value, have[key]):
                return False
        return True
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_contained, want, have))
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(want, bool) and isinstance(have, bool) and want == have
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return want == have
    if isinstance(want, str):
        return isinstance(have, str) and str(want) == str(have)
    return want == have


def _key(obj):
    try:
        meta = obj["metadata"]
        return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace") or "", meta["name"])
    except (KeyError, TypeError, AttributeError):
        msg = f"k8s_drifted: not a Kubernetes object (apiVersion, kind, metadata.name): {obj!r:.200}"
        raise AnsibleFilterError(msg) from None


def _condition_true(obj, condition) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == condition and c.get("status") == "True" for c in conditions if isinstance(c, dict))


def k8s_drifted(desired, live, condition=None):
    """The objects of ``desired`` that are absent from ``live`` or that some live field contradicts.

    ``live`` is what kubernetes.core.k8s_info returned (its ``resources``); objects match by apiVersion, kind,
    namespace and name. With ``condition`` (e.g. ``Established``) a live object counts only when its status has that
    condition True. An empty result means applying ``desired`` would change nothing.
    """
    if not isinstance(desired, list) or not isinstance(live, list):
        raise AnsibleFilterError("k8s_drifted: the desired and the live objects must both be lists")
    by_key = {_key(o): o for o in live if condition is None or _condition_true(o, condition)}
    return [o for o in desired if not _contained(o, by_key.get(_key(o)))]


class FilterModule:
    def filters(self):
        return {"k8s_drifted": k8s_drifted}
