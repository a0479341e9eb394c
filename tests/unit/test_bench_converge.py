"""bench/converge.py's reading of ansible-playbook output (profile_tasks) and its module-task floor."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import converge  # noqa: E402
import yaml  # noqa: E402

# profile_tasks pads each name with dashes to a fixed width: a long name is left with a single one, and a name of
# Ansible's argument validation has " - " inside.
OUTPUT = """\
TASK [tritonfil.eks.triton_release : Wait for the rollout (roll a failed one back, naming the pods and why)] ***
ok: [localhost]

TASK [Read the AWS caller identity once] ***************************************
changed: [localhost]

PLAY RECAP *********************************************************************
localhost                  : ok=2    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0

===============================================================================
tritonfil.eks.triton_release : Wait for the rollout (roll a failed one back, naming the pods and why) - 101.34s
Read the AWS caller identity once --------------------------------------- 2.63s
tritonfil.eks.karpenter : Validating arguments against arg spec 'preflight' - Check the Karpenter inputs - 0.21s
"""


def test_profile_keeps_long_names_and_names_with_a_dash():
    parsed = converge.parse_output(OUTPUT)
    wait = "tritonfil.eks.triton_release : Wait for the rollout (roll a failed one back, naming the pods and why)"
    assert parsed["profile"] == [
        {"task": wait, "seconds": 101.34},
        {"task": "Read the AWS caller identity once", "seconds": 2.63},
        {"task": "tritonfil.eks.karpenter : Validating arguments against arg spec 'preflight' - Check the Karpenter "
                 "inputs", "seconds": 0.21},
    ]  # fmt: skip
    assert parsed["changed_tasks"] == ["Read the AWS caller identity once"]
    assert parsed["recap"]["localhost"]["changed"] == 1
    assert parsed["seconds_by_role"] == {"triton_release": 101.34, "(playbook tasks)": 2.63, "karpenter": 0.21}


def test_floor_prices_the_reruns_module_tasks_at_the_cheapest_probe(tmp_path):
    play = converge.floor_playbook(tmp_path / "floor.yml", 2)
    tasks = yaml.safe_load(play.read_text())[0]["tasks"]
    assert [t["name"] for t in tasks] == [f"floor {k} 0{i}" for k in converge.FLOOR_PROBES for i in range(2)]
    floor_run = {"all_tasks": [{"task": "floor ping 00", "seconds": 0.3}, {"task": "floor ping 01", "seconds": 0.4},
                               {"task": "floor k8s_info 00", "seconds": 0.8}]}  # fmt: skip
    runs = {
        "first_run": {"seconds": 200.0},
        "noop_rerun": {
            "all_tasks": [
                {"task": "a", "seconds": 1.0},
                {"task": "b", "seconds": 0.5},
                {"task": "assert", "seconds": 0.1},
            ]
        },  # fmt: skip
    }
    out = converge.floor_summary(floor_run, runs)
    assert out["mean_seconds_per_task"] == {"ping": 0.35, "k8s_info": 0.8}
    assert out["rerun_module_tasks"] == 2 and out["rerun_module_task_seconds"] == 1.5
    assert out["rerun_floor_seconds"] == 0.7 and out["target_seconds"] == 70.0
