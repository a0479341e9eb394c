"""plugins/filter/revisions.py: the history the history/rollback playbooks print and choose from."""

from __future__ import annotations

import importlib

import pytest
from ansible.errors import AnsibleFilterError

from tritonfil.collection import PACKAGE, root

root()  # the collection is importable (make setup links it into site-packages)
revisions = importlib.import_module(f"{PACKAGE}.plugins.filter.revisions")

REVS = [
    {"revision": "bbbbbbbbbbbbbbbb", "uri": "s3://models-bkt/m/revisions/bbbbbbbbbbbbbbbb",
     "deployed": "2026-12-02T10:00:00Z", "models": ["xgb_classifier", "xgb_regressor"]},
    {"revision": "aaaaaaaaaaaaaaaa", "uri": "s3://models-bkt/m/revisions/aaaaaaaaaaaaaaaa",
     "deployed": "2026-12-01T10:00:00Z", "models": ["xgb_regressor"]},
]  # fmt: skip


def test_history_flags_the_live_and_the_served_revisions():
    history = revisions.revision_history(
        REVS, live="aaaaaaaaaaaaaaaa", serving=["s3://models-bkt/m/revisions/bbbbbbbbbbbbbbbb"]
    )
    assert [(h["revision"], h["live"], h["serving"]) for h in history] == [
        ("bbbbbbbbbbbbbbbb", False, True),
        ("aaaaaaaaaaaaaaaa", True, False),
    ]
    table = revisions.revision_table(history)
    assert table[0].split() == ["revision", "deployed", "live", "serving", "models"]
    assert table[1].split() == ["bbbbbbbbbbbbbbbb", "2026-12-02T10:00:00Z", "yes", "xgb_classifier,", "xgb_regressor"]
    assert table[2].split() == ["aaaaaaaaaaaaaaaa", "2026-12-01T10:00:00Z", "yes", "xgb_regressor"]


def test_split_and_join_are_inverse_and_a_bad_uri_is_an_error():
    uri = revisions.revision_uri("aaaaaaaaaaaaaaaa", "models-bkt", "m")
    assert uri == "s3://models-bkt/m/revisions/aaaaaaaaaaaaaaaa"
    assert revisions.revision_split(uri) == {"bucket": "models-bkt", "prefix": "m", "revision": "aaaaaaaaaaaaaaaa"}
    with pytest.raises(AnsibleFilterError, match="not a model revision URI"):
        revisions.revision_split("s3://models-bkt/m")
