#!/usr/bin/env python3
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Write an ECR login into a containers auth file (the format skopeo --authfile reads).

ECR has no module in amazon.aws or community.aws that returns a registry login, and skopeo has
no ECR credential helper built in. This asks ECR for an authorization token (GetAuthorizationToken,
through boto3 and the usual AWS credential chain) and writes it, unchanged, as the ``auth`` entry
of REGISTRY in AUTHFILE (created 0600): the token is base64("AWS:<password>"), exactly the value
that field holds. The token never reaches stdout, so it never enters an Ansible variable.

stdout: one JSON object without any secret: {"registry": HOST, "expires_at": ISO-8601}.
Exit 1 with a one-line reason on stderr on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import urlparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", default="", help="AWS API endpoint override; empty for AWS")
    parser.add_argument("--registry", default="", help="registry host[:port] to log in to; default: the ECR one")
    parser.add_argument("--authfile", required=True)
    args = parser.parse_args(argv)

    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        print(f"ecr_login: boto3 is required ({exc})", file=sys.stderr)
        return 1

    try:
        client = boto3.client("ecr", region_name=args.region, endpoint_url=args.endpoint_url or None)
        data = client.get_authorization_token()["authorizationData"][0]
    except (BotoCoreError, ClientError) as exc:
        print(f"ecr_login: ecr:GetAuthorizationToken failed in {args.region}: {exc}", file=sys.stderr)
        return 1

    registry = args.registry or urlparse(data["proxyEndpoint"]).netloc
    auth = {"auths": {registry: {"auth": data["authorizationToken"]}}}
    fd = os.open(args.authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(auth, f)
    os.chmod(args.authfile, 0o600)
    expires = data.get("expiresAt")
    print(json.dumps({"registry": registry, "expires_at": expires.isoformat() if expires else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
