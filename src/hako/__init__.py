"""hako: a container platform in Python.

The package root stays import-light: ``hako-runtime`` imports ``hako`` on every call,
so the engine's Python API is attached lazily on first attribute access.
"""

__version__ = "0.1.0"
