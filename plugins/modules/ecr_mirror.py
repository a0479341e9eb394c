#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: ecr_mirror
short_description: Mirror a container image into an ECR repository with skopeo, by digest
description:
  - Reads the digest of O(source) (C(skopeo inspect)), logs in to the ECR registry with an authorization
    token (C(ecr:GetAuthorizationToken)) written to a private 0600 auth file that is removed when the module
    ends, also when it is interrupted, reads the digest O(repository):O(tag) has now, and copies the image
    (every platform, digests preserved) only when they differ.
  - With O(immutable) a tag that already holds another digest is never moved; the module fails naming
    O(tag_option), the variable to change.
  - After a copy it reads the digest again and fails unless it is the source's.
  - Returns C(image_uri), the pushed image by digest (C(registry/repository@sha256:...)), which is what
    a Deployment should run.
  - In check mode it reads both digests and reports whether a copy would happen, without logging anything
    into the registry beyond the read.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
options:
  source:
    description:
      - The image to mirror, as a skopeo reference; C(docker://) is assumed without a transport
        (C(nvcr.io/nvidia/tritonserver:TAG), C(oci:/path/layout:tag)).
      - Required with O(state=present).
    type: str
  state:
    description:
      - C(present) mirrors O(source); C(absent) deletes the tag from O(registry).
    type: str
    choices: [present, absent]
    default: present
  repository:
    description:
      - ECR repository name (the repository must exist; C(community.aws.ecs_ecr) creates it).
    type: str
    required: true
  tag:
    description:
      - Tag the image gets in the repository.
    type: str
    required: true
  immutable:
    description:
      - The repository's tags are immutable; refuse to move O(tag) to another digest.
    type: bool
    default: true
  registry:
    description:
      - Registry host[:port] to push to instead of the account's ECR registry; the ECR login is presented to
        it (the local environment's registry stands in for ECR, which moto does not serve).
    type: str
    default: ''
  tls_verify:
    description:
      - Verify the registry's TLS certificate (false only for a plain-HTTP stand-in registry).
    type: bool
    default: true
  tag_option:
    description:
      - Name of the variable that sets O(tag), used in the error when an immutable tag would move.
    type: str
    default: tag
  skopeo_path:
    description:
      - The skopeo executable (1.9 or later).
    type: str
    default: skopeo
attributes:
  check_mode:
    support: full
    description: Reads both digests and predicts the copy.
  diff_mode:
    support: full
    description: The diff shows the digest before and after.
requirements:
  - skopeo >= 1.9
  - boto3
"""

EXAMPLES = r"""
- name: Mirror the pinned Triton image into ECR
  tritonfil.eks.ecr_mirror:
    source: "{{ lookup('tritonfil.eks.pin', 'TRITON_IMAGE') }}"
    repository: tritonserver
    tag: "{{ lookup('tritonfil.eks.pin', 'TRITON_IMAGE_TAG') }}"
  register: mirror

- name: The image the release runs
  ansible.builtin.debug:
    msg: "{{ mirror.image_uri }}"
"""

RETURN = r"""
image_uri:
  description: The pushed image by digest.
  returned: success
  type: str
  sample: 123456789012.dkr.ecr.us-east-1.amazonaws.com/tritonserver@sha256:0c0f...
digest:
  description: The source's digest (the one the destination has after the run).
  returned: success
  type: str
destination:
  description: registry/repository:tag the image is mirrored to.
  returned: success
  type: str
previous_digest:
  description: The digest the destination tag had before, or null when it did not exist.
  returned: success
  type: str
copied:
  description: Whether the image was copied (in check mode, whether it would be).
  returned: success
  type: bool
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.tritonfil.eks.plugins.module_utils.ecr import (
    EcrMirrorError,
    Skopeo,
    ecr_login,
    plan,
    private_authfile,
    source_reference,
)


def login(module, registry):
    try:
        return ecr_login(module.client("ecr"), registry)
    except EcrMirrorError:
        raise
    except Exception as exc:  # botocore: the call and the reason, never the credentials
        module.fail_json_aws(exc, msg="ecr:GetAuthorizationToken failed")


def delete(module, skopeo):
    p = module.params
    try:
        host, token = login(module, p["registry"])
        destination = f"{host}/{p['repository']}:{p['tag']}"
        with private_authfile(host, token) as authfile:
            before = skopeo.digest(f"docker://{destination}", authfile, p["tls_verify"])
            if before is not None and not module.check_mode:
                skopeo.delete(f"docker://{destination}", authfile, p["tls_verify"])
    except EcrMirrorError as exc:
        module.fail_json(**exc.result())
    module.exit_json(changed=before is not None, destination=destination, previous_digest=before, copied=False)


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            source=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            repository=dict(type="str", required=True),
            tag=dict(type="str", required=True),
            immutable=dict(type="bool", default=True),
            registry=dict(type="str", default=""),
            tls_verify=dict(type="bool", default=True),
            tag_option=dict(type="str", default="tag"),
            skopeo_path=dict(type="str", default="skopeo"),
        ),
        required_if=[("state", "present", ("source",)), ("state", "absent", ("registry",))],
        supports_check_mode=True,
    )
    p = module.params

    def run(argv, env):
        return module.run_command(list(argv), environ_update=env)

    skopeo = Skopeo(run, module.get_bin_path(p["skopeo_path"], required=True))
    if p["state"] == "absent":
        delete(module, skopeo)
    source = source_reference(p["source"])
    try:
        source_digest = skopeo.digest(source)
        if source_digest is None:
            raise EcrMirrorError(f"source: {source} does not exist")
        host, token = login(module, p["registry"])
        destination = f"{host}/{p['repository']}:{p['tag']}"
        with private_authfile(host, token) as authfile:
            before = skopeo.digest(f"docker://{destination}", authfile, p["tls_verify"])
            needed = plan(source_digest, before, p["immutable"], destination, p["tag_option"])
            if needed and not module.check_mode:
                skopeo.copy(source, f"docker://{destination}", authfile, p["tls_verify"])
                after = skopeo.digest(f"docker://{destination}", authfile, p["tls_verify"])
                if after != source_digest:
                    raise EcrMirrorError(f"{destination} has digest {after} after the copy, the source {source_digest}")
    except EcrMirrorError as exc:
        module.fail_json(**exc.result())
    module.exit_json(
        changed=needed,
        image_uri=f"{host}/{p['repository']}@{source_digest}",
        digest=source_digest,
        destination=destination,
        previous_digest=before,
        copied=needed,
        diff={"before": {"digest": before or ""}, "after": {"digest": source_digest}},
    )


if __name__ == "__main__":
    main()
