"""One ansible-playbook run, read from the ansible.posix.json stdout callback (shared by role tests)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass


@dataclass
class Run:
    rc: int
    output: str  # stdout (the JSON document) + stderr: everything the run printed
    recap: dict[str, int]
    tasks: list[tuple[str, dict]]
    seconds: float = 0.0

    @classmethod
    def parse(cls, proc: subprocess.CompletedProcess[str], seconds: float = 0.0) -> Run:
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            data = {}
        # Task names without the "tritonfil.eks.<role> : " prefix.
        tasks = [
            (t["task"]["name"].split(" : ", 1)[-1], t["hosts"].get("localhost", {}))
            for p in data.get("plays", [])
            for t in p["tasks"]
        ]
        recap = data.get("stats", {}).get("localhost", {})
        return cls(proc.returncode, proc.stdout + proc.stderr, recap, tasks, seconds)

    def result(self, name: str) -> dict:
        found = [r for n, r in self.tasks if n == name]
        assert found, f"no task {name!r} in {[n for n, _ in self.tasks]}"
        return found[-1]

    def ran(self, name: str) -> bool:
        return any(n == name and not r.get("skipped") for n, r in self.tasks)

    @property
    def failure(self) -> str:
        """The messages of the failed tasks (those not ignored), joined with ' | '."""
        return " | ".join(
            r.get("msg", "") for _, r in self.tasks if r.get("failed") and not r.get("_ansible_ignore_errors")
        )

    @property
    def facts(self) -> dict:
        out: dict = {}
        for _, r in self.tasks:
            out.update(r.get("ansible_facts", {}))
        return out

    def tail(self) -> str:
        return f"rc={self.rc} recap={self.recap} failure={self.failure}\n{self.output[-3000:]}"
