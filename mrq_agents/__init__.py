"""mrq-agents: MR.Q, general-purpose model-free reinforcement learning (Fujimoto et al., ICLR 2025)."""

__version__ = "0.1.0"

from mrq_agents.config import MRQConfig  # noqa: E402
from mrq_agents.errors import MRQError  # noqa: E402

__all__ = ["MRQConfig", "MRQError", "__version__"]
