"""DeepMind Control through shimmy: `dm_control/<domain>-<task>-v0`, alias `Dmc-<domain>-<task>`, and the same tasks
from pixels, `Dmc-visual-<domain>-<task>`. Action repeat 2 (rewards summed), 500 agent steps per episode (a time
limit); observations flattened, or 84x84 RGB renders from the paper's camera, 3 stacked."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mrq_agents.envs import base
from mrq_agents.envs.base import EnvConfig, Family

NAME = "dmc"  # EnvConfig.family, as config.json saves it


def register() -> None:
    base.register_envs_of(
        "shimmy", "dm_control envs need shimmy[dm-control] and dm_control", 'pip install "shimmy[dm-control]"'
    )


def resolve(env_id: str, gym_id: str, pixels: bool) -> EnvConfig:
    register()
    base.check_registered(
        gym_id,
        env_id,
        "a dm_control suite task as dm_control/<domain>-<task>-v0, Dmc-<domain>-<task> "
        "or Dmc-visual-<domain>-<task> (e.g. Dmc-walker-walk)",
    )
    if not pixels:
        return EnvConfig(env_id=env_id, family=NAME, gym_id=gym_id, action_repeat=2)
    pixels_config = {"pixels": True, "frame_stack": 3, "image_size": 84, "camera_id": dmc_camera(gym_id)}
    return EnvConfig(env_id=env_id, family=NAME, gym_id=gym_id, action_repeat=2, **pixels_config)


def dmc_camera(gym_id: str) -> int:
    """The paper's camera for a dm_control task: 0 (it follows the body in the locomotion domains), quadruped 2."""
    return 2 if gym_id.removeprefix("dm_control/").split("-")[0] == "quadruped" else 0


class DmcPixels(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace a dm_control observation by a (3, size, size) uint8 render of the physics from `camera_id`.

    Independent of the env's render_mode, whose render() stays the normal full-resolution frame.
    """

    def __init__(self, env: gym.Env, size: int, camera_id: int):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, camera_id=camera_id)
        super().__init__(env)
        if not hasattr(env.unwrapped, "_env") or not hasattr(env.unwrapped._env, "physics"):
            raise base.unsupported(f"DMC pixel observations need a shimmy dm_control env, got {env.unwrapped!r}")
        self.size, self.camera_id = size, camera_id
        self.observation_space = spaces.Box(0, 255, (3, size, size), np.uint8)

    def observation(self, observation) -> np.ndarray:
        frame = self.env.unwrapped._env.physics.render(height=self.size, width=self.size, camera_id=self.camera_id)
        return np.ascontiguousarray(frame.transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)


def wrap(env: gym.Env, config: EnvConfig) -> gym.Env:
    if not isinstance(env.observation_space, spaces.Dict):
        raise base.unsupported(
            f"expected a shimmy dm_control env with Dict observations for {config.env_id!r}, "
            f"got {env.observation_space}"
        )
    env = (
        base.ActionRepeat(env, config.action_repeat) if config.action_repeat > 1 else env
    )  # render once per agent step
    if config.pixels:
        return base.stack_frames(DmcPixels(env, config.image_size, config.camera_id), config.frame_stack)
    return base.float32_obs(gym.wrappers.FlattenObservation(env))


def describe(config: EnvConfig) -> str:
    text = f"dm_control `{config.gym_id}` via shimmy, action repeat {config.action_repeat}, 500 agent steps per episode"
    return text + (
        f", 84x84 RGB from camera {config.camera_id}, stack of {config.frame_stack}"
        if config.pixels
        else ", flattened observations"
    )


def render_kwargs(config: EnvConfig) -> dict[str, Any]:
    """dm_control renders from its free camera by default, which the walker soon walks out of; the paper's camera
    follows the body (the same view as the pixel observations, at 240x320)."""
    return {"render_kwargs": {"camera_id": dmc_camera(config.gym_id)}}


def video_fps(env: gym.Env, config: EnvConfig) -> float:
    return 1.0 / (env.unwrapped._env.control_timestep() * config.action_repeat)


FAMILY = Family(
    name=NAME,
    prefixes={  # checked in order: "Dmc-visual-" before "Dmc-"
        "Dmc-visual-": lambda rest: (f"dm_control/{rest}-v0", True),
        "Dmc-": lambda rest: (f"dm_control/{rest}-v0", False),
        "dm_control/": lambda rest: (f"dm_control/{rest}", False),
    },
    resolve=resolve,
    wrap=wrap,
    budget=lambda config: (500_000, 5_000),
    describe=describe,
    video_fps=video_fps,
    register=register,
    render_kwargs=render_kwargs,
    pixel_fields=("image_size", "camera_id"),
    paper_name=lambda gym_id, pixels: (
        ("Dmc-visual-" if pixels else "Dmc-") + gym_id.removeprefix("dm_control/").removesuffix("-v0")
    ),
)
