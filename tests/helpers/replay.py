"""The tiny agents' spaces and random replay contents the learner tests train on."""

import numpy as np

from mrq_agents.envs import EnvSpec

SPECS = {  # one of each kind: continuous vector, discrete vector, pixels (2 stacked 32x32 RGB frames)
    "continuous": EnvSpec(obs_shape=(5,), pixels=False, frame_stack=1, discrete=False, action_dim=2),
    "discrete": EnvSpec(obs_shape=(5,), pixels=False, frame_stack=1, discrete=True, action_dim=4),
    "pixels": EnvSpec(obs_shape=(2 * 3, 32, 32), pixels=True, frame_stack=2, discrete=False, action_dim=2),
}


def fill_random(buffer, spec, rng, steps, episode_length, terminal_every=3, offset=0):
    """Start an episode and add `steps` random transitions (uniform actions, normal rewards) in episodes of
    `episode_length` steps; episode k (from 0) ends in a termination when (k + offset) % terminal_every == 0,
    else in a truncation."""

    def obs():
        if spec.pixels:
            return rng.integers(0, 256, spec.obs_shape, dtype=np.uint8)
        return rng.standard_normal(spec.obs_shape).astype(np.float32)

    buffer.start_episode(obs())
    for t in range(1, steps + 1):
        action = int(rng.integers(spec.action_dim)) if spec.discrete else rng.uniform(-1, 1, spec.action_dim)
        end = t % episode_length == 0
        terminal = end and ((t - 1) // episode_length + offset) % terminal_every == 0
        buffer.add(action, float(rng.normal()), terminal, end and not terminal, obs())
        if end:
            buffer.start_episode(obs())
