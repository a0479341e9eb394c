"""Build script of the `tritonfil` wheel: the package, and the tritonfil.eks collection it runs.

Everything else about the package is in pyproject.toml. What this adds: the wheel carries the collection
at ``ansible_collections/tritonfil/eks/`` (so pip installs it into site-packages, next to the collections
the ``ansible`` package ships, where ansible-core and ``tritonfil.collection`` find it), holding exactly
the files ``ansible-galaxy collection build`` puts into the collection tarball: the repository walked the
way ansible-core walks it, with its default ignores and galaxy.yml's ``build_ignore`` (read at build time),
plus the MANIFEST.json and FILES.json that the build writes instead of galaxy.yml.

Editable installs (``pip install -e .``, which ``make setup`` runs) copy nothing: there ``make setup`` links
``site-packages/ansible_collections/tritonfil/eks`` to the checkout.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import stat

import yaml
from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
#: As ansible-core's collection build: ansible.galaxy.collection._build_files_manifest_walk.
DEFAULT_IGNORE_PATTERNS = ["MANIFEST.json", "FILES.json", "galaxy.yml", "galaxy.yaml", ".git", "*.pyc", "*.retry"]
DEFAULT_IGNORE_PATTERNS += ["tests/output"]
IGNORE_DIRS = frozenset(["CVS", ".bzr", ".hg", ".git", ".svn", "__pycache__", ".tox"])
MANIFEST_FORMAT = 1
#: galaxy.yml keys of MANIFEST.json's collection_info, with the defaults ansible-galaxy gives absent ones.
COLLECTION_INFO = {
    "namespace": None,
    "name": None,
    "version": None,
    "authors": [],
    "readme": None,
    "tags": [],
    "description": None,
    "license": [],
    "license_file": None,
    "dependencies": {},
    "repository": None,
    "documentation": None,
    "homepage": None,
    "issues": None,
}


def galaxy_meta(root: str = HERE) -> dict:
    with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    if meta.get("manifest") is not None:
        raise SystemExit("setup.py: galaxy.yml uses `manifest` directives; this build applies `build_ignore` only")
    return meta


def collection_files(root: str = HERE, meta: dict | None = None, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(relative path, 'dir' | 'file') of everything ``ansible-galaxy collection build`` takes from ROOT, in
    its walk order; SKIP: relative paths never to descend into (this build's own output directories)."""
    meta = meta or galaxy_meta(root)
    patterns = [*DEFAULT_IGNORE_PATTERNS, f"{meta['namespace']}-{meta['name']}-*.tar.gz"]
    patterns += list(meta.get("build_ignore") or [])
    real_root = os.path.realpath(root)
    found: list[tuple[str, str]] = []

    def ignored(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, p) for p in patterns)

    def walk(path: str, rel_base: str) -> None:
        for item in os.listdir(path):
            abs_path = os.path.join(path, item)
            rel = os.path.join(rel_base, item)
            if os.path.isdir(abs_path):
                if item in IGNORE_DIRS or ignored(rel) or rel in skip:
                    continue
                if os.path.islink(abs_path):
                    target = os.path.realpath(abs_path)
                    if os.path.commonpath([target, real_root]) != real_root:
                        continue  # ansible-galaxy skips (with a warning) a link to a directory outside
                    raise SystemExit(f"setup.py: {rel} is a symlink to a directory: a wheel cannot carry it")
                found.append((rel, "dir"))
                walk(abs_path, rel)
            elif not ignored(rel):
                found.append((rel, "file"))

    walk(root, "")
    return found


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(name: str, ftype: str, chksum: str | None = None) -> dict:
    return {
        "name": name,
        "ftype": ftype,
        "chksum_type": "sha256" if chksum else None,
        "chksum_sha256": chksum,
        "format": MANIFEST_FORMAT,
    }


def copy_collection(root: str, dest: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy the collection's files from ROOT into DEST as an installed collection (its files, MANIFEST.json,
    FILES.json, as ``ansible-galaxy collection install`` of the built tarball leaves them). Returns the files
    written."""
    meta = galaxy_meta(root)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    files = [_entry(".", "dir")]
    written = []
    for rel, ftype in collection_files(root, meta, skip):
        src, out = os.path.join(root, rel), os.path.join(dest, rel)
        if ftype == "dir":
            os.makedirs(out, exist_ok=True)
            files.append(_entry(rel, "dir"))
            continue
        shutil.copyfile(src, out)  # a link's content: a wheel holds no symlinks
        executable = os.stat(src).st_mode & stat.S_IXUSR
        os.chmod(out, 0o755 if executable else 0o644)
        files.append(_entry(rel, "file", _sha256(src)))
        written.append(out)
    files_json = json.dumps({"files": files, "format": MANIFEST_FORMAT}, indent=True).encode()
    info = {key: meta.get(key, default) for key, default in COLLECTION_INFO.items()}
    info["license_file"] = info["license_file"] or None
    manifest = {
        "collection_info": info,
        "file_manifest_file": {
            "name": "FILES.json",
            "ftype": "file",
            "chksum_type": "sha256",
            "chksum_sha256": hashlib.sha256(files_json).hexdigest(),
            "format": MANIFEST_FORMAT,
        },
        "format": MANIFEST_FORMAT,
    }
    for name, data in (("MANIFEST.json", json.dumps(manifest, indent=True).encode()), ("FILES.json", files_json)):
        path = os.path.join(dest, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        written.append(path)
    return written


class BuildPyWithCollection(build_py):
    """build_py, then the collection into build/lib/ansible_collections/<namespace>/<name>/ (not when editable)."""

    def run(self) -> None:
        super().run()
        self._collection_outputs: list[str] = []
        if getattr(self, "editable_mode", False):
            return  # pip install -e: `make setup` links site-packages/ansible_collections/tritonfil/eks instead
        meta = galaxy_meta(HERE)
        dest = os.path.join(self.build_lib, "ansible_collections", meta["namespace"], meta["name"])
        # Never copy this build's own output into itself (build/ and dist/ are in build_ignore as well).
        outputs = {os.path.abspath(d) for d in (self.build_lib, os.path.dirname(os.path.abspath(self.build_lib)))}
        skip = tuple(os.path.relpath(d, HERE) for d in outputs if os.path.commonpath([d, HERE]) == HERE)
        self._collection_outputs = copy_collection(HERE, dest, skip)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_collection_outputs", [])]


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPyWithCollection})
