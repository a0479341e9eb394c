"""tritonfil: deploy, verify and tear down Triton + FIL on EKS through the tritonfil.eks collection."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "PlaybookCanceled",
    "PlaybookFailed",
    "PlaybookTimedOut",
    "RunHandle",
    "RunResult",
    "TritonfilError",
    "__version__",
    "deploy",
    "plan",
    "teardown",
    "verify",
]

# The Python API (tritonfil.api), imported on first use so `import tritonfil` stays cheap.
_API = {name for name in __all__ if name != "__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from tritonfil import api

        return getattr(api, name)
    raise AttributeError(f"module 'tritonfil' has no attribute {name!r}")
