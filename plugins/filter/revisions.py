# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Jinja filters over the model revision layout (plugins/module_utils/s3_models.py holds it)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tritonfil.eks.plugins.module_utils import s3_models


def revision_split(uri):
    try:
        return s3_models.parse_revision_uri(uri)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def revision_uri(revision, bucket, prefix=""):
    return s3_models.revision_uri(bucket, prefix, revision)


def revision_history(revisions, live=None, serving=()):
    """The index's revisions (newest first) with ``live`` (the last verified) and ``serving`` (its URI is what a
    ready replica serves) flags."""
    serving = set(serving or ())
    return [{**r, "live": r["revision"] == live, "serving": r.get("uri") in serving} for r in revisions]


def revision_table(history):
    """Lines of a plain table of revision_history's result."""
    lines = [f"{'revision':<17} {'deployed':<21} {'live':<5} {'serving':<8} models"]
    for r in history:
        lines.append(
            f"{r['revision']:<17} {r.get('deployed', ''):<21} {'yes' if r['live'] else '':<5}"
            f" {'yes' if r['serving'] else '':<8} {', '.join(r.get('models', []))}"
        )
    return lines


class FilterModule:
    def filters(self):
        return {
            "revision_split": revision_split,
            "revision_uri": revision_uri,
            "revision_history": revision_history,
            "revision_table": revision_table,
        }
