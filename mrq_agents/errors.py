"""Errors that mean "your input is wrong": the CLI prints them as one line, never a traceback."""

from __future__ import annotations


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


class ObservationError(MRQError, ValueError):
    """An observation (or batch) whose shape does not fit the policy."""


class MissingDependencyError(MRQError):
    """A feature needs an optional dependency that is not installed (e.g. torch, for training)."""
