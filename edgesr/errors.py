"""Exception types.

`UserInputError` (and subclasses) are mistakes the user can fix: the CLI prints their
message without a traceback. Anything else is a bug in edgesr and keeps its traceback.
"""
from __future__ import annotations


class EdgesrError(Exception):
    """Base class of every error edgesr raises on purpose."""


class UserInputError(EdgesrError):
    """Bad input from the user (option, file, image, model name). Printed without traceback."""


class UnknownModelError(UserInputError, KeyError):
    """A model or pretrained-variant name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class WeightsError(UserInputError):
    """Missing, corrupt, unverifiable or mismatching weights."""


class ImageError(UserInputError):
    """Unreadable or unsupported image."""


class OutputExistsError(UserInputError):
    """Refusing to overwrite an existing artifact without --force."""


class MissingDependencyError(UserInputError):
    """An optional backend is not installed; the message names the extra to install."""


class ExportError(EdgesrError):
    """An export or conversion step failed (unsupported op, parity failure, NaN in FP16)."""


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the nearest names, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
