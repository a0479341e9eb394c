"""tritonfil.localenv.netns decides which network namespace a command runs in; the CLI, the API, the scripts and
the Makefile only ask it (`tritonfil isolate -- CMD`, `isolation_prefix`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, VENV_BIN
from tritonfil import api, cli
from tritonfil.localenv import netns

IP = "/usr/sbin/ip"
UNSHARE = "/usr/bin/unshare"
FRESH_PREFIX = [
    UNSHARE, "--net", "--", "/bin/sh", "-c",
    f'export TRITONFIL_ISOLATED=1; {IP} link set lo up && exec "$@"', "tritonfil-isolate",
]  # fmt: skip
LOCAL_PREFIX = [IP, "netns", "exec", "tritonfil"]
NOT_UP = "the local environment is not up (no network namespace 'tritonfil'): run `tritonfil local up`"


@pytest.fixture
def host(monkeypatch):
    """The facts isolation_prefix decides on, set by each test; `created` records ensure_netns calls."""
    state = {"root": True, "lo_only": False, "inside": False, "exists": True, "created": []}
    monkeypatch.setattr(netns, "is_root", lambda: state["root"])
    monkeypatch.setattr(netns, "loopback_only", lambda: state["lo_only"])
    monkeypatch.setattr(netns, "current_netns_is", lambda name: state["inside"] and name == "tritonfil")
    monkeypatch.setattr(netns, "netns_exists", lambda name: state["exists"] and name == "tritonfil")
    monkeypatch.setattr(netns, "ensure_netns", lambda name: state["created"].append(name))
    monkeypatch.setattr(netns.shutil, "which", lambda name: {"ip": IP, "unshare": UNSHARE}.get(name))
    monkeypatch.delenv(netns.ISOLATED_ENV, raising=False)
    return state


def test_fresh_namespace_as_root_unless_already_inside_one(host):
    assert netns.isolation_prefix(netns.FRESH) == FRESH_PREFIX
    host["lo_only"] = True  # today's rule: only the marker a fresh namespace sets counts, as in scripts/isolated.sh
    assert netns.isolation_prefix(netns.FRESH) == FRESH_PREFIX
    assert netns.isolation_prefix(netns.FRESH, environ={"TRITONFIL_ISOLATED": "1"}) == []
    host["root"] = False
    assert netns.isolation_prefix(netns.FRESH) == []


def test_local_namespace_is_entered_as_root_outside_isolation(host):
    assert netns.isolation_prefix(netns.LOCAL) == LOCAL_PREFIX
    for fact in ("lo_only", "inside"):  # already loopback-only / already in `tritonfil`
        host.update({"lo_only": False, "inside": False, fact: True})
        assert netns.isolation_prefix(netns.LOCAL, if_missing="create") == []
    host.update(inside=False, root=False)
    assert netns.isolation_prefix(netns.LOCAL) == []
    assert host["created"] == []


def test_missing_local_namespace_is_an_error_created_or_skipped(host):
    host["exists"] = False
    with pytest.raises(netns.IsolationError) as info:
        netns.isolation_prefix(netns.LOCAL)
    assert str(info.value) == NOT_UP
    assert netns.isolation_prefix(netns.LOCAL, if_missing="none") == []
    assert netns.isolation_prefix(netns.LOCAL, if_missing="create") == LOCAL_PREFIX
    host["exists"] = True  # `local up` again: ensure_netns brings lo up in the existing one too
    assert netns.isolation_prefix(netns.LOCAL, if_missing="create") == LOCAL_PREFIX
    assert host["created"] == ["tritonfil", "tritonfil"]


def test_unknown_kind_or_policy_is_refused():
    with pytest.raises(ValueError, match="unknown isolation kind 'host': choose from local, fresh"):
        netns.isolation_prefix("host")
    with pytest.raises(ValueError, match="unknown if_missing 'skip': choose from error, create, none"):
        netns.isolation_prefix(netns.LOCAL, if_missing="skip")


def test_api_asks_netns_and_types_its_error(host):
    assert api.local_netns_wrapper() == LOCAL_PREFIX
    host["exists"] = False
    with pytest.raises(api.TritonfilError, match="^" + NOT_UP.replace("(", r"\(").replace(")", r"\)")):
        api.local_netns_wrapper()


class Exec(Exception):
    """os.execvp, recorded instead of run."""


@pytest.fixture
def execs(monkeypatch):
    calls: list[list[str]] = []

    def execvp(file: str, argv: list[str]) -> None:
        calls.append(list(argv))
        raise Exec(file)

    monkeypatch.setattr(os, "execvp", execvp)
    return calls


@pytest.mark.parametrize(
    ("argv", "if_missing"),
    [
        (["local", "up"], "create"),
        (["local", "exec", "--", "true"], "error"),
        (["local", "status"], "none"),
        (["local", "down"], "none"),
        (["doctor"], "none"),  # -i local: checks from inside the namespace when there is one
        (["doctor", "-i", "local", "--json"], "none"),
    ],
)
def test_local_commands_rerun_themselves_in_the_local_namespace(host, execs, monkeypatch, argv, if_missing):
    asked: list[tuple[str, str]] = []
    decide = netns.isolation_prefix

    def isolation_prefix(kind: str, *, if_missing: str = "error") -> list[str]:
        asked.append((kind, if_missing))
        return decide(kind, if_missing=if_missing)

    monkeypatch.setattr(netns, "isolation_prefix", isolation_prefix)
    monkeypatch.setattr(sys, "argv", ["tritonfil", *argv])
    with pytest.raises(Exec):
        cli.main(argv)
    assert asked == [(netns.LOCAL, if_missing)]
    assert execs == [[*LOCAL_PREFIX, sys.executable, "-m", "tritonfil.cli", *argv]]


def test_local_exec_without_the_namespace_is_a_one_line_error(host, execs, capsys):
    host["exists"] = False
    assert cli.main(["local", "exec", "--", "true"]) == 1
    assert capsys.readouterr().err == f"tritonfil: {NOT_UP}\n" and execs == []


def test_isolate_runs_the_command_behind_the_fresh_prefix(host, execs, capsys):
    with pytest.raises(Exec):
        cli.main(["isolate", "--", "pytest", "-q"])
    host["root"] = False
    with pytest.raises(Exec):
        cli.main(["isolate", "pytest"])
    assert execs == [[*FRESH_PREFIX, "pytest", "-q"], ["pytest"]]
    assert cli.main(["isolate", "--"]) == 1
    assert capsys.readouterr().err == "tritonfil: isolate needs a command: tritonfil isolate -- CMD [ARGS...]\n"


PROBE = (
    "import json, os, socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
    "c = socket.create_connection(s.getsockname(), timeout=5); "  # lo is up
    "print(json.dumps({'ifaces': sorted(n for _, n in socket.if_nameindex()), "
    "'netns': os.stat('/proc/self/ns/net').st_ino, 'marker': os.environ.get('TRITONFIL_ISOLATED')}))"
)


@pytest.mark.parametrize(
    "runner", [[str(VENV_BIN / "tritonfil"), "isolate", "--"], [str(ROOT / "scripts" / "isolated.sh")]], ids=str
)
def test_isolate_really_gives_a_fresh_loopback_only_namespace(runner):
    """As root: a new namespace (not the one pytest runs in) with only `lo`, up, and the marker set; as any
    other user the command runs as is."""
    env = {k: v for k, v in os.environ.items() if k != netns.ISOLATED_ENV}
    proc = subprocess.run([*runner, sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    if netns.is_root():
        assert seen["ifaces"] == ["lo"] and seen["marker"] == "1"
        assert seen["netns"] != os.stat("/proc/self/ns/net").st_ino
    else:
        assert seen["netns"] == os.stat("/proc/self/ns/net").st_ino and seen["marker"] is None
