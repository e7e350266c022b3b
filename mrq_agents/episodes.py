"""Playing whole episodes with reproducible seeds: training's evaluations and `Policy.rollout` run the same loop.

Evaluation follows the paper's protocol (docs/algorithm.md): whole episodes, no exploration noise, and the same
episode seeds every time (`EVAL_STREAM`).
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

TRAIN_STREAM, EVAL_STREAM = 0, 1  # independent episode-seed streams: training episodes, evaluation episodes


def episodes_text(count: int) -> str:
    """'1 episode', '10 episodes': a count of episodes as output and model cards say it."""
    return f"{count} episode" if count == 1 else f"{count} episodes"


def episode_seed(seed: int, *path: int) -> int:
    """A reproducible 32-bit env seed for episode `path` of run `seed` (independent streams per path)."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


# progress(episodes finished, steps of the current episode, its return so far), called after every step (an
# episode's last step counts it as finished)
Progress = Callable[[int, int, float], None]


def run_episodes(
    env: gym.Env,
    act: Callable[[np.ndarray], np.ndarray | int],
    episodes: int,
    seed: int,
    stream: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Play `episodes` whole episodes with `act`; returns per-episode returns and lengths.

    Episode k is reset with `episode_seed(seed, stream, k)`, so the same seed gives the same episodes.
    """
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    for k in range(episodes):
        obs, _ = env.reset(seed=episode_seed(seed, stream, k))
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            returns[k] += float(reward)
            lengths[k] += 1
            done = terminated or truncated
            if progress is not None:
                progress(k + 1 if done else k, int(lengths[k]), float(returns[k]))
    return returns, lengths
