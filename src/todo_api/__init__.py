"""Per-user task API."""

__version__ = "0.1.0"
