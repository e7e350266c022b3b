"""Random replay contents the learner tests train on."""

import numpy as np


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
