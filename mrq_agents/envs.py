"""Environments with the paper's preprocessing (docs/algorithm.md, "The four benchmarks") and the spec the networks are built from.

Families: "gym" (any registered Gymnasium id, no preprocessing beyond dtype/layout and action scaling),
"dmc" (dm_control through shimmy: action repeat 2, flattened obs or stacked 84x84 RGB renders) and
"atari" (ALE v5: AtariPreprocessing + a stack of 4 grayscale frames). dm_control and ale_py are imported
only when an env of their family is resolved or built.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mrq_agents.errors import UnsupportedEnvError

SUPPORTED_IDS = ("a registered Gymnasium id (e.g. Pendulum-v1, HalfCheetah-v4), module:EnvId (imports the module "
                 "that registers EnvId), dm_control/<domain>-<task>-v0, "
                 "ALE/<Game>-v5, or a paper alias (Gym-HalfCheetah-v4, Dmc-walker-walk, Dmc-visual-walker-walk, "
                 "Atari-Pong-v5)")
SUPPORTED_OBS = "a 1-D Box (vector) or an HxWxC uint8 Box (image)"
SUPPORTED_ACTIONS = "a 1-D Box with finite bounds or Discrete(n) starting at 0"
FAMILIES = ("gym", "dmc", "atari")
LOCOMOTION = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid")


def _error(message: str) -> UnsupportedEnvError:
    """An UnsupportedEnvError whose message is a single line."""
    return UnsupportedEnvError(" ".join(message.split()))


# --------------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class EnvConfig:
    """Everything needed to rebuild an env with its preprocessing; JSON-serialisable (goes into config.json)."""

    env_id: str  # what the user typed, e.g. "Dmc-visual-walker-walk"
    family: str  # "gym" | "dmc" | "atari"
    gym_id: str  # the id passed to gymnasium.make, e.g. "dm_control/walker-walk-v0", "ALE/Pong-v5"
    pixels: bool = False  # preprocessing produces images (DMC visual, Atari); gym ids: the obs space decides
    action_repeat: int = 1  # agent steps repeat the action this often, rewards summed (2 for DMC)
    frame_stack: int = 1  # frames per observation: 1 vector, 3 DMC visual, 4 Atari
    image_size: int | None = None  # side of the square pixel observation (84)
    camera_id: int | None = None  # DMC visual camera: 0, quadruped 2
    frame_skip: int = 1  # Atari: emulator frames per agent step, max-pooled over the last two
    sticky_actions: float = 0.0  # Atari: probability of repeating the previous action
    max_episode_frames: int | None = None  # Atari: emulator frames per episode before truncation
    grayscale: bool = False  # Atari: one grayscale channel instead of RGB
    env_kwargs: dict[str, Any] | None = None  # keyword arguments for gymnasium.make (e.g. a custom env's options)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise _error(f"unknown env family {self.family!r}: expected one of {', '.join(FAMILIES)}")
        for name in ("action_repeat", "frame_stack", "frame_skip"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise _error(f"EnvConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.sticky_actions <= 1.0:
            raise _error(f"EnvConfig.sticky_actions must be in [0, 1], got {self.sticky_actions!r}")
        if self.pixels and self.family != "gym" and self.image_size is None:
            raise _error(f"EnvConfig for {self.env_id!r} has pixels=True but no image_size")
        if self.pixels and self.family == "dmc" and self.camera_id is None:
            raise _error(f"EnvConfig for {self.env_id!r} has pixels=True but no camera_id")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvConfig":
        """Build from a dict (e.g. a saved config.json); unknown or missing names are an error."""
        return cls(**_checked_fields(cls, d))


def _checked_fields(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise _error(f"unknown {cls.__name__} field(s) {unknown}: expected {sorted(fields)}")
    missing = sorted(n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING)
    if missing:
        raise _error(f"{cls.__name__} is missing field(s) {missing}")
    return dict(d)


# --------------------------------------------------------------------------------------------- resolve

def _register_dmc() -> None:
    try:
        import shimmy
    except ImportError as e:
        raise _error(f"dm_control envs need shimmy[dm-control] and dm_control ({e})") from None
    gym.register_envs(shimmy)


def _register_atari() -> None:
    try:
        import ale_py
    except ImportError as e:
        raise _error(f"Atari envs need ale-py ({e})") from None
    gym.register_envs(ale_py)


REGISTER: dict[str, Callable[[], None]] = {"gym": lambda: None, "dmc": _register_dmc, "atari": _register_atari}


def _check_registered(gym_id: str, env_id: str, expected: str) -> None:
    try:
        gym.spec(gym_id)
    except gym.error.Error as e:
        raise _error(f"unknown env id {env_id!r}: expected {expected} ({e})") from None


def _gym(env_id: str, gym_id: str) -> EnvConfig:
    module, _, name = gym_id.rpartition(":")
    if module:  # gymnasium's "module:EnvId": importing the module registers the env (gym.make does the same)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise _error(f"cannot import {module!r} for env {env_id!r} ({e}): put the module that registers "
                         f"{name!r} on PYTHONPATH or install it") from None
    _check_registered(name, env_id, SUPPORTED_IDS)
    return EnvConfig(env_id=env_id, family="gym", gym_id=gym_id)


def _dmc(env_id: str, gym_id: str, pixels: bool) -> EnvConfig:
    _register_dmc()
    _check_registered(gym_id, env_id, "a dm_control suite task as dm_control/<domain>-<task>-v0, Dmc-<domain>-<task> "
                                      "or Dmc-visual-<domain>-<task> (e.g. Dmc-walker-walk)")
    if not pixels:
        return EnvConfig(env_id=env_id, family="dmc", gym_id=gym_id, action_repeat=2)
    return EnvConfig(env_id=env_id, family="dmc", gym_id=gym_id, pixels=True, action_repeat=2, frame_stack=3,
                     image_size=84, camera_id=dmc_camera(gym_id))


def dmc_camera(gym_id: str) -> int:
    """The paper's camera for a dm_control task: 0 (it follows the body in the locomotion domains), quadruped 2."""
    return 2 if gym_id.removeprefix("dm_control/").split("-")[0] == "quadruped" else 0


def _atari(env_id: str, gym_id: str) -> EnvConfig:
    if not gym_id.endswith("-v5"):
        raise _error(f"unsupported Atari id {env_id!r}: expected ALE/<Game>-v5 or Atari-<Game>-v5 (e.g. ALE/Pong-v5)")
    _register_atari()
    _check_registered(gym_id, env_id, "ALE/<Game>-v5 or Atari-<Game>-v5 with an ALE game (e.g. ALE/Pong-v5)")
    return EnvConfig(env_id=env_id, family="atari", gym_id=gym_id, pixels=True, frame_stack=4, image_size=84,
                     frame_skip=4, sticky_actions=0.25, max_episode_frames=108_000, grayscale=True)


# prefix -> resolver(env_id, rest after the prefix); checked in order, so "Dmc-visual-" precedes "Dmc-"
PREFIXES: dict[str, Callable[[str, str], EnvConfig]] = {
    "Gym-": lambda env_id, rest: _gym(env_id, rest),
    "Dmc-visual-": lambda env_id, rest: _dmc(env_id, f"dm_control/{rest}-v0", pixels=True),
    "Dmc-": lambda env_id, rest: _dmc(env_id, f"dm_control/{rest}-v0", pixels=False),
    "Atari-": lambda env_id, rest: _atari(env_id, f"ALE/{rest}"),
    "dm_control/": lambda env_id, rest: _dmc(env_id, env_id, pixels=False),
    "ALE/": lambda env_id, rest: _atari(env_id, env_id),
}


def resolve_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> EnvConfig:
    """Map an id or paper alias to its preprocessing; `env_kwargs` go to gymnasium.make whenever it is built.

    'Gym-HalfCheetah-v4' -> gym 'HalfCheetah-v4'; 'Dmc-walker-walk' and 'dm_control/walker-walk-v0' -> dmc
    proprioceptive; 'Dmc-visual-walker-walk' -> the same task from pixels; 'Atari-Pong-v5' and 'ALE/Pong-v5'
    -> atari; 'module:EnvId' imports the module, then -> gym; any other registered Gymnasium id -> gym.
    Unknown ids raise UnsupportedEnvError.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise _error(f"invalid env id {env_id!r}: expected {SUPPORTED_IDS}")
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise _error(f"env kwargs must be a dict of keyword arguments for gymnasium.make, got {env_kwargs!r}")
    for prefix, resolve in PREFIXES.items():
        if env_id.startswith(prefix) and len(env_id) > len(prefix):
            config = resolve(env_id, env_id[len(prefix):])
            break
    else:
        config = _gym(env_id, env_id)
    return dataclasses.replace(config, env_kwargs=dict(env_kwargs)) if env_kwargs else config


def benchmark_defaults(config: EnvConfig) -> tuple[int, int]:
    """(total env steps, evaluate every) per the paper's protocol.

    Gym MuJoCo locomotion (HalfCheetah, Hopper, Walker2d, Ant, Humanoid; any version): 1M / 5k;
    DMC, proprioceptive or visual: 500k / 5k; Atari: 2.5M / 100k; any other env: 100k / 5k.
    """
    if config.family == "dmc":
        return 500_000, 5_000
    if config.family == "atari":
        return 2_500_000, 100_000
    namespace, name, _ = gym.envs.registration.parse_env_id(config.gym_id.rpartition(":")[2])
    if namespace is None and name in LOCOMOTION:
        return 1_000_000, 5_000
    return 100_000, 5_000


# --------------------------------------------------------------------------------------------- wrappers

class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat each action `repeat` times and sum the rewards; stops early when the episode ends."""

    def __init__(self, env: gym.Env, repeat: int):
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)  # for env.spec and gymnasium's env checker
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class DmcPixels(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace a dm_control observation by a (3, size, size) uint8 render of the physics from `camera_id`.

    Independent of the env's render_mode, whose render() stays the normal full-resolution frame.
    """

    def __init__(self, env: gym.Env, size: int, camera_id: int):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, camera_id=camera_id)
        super().__init__(env)
        if not hasattr(env.unwrapped, "_env") or not hasattr(env.unwrapped._env, "physics"):
            raise _error(f"DMC pixel observations need a shimmy dm_control env, got {env.unwrapped!r}")
        self.size, self.camera_id = size, camera_id
        self.observation_space = spaces.Box(0, 255, (3, size, size), np.uint8)

    def observation(self, observation) -> np.ndarray:
        frame = self.env.unwrapped._env.physics.render(height=self.size, width=self.size, camera_id=self.camera_id)
        return np.ascontiguousarray(frame.transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)


def _float32_obs(env: gym.Env) -> gym.Env:
    space = env.observation_space
    if space.dtype == np.float32:
        return env
    new_space = spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
    return gym.wrappers.TransformObservation(env, lambda obs: np.asarray(obs, dtype=np.float32), new_space)


def _channel_first(env: gym.Env) -> gym.Env:
    space = env.observation_space
    new_space = spaces.Box(space.low.transpose(2, 0, 1), space.high.transpose(2, 0, 1), dtype=space.dtype)
    return gym.wrappers.TransformObservation(
        env, lambda obs: np.ascontiguousarray(np.transpose(obs, (2, 0, 1))), new_space)  # (H, W, C) -> (C, H, W)


def _stack_frames(env: gym.Env, frame_stack: int) -> gym.Env:
    """(C, H, W) frames -> (frame_stack * C, H, W), oldest frame first."""
    c, h, w = env.observation_space.shape
    env = gym.wrappers.FrameStackObservation(env, frame_stack)  # (k, C, H, W)
    return gym.wrappers.ReshapeObservation(env, (frame_stack * c, h, w))


def _unit_actions(env: gym.Env) -> gym.Env:
    """Box actions: the agent acts in float32 [-1, 1]; rescaled to the env's bounds and dtype."""
    space = env.action_space
    if not isinstance(space, spaces.Box):
        return env
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        unit = np.ones(space.shape, space.dtype)  # bounds in the env's dtype (no precision-loss warning)
        env = gym.wrappers.RescaleAction(env, -unit, unit)
    if env.action_space.dtype != np.float32:
        dtype = env.action_space.dtype
        env = gym.wrappers.TransformAction(env, lambda a: np.asarray(a, dtype=dtype),
                                           spaces.Box(-1.0, 1.0, space.shape, np.float32))
    return env


def _check_actions(env: gym.Env, name: str) -> None:
    space = env.action_space
    if isinstance(space, spaces.Discrete) and space.start == 0:
        return
    if (isinstance(space, spaces.Box) and len(space.shape) == 1 and np.issubdtype(space.dtype, np.floating)
            and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)) and np.all(space.low < space.high)):
        return
    raise _error(f"unsupported action space {space} for {name!r}: expected {SUPPORTED_ACTIONS}")


def _is_image(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


def _wrap_gym(env: gym.Env, config: EnvConfig) -> gym.Env:
    space = env.observation_space
    if not (isinstance(space, spaces.Box) and len(space.shape) == 1) and not _is_image(space):
        raise _error(f"unsupported observation space {space} for {config.env_id!r}: expected {SUPPORTED_OBS}")
    if config.action_repeat > 1:
        env = ActionRepeat(env, config.action_repeat)
    return _channel_first(env) if _is_image(space) else _float32_obs(env)


def _wrap_dmc(env: gym.Env, config: EnvConfig) -> gym.Env:
    if not isinstance(env.observation_space, spaces.Dict):
        raise _error(f"expected a shimmy dm_control env with Dict observations for {config.env_id!r}, "
                     f"got {env.observation_space}")
    env = ActionRepeat(env, config.action_repeat) if config.action_repeat > 1 else env  # render once per agent step
    if config.pixels:
        return _stack_frames(DmcPixels(env, config.image_size, config.camera_id), config.frame_stack)
    return _float32_obs(gym.wrappers.FlattenObservation(env))


def _wrap_atari(env: gym.Env, config: EnvConfig) -> gym.Env:
    if not hasattr(env.unwrapped, "ale") or getattr(env.unwrapped, "_frameskip", None) != 1:
        raise _error(f"Atari preprocessing for {config.env_id!r} needs an ALE env made with frameskip=1, "
                     f"e.g. gym.make('ALE/Pong-v5', frameskip=1)")
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=0, frame_skip=config.frame_skip, screen_size=config.image_size, terminal_on_life_loss=False,
        grayscale_obs=config.grayscale, grayscale_newaxis=True, scale_obs=False)  # (84, 84, C) uint8
    if config.action_repeat > 1:
        env = ActionRepeat(env, config.action_repeat)
    return _stack_frames(_channel_first(env), config.frame_stack)


WRAPPERS: dict[str, Callable[[gym.Env, EnvConfig], gym.Env]] = {
    "gym": _wrap_gym, "dmc": _wrap_dmc, "atari": _wrap_atari}

MAKE_KWARGS: dict[str, Callable[[EnvConfig], dict[str, Any]]] = {
    "gym": lambda c: {},
    "dmc": lambda c: {},
    "atari": lambda c: {"frameskip": 1, "repeat_action_probability": c.sticky_actions, "full_action_space": False,
                        "max_num_frames_per_episode": c.max_episode_frames},
}


def wrap_env(env: gym.Env, config: EnvConfig) -> gym.Env:
    """Apply the preprocessing of `config` to an env the user built (make_env = gymnasium.make + wrap_env).

    Result: observations (D,) float32, or (C * frame_stack, H, W) uint8 with the newest frame last;
    Box actions in float32 [-1, 1]. Unsupported spaces raise UnsupportedEnvError.
    """
    _check_actions(env, config.env_id)
    return _unit_actions(WRAPPERS[config.family](env, config))


def make_env(env: str | EnvConfig, seed: int | None = None, render_mode: str | None = None,
             **make_kwargs: Any) -> gym.Env:
    """Build the env with the paper's preprocessing; `seed` seeds the action space (reset with a seed yourself).

    `render_mode='rgb_array'` gives the env's normal full-resolution render(), independent of pixel observations.
    `make_kwargs` go to `gymnasium.make` (e.g. `width=640, height=480` for MuJoCo renders).
    """
    if not isinstance(env, (str, EnvConfig)):
        raise _error(f"invalid env {env!r}: expected an env id string or an EnvConfig")
    config = env if isinstance(env, EnvConfig) else resolve_env(env)
    REGISTER[config.family]()
    try:
        kwargs = {**MAKE_KWARGS[config.family](config), **(config.env_kwargs or {}), **make_kwargs}
        if render_mode is not None:  # envs without rendering need not accept the argument
            kwargs["render_mode"] = render_mode
            if config.family == "dmc" and "render_kwargs" not in kwargs:
                # dm_control renders from its free camera by default, which the walker soon walks out of; the
                # paper's camera follows the body (the same view as the pixel observations, at 240x320).
                kwargs["render_kwargs"] = {"camera_id": dmc_camera(config.gym_id)}
        made = gym.make(config.gym_id, **kwargs)
    except (gym.error.Error, ImportError, TypeError) as e:
        raise _error(f"cannot build env {config.env_id!r} ({config.gym_id}): {e}") from None
    if render_mode is not None and not {"camera_id", "camera_name"} & kwargs.keys():
        follow_agent(made)
    wrapped = wrap_env(made, config)
    if seed is not None:
        wrapped.action_space.seed(seed)
    return wrapped


def follow_agent(env: gym.Env) -> None:
    """Set up a Gymnasium MuJoCo env's renders to keep the agent in view on a floor that reaches the horizon.

    Camera: Gymnasium renders from a free camera placed by the env's default camera config, which never moves
    (HalfCheetah-v4, Ant-v4), or which names a `trackbodyid` that a free camera ignores (Hopper-v4, Walker2d-v4,
    Humanoid-v4): either way the agent leaves the picture within seconds. Their models have a "track" camera
    that follows the body; renders use it.
    Floor: the models' floor planes are drawn 20-40 m wide, which a good runner leaves (MuJoCo collides with a
    plane everywhere, so the agent then runs on grey). `RENDERED_FLOOR` half-widths are drawn instead, with the
    texture repeated as often per metre as before. Only drawing changes: a plane's size plays no part in
    collisions, so observations and rewards stay bit-identical (tests/test_envs.py checks both).
    Envs without such a camera, and any env that is not a Gymnasium MuJoCo env, are left as they are.
    """
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    model = getattr(env.unwrapped, "model", None)
    if renderer is None or model is None or getattr(renderer, "camera_id", None) != -1:
        return
    import mujoco

    track = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    if track < 0:
        return
    renderer.camera_id = track
    _draw_floor_to_horizon(model)


RENDERED_FLOOR = 5_000.0  # metres: half-width of the floor drawn in recordings, beyond any agent's run


def _draw_floor_to_horizon(model: Any) -> None:
    """Widen every plane of `model` as drawn (its size) to RENDERED_FLOOR, with its checker kept at the same scale."""
    import mujoco

    rescaled: set[int] = set()
    for geom in range(model.ngeom):
        if model.geom_type[geom] != mujoco.mjtGeom.mjGEOM_PLANE:
            continue
        half_width = model.geom_size[geom, :2]
        if half_width.min() <= 0 or half_width.min() >= RENDERED_FLOOR:  # 0: MuJoCo draws it infinite already
            continue
        scale = RENDERED_FLOOR / half_width.min()
        model.geom_size[geom, :2] = half_width * scale
        material = int(model.geom_matid[geom])
        # A texture repeated per plane (not per metre) is repeated `scale` times as often, once per material.
        if material >= 0 and not model.mat_texuniform[material] and material not in rescaled:
            model.mat_texrepeat[material] *= scale
            rescaled.add(material)


# --------------------------------------------------------------------------------------------- spec

@dataclass(frozen=True)
class EnvSpec:
    """What the networks need to know, derived once from a preprocessed env."""

    obs_shape: tuple[int, ...]  # (D,) float32 vector, or (C * frame_stack, H, W) uint8 pixels
    pixels: bool
    frame_stack: int  # frames per observation; the newest frame is the LAST C channels
    discrete: bool
    action_dim: int  # Box dim, or number of discrete actions

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """(D,) for vector observations, (C, H, W) for one frame of pixels."""
        if not self.pixels:
            return self.obs_shape
        return (self.obs_shape[0] // self.frame_stack, *self.obs_shape[1:])

    @classmethod
    def from_env(cls, env: gym.Env, frame_stack: int = 1) -> "EnvSpec":
        """Read a preprocessed env (make_env / wrap_env); raises UnsupportedEnvError on anything else."""
        obs, act = env.observation_space, env.action_space
        hint = "build it with mrq_agents.envs.make_env or wrap_env"
        if isinstance(obs, spaces.Box) and len(obs.shape) == 1:
            if frame_stack != 1:
                raise _error(f"frame_stack must be 1 for vector observations, got {frame_stack}")
            pixels = False
        elif isinstance(obs, spaces.Box) and len(obs.shape) == 3 and obs.dtype == np.uint8:
            if frame_stack < 1 or obs.shape[0] % frame_stack:
                raise _error(f"{obs.shape[0]} observation channels do not split into frame_stack={frame_stack} frames")
            pixels = True
        else:
            raise _error(f"unsupported observation space {obs}: expected a 1-D Box or a uint8 Box (C, H, W); {hint}")
        if isinstance(act, spaces.Discrete) and act.start == 0:
            discrete, action_dim = True, int(act.n)
        elif isinstance(act, spaces.Box) and len(act.shape) == 1:
            if not (np.all(act.low == -1.0) and np.all(act.high == 1.0)):
                raise _error(f"Box actions must lie in [-1, 1], got {act}; {hint}")
            discrete, action_dim = False, int(act.shape[0])
        else:
            raise _error(f"unsupported action space {act}: expected {SUPPORTED_ACTIONS}")
        return cls(tuple(int(n) for n in obs.shape), pixels, frame_stack, discrete, action_dim)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "obs_shape": list(self.obs_shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvSpec":
        """Inverse of to_dict; unknown or missing names are an error."""
        d = _checked_fields(cls, d)
        return cls(**{**d, "obs_shape": tuple(int(n) for n in d["obs_shape"])})
