"""Tiny agents for fast tests: their configs, the three kinds of spaces, and the same as `mrq train --set` options."""

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec

SPECS = {  # one of each kind: continuous vector, discrete vector, pixels (2 stacked 32x32 RGB frames)
    "continuous": EnvSpec(obs_shape=(5,), pixels=False, frame_stack=1, discrete=False, action_dim=2),
    "discrete": EnvSpec(obs_shape=(5,), pixels=False, frame_stack=1, discrete=True, action_dim=4),
    "pixels": EnvSpec(obs_shape=(2 * 3, 32, 32), pixels=True, frame_stack=2, discrete=False, action_dim=2),
}
# `mrq train --set` items for 32-wide networks that train Pendulum-v1 in seconds
TINY_SETTINGS = "zs_dim=32 zsa_dim=32 za_dim=16 enc_hdim=32 value_hdim=32 policy_hdim=32 batch_size=32".split() + [
    "target_update_freq=20",
    "buffer_size=5000",
]


def tiny_config(embedding: int = 16, hidden: int = 32, **overrides) -> MRQConfig:
    """z_s and z_sa `embedding` wide, the action embedding half of that, hidden layers `hidden` wide."""
    widths = {"zs_dim": embedding, "zsa_dim": embedding, "za_dim": embedding // 2}
    return MRQConfig(**widths, enc_hdim=hidden, value_hdim=hidden, policy_hdim=hidden, **overrides)
