"""Atari through ale-py: `ALE/<Game>-v5`, alias `Atari-<Game>-v5`. Frame skip 4 with max-pool, grayscale 84x84, 4
frames stacked, sticky actions 0.25, no no-op starts, no life-loss terminal, no reward clipping, 108k frames."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from mrq_agents.envs import base
from mrq_agents.envs.base import EnvConfig, Family

NAME = "atari"  # EnvConfig.family, as config.json saves it
NATIVE_FPS = 60
PREPROCESSING = {  # the paper's: 84x84 grayscale, 4 stacked, frame skip 4, sticky actions, 108k frames per episode
    "pixels": True,
    "frame_stack": 4,
    "image_size": 84,
    "frame_skip": 4,
    "sticky_actions": 0.25,
    "max_episode_frames": 108_000,
    "grayscale": True,
}


def register() -> None:
    base.register_envs_of("ale_py", "Atari envs need ale-py", "pip install ale-py")


def resolve(env_id: str, gym_id: str, pixels: bool = True) -> EnvConfig:
    """Atari is always played from pixels (`PREPROCESSING`)."""
    if not gym_id.endswith("-v5"):
        raise base.unsupported(
            f"unsupported Atari id {env_id!r}: expected ALE/<Game>-v5 or Atari-<Game>-v5 (e.g. ALE/Pong-v5)"
        )
    register()
    base.check_registered(gym_id, env_id, "ALE/<Game>-v5 or Atari-<Game>-v5 with an ALE game (e.g. ALE/Pong-v5)")
    return EnvConfig(env_id=env_id, family=NAME, gym_id=gym_id, **PREPROCESSING)


def make_kwargs(config: EnvConfig) -> dict[str, Any]:
    return {
        "frameskip": 1,
        "repeat_action_probability": config.sticky_actions,
        "full_action_space": False,
        "max_num_frames_per_episode": config.max_episode_frames,
    }


def wrap(env: gym.Env, config: EnvConfig) -> gym.Env:
    if not hasattr(env.unwrapped, "ale") or getattr(env.unwrapped, "_frameskip", None) != 1:
        raise base.unsupported(
            f"Atari preprocessing for {config.env_id!r} needs an ALE env made with frameskip=1, "
            f"e.g. gym.make('ALE/Pong-v5', frameskip=1)"
        )
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=0,
        frame_skip=config.frame_skip,
        screen_size=config.image_size,
        terminal_on_life_loss=False,
        grayscale_obs=config.grayscale,
        grayscale_newaxis=True,
        scale_obs=False,
    )  # (84, 84, C) uint8
    if config.action_repeat > 1:
        env = base.ActionRepeat(env, config.action_repeat)
    return base.stack_frames(base.channel_first(env), config.frame_stack)


def describe(config: EnvConfig) -> str:
    return (
        f"`{config.gym_id}` with frame skip {config.frame_skip} (max-pool), grayscale 84x84, stack of "
        f"{config.frame_stack}, sticky actions {config.sticky_actions}, no no-op starts, no life-loss "
        "terminal, no reward clipping"
    )


FAMILY = Family(
    name=NAME,
    prefixes={
        "Atari-": lambda rest: (f"ALE/{rest}", True),
        "ALE/": lambda rest: (f"ALE/{rest}", True),
    },
    resolve=resolve,
    wrap=wrap,
    budget=lambda config: (2_500_000, 100_000),
    describe=describe,
    video_fps=lambda env, config: NATIVE_FPS / config.frame_skip,
    register=register,
    make_kwargs=make_kwargs,
    pixel_fields=("image_size",),
    paper_name=lambda gym_id, pixels: "Atari-" + gym_id.removeprefix("ALE/"),
)
