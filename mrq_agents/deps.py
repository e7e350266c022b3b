"""Optional dependencies: torch is needed to train, fine-tune and export, not to act (the ONNX backend)."""

from __future__ import annotations

import importlib.util

from mrq_agents.errors import MissingDependencyError

TRAIN_EXTRA = 'pip install "mrq-agents[train]"'


def has_torch() -> bool:
    """Whether torch is installed (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str) -> None:
    """Raise a one-line MissingDependencyError naming `what` when torch is not installed."""
    if not has_torch():
        raise MissingDependencyError(
            f"{what} needs torch, which is not installed: {TRAIN_EXTRA} (acting and playing need only the base install)"
        )
