"""Environments with the paper's preprocessing (docs/algorithm.md, "The four benchmarks"), and the spec the networks
are built from.

One module per env family (`gym_family`: any Gymnasium env and the Gym MuJoCo locomotion tasks; `dmc`: DeepMind
Control, proprioceptive and from pixels; `atari`), each a `Family` record with its id prefixes, registration,
`gymnasium.make` arguments, wrappers, the paper's budget, its model-card text and its recording set-up. Adding a
family is adding such a module and its record to `FAMILIES`. dm_control and ale_py are imported only when an env of
their family is resolved or built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

from mrq_agents.envs import atari, dmc, gym_family
from mrq_agents.envs.base import (  # noqa: F401
    SUPPORTED_ACTIONS,
    SUPPORTED_IDS,
    SUPPORTED_OBS,
    ActionRepeat,
    EnvConfig,
    EnvSpec,
    Family,
    check_actions,
    unit_actions,
    unsupported,
)
from mrq_agents.envs.dmc import DmcPixels, dmc_camera  # noqa: F401
from mrq_agents.envs.gym_family import LOCOMOTION, follow_agent  # noqa: F401
from mrq_agents.rendering import choose_gl_backend

FAMILIES: dict[str, Family] = {family.name: family for family in (gym_family.FAMILY, dmc.FAMILY, atari.FAMILY)}


def family_of(config: EnvConfig) -> Family:
    """The record of the family `config.family` names. An unknown name, or a pixel config without a setting its
    family needs (a damaged config.json), is a one-line error."""
    family = FAMILIES.get(config.family)
    if family is None:
        raise unsupported(f"unknown env family {config.family!r}: expected one of {', '.join(FAMILIES)}")
    missing = [name for name in family.pixel_fields if config.pixels and getattr(config, name) is None]
    if missing:
        raise unsupported(f"EnvConfig for {config.env_id!r} has pixels=True but no {' and no '.join(missing)}")
    return family


def resolve_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> EnvConfig:
    """Map an id or paper alias to its preprocessing; `env_kwargs` go to gymnasium.make whenever it is built.

    'Gym-HalfCheetah-v4' -> gym 'HalfCheetah-v4'; 'Dmc-walker-walk' and 'dm_control/walker-walk-v0' -> dmc
    proprioceptive; 'Dmc-visual-walker-walk' -> the same task from pixels; 'Atari-Pong-v5' and 'ALE/Pong-v5'
    -> atari; 'module:EnvId' imports the module, then -> gym; any other registered Gymnasium id -> gym.
    Unknown ids raise UnsupportedEnvError.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise unsupported(f"invalid env id {env_id!r}: expected {SUPPORTED_IDS}")
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise unsupported(f"env kwargs must be a dict of keyword arguments for gymnasium.make, got {env_kwargs!r}")
    family, gym_id, pixels = named_env(env_id)
    config = family.resolve(env_id, gym_id, pixels)
    return dataclasses.replace(config, env_kwargs=dict(env_kwargs)) if env_kwargs else config


def named_env(env_id: str) -> tuple[Family, str, bool]:
    """The family, gym id and pixel flag an id names, by its prefix alone, without importing the family's env package
    or checking that the env exists: 'Dmc-visual-walker-walk' -> (dmc, 'dm_control/walker-walk-v0', True),
    'Gym-Hopper-v4' -> (gym, 'Hopper-v4', False); an id without a family prefix -> (gym, the id, False)."""
    found = _family_and_prefix(env_id)
    if found is None:
        return gym_family.FAMILY, env_id, False
    family, prefix = found
    gym_id, pixels = family.prefixes[prefix](env_id[len(prefix) :])
    return family, gym_id, pixels


def has_family_prefix(env_id: str) -> bool:
    """Whether an id is named as an env of a family ('Dmc-...', 'dm_control/...', 'ALE/...', 'Gym-...'), whether or
    not that env exists; a plain Gymnasium id like 'Hopper-v4' has no prefix."""
    return _family_and_prefix(env_id) is not None


def _family_and_prefix(env_id: str) -> tuple[Family, str] | None:
    for family in FAMILIES.values():
        for prefix in family.prefixes:  # in each family's order: "Dmc-visual-" before "Dmc-"
            if env_id.startswith(prefix) and len(env_id) > len(prefix):
                return family, prefix
    return None


def benchmark_defaults(config: EnvConfig) -> tuple[int, int]:
    """(total env steps, evaluate every) per the paper's protocol: the `budget` of the env's family module."""
    return family_of(config).budget(config)


def describe(config: EnvConfig) -> str:
    """The preprocessing of `config`, as a model card says it."""
    return family_of(config).describe(config)


def video_fps(env: gym.Env, config: EnvConfig) -> float:
    """Real-time playback rate of a recording of `env`: one frame per agent step."""
    return family_of(config).video_fps(env, config)


def wrap_env(env: gym.Env, config: EnvConfig) -> gym.Env:
    """Apply the preprocessing of `config` to an env the user built (make_env = gymnasium.make + wrap_env).

    Result: observations (D,) float32, or (C * frame_stack, H, W) uint8 with the newest frame last;
    Box actions in float32 [-1, 1]. Unsupported spaces raise UnsupportedEnvError.
    """
    check_actions(env, config.env_id)
    return unit_actions(family_of(config).wrap(env, config))


def make_env(
    env: str | EnvConfig, seed: int | None = None, render_mode: str | None = None, **make_kwargs: Any
) -> gym.Env:
    """Build the env with the paper's preprocessing; `seed` seeds the action space (reset with a seed yourself).

    `render_mode='rgb_array'` gives the env's normal full-resolution render(), independent of pixel observations,
    from a view that keeps the agent in the picture (the family's recording set-up) unless the arguments name one.
    `make_kwargs` go to `gymnasium.make` (e.g. `width=640, height=480` for MuJoCo renders). Building an env is
    where MuJoCo may be imported and rendering starts: a headless machine gets its OpenGL backend here first
    (`mrq_agents.rendering`).
    """
    if not isinstance(env, (str, EnvConfig)):
        raise unsupported(f"invalid env {env!r}: expected an env id string or an EnvConfig")
    choose_gl_backend()
    config = env if isinstance(env, EnvConfig) else resolve_env(env)
    family = family_of(config)
    family.register()
    try:
        kwargs = {**family.make_kwargs(config), **(config.env_kwargs or {}), **make_kwargs}
        if render_mode is not None:  # envs without rendering need not accept the argument
            kwargs = {**family.render_kwargs(config), **kwargs, "render_mode": render_mode}
        with family.building(config):
            made = gym.make(config.gym_id, **kwargs)
    except (gym.error.Error, ImportError, TypeError) as e:
        raise unsupported(f"cannot build env {config.env_id!r} ({config.gym_id}): {e}") from None
    if render_mode is not None and not {"camera_id", "camera_name"} & kwargs.keys():
        family.set_up_recording(made)
    wrapped = wrap_env(made, config)
    if seed is not None:
        wrapped.action_space.seed(seed)
    return wrapped
