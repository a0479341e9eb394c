# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors
"""Mirror an image into ECR with skopeo: login, digest compare, copy (no Ansible imports).

``Skopeo`` wraps the CLI the way kubernetes.core's helm module_utils wraps helm: one class, argv built
as lists, ``LC_ALL=C``, one error type carrying the command, stdout and stderr. The command runner is
injected (the module passes ``AnsibleModule.run_command``; tests pass a fake).

The ECR login lives only in a private temporary directory (0700) holding a 0600 ``auth.json`` that
exists while skopeo runs and is removed afterwards, also when the run is interrupted (SIGINT/SIGTERM
raise through the ``finally``). The token is written unchanged as the ``auth`` entry (it already is
base64("AWS:<password>")) and never reaches a command line, a return value or a log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlparse

# skopeo transports; a reference without one is a registry image (docker://).
TRANSPORTS = (
    "docker:",
    "oci:",
    "oci-archive:",
    "dir:",
    "docker-archive:",
    "containers-storage:",
    "docker-daemon:",
    "sif:",
    "tarball:",
    "ostree:",
)
# What skopeo prints for a tag or repository that is not there (the copy is needed).
ABSENT = re.compile(
    r"manifest unknown|name unknown|MANIFEST_UNKNOWN|NAME_UNKNOWN|repository .* does not exist|not found"
)
# What says the registry was never asked (a credential helper of ~/.docker/config.json that cannot be run, ...):
# whatever else the message holds ("executable file not found"), the image is not known to be absent.
NOT_ASKED = re.compile(r"error getting credentials|getting username and password|executable file not found")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

Runner = Callable[[Sequence[str], dict], "tuple[int, str, str]"]


class EcrMirrorError(Exception):
    """A step of the mirror failed; carries what the module returns on failure."""

    def __init__(self, msg: str, command: Sequence[str] = (), stdout: str = "", stderr: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.command = list(command)
        self.stdout = stdout
        self.stderr = stderr

    def result(self) -> dict:
        return {"msg": self.msg, "command": self.command, "stdout": self.stdout, "stderr": self.stderr}


def source_reference(image: str) -> str:
    """IMAGE as skopeo takes it: unchanged with a transport, else ``docker://IMAGE``."""
    return image if image.startswith(TRANSPORTS) else f"docker://{image}"


@contextlib.contextmanager
def private_authfile(registry: str, token: str) -> Iterator[str]:
    """A containers auth file for REGISTRY holding TOKEN, in a 0700 directory removed on exit.

    SIGTERM is turned into an exception for the duration, so ``finally`` removes the file whether the
    run ends, fails, or is interrupted (SIGINT already raises KeyboardInterrupt).
    """
    directory = tempfile.mkdtemp(prefix="tritonfil-ecr-")
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave SIGTERM alone

        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        path = os.path.join(directory, "auth.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {registry: {"auth": token}}}, f)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Skopeo:
    """The skopeo CLI: inspect a digest, copy an image."""

    def __init__(self, run: Runner, path: str = "skopeo", retries: int = 3) -> None:
        self.run = run
        self.path = path
        self.retries = retries

    def _argv(self, *args: str) -> list[str]:
        return [self.path, *args]

    def version(self) -> str:
        argv = self._argv("--version")
        rc, out, err = self.run(argv, {"LC_ALL": "C"})
        if rc != 0:
            raise EcrMirrorError(f"skopeo cannot be run: {err.strip() or out.strip()}", argv, out, err)
        found = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
        return found.group(1) if found else ""

    def digest(self, ref: str, authfile: str | None = None, tls_verify: bool = True) -> str | None:
        """The manifest digest of REF, or None when the tag (or repository) is not there."""
        args = ["inspect", "--no-tags", f"--retry-times={self.retries}", "--format={{.Digest}}"]
        if authfile:
            args.append(f"--authfile={authfile}")
        if ref.startswith("docker://"):
            args.append(f"--tls-verify={str(tls_verify).lower()}")
        argv = self._argv(*args, ref)
        rc, out, err = self.run(argv, {"LC_ALL": "C"})
        if rc != 0:
            if ABSENT.search(err) and not NOT_ASKED.search(err):
                return None
            raise EcrMirrorError(f"cannot read {ref}: {err.strip()}", argv, out, err)
        digest = out.strip()
        if not DIGEST.match(digest):
            raise EcrMirrorError(f"skopeo inspect {ref} printed no sha256 digest: {digest!r}", argv, out, err)
        return digest

    def copy(self, source: str, destination: str, authfile: str, tls_verify: bool = True) -> None:
        """Copy every platform of SOURCE to DESTINATION keeping its digests."""
        argv = self._argv(
            "copy", "--multi-arch=all", "--preserve-digests", f"--retry-times={self.retries}", "--quiet",
            f"--dest-authfile={authfile}", f"--dest-tls-verify={str(tls_verify).lower()}", source, destination,
        )  # fmt: skip
        rc, out, err = self.run(argv, {"LC_ALL": "C"})
        if rc != 0:
            raise EcrMirrorError(f"copying {source} to {destination} failed: {err.strip()}", argv, out, err)

    def delete(self, ref: str, authfile: str, tls_verify: bool = True) -> None:
        argv = self._argv(
            "delete",
            f"--retry-times={self.retries}",
            f"--authfile={authfile}",
            f"--tls-verify={str(tls_verify).lower()}",
            ref,
        )
        rc, out, err = self.run(argv, {"LC_ALL": "C"})
        if rc != 0 and not ABSENT.search(err):
            raise EcrMirrorError(f"deleting {ref} failed: {err.strip()}", argv, out, err)


def ecr_login(ecr_client: object, registry_override: str = "") -> tuple[str, str]:
    """(registry host, auth token) from ecr:GetAuthorizationToken: the host of its proxyEndpoint (the
    account's registry in the client's region and partition), or REGISTRY_OVERRIDE when given."""
    data = ecr_client.get_authorization_token()["authorizationData"][0]
    token = data["authorizationToken"]
    try:
        if not base64.b64decode(token, validate=True).startswith(b"AWS:"):
            raise ValueError
    except ValueError:
        raise EcrMirrorError("ecr:GetAuthorizationToken returned a token that is not base64('AWS:...')") from None
    host = registry_override or urlparse(data["proxyEndpoint"]).netloc
    return host, token


def plan(
    source_digest: str, destination_digest: str | None, immutable: bool, destination: str, tag_option: str
) -> bool:
    """Whether a copy is needed; refuses to move an immutable tag (naming TAG_OPTION, the variable to change)."""
    if destination_digest == source_digest:
        return False
    if destination_digest is not None and immutable:
        raise EcrMirrorError(
            f"{tag_option}: {destination} holds {destination_digest}, the source is now {source_digest}, and the"
            f" repository's tags are immutable: mirror it under a new {tag_option}"
        )
    return True
