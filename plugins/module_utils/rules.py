# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""One implementation of every naming rule the collection checks (no Ansible imports).

The roles' preflights (through the test and filter plugins in plugins/test and plugins/filter), the
modules, the Python package and the site-level check all call these functions; no other file may
restate a rule (tests/unit/test_rules.py fails when a second copy of the region or bucket pattern
appears in the repository).

Each ``check_*`` function returns ``None`` when the value is valid, else a sentence that names what is
wrong and gives an example; the ``is_*`` wrappers return a bool.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "PARTITIONS",
    "arn",
    "aws_partition",
    "check_api_endpoint_exposure",
    "check_aws_region",
    "check_cidr",
    "check_dns_label",
    "check_ecr_repository_name",
    "check_gateway_exposure",
    "check_endpoint_url",
    "check_image_reference",
    "check_image_tag",
    "check_kms_key_arn",
    "check_s3_bucket_name",
    "check_s3_prefix",
    "check_s3_uri",
    "image_join",
    "image_split",
    "is_aws_region",
    "is_dns_label",
    "is_endpoint_url",
    "is_s3_bucket_name",
    "s3_uri",
    "s3_uri_split",
]

# AWS partitions and the region prefixes that belong to them (botocore's endpoints.json, partitions
# aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc).
PARTITIONS = {
    "aws-us-gov": ("us-gov-",),
    "aws-cn": ("cn-",),
    "aws-iso": ("us-iso-",),
    "aws-iso-b": ("us-isob-",),
    "aws-iso-e": ("eu-isoe-",),
    "aws-iso-f": ("us-isof-",),
    "aws-eusc": ("eusc-",),
}
_REGION = re.compile(r"^(?:[a-z]{2}|us-gov|us-iso[a-z]?|eu-iso[a-z]|eusc-[a-z]{2})-[a-z]+-[0-9]{1,2}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_ENDPOINT = re.compile(r"^https?://[^/\s?#]+/?$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_ECR_REPOSITORY = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def aws_partition(region: str) -> str:
    """The partition a region belongs to (``aws`` unless the region is one of another partition's)."""
    for partition, prefixes in PARTITIONS.items():
        if region.startswith(prefixes):
            return partition
    return "aws"


def check_aws_region(region: object) -> str | None:
    if isinstance(region, str) and _REGION.match(region):
        return None
    return f"'{region}' is not an AWS region name (e.g. us-east-1, eu-west-3, us-gov-west-1, cn-north-1)"


def is_aws_region(region: object) -> bool:
    return check_aws_region(region) is None


def check_s3_bucket_name(name: object) -> str | None:
    """The S3 general purpose bucket naming rules (AWS S3 user guide, "Bucket naming rules")."""
    if not isinstance(name, str) or not _BUCKET.match(name):
        return (
            f"'{name}' is not a valid S3 bucket name (3-63 characters of lowercase letters, digits, '.' and '-',"
            " starting and ending with a letter or digit)"
        )
    if ".." in name:
        return f"'{name}' is not a valid S3 bucket name (no two adjacent periods)"
    if _IPV4.match(name):
        return f"'{name}' is not a valid S3 bucket name (it must not look like an IP address)"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            return f"'{name}' is not a valid S3 bucket name (the prefix '{prefix}' is reserved)"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if name.endswith(suffix):
            return f"'{name}' is not a valid S3 bucket name (the suffix '{suffix}' is reserved)"
    return None


def is_s3_bucket_name(name: object) -> bool:
    return check_s3_bucket_name(name) is None


def check_s3_prefix(prefix: object) -> str | None:
    if not isinstance(prefix, str):
        return f"'{prefix}' is not a key prefix (a string)"
    if prefix.startswith("/") or prefix.endswith("/"):
        return f"'{prefix}' must not start or end with '/' (e.g. models, or empty for the bucket root)"
    if "//" in prefix or any(part in (".", "..") for part in prefix.split("/")):
        return f"'{prefix}' must not contain '//', '.' or '..' segments"
    return None


def s3_uri(bucket: str, prefix: str = "", *parts: str) -> str:
    """``s3://bucket[/prefix][/part...]`` with no doubled or trailing '/'."""
    path = "/".join(p.strip("/") for p in (prefix, *parts) if p and p.strip("/"))
    return f"s3://{bucket}/{path}" if path else f"s3://{bucket}"


def s3_uri_split(uri: str) -> dict[str, str]:
    """``s3://bucket/prefix`` -> {"bucket", "prefix"}; ValueError naming the problem otherwise."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"'{uri}' is not an s3://bucket[/prefix] URI")
    bucket, _sep, prefix = uri[len("s3://") :].partition("/")
    problem = check_s3_bucket_name(bucket)
    if problem:
        raise ValueError(f"'{uri}': bucket {problem}")
    prefix = prefix.rstrip("/")
    problem = check_s3_prefix(prefix)
    if problem:
        raise ValueError(f"'{uri}': prefix {problem}")
    return {"bucket": bucket, "prefix": prefix}


def check_s3_uri(uri: object) -> str | None:
    try:
        s3_uri_split(uri)  # type: ignore[arg-type]
    except ValueError as exc:
        return str(exc)
    return None


def check_endpoint_url(url: object) -> str | None:
    """An AWS API endpoint override: http(s)://host[:port] (no path), or empty for AWS itself."""
    if url in ("", None) or (isinstance(url, str) and _ENDPOINT.match(url)):
        return None
    return f"'{url}' is not an endpoint URL (http(s)://host[:port], no path; or empty for AWS)"


def is_endpoint_url(url: object) -> bool:
    return check_endpoint_url(url) is None


def check_dns_label(name: object) -> str | None:
    if isinstance(name, str) and _DNS_LABEL.match(name):
        return None
    return (
        f"'{name}' is not a DNS label (at most 63 lowercase letters, digits and '-', starting and ending alphanumeric)"
    )


def is_dns_label(name: object) -> bool:
    return check_dns_label(name) is None


def check_ecr_repository_name(name: object) -> str | None:
    if isinstance(name, str) and 2 <= len(name) <= 256 and _ECR_REPOSITORY.match(name):
        return None
    return (
        f"'{name}' is not a valid ECR repository name (2-256 characters: lowercase letters, digits and . _ - /,"
        " starting and ending with a letter or digit)"
    )


def check_image_tag(tag: object) -> str | None:
    if isinstance(tag, str) and _TAG.match(tag):
        return None
    return f"'{tag}' is not a valid image tag (at most 128 letters, digits, _ . -, not starting with . or -)"


def image_split(reference: str) -> dict[str, str]:
    """Split an image reference as the chart takes it: ``repository`` plus ``digest`` or ``tag``.

    ``repo[:tag]@sha256:...`` -> repository + digest (the tag is dropped: the digest decides),
    ``repo:tag`` -> repository + tag (a registry port is not a tag), ``repo`` -> repository only.
    """
    problem = check_image_reference(reference)
    if problem:
        raise ValueError(problem)
    name, _sep, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    repository = name[: -(len(tag) + 1)] if tag else name
    out = {"repository": repository}
    if digest:
        out["digest"] = digest
    elif tag:
        out["tag"] = tag
    return out


def image_join(parts: dict[str, str]) -> str:
    """The inverse of `image_split`: repository@digest, else repository:tag, else repository."""
    repository = parts["repository"]
    if parts.get("digest"):
        return f"{repository}@{parts['digest']}"
    if parts.get("tag"):
        return f"{repository}:{parts['tag']}"
    return repository


def check_image_reference(reference: object) -> str | None:
    """repo[:tag][@sha256:<64 hex>], no whitespace."""
    if not isinstance(reference, str) or not reference or re.search(r"\s", reference):
        return f"'{reference}' is not an image reference (repository[:tag] or repository@sha256:<64 hex>)"
    name, sep, digest = reference.partition("@")
    if sep and not _DIGEST.match(digest):
        return f"'{reference}': the digest must be sha256:<64 hex>"
    if not name or name.startswith(("/", ":")) or name.endswith(("/", ":")):
        return f"'{reference}' is not an image reference (repository[:tag] or repository@sha256:<64 hex>)"
    last = name.rsplit("/", 1)[-1]
    if ":" in last and check_image_tag(last.split(":", 1)[1]):
        return f"'{reference}': {check_image_tag(last.split(':', 1)[1])}"
    return None


def arn(service: str, resource: str, *, region: str = "", account: str = "", partition: str = "") -> str:
    """``arn:<partition>:<service>:<region>:<account>:<resource>``; the partition defaults to REGION's
    (IAM and S3 ARNs have no region: pass it anyway to get the partition right, ``region_in_arn`` decides
    whether it appears)."""
    part = partition or aws_partition(region or "us-east-1")
    in_arn = "" if service in ("iam", "s3", "sts", "route53", "cloudfront") else region
    return f"arn:{part}:{service}:{in_arn}:{account}:{resource}"


# -- exposure: what may be reached from where (security opt-outs) -----------------------------------------------------


def check_cidr(value: object) -> str | None:
    """An IPv4 or IPv6 network in CIDR notation with its host bits zero (what EKS and a load balancer accept)."""
    if isinstance(value, str) and "/" in value:
        try:
            ipaddress.ip_network(value, strict=True)
            return None
        except ValueError:
            try:
                suggestion = str(ipaddress.ip_network(value, strict=False))
            except ValueError:
                suggestion = ""
            if suggestion:
                return f"'{value}' has host bits set: write the network, '{suggestion}'"
    return f"'{value}' is not a CIDR block (e.g. 203.0.113.0/24, 198.51.100.7/32 or 2001:db8::/32)"


def _open_to_all(cidrs: list[str]) -> bool:
    return any(str(c) in ("0.0.0.0/0", "::/0") for c in cidrs)


def check_api_endpoint_exposure(settings: object) -> str | None:
    """The EKS API endpoint: a public endpoint needs the CIDRs allowed to it, named (``0.0.0.0/0`` is a deliberate
    choice); keys ``public`` (bool), ``private`` (bool), ``cidrs`` (list), ``prefix`` (the role's variable prefix)."""
    if not isinstance(settings, dict):
        return f"expected a mapping (public, private, cidrs, prefix), got {type(settings).__name__}"
    pre = settings.get("prefix", "")
    public, private, cidrs = bool(settings.get("public")), bool(settings.get("private")), settings.get("cidrs") or []
    if not public and not private:
        return (
            f"{pre}endpoint_public_access and {pre}endpoint_private_access are both false: the Kubernetes API would "
            "be reachable from nowhere (EKS refuses it); keep the private endpoint"
        )
    if public and not cidrs:
        return (
            f"{pre}public_access_cidrs is empty while {pre}endpoint_public_access is true: the Kubernetes API would be "
            "open to any address. List the networks that administer the cluster (e.g. ['203.0.113.0/24']), set "
            f"{pre}endpoint_public_access: false (private endpoint only: run from inside the VPC), or open it on "
            "purpose with ['0.0.0.0/0']"
        )
    return None


def check_gateway_exposure(settings: object) -> str | None:
    """The inference endpoint: an internet-facing load balancer open to any address without authentication is
    refused unless acknowledged. Keys ``internal`` (bool), ``source_ranges`` (list), ``jwt`` (bool),
    ``acknowledged`` (bool), ``prefix`` (the role's variable prefix)."""
    if not isinstance(settings, dict):
        return f"expected a mapping (internal, source_ranges, jwt, acknowledged, prefix), got {type(settings).__name__}"
    pre = settings.get("prefix", "")
    ranges = settings.get("source_ranges") or []
    open_to_all = not ranges or _open_to_all(ranges)
    if settings.get("jwt") or settings.get("internal") or not open_to_all or settings.get("acknowledged"):
        return None
    return (
        f"{pre}jwt_enabled is false, {pre}internal is false (an internet-facing load balancer) and "
        f"{pre}source_ranges {'is empty' if not ranges else 'includes every address'}: anyone on the internet could "
        f"run inference on the GPUs. Turn JWT on ({pre}jwt_enabled with {pre}jwt_issuer and {pre}jwt_jwks_uri), "
        f"make the load balancer internal ({pre}internal: true), list the client networks ({pre}source_ranges), or "
        f"accept it explicitly with {pre}public_unauthenticated_acknowledged: true"
    )


_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")


def check_kms_key_arn(value: object) -> str | None:
    """A KMS key ARN (IAM policies and EKS take the key's ARN, not an alias or a bare key id)."""
    if isinstance(value, str) and _KMS_KEY_ARN.match(value):
        return None
    return f"'{value}' is not a KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID; not an alias or a key id)"
