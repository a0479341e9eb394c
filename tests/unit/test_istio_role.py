"""tritonfil.eks.istio without a cluster: the istioctl version gate and the IstioOperator it renders.

A stand-in istioctl (a shell script) answers `version` with a chosen version and, for `manifest generate`,
saves the IstioOperator it reads from stdin and prints a one-object manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tritonfil.collection import pins

ISTIO = pins()["ISTIO_VERSION"]
JWKS_URI = "https://issuer.example.com/.well-known/jwks.json"

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Preflight and render only
      ansible.builtin.include_role:
        name: tritonfil.eks.istio
        tasks_from: "{{ item }}"
      loop: [preflight, render]
"""

FAKE = """#!/bin/sh
if [ "$1" = version ]; then
  printf '{"clientVersion": {"version": "%s", "revision": "x"}}\\n' "VERSION"
  exit 0
fi
if [ "$1" = manifest ]; then
  cat > "OUT"
  printf 'apiVersion: v1\\nkind: ServiceAccount\\nmetadata:\\n  name: istiod\\n  namespace: istio-system\\n'
  exit 0
fi
exit 3
"""


def run(run_playbook, tmp_path: Path, version: str, **variables):
    fake = tmp_path / "istioctl"
    fake.write_text(FAKE.replace("VERSION", version).replace("OUT", str(tmp_path / "iop.yaml")))
    fake.chmod(0o755)
    # The secure default: the gateway authenticates JWTs, so it needs the issuer and the keys.
    jwt = {"istio_gateway_jwt_issuer": "https://issuer.example.com", "istio_gateway_jwt_jwks_uri": JWKS_URI}
    extra = {"istio_istioctl_path": str(fake), **jwt, **variables}
    return run_playbook(PLAY, "-e", json.dumps(extra))


def test_teardown_spec_mirrors_main(root: Path):
    specs = yaml.safe_load((root / "roles/istio/meta/argument_specs.yml").read_text())["argument_specs"]
    main, teardown = specs["main"]["options"], specs["teardown"]["options"]
    # What only the gateway's creation reads (its listener, authentication and load balancer) is not teardown's.
    only_main = set(main) - set(teardown)
    assert only_main == {
        "istio_gateway_wait_for_address",
        "istio_gateway_internal",
        "istio_gateway_source_ranges",
        "istio_gateway_acm_certificate_arn",
        "istio_gateway_jwt_enabled",
        "istio_gateway_jwt_issuer",
        "istio_gateway_jwt_jwks_uri",
        "istio_gateway_jwt_jwks",
        "istio_gateway_jwt_audiences",
        "istio_gateway_public_unauthenticated_acknowledged",
        "istio_jwks_blocked_cidrs",
    }
    assert all(teardown[k] == main[k] for k in teardown)


def test_release_istioctl_of_istio_version_passes_and_renders_the_pinned_operator(run_playbook, tmp_path: Path):
    result = run(
        run_playbook,
        tmp_path,
        ISTIO,
        istio_node_selector={"tritonfil.io/node-role": "system"},
        istio_gateway_service_annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
        istio_operator_spec={
            "meshConfig": {"accessLogFile": "/dev/stdout"},
            "components": {"pilot": {"enabled": True}},
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    iop = yaml.safe_load((tmp_path / "iop.yaml").read_text())
    system = {"nodeSelector": {"tritonfil.io/node-role": "system"}}
    assert iop == {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "spec": {
            "profile": "default",
            "hub": "docker.io/istio",
            "tag": ISTIO,
            "meshConfig": {"accessLogFile": "/dev/stdout"},
            "components": {
                # istiod never fetches a JWKS from the metadata service or loopback (istio_jwks_blocked_cidrs)
                "pilot": {
                    "k8s": {
                        **system,
                        "env": [{"name": "BLOCKED_CIDRS_IN_JWKS_URIS", "value": "169.254.0.0/16,127.0.0.0/8"}],
                    },
                    "enabled": True,
                },
                # the CNI node agent instead of istio-init (NET_ADMIN): injected pods pass Pod Security restricted
                "cni": {"enabled": True},
                "ingressGateways": [
                    {
                        "name": "istio-ingressgateway",
                        "enabled": True,
                        "k8s": {
                            **system,
                            "serviceAnnotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                        },
                    }
                ],
            },
        },
    }


@pytest.mark.parametrize(
    ("version", "allow", "message"),
    [
        (
            "1.28.1",
            True,  # a dev allowance is not a mismatch allowance
            "istio_istioctl_path: '{fake}' is istioctl 1.28.1 but istio_version is {ISTIO}: install istioctl {ISTIO}",
        ),
        (
            "v0.0.0-20260827124520-eed52ebb66ad",
            False,
            "istio_istioctl_path: '{fake}' is istioctl v0.0.0-20260827124520-eed52ebb66ad (a development build) but "
            "istio_version is {ISTIO}: install istioctl {ISTIO}, or set istio_istioctl_allow_dev_build: true to render "
            "the manifest with this build",
        ),
    ],
)
def test_wrong_istioctl_version_fails_naming_both(run_playbook, tmp_path: Path, version, allow, message):
    result = run(run_playbook, tmp_path, version, istio_istioctl_allow_dev_build=allow)
    assert result.returncode != 0
    assert message.format(fake=tmp_path / "istioctl", ISTIO=ISTIO) in result.stdout, result.stdout
    assert not (tmp_path / "iop.yaml").exists()  # nothing rendered


def test_development_build_passes_when_allowed(run_playbook, tmp_path: Path):
    result = run(run_playbook, tmp_path, "v0.0.0-20260827124520-eed52ebb66ad", istio_istioctl_allow_dev_build=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load((tmp_path / "iop.yaml").read_text())["spec"]["tag"] == ISTIO


def test_missing_istioctl_fails_naming_the_variable(run_playbook, tmp_path: Path):
    extra = {
        "istio_istioctl_path": str(tmp_path / "nope"),
        "istio_gateway_jwt_issuer": "https://issuer.example.com",
        "istio_gateway_jwt_jwks_uri": JWKS_URI,
    }
    result = run_playbook(PLAY, "-e", json.dumps(extra))
    assert result.returncode != 0
    assert f"istio_istioctl_path: '{tmp_path / 'nope'}' cannot be run" in result.stdout, result.stdout
