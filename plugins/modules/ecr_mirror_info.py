#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: ecr_mirror_info
short_description: Read which image an ECR repository tag holds, by digest
description:
  - Logs in to the ECR registry (or O(registry)) with a private, short-lived auth file and reads the digest
    of O(repository):O(tag) with C(skopeo inspect). Read-only; never reports a change.
  - This is how a later stage finds the image an earlier run of C(tritonfil.eks.ecr_mirror) pushed, when that
    stage is not part of the run.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
options:
  repository:
    description: ECR repository name.
    type: str
    required: true
  tag:
    description: The tag to read.
    type: str
    required: true
  registry:
    description: Registry host[:port] to read instead of the account's ECR registry.
    type: str
    default: ''
  tls_verify:
    description: Verify the registry's TLS certificate.
    type: bool
    default: true
  skopeo_path:
    description: The skopeo executable.
    type: str
    default: skopeo
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Nothing is changed.
requirements:
  - skopeo >= 1.9
  - boto3
"""

EXAMPLES = r"""
- name: The image the last mirror pushed
  tritonfil.eks.ecr_mirror_info:
    repository: tritonserver
    tag: "{{ lookup('tritonfil.eks.pin', 'TRITON_IMAGE_TAG') }}"
  register: pushed
"""

RETURN = r"""
exists:
  description: Whether the tag exists.
  returned: success
  type: bool
image_uri:
  description: registry/repository@digest, or null when the tag does not exist.
  returned: success
  type: str
digest:
  description: The tag's digest, or null.
  returned: success
  type: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.tritonfil.eks.plugins.module_utils.ecr import (
    EcrMirrorError,
    Skopeo,
    ecr_login,
    private_authfile,
)


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            repository=dict(type="str", required=True),
            tag=dict(type="str", required=True),
            registry=dict(type="str", default=""),
            tls_verify=dict(type="bool", default=True),
            skopeo_path=dict(type="str", default="skopeo"),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def run(argv, env):
        return module.run_command(list(argv), environ_update=env)

    skopeo = Skopeo(run, module.get_bin_path(p["skopeo_path"], required=True))
    try:
        try:
            host, token = ecr_login(module.client("ecr"), p["registry"])
        except EcrMirrorError:
            raise
        except Exception as exc:  # botocore: the call and the reason, never the credentials
            module.fail_json_aws(exc, msg="ecr:GetAuthorizationToken failed")
        with private_authfile(host, token) as authfile:
            digest = skopeo.digest(f"docker://{host}/{p['repository']}:{p['tag']}", authfile, p["tls_verify"])
    except EcrMirrorError as exc:
        module.fail_json(**exc.result())
    module.exit_json(
        changed=False,
        exists=digest is not None,
        digest=digest,
        image_uri=f"{host}/{p['repository']}@{digest}" if digest else None,
    )


if __name__ == "__main__":
    main()
