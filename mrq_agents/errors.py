"""Errors that mean "your input is wrong": the CLI prints them as one line, never a traceback."""

from __future__ import annotations

import difflib
import errno
from typing import Iterable


class MRQError(Exception):
    """Base class: the message names the problem and the fix."""


class UnsupportedEnvError(MRQError):
    """An environment id, observation space or action space this package cannot handle."""


class ConfigError(MRQError):
    """An unknown or malformed configuration value, or a config that does not match a run."""


class CheckpointError(MRQError):
    """A missing, corrupt, or incompatible checkpoint, weights or config file."""


def one_line(err: BaseException | str) -> str:
    """A library exception's message squeezed onto one short line, for use inside our own error messages."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to a mistyped `name` (difflib's similarity, at least 0.6), or None: the one home of
    the "did you mean ...?" that `--set` field names and zoo ids get."""
    matches = difflib.get_close_matches(name, list(known), n=1)
    return matches[0] if matches else None


# errno -> what to do about it, for OSErrors that reach the command line (a full disk, a read-only folder, ...)
OS_ERROR_FIXES: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else (--out)",
    errno.EDQUOT: "the disk quota is used up: free some space or write somewhere else (--out)",
    errno.EFBIG: "a file outgrew the largest size allowed here (`ulimit -f` or the file system's): raise the limit "
    "or write somewhere else (--out)",
    errno.EROFS: "the file system is read-only: write somewhere else (--out)",
    errno.EACCES: "no permission: write somewhere you may write to (--out)",
    errno.EPERM: "no permission: write somewhere you may write to (--out)",
    errno.ENOTDIR: "part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a file is in the way: choose another path",
    errno.EISDIR: "a folder is in the way of a file: choose another path",
    errno.ENOENT: "part of the path does not exist (a missing mount?): check the path",
}


def os_error_message(err: OSError) -> str:
    """One line for an OSError: what failed, on which path, and the fix."""
    where = f" ({err.filename})" if err.filename else ""
    fix = OS_ERROR_FIXES.get(err.errno or 0, "check the path and the disk")
    return f"{err.strerror or one_line(err)}{where}: {fix}"


class ObservationError(MRQError, ValueError):
    """An observation (or batch) whose shape does not fit the policy."""


class MissingDependencyError(MRQError):
    """A feature needs an optional dependency that is not installed (e.g. torch, for training)."""


class Note(UserWarning):
    """Something worth knowing that is not a problem (why an older env version is used): a Python warning in the
    library, one `note:` line on the command line."""
