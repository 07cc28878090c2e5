"""User-facing errors.

A :class:`GensisError` is a problem with the user's input (a path, a key, a file) rather
than a bug: the CLI prints its message on one line and exits with code 2, no traceback.
"""

from __future__ import annotations


class GensisError(Exception):
    """Bad input that the user can fix; the message names the file or key."""

    exit_code = 2


class ConfigError(GensisError):
    """An unknown config key or a value outside its allowed range."""


class DataError(GensisError):
    """A dataset path, archive or image that cannot be used."""


class CheckpointError(GensisError):
    """A checkpoint that is missing, corrupt, or belongs to another model."""
