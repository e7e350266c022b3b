"""mrq-agents: MR.Q, general-purpose model-free reinforcement learning (Fujimoto et al., ICLR 2025)."""

__version__ = "0.1.0"

from mrq_agents.config import MRQConfig  # noqa: E402
from mrq_agents.errors import MRQError  # noqa: E402

__all__ = ["MRQConfig", "MRQError", "Policy", "__version__"]


def __getattr__(name: str):
    # `from mrq_agents import Policy` without importing torch and gymnasium for every `import mrq_agents`.
    if name == "Policy":
        from mrq_agents.policy import Policy

        return Policy
    raise AttributeError(f"module 'mrq_agents' has no attribute {name!r}")
