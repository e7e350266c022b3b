"""Errors that mean "your input is wrong": the CLI prints them as one line, never a traceback."""


class MRQError(Exception):
    """Base class: the message names the problem and the fix."""


class UnsupportedEnvError(MRQError):
    """An environment id, observation space or action space this package cannot handle."""


class ConfigError(MRQError):
    """An unknown or malformed configuration value, or a config that does not match a run."""


class CheckpointError(MRQError):
    """A missing, corrupt, or incompatible checkpoint, weights or config file."""
