#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: s3_model_sync
short_description: Store a Triton model repository in S3 as an immutable, content-addressed revision
description:
  - Makes the content of the local model repository O(path) a complete revision under
    C(s3://BUCKET/PREFIX/revisions/<rev>/), where C(<rev>) is the first 16 hex digits of the content's
    sha256 digest. The same content is always the same revision (a rerun changes nothing).
  - Files another complete revision already holds are copied server-side (C(s3:CopyObject)); only new
    content is uploaded. The revision's manifest (C(manifests/<rev>.json)) is written after its files and the
    index (C(index.json), revisions newest first and the live one) last, so a revision that is listed is
    complete; an interrupted run leaves a partial revision that the next run completes.
  - Keeps the newest O(keep) revisions and the live one (C(tritonfil.eks.s3_model_revision_info) reads it;
    O(live) sets it) and deletes the others.
  - In check mode it computes the plan (what would be uploaded, copied, pruned) without writing anything;
    a bucket that does not exist yet counts as empty.
  - With O(state=absent) it deletes every revision, manifest and the index under O(prefix) - every version of
    them - and nothing else in the bucket (teardown; the bucket itself is C(amazon.aws.s3_bucket)'s to delete).
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
options:
  bucket:
    description: Bucket (it must exist, except in check mode).
    type: str
    required: true
  prefix:
    description: Key prefix of the revisions (no leading or trailing '/'; empty for the bucket root).
    type: str
    default: models
  path:
    description:
      - The local model repository; hidden files (a name starting with '.') are left out.
      - Required unless O(live) is given alone.
    type: path
  keep:
    description: Revisions kept (the newest ones, and always the live one).
    type: int
    default: 5
  state:
    description:
      - C(present) stores O(path) as a revision (or marks O(live)); C(absent) deletes every revision.
    type: str
    choices: [present, absent]
    default: present
  live:
    description:
      - Mark this revision live instead of syncing (it must be listed in the index); the live revision is
        the one the release was last verified with, and is never pruned.
    type: str
attributes:
  check_mode:
    support: full
    description: The plan is computed read-only.
  diff_mode:
    support: full
    description: The diff shows the newest revision before and after, and the keys uploaded and copied.
requirements:
  - boto3
"""

EXAMPLES = r"""
- name: Store model_repository/ as a revision
  tritonfil.eks.s3_model_sync:
    bucket: my-models
    prefix: models
    path: model_repository
  register: revision

- name: Point the release at it
  ansible.builtin.debug:
    msg: "{{ revision.uri }}"

- name: Mark it live after it was verified
  tritonfil.eks.s3_model_sync:
    bucket: my-models
    prefix: models
    live: "{{ revision.revision }}"
"""

RETURN = r"""
revision:
  description: The revision id.
  returned: success
  type: str
  sample: 3f9c1a0b2d4e5f60
uri:
  description: s3:// URI of the revision (what Triton's --model-repository gets).
  returned: success
  type: str
  sample: s3://my-models/models/revisions/3f9c1a0b2d4e5f60
digest:
  description: The full sha256 content digest.
  returned: when path is given
  type: str
models:
  description: Models in the revision.
  returned: when path is given
  type: list
  elements: str
changed_models:
  description: Models whose files differ from the previous newest revision.
  returned: when path is given
  type: list
  elements: str
previous:
  description: The newest revision before this run (null for the first).
  returned: when path is given
  type: str
uploaded:
  description: Keys uploaded (or that would be).
  returned: when path is given
  type: list
  elements: str
copied:
  description: Keys copied server-side from another revision (or that would be).
  returned: when path is given
  type: list
  elements: str
skipped:
  description: Files the revision already held.
  returned: when path is given
  type: int
bytes_uploaded:
  description: Bytes uploaded (or that would be).
  returned: when path is given
  type: int
pruned:
  description: Revisions deleted (or that would be).
  returned: when path is given
  type: list
  elements: str
deleted:
  description: Object versions (and delete markers) deleted with O(state=absent) (or that would be).
  returned: when state is absent
  type: int
bucket_empty:
  description: Whether the bucket is empty after O(state=absent) (null in check mode or without a bucket).
  returned: when state is absent
  type: bool
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.tritonfil.eks.plugins.module_utils import rules, s3_models


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            prefix=dict(type="str", default="models"),
            path=dict(type="path"),
            keep=dict(type="int", default=5),
            live=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        mutually_exclusive=[("path", "live")],
        supports_check_mode=True,
    )
    p = module.params
    for name, check in (("bucket", rules.check_s3_bucket_name), ("prefix", rules.check_s3_prefix)):
        problem = check(p[name])
        if problem:
            module.fail_json(msg=f"{name}: {problem}")
    s3 = module.client("s3")
    if p["state"] == "present" and not (p["path"] or p["live"]):
        module.fail_json(msg="one of path or live is required with state present")
    try:
        if p["state"] == "absent":
            deleted = s3_models.delete_all(s3, p["bucket"], p["prefix"], dry_run=module.check_mode)
            empty = None if module.check_mode else s3_models.bucket_is_empty(s3, p["bucket"])
            module.exit_json(changed=deleted > 0, deleted=deleted, bucket_empty=empty)
        if p["live"]:
            index = s3_models.read_index(s3, p["bucket"], p["prefix"])
            listed = [e["revision"] for e in index["revisions"]]
            if p["live"] not in listed:
                module.fail_json(msg=f"live: revision {p['live']} is not one of {', '.join(listed) or 'none'}")
            changed = index.get("live") != p["live"]
            if changed and not module.check_mode:
                s3_models.set_live(s3, p["bucket"], p["prefix"], p["live"])
            module.exit_json(
                changed=changed,
                revision=p["live"],
                uri=s3_models.revision_uri(p["bucket"], p["prefix"], p["live"]),
                diff={"before": {"live": index.get("live") or ""}, "after": {"live": p["live"]}},
            )
        plan = s3_models.plan(s3, p["bucket"], p["prefix"], p["path"], keep=p["keep"])
        if plan.changed and not module.check_mode:
            s3_models.apply(s3, plan, p["path"])
    except s3_models.S3ModelsError as exc:
        module.fail_json(msg=f"s3://{p['bucket']}/{p['prefix']}: {exc}")
    except Exception as exc:  # botocore: names the call, never the credentials
        module.fail_json_aws(exc, msg=f"s3://{p['bucket']}/{p['prefix']}: storing revision failed")
    uploaded = sorted(plan.key(rel) for rel in plan.upload)
    copied = sorted(plan.key(rel) for rel in plan.copy)
    module.exit_json(
        changed=plan.changed,
        revision=plan.revision,
        uri=plan.uri,
        digest=plan.digest,
        models=plan.models,
        changed_models=plan.changed_models,
        previous=plan.previous,
        uploaded=uploaded,
        copied=copied,
        skipped=len(plan.files) - len(plan.upload) - len(plan.copy),
        bytes_uploaded=sum(plan.files[rel].size for rel in plan.upload),
        pruned=plan.prune,
        diff={
            "before": {"revision": plan.previous or ""},
            "after": {"revision": plan.revision, "uploaded": uploaded, "copied": copied, "pruned": plan.prune},
        },
    )


if __name__ == "__main__":
    main()
