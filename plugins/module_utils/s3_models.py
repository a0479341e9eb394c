# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Immutable, content-addressed revisions of a Triton model repository in S3 (no Ansible imports).

Layout under ``s3://BUCKET/PREFIX``::

    revisions/<rev>/<model>/...    one complete copy of the repository per revision (what Triton loads)
    manifests/<rev>.json           written last: a revision without one is incomplete and never used
    index.json                     revisions newest first, and the live one (the last one verified)

``<rev>`` is the first 16 hex digits of the repository's content digest (sha256 over the sorted
``path\\0sha256`` of every file), so the same content is always the same revision. A new revision's
files that an existing revision already holds are copied server-side (CopyObject); only new content is
uploaded. ``plan`` decides everything read-only (check mode); ``apply`` carries the plan out and writes
the manifest, then the index, last. Interrupted, a rerun finds the partial revision, uploads what it
lacks and completes it. Pruning keeps the newest ``keep`` revisions and always the live one.

The S3 client is injected (boto3's, or a fake in the unit tests); so is the clock.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .rules import s3_uri, s3_uri_split

# The part size boto3's upload_file uses by default (TransferConfig: 8 MiB threshold and chunks): the
# multipart ETag of a large file is computed over it.
CHUNK_SIZE = 8 * 1024 * 1024
INDEX = "index.json"
REVISIONS = "revisions"
MANIFESTS = "manifests"
FORMAT = 1

__all__ = [
    "FileEntry",
    "Plan",
    "S3ModelsError",
    "apply",
    "bucket_is_empty",
    "content_digest",
    "delete_all",
    "download_references",
    "local_files",
    "parse_revision_uri",
    "plan",
    "read_index",
    "revision_uri",
]


class S3ModelsError(Exception):
    """A step failed; the message names the key or the file."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated
    sha256: str
    etag: str  # the ETag S3 gives this content uploaded with boto3's defaults
    size: int


def _etag(path: str) -> tuple[str, str, int]:
    """(sha256, the ETag S3 gives the file uploaded by boto3's upload_file, size)."""
    sha = hashlib.sha256()
    parts = []
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            sha.update(chunk)
            parts.append(hashlib.md5(chunk, usedforsecurity=False).digest())
            size += len(chunk)
    if len(parts) > 1:  # multipart: md5 of the parts' md5s, dash, part count
        etag = f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"
    else:
        etag = (parts[0] if parts else hashlib.md5(b"", usedforsecurity=False).digest()).hex()
    return sha.hexdigest(), f'"{etag}"', size


def local_files(root: str) -> dict[str, FileEntry]:
    """Every file under ROOT but hidden ones (a name starting with '.'), by relative path."""
    if not os.path.isdir(root):
        raise S3ModelsError(f"{root} is not a directory")
    out: dict[str, FileEntry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            sha, etag, size = _etag(full)
            out[rel] = FileEntry(rel, sha, etag, size)
    if not out:
        raise S3ModelsError(f"{root} holds no files")
    return out


def content_digest(files: dict[str, FileEntry]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel].sha256}\n".encode())
    return h.hexdigest()


def _key(prefix: str, *parts: str) -> str:
    return "/".join(p.strip("/") for p in (prefix, *parts) if p and p.strip("/"))


def revision_uri(bucket: str, prefix: str, revision: str) -> str:
    return s3_uri(bucket, prefix, REVISIONS, revision)


def parse_revision_uri(uri: str) -> dict[str, str]:
    """``s3://BUCKET/PREFIX/revisions/REV`` -> {"bucket", "prefix", "revision"}; ValueError otherwise."""
    split = s3_uri_split(uri)
    parts = split["prefix"].split("/")
    if len(parts) < 2 or parts[-2] != REVISIONS or not parts[-1]:
        raise ValueError(f"'{uri}' is not a model revision URI (s3://BUCKET/PREFIX/{REVISIONS}/REV)")
    return {"bucket": split["bucket"], "prefix": "/".join(parts[:-2]), "revision": parts[-1]}


def download_references(s3: Any, uri: str, dest: str) -> list[str]:
    """Every ``<model>/reference.json`` of the revision at URI into DEST/<model>/reference.json; the models."""
    where = parse_revision_uri(uri)
    base = _key(where["prefix"], REVISIONS, where["revision"])
    models = []
    for key in sorted(_list(s3, where["bucket"], base)):
        rel = key[len(base) + 1 :]
        if rel.count("/") == 1 and rel.endswith("/reference.json"):
            model = rel.split("/", 1)[0]
            os.makedirs(os.path.join(dest, model), exist_ok=True)
            s3.download_file(where["bucket"], key, os.path.join(dest, model, "reference.json"))
            models.append(model)
    return models


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound")


def _get_json(s3: Any, bucket: str, key: str) -> dict | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    try:
        return json.loads(body)
    except ValueError as exc:
        raise S3ModelsError(f"s3://{bucket}/{key} is not JSON: {exc}") from None


def read_index(s3: Any, bucket: str, prefix: str) -> dict:
    """index.json, or an empty index when the bucket or the index does not exist yet."""
    index = _get_json(s3, bucket, _key(prefix, INDEX))
    if index is None:
        return {"format": FORMAT, "revisions": [], "live": None}
    if index.get("format") != FORMAT:
        raise S3ModelsError(f"s3://{bucket}/{_key(prefix, INDEX)} has format {index.get('format')}, expected {FORMAT}")
    return index


def _list(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key -> ETag of every object under PREFIX/ (empty when the bucket does not exist)."""
    out: dict[str, str] = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    except Exception as exc:
        if _is_missing(exc):
            return {}
        raise
    return out


@dataclass
class Plan:
    bucket: str
    prefix: str
    revision: str
    digest: str
    files: dict[str, FileEntry]
    models: list[str]
    exists: bool  # the revision is complete in S3 already
    upload: list[str] = field(default_factory=list)  # relative paths
    copy: dict[str, str] = field(default_factory=dict)  # relative path -> source key
    present: list[str] = field(default_factory=list)  # already in the (partial) revision
    prune: list[str] = field(default_factory=list)  # revisions to delete
    previous: str | None = None  # the newest revision before this run
    changed_models: list[str] = field(default_factory=list)
    index: dict = field(default_factory=dict)  # the index as it is now
    index_changes: bool = False

    @property
    def uri(self) -> str:
        return revision_uri(self.bucket, self.prefix, self.revision)

    @property
    def changed(self) -> bool:
        return bool(self.upload or self.copy or self.prune or self.index_changes or not self.exists)

    def key(self, rel: str) -> str:
        return _key(self.prefix, REVISIONS, self.revision, rel)


def _models(files: dict[str, FileEntry]) -> list[str]:
    return sorted({rel.split("/", 1)[0] for rel in files if "/" in rel})


def plan(s3: Any, bucket: str, prefix: str, root: str, keep: int = 5) -> Plan:
    """What `apply` would do to make ROOT's content a complete revision (read-only)."""
    if keep < 1:
        raise S3ModelsError(f"keep must be at least 1, not {keep}")
    files = local_files(root)
    digest = content_digest(files)
    revision = digest[:16]
    index = read_index(s3, bucket, prefix)
    entries = index["revisions"]
    previous = entries[0]["revision"] if entries else None
    p = Plan(bucket, prefix, revision, digest, files, _models(files), exists=False, previous=previous, index=index)
    manifest = _get_json(s3, bucket, _key(prefix, MANIFESTS, f"{revision}.json"))
    p.exists = manifest is not None and manifest.get("digest") == digest
    if not p.exists:
        # Where each content already is: the files of complete revisions (their manifests).
        sources: dict[str, str] = {}
        for entry in entries:
            other = _get_json(s3, bucket, _key(prefix, MANIFESTS, f"{entry['revision']}.json")) or {}
            for rel, meta in (other.get("files") or {}).items():
                sources.setdefault(meta["sha256"], _key(prefix, REVISIONS, entry["revision"], rel))
        there = _list(s3, bucket, _key(prefix, REVISIONS, revision))
        for rel, entry in files.items():
            if there.get(p.key(rel)) == entry.etag:
                p.present.append(rel)
            elif entry.sha256 in sources:
                p.copy[rel] = sources[entry.sha256]
            else:
                p.upload.append(rel)
    if previous and previous != revision:
        before = _get_json(s3, bucket, _key(prefix, MANIFESTS, f"{previous}.json")) or {}
        old = {rel: meta["sha256"] for rel, meta in (before.get("files") or {}).items()}
        new = {rel: e.sha256 for rel, e in files.items()}
        p.changed_models = sorted(
            {rel.split("/", 1)[0] for rel in set(old) | set(new) if "/" in rel and old.get(rel) != new.get(rel)}
        )
    elif not previous:
        p.changed_models = list(p.models)
    p.index_changes = previous != revision
    # The newest KEEP revisions after this one is first, and always the live one.
    order = [revision] + [e["revision"] for e in entries if e["revision"] != revision]
    protected = set(order[:keep]) | ({index.get("live")} if index.get("live") else set())
    p.prune = [r for r in order if r not in protected]
    return p


def _now(clock: Callable[[], datetime.datetime] | None) -> str:
    moment = clock() if clock else datetime.datetime.now(datetime.timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def apply(
    s3: Any,
    p: Plan,
    root: str,
    upload_file: Callable[[str, str, str], None] | None = None,
    clock: Callable[[], datetime.datetime] | None = None,
) -> None:
    """Carry out plan P: copy and upload the revision's files, then its manifest, then the index; prune."""
    put = upload_file or s3.upload_file
    for rel, source in sorted(p.copy.items()):
        try:
            s3.copy_object(Bucket=p.bucket, Key=p.key(rel), CopySource={"Bucket": p.bucket, "Key": source})
        except Exception as exc:
            raise S3ModelsError(f"server-side copy of s3://{p.bucket}/{source} to {p.key(rel)} failed: {exc}") from exc
    for rel in sorted(p.upload):
        put(os.path.join(root, *rel.split("/")), p.bucket, p.key(rel))
    now = _now(clock)
    if not p.exists:
        manifest = {
            "format": FORMAT,
            "revision": p.revision,
            "digest": p.digest,
            "created": now,
            "models": p.models,
            "files": {rel: {"sha256": e.sha256, "size": e.size} for rel, e in sorted(p.files.items())},
        }
        s3.put_object(
            Bucket=p.bucket,
            Key=_key(p.prefix, MANIFESTS, f"{p.revision}.json"),
            Body=json.dumps(manifest, indent=1, sort_keys=True).encode(),
            ContentType="application/json",
        )
    if p.index_changes or not p.exists or p.prune:
        entries = [e for e in p.index["revisions"] if e["revision"] != p.revision]
        first = next((e for e in p.index["revisions"] if e["revision"] == p.revision), None)
        entry = {
            "revision": p.revision,
            "digest": p.digest,
            "created": first["created"] if first else now,
            "deployed": now,
            "models": p.models,
            "size": sum(e.size for e in p.files.values()),
        }
        entries = [entry] + [e for e in entries if e["revision"] not in p.prune]
        index = {"format": FORMAT, "revisions": entries, "live": p.index.get("live")}
        s3.put_object(
            Bucket=p.bucket,
            Key=_key(p.prefix, INDEX),
            Body=json.dumps(index, indent=1, sort_keys=True).encode(),
            ContentType="application/json",
        )
    for revision in p.prune:
        delete_revision(s3, p.bucket, p.prefix, revision)


def delete_revision(s3: Any, bucket: str, prefix: str, revision: str) -> int:
    """Delete a revision's objects and its manifest (the manifest first: it is never half-there)."""
    s3.delete_object(Bucket=bucket, Key=_key(prefix, MANIFESTS, f"{revision}.json"))
    keys = sorted(_list(s3, bucket, _key(prefix, REVISIONS, revision)))
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
    return len(keys)


def delete_all(s3: Any, bucket: str, prefix: str, dry_run: bool = False) -> int:
    """Delete every revision, manifest and the index under PREFIX - every version of them in a versioned bucket -
    and nothing else. Returns the number of object versions (or delete markers) deleted (or that would be)."""
    spaces = [_key(prefix, REVISIONS) + "/", _key(prefix, MANIFESTS) + "/", _key(prefix, INDEX)]
    doomed: list[dict[str, str]] = []
    try:
        for space in spaces:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=space):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if space.endswith("/") or item["Key"] == space:
                        doomed.append({"Key": item["Key"], "VersionId": item["VersionId"]})
    except Exception as exc:
        if _is_missing(exc):
            return 0
        raise
    if not dry_run:
        for start in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True})
    return len(doomed)


def bucket_is_empty(s3: Any, bucket: str) -> bool | None:
    """True when the bucket holds no object version and no delete marker; None when it does not exist."""
    try:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    return not page.get("Versions") and not page.get("DeleteMarkers")


def set_live(s3: Any, bucket: str, prefix: str, revision: str) -> bool:
    """Mark REVISION live in the index (it must be complete); True when that changed the index."""
    index = read_index(s3, bucket, prefix)
    if revision not in [e["revision"] for e in index["revisions"]]:
        raise S3ModelsError(f"revision {revision} is not in s3://{bucket}/{_key(prefix, INDEX)}")
    if index.get("live") == revision:
        return False
    index["live"] = revision
    s3.put_object(
        Bucket=bucket,
        Key=_key(prefix, INDEX),
        Body=json.dumps(index, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return True
