"""hako: a container platform in Python.

The package root stays import-light: ``hako-runtime`` imports ``hako`` on every call,
so the engine's Python API is attached lazily on first attribute access.
"""

__version__ = "0.1.0"

_API = {"run", "container", "containers", "volumes", "Client", "Container", "Result"}


def __getattr__(name: str) -> object:
    # PEP 562: the engine's API loads on first use, so ``import hako`` stays light.
    if name in _API:
        from hako.engine import api

        return getattr(api, name)
    raise AttributeError(f"module 'hako' has no attribute {name!r}")
