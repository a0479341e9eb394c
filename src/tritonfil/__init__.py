"""tritonfil: deploy, verify and tear down Triton + FIL on EKS through the tritonfil.eks collection."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
