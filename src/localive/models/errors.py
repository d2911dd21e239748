"""Errors about what is installed, shared by the weights here and every engine that loads a model or runtime."""

from __future__ import annotations


class ModelNotInstalled(RuntimeError):
    """The weights or runtime for a model are not installed; the message says what to install."""
