"""The offline local environment (see env.py)."""
