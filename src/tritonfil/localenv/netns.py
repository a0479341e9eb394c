"""Network isolation of the local environment.

As root, the local environment and every command that talks to it run in a network namespace
that has only `lo`: simulated pods have fake 10.x addresses and webhooks or aggregated APIs would
otherwise dial them. A connect to a non-loopback address then fails at once (ENETUNREACH).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence

NETNS_ENV = "TRITONFIL_NETNS"


class IsolationError(RuntimeError):
    """The network namespace could not be created, entered or removed."""


def is_root() -> bool:
    return os.geteuid() == 0


def interfaces() -> list[str]:
    """Names of the network interfaces of the current namespace."""
    return sorted(name for _, name in socket.if_nameindex())


def loopback_only() -> bool:
    """True when the current network namespace has no interface but `lo`."""
    return interfaces() == ["lo"]


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def _ip(*args: str) -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    proc = subprocess.run([ip, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise IsolationError(f"ip {' '.join(args)} failed (rc={proc.returncode}): {proc.stderr.strip()}")


def ensure_netns(name: str) -> None:
    """Create network namespace NAME (idempotent) and bring its loopback up."""
    if not netns_exists(name):
        _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")


def delete_netns(name: str) -> None:
    if netns_exists(name):
        _ip("netns", "delete", name)


def wrap(argv: Sequence[str], name: str | None) -> list[str]:
    """ARGV run inside network namespace NAME (unchanged when NAME is None)."""
    if not name:
        return list(argv)
    ip = shutil.which("ip") or "/usr/sbin/ip"
    return [ip, "netns", "exec", name, *argv]


def current_netns_is(name: str) -> bool:
    """True when this process already runs inside the named namespace."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return False
