#!/usr/bin/env python3
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Predict what community.aws.s3_sync (push, file_change_strategy=checksum) would do. Read-only.

s3_sync has no check mode, so the role runs this in check mode instead. It makes the same
decisions as s3_sync 10.0.0 does: files under ROOT whose base name matches the include pattern
("*") and not the exclude pattern (".*"), keyed PREFIX + relative path; a file is uploaded unless an
object with that key has the ETag s3_sync computes locally (the MD5, or the multipart ETag over
boto3's default 8 MiB chunks for larger files); with --delete, keys under PREFIX that no local file
maps to are deleted. A bucket that does not exist yet is empty.

stdout: {"bucket_exists": bool, "upload": [keys], "skip": [keys], "delete": [keys]}.
Exit 1 with a one-line reason on stderr on failure.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import sys

# boto3's TransferConfig default chunk size, which s3_sync computes its local ETags with.
CHUNK_SIZE = 8 * 1024 * 1024


def local_etag(path: str) -> str:
    """The ETag s3_sync compares with (community.aws module_utils/etag.py calculate_multipart_etag)."""
    digests = []
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    if len(digests) == 1:
        return f'"{digests[0].hex()}"'
    return f'"{hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"'


def local_files(root: str, prefix: str, include: str = "*", exclude: str = ".*") -> dict[str, str]:
    """key -> full path, with s3_sync's include/exclude semantics (base name, comma-separated patterns)."""
    files = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not any(fnmatch.fnmatch(name, p) for p in include.split(",")):
                continue
            if any(fnmatch.fnmatch(name, p) for p in exclude.split(",")):
                continue
            full = os.path.join(dirpath, name)
            files[os.path.join(prefix, os.path.relpath(full, start=root))] = full
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="key prefix, ending with / (or empty)")
    parser.add_argument("--root", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", default="")
    parser.add_argument("--delete", action="store_true")
    args = parser.parse_args(argv)

    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        print(f"s3_sync_plan: boto3 is required ({exc})", file=sys.stderr)
        return 1

    files = local_files(args.root, args.prefix)
    remote: dict[str, str] = {}
    exists = True
    try:
        s3 = boto3.client("s3", region_name=args.region, endpoint_url=args.endpoint_url or None)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix):
            remote.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
            print(f"s3_sync_plan: listing s3://{args.bucket}/{args.prefix} failed: {exc}", file=sys.stderr)
            return 1
        exists = False
    except BotoCoreError as exc:
        print(f"s3_sync_plan: listing s3://{args.bucket}/{args.prefix} failed: {exc}", file=sys.stderr)
        return 1

    upload = sorted(k for k, path in files.items() if remote.get(k) != local_etag(path))
    skip = sorted(set(files) - set(upload))
    delete = sorted(set(remote) - set(files)) if args.delete else []
    print(json.dumps({"bucket_exists": exists, "upload": upload, "skip": skip, "delete": delete}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
