# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Connection options shared by the modules that talk to Triton (plugins/module_utils/triton.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Triton endpoint as C(scheme://host:port) or C(host:port).
      - Schemes C(http) and C(https) use Triton's HTTP API, C(grpc) and C(grpcs) its gRPC API;
        C(https) and C(grpcs) use TLS.
      - Without a scheme, O(protocol) decides (default C(http)), without TLS.
    type: str
    required: true
  protocol:
    description:
      - API to use when O(url) has no scheme. Must agree with the scheme when it has one.
    type: str
    choices: [http, grpc]
  validate_certs:
    description:
      - Verify the server certificate and host name for C(https) URLs.
      - gRPC over TLS always verifies; give O(ca_cert) for a private CA.
    type: bool
    default: true
  ca_cert:
    description:
      - PEM file with the CA certificates that sign the server certificate (TLS only).
    type: path
  client_cert:
    description:
      - PEM client certificate for mutual TLS. Requires O(client_key).
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert).
    type: path
  headers:
    description:
      - Extra HTTP headers or gRPC metadata sent with every request, for example an
        C(Authorization) header or the C(Host) an ingress routes on.
      - Values are hidden from logs.
    type: dict
    default: {}
  request_timeout:
    description:
      - Seconds one request may take (connect and response).
    type: float
    default: 10.0
notes:
  - Requires the C(tritonclient) Python package (C(tritonclient[http,grpc]) for both protocols) on the
    host that runs the module.
"""
