"""Exception types.

`UserInputError` (and subclasses) are mistakes the user can fix: the CLI prints their
message without a traceback. Anything else is a bug in edgesr and keeps its traceback.
"""
from __future__ import annotations

import errno
import os


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


class InvalidSidecarError(UserInputError):
    """A sidecar that is malformed, out of bounds, or contradicts its artifact (names the file and the field)."""


class ArtifactMismatchError(UserInputError):
    """The files of an artifact do not match what its sidecar recorded (e.g. files of two exports mixed)."""


class MissingDependencyError(UserInputError):
    """An optional backend is not installed; the message names the extra to install."""


class ExportError(EdgesrError):
    """An export or conversion step failed (unsupported op, parity failure, NaN in FP16)."""


class NonFiniteError(EdgesrError):
    """Weights or a model output hold NaN/Inf: refused, so that they never become an image or a result."""


class InferenceError(EdgesrError):
    """A runtime failed on an input (e.g. ONNX Runtime rejecting a shape the artifact cannot take)."""


# OS errors the user fixes by choosing another path (exit 2); every other OS error is the environment's (exit 1).
_USER_PATH_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENAMETOOLONG", "ENOENT", "ENOTDIR", "EISDIR", "EEXIST", "ELOOP", "EACCES", "EPERM", "EROFS", "EINVAL")
    if hasattr(errno, name))


def _short(path: object, limit: int = 80) -> str:
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]} ({len(text)} characters)"


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError (numpy's _ArrayMemoryError included) or a torch/CUDA out-of-memory error."""
    if isinstance(exc, MemoryError):
        return True
    return type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def failure_message(exc: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for an OS or memory error, None for anything else (a bug).

    The one place that turns errors of the machine into what the CLI prints: a path the user can
    change exits 2, a full disk, missing memory or a failing device exit 1.
    """
    if is_out_of_memory(exc):
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        return (f"out of memory ({type(exc).__name__}{': ' + detail if detail else ''}). Use a smaller input, "
                "size or --tile, or free memory; nothing was written.", 1)
    if isinstance(exc, OSError):
        what = exc.strerror or type(exc).__name__
        where = f": {_short(exc.filename)}" if exc.filename is not None else ""
        if exc.filename2 is not None:
            where += f" -> {_short(exc.filename2)}"
        if exc.errno in _USER_PATH_ERRNOS:
            return f"{what}{where}. Choose another path.", 2
        if exc.errno in (getattr(errno, "ENOSPC", -1), getattr(errno, "EDQUOT", -1)):
            return f"{what}{where}. Free some space or write elsewhere; no partial output was left.", 1
        return f"{what}{where}.", 1
    return None


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the nearest names, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
