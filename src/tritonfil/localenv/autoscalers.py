"""The local environment's autoscaling engines: Karpenter (kwok cloud provider) and KEDA, as processes.

Both are the upstream controllers built from their Go modules (scripts/tools.sh) and run against the local
API server with its admin kubeconfig:

- Karpenter ``sigs.k8s.io/karpenter/kwok``: watches pending pods and NodePools, picks the cheapest instance
  type of the NodePool's requirements from ``instance-types.json`` (GPU shapes and prices, see
  scripts/gen_instance_types.py), and creates the Node itself after the KWOKNodeClass's registration delay;
  kwok then keeps it Ready (the ``node-initialize-delayed`` stage models an EKS GPU node joining). It
  consolidates and expires nodes like on EKS. Its metrics and health ports bind every interface (no address
  flag): in the loopback-only namespace that is loopback.
- KEDA's operator and metrics API server (``keda-operator``, ``keda-metrics-apiserver``): the operator turns
  ScaledObjects into HPAs and serves trigger values over mutual-TLS gRPC; the metrics server serves
  ``external.metrics.k8s.io`` to the HPA controller through the aggregator, which reaches it at
  ``localhost:PORT`` through an ExternalName Service (what kwokctl does for metrics-server). The certificates
  are made here (one CA, one certificate for both ends with the SANs the aggregator and the gRPC client check);
  KEDA's own rotation would wait for a kubelet to mount a Secret.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from pathlib import Path

INSTANCE_TYPES = Path(__file__).with_name("instance-types.json")
KARPENTER_CRDS = ("nodepools.karpenter.sh", "nodeclaims.karpenter.sh", "kwoknodeclasses.karpenter.kwok.sh")
KEDA_NAMESPACE = "keda"
KEDA_CRDS = (
    "scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh",
    "clustertriggerauthentications.keda.sh", "cloudeventsources.eventing.keda.sh",
    "clustercloudeventsources.eventing.keda.sh",
)  # fmt: skip
KEDA_SERVICE = "keda-metrics-apiserver"
KEDA_APISERVICE = "v1beta1.external.metrics.k8s.io"


def instance_types() -> list[dict]:
    """The instance types Karpenter may launch (the list its INSTANCE_TYPES_FILE_PATH takes)."""
    return json.loads(INSTANCE_TYPES.read_text())["instanceTypes"]


def write_instance_types(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(instance_types(), indent=1) + "\n")
    return path


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA and one certificate (server and client auth) for KEDA's gRPC link and the metrics API server, in the
    file names KEDA reads from --cert-dir (ca.crt, tls.crt, tls.key). Kept when present."""
    files = {"ca": directory / "ca.crt", "cert": directory / "tls.crt", "key": directory / "tls.key"}
    if all(p.exists() for p in files.values()):
        return files
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tritonfil"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "keda-local-ca")])  # fmt: skip
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = ["localhost", "keda-operator", f"keda-operator.{KEDA_NAMESPACE}.svc", KEDA_SERVICE,
             f"{KEDA_SERVICE}.{KEDA_NAMESPACE}.svc"]  # fmt: skip
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keda-local")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files["key"].chmod(0o600)
    return files


def keda_api_manifest(port: int, ca_file: Path) -> str:
    """The namespace, the ExternalName Service to localhost and the APIService for external.metrics.k8s.io (the
    aggregator checks the serving certificate against <service>.<namespace>.svc, which it carries)."""
    ca = base64.b64encode(ca_file.read_bytes()).decode()
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEDA_NAMESPACE}},
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": KEDA_SERVICE, "namespace": KEDA_NAMESPACE,
                         "labels": {"app.kubernetes.io/name": KEDA_SERVICE, "tritonfil.io/local": "true"}},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": KEDA_APISERVICE, "labels": {"tritonfil.io/local": "true"}},
            "spec": {
                "service": {"name": KEDA_SERVICE, "namespace": KEDA_NAMESPACE, "port": port},
                "group": "external.metrics.k8s.io", "version": "v1beta1", "caBundle": ca,
                "groupPriorityMinimum": 100, "versionPriority": 100,
            },
        },
    ]  # fmt: skip
    return "\n---\n".join(json.dumps(d) for d in docs) + "\n"
