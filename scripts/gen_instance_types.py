#!/usr/bin/env python3
"""Write src/tritonfil/localenv/instance-types.json: the GPU shapes the local Karpenter (kwok provider) offers.

One source for the numbers that matter to Karpenter's choice, Karpenter's own AWS provider module at the pinned
chart version (github.com/aws/karpenter-provider-aws@v<KARPENTER_CHART_VERSION>, from the Go module proxy):
- prices: pkg/providers/pricing/zz_generated.pricing_aws.go, its static us-east-1 On-Demand list (Linux, $/h,
  generated from the AWS Price List API; the date is in the file and copied into the output);
- pods per node: pkg/providers/instancetype/zz_generated.vpclimits.go, the VPC CNI's ENI limit
  (interfaces x (IPv4 addresses per interface - 1) + 2), as Karpenter computes it (ENILimitedPods).
vCPUs, memory and GPUs per shape are the published EC2 specifications of the g4dn (NVIDIA T4), g5 (A10G) and
g6 (L4) families (docs.aws.amazon.com/ec2/latest/instancetypes/ac.html), written below.

Spot offerings are priced at SPOT_RATIO x On-Demand: an assumption (spot prices move and are not in the list),
only used when a NodePool allows spot.

    scripts/gen_instance_types.py [--check]      (--check: fail if the committed file differs)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tritonfil" / "localenv" / "instance-types.json"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
SPOT_RATIO = 0.35
# (vCPU, memory GiB, GPUs) per size; the same sizes in the three families.
SIZES = {
    "xlarge": (4, 16, 1), "2xlarge": (8, 32, 1), "4xlarge": (16, 64, 1), "8xlarge": (32, 128, 1),
    "12xlarge": (48, 192, 4), "16xlarge": (64, 256, 1), "24xlarge": (96, 384, 4), "48xlarge": (192, 768, 8),
}  # fmt: skip
FAMILIES = {
    "g4dn": {"gpu": "t4", "sizes": ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"]},
    "g5": {"gpu": "a10g", "sizes": list(SIZES)},
    "g6": {"gpu": "l4", "sizes": list(SIZES)},
}


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "scripts" / "versions.env").read_text().splitlines():
        m = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = re.sub(r"\$\{(\w+)\}", lambda g: out[g.group(1)], m.group(2))
    return out


def module_dir(version: str) -> Path:
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    path = Path(gopath) / "pkg" / "mod" / "github.com" / "aws" / f"karpenter-provider-aws@v{version}"
    if not path.exists():
        subprocess.run(["go", "mod", "download", f"github.com/aws/karpenter-provider-aws@v{version}"], check=True)
    return path


def prices(module: Path) -> tuple[dict[str, float], str]:
    text = (module / "pkg" / "providers" / "pricing" / "zz_generated.pricing_aws.go").read_text()
    generated = re.search(r"// generated at (\S+) for us-east-1", text).group(1)
    block = text.split('"us-east-1": {', 1)[1].split("\n\t},", 1)[0]
    return {k: float(v) for k, v in re.findall(r'"([a-z0-9.-]+)": ([0-9.]+)', block)}, generated


def eni_pods(module: Path) -> dict[str, int]:
    text = (module / "pkg" / "providers" / "instancetype" / "zz_generated.vpclimits.go").read_text()
    out = {}
    for name, interfaces, per in re.findall(
        r'\t"([a-z0-9.-]+)": \{\n\t\tInterface:\s+(\d+),\n\t\tIPv4PerInterface:\s+(\d+),', text
    ):
        out[name] = int(interfaces) * (int(per) - 1) + 2
    return out


def offering(price: float, zone: str, capacity: str, labels: dict[str, str]) -> dict:
    reqs = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity]},
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]},
    ]
    # Offering requirements become node labels and well-known keys in the kwok provider: the same NodePool
    # requirements (karpenter.k8s.aws/instance-family, -gpu-count, ...) then work locally and on EKS.
    reqs += [{"key": k, "operator": "In", "values": [v]} for k, v in labels.items()]
    return {"Price": round(price, 6), "Available": True, "Requirements": reqs}


def build() -> dict:
    p = pins()
    version = p["KARPENTER_CHART_VERSION"]
    module = module_dir(version)
    price, generated = prices(module)
    pods = eni_pods(module)
    types = []
    for family, spec in FAMILIES.items():
        for size in spec["sizes"]:
            name = f"{family}.{size}"
            cpu, mem, gpus = SIZES[size]
            labels = {
                "karpenter.k8s.aws/instance-category": "g",
                "karpenter.k8s.aws/instance-family": family,
                "karpenter.k8s.aws/instance-generation": re.sub(r"\D", "", family),
                "karpenter.k8s.aws/instance-size": size,
                "karpenter.k8s.aws/instance-gpu-count": str(gpus),
                "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
                "karpenter.k8s.aws/instance-gpu-name": spec["gpu"],
            }
            offerings = []
            for zone in ZONES:
                offerings.append(offering(price[name], zone, "on-demand", labels))
                offerings.append(offering(price[name] * SPOT_RATIO, zone, "spot", labels))
            types.append(
                {
                    "name": name,
                    "architecture": "amd64",
                    "operatingSystems": ["linux"],
                    "resources": {
                        "cpu": str(cpu),
                        "memory": f"{mem}Gi",
                        "nvidia.com/gpu": str(gpus),
                        "pods": str(pods[name]),
                        "ephemeral-storage": "100Gi",
                    },  # fmt: skip
                    "offerings": offerings,
                }
            )
    return {
        "source": (
            f"github.com/aws/karpenter-provider-aws@v{version} pkg/providers/pricing/zz_generated.pricing_aws.go "
            f"(us-east-1 On-Demand, generated {generated}) and pkg/providers/instancetype/zz_generated.vpclimits.go; "
            f"spot = {SPOT_RATIO} x On-Demand (assumed); written by scripts/gen_instance_types.py"
        ),
        "instanceTypes": types,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date: run scripts/gen_instance_types.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
