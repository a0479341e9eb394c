# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
from __future__ import annotations

DOCUMENTATION = r"""
name: pin
short_description: A version pinned in the collection's scripts/versions.env
description:
  - Returns the value of each KEY in the collection's one pin file, C(scripts/versions.env)
    (the Triton release and image, Istio, the charts and the Go-built tools).
  - Fails naming the key and the file when a key is not pinned.
version_added: 0.2.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
options:
  _terms:
    description: Pin names, e.g. C(TRITON_IMAGE).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The pinned Triton image
  ansible.builtin.debug:
    msg: "{{ lookup('tritonfil.eks.pin', 'TRITON_IMAGE') }}"
"""

RETURN = r"""
_raw:
  description: The pinned values, one per term.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.tritonfil.eks.plugins.module_utils import pins


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        try:
            pinned = pins.load()
        except (OSError, ValueError) as exc:
            raise AnsibleLookupError(f"cannot read the pin file {pins.PIN_FILE}: {exc}") from None
        missing = [t for t in terms if t not in pinned]
        if missing:
            raise AnsibleLookupError(
                f"{', '.join(missing)} not pinned in {pins.PIN_FILE} (pinned: {', '.join(sorted(pinned))})"
            )
        return [pinned[t] for t in terms]
