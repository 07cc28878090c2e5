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


RULES_SECTION = "README, 'What gensis refuses and why'"


def by_rule(rule: str, message: str) -> str:
    """A refusal's message, naming the rule it applies (each is described in docs/refusals.md; the
    README's section of that name lists the rules and links there)."""
    return f"{message} [rule {rule}: {RULES_SECTION}]"


def first_line(exc: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (its type name when it has none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines:
        return lines[0][:limit]
    return type(exc).__name__ if isinstance(exc, BaseException) else ""


# What building a model from a file's recorded settings may raise on odd values (timm on a drop rate
# of "x", a UNet spec of the wrong shapes): each becomes one CheckpointError line naming the file.
BUILD_ERRORS = (
    TypeError,
    ValueError,
    RuntimeError,
    KeyError,
    AssertionError,
    ArithmeticError,
    IndexError,
    AttributeError,
)
