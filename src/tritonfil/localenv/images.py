"""Small OCI images built without a Docker daemon or network (umoci), pushed with skopeo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def build_oci_image(layout: Path, tag: str, content: str) -> str:
    """Add image TAG holding one file (/tritonfil with CONTENT) to OCI LAYOUT; return its skopeo reference.

    umoci images are not reproducible (timestamps): build once and keep the layout, or a pushed
    immutable tag would refuse to move.
    """
    umoci = shutil.which("umoci") or "/usr/bin/umoci"
    bundle = layout.parent / f"bundle-{tag}"
    image = f"{layout}:{tag}"
    if not layout.exists():
        subprocess.run([umoci, "init", "--layout", str(layout)], check=True, capture_output=True)
    subprocess.run([umoci, "new", "--image", image], check=True, capture_output=True)
    subprocess.run([umoci, "unpack", "--rootless", "--image", image, str(bundle)], check=True, capture_output=True)
    try:
        (bundle / "rootfs" / "tritonfil").write_text(content)
        subprocess.run([umoci, "repack", "--image", image, str(bundle)], check=True, capture_output=True)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    subprocess.run(
        [umoci, "config", "--image", image, "--os=linux", "--architecture=amd64", "--config.cmd=/tritonfil"],
        check=True,
        capture_output=True,
    )
    return f"oci:{image}"
