#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: s3_model_revision_info
short_description: List the model repository revisions stored in S3
description:
  - Reads C(index.json) under C(s3://BUCKET/PREFIX) (written by C(tritonfil.eks.s3_model_sync)) and returns
    the revisions, newest first, with the newest and the live one. Read-only; never reports a change.
  - A bucket or index that does not exist yet gives an empty list.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
options:
  bucket:
    description: Bucket.
    type: str
    required: true
  prefix:
    description: Key prefix of the revisions.
    type: str
    default: models
  references_of:
    description:
      - A revision's s3:// URI (C(s3://BUCKET/PREFIX/revisions/REV)) whose C(<model>/reference.json) files to download
        into O(dest), the references a verification of that revision checks against.
    type: str
  dest:
    description: Local directory the references of O(references_of) are written to (created).
    type: path
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Nothing is changed.
requirements:
  - boto3
"""

EXAMPLES = r"""
- name: The model revisions
  tritonfil.eks.s3_model_revision_info:
    bucket: my-models
  register: models
"""

RETURN = r"""
revisions:
  description: Revisions newest first (revision, digest, created, deployed, models, size, uri).
  returned: success
  type: list
  elements: dict
latest:
  description: The newest revision (null when there is none).
  returned: success
  type: dict
live:
  description: The live revision id (the last verified one), or null.
  returned: success
  type: str
references:
  description: The models whose references were downloaded from O(references_of).
  returned: when references_of is given
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.tritonfil.eks.plugins.module_utils import s3_models


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            prefix=dict(type="str", default="models"),
            references_of=dict(type="str"),
            dest=dict(type="path"),
        ),
        required_together=[("references_of", "dest")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        index = s3_models.read_index(module.client("s3"), p["bucket"], p["prefix"])
    except s3_models.S3ModelsError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # botocore
        module.fail_json_aws(exc, msg=f"reading s3://{p['bucket']}/{p['prefix']}/index.json failed")
    revisions = [
        {**e, "uri": s3_models.revision_uri(p["bucket"], p["prefix"], e["revision"])} for e in index["revisions"]
    ]
    latest = revisions[0] if revisions else None
    result = dict(changed=False, revisions=revisions, latest=latest, live=index.get("live"))
    if p["references_of"]:
        try:
            result["references"] = s3_models.download_references(module.client("s3"), p["references_of"], p["dest"])
        except ValueError as exc:
            module.fail_json(msg=f"references_of: {exc}")
        except Exception as exc:  # botocore
            module.fail_json_aws(exc, msg=f"downloading the references of {p['references_of']} failed")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
