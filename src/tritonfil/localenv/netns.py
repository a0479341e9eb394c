"""Network isolation of the local environment: the one place that decides which namespace a command runs in.

As root, the local environment and every command that talks to it run in a network namespace
that has only `lo`: simulated pods have fake 10.x addresses and webhooks or aggregated APIs would
otherwise dial them. A connect to a non-loopback address then fails at once (ENETUNREACH).

Two kinds of namespace, and `isolation_prefix(kind)` gives the argv prefix that runs a command in one:

- ``LOCAL``: the named namespace ``tritonfil`` of the user's local environment (`tritonfil local up`
  creates it; `local exec/status/down`, `tritonfil deploy|plan|... -i local` and the API's local runs
  enter it);
- ``FRESH``: a new namespace of its own with `lo` up (`tritonfil isolate -- CMD`, which
  scripts/isolated.sh, scripts/run-pytest.sh, `make bench` and `make local` use): the test suite and
  the benchmarks start their own environments there and never see the user's.

The prefix is empty when there is nothing to do: not root (no namespaces; every service still binds
127.0.0.1), or already isolated (a loopback-only namespace, the named one, or — for ``FRESH`` — a process
tree that a fresh namespace already holds, marked by ``TRITONFIL_ISOLATED=1``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

#: The named network namespace of the local environment.
LOCAL_NETNS = "tritonfil"
#: Set to 1 in everything a FRESH namespace runs: a nested `tritonfil isolate` then adds nothing.
ISOLATED_ENV = "TRITONFIL_ISOLATED"

LOCAL = "local"
FRESH = "fresh"
KINDS = (LOCAL, FRESH)
#: What a LOCAL prefix does when the named namespace does not exist.
IF_MISSING = ("error", "create", "none")


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


def _ip_path() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


def _unshare_path() -> str:
    return shutil.which("unshare") or "/usr/bin/unshare"


def _ip(*args: str) -> None:
    proc = subprocess.run([_ip_path(), *args], capture_output=True, text=True, check=False)
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
    return [_ip_path(), "netns", "exec", name, *argv]


def current_netns_is(name: str) -> bool:
    """True when this process already runs inside the named namespace."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return False


def not_up_message(name: str = LOCAL_NETNS) -> str:
    return f"the local environment is not up (no network namespace '{name}'): run `tritonfil local up`"


def isolation_prefix(kind: str, *, if_missing: str = "error", environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv prefix that runs a command in the namespace of KIND (``LOCAL`` or ``FRESH``); [] when the
    command may run where it is (not root, or already isolated).

    For ``LOCAL``, IF_MISSING says what to do when the namespace ``tritonfil`` does not exist: ``error``
    (raise `IsolationError`: the environment is not up), ``create`` it (`tritonfil local up`), or ``none``
    (run here: nothing isolated to enter, e.g. `local status` of an environment that is down).
    ``FRESH`` is `unshare --net` with `lo` brought up and ``TRITONFIL_ISOLATED=1`` exported.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown isolation kind {kind!r}: choose from {', '.join(KINDS)}")
    if if_missing not in IF_MISSING:
        raise ValueError(f"unknown if_missing {if_missing!r}: choose from {', '.join(IF_MISSING)}")
    env = os.environ if environ is None else environ
    if not is_root():
        return []
    if kind == FRESH:
        if env.get(ISOLATED_ENV):
            return []
        script = f'export {ISOLATED_ENV}=1; {shlex.quote(_ip_path())} link set lo up && exec "$@"'
        return [_unshare_path(), "--net", "--", "/bin/sh", "-c", script, "tritonfil-isolate"]
    if loopback_only() or current_netns_is(LOCAL_NETNS):
        return []
    if if_missing == "create":
        ensure_netns(LOCAL_NETNS)  # also brings `lo` up again in an existing one
    elif not netns_exists(LOCAL_NETNS):
        if if_missing == "error":
            raise IsolationError(not_up_message())
        return []
    return wrap([], LOCAL_NETNS)


def exec_isolated(kind: str, argv: Sequence[str], *, if_missing: str = "error") -> None:
    """Replace this process with ARGV run in the namespace of KIND, when a prefix is needed; return otherwise."""
    prefix = isolation_prefix(kind, if_missing=if_missing)
    if prefix:
        full = [*prefix, *argv]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvp(full[0], full)
