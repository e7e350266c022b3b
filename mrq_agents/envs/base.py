"""What every env family shares: the env config saved with a run, the spec networks are built from, the `Family`
record each family module fills in, and the wrappers more than one family uses."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mrq_agents.errors import MissingDependencyError, UnsupportedEnvError
from mrq_agents.rendering import choose_gl_backend

SUPPORTED_IDS = (
    "a registered Gymnasium id (e.g. Pendulum-v1, HalfCheetah-v4), module:EnvId (imports the module "
    "that registers EnvId), dm_control/<domain>-<task>-v0, "
    "ALE/<Game>-v5, or a paper alias (Gym-HalfCheetah-v4, Dmc-walker-walk, Dmc-visual-walker-walk, "
    "Atari-Pong-v5)"
)
SUPPORTED_OBS = "a 1-D Box (vector) or an HxWxC uint8 Box (image)"
SUPPORTED_ACTIONS = "a 1-D Box with finite bounds or Discrete(n) starting at 0"


def unsupported(message: str) -> UnsupportedEnvError:
    """An UnsupportedEnvError whose message is a single line."""
    return UnsupportedEnvError(" ".join(message.split()))


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EnvConfig:
    """Everything needed to rebuild an env with its preprocessing; JSON-serialisable (goes into config.json)."""

    env_id: str  # what the user typed, e.g. "Dmc-visual-walker-walk"
    family: str  # its family's name (`Family.name`: envs.FAMILIES; an unknown one is an error where it is looked up)
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
        for name in ("action_repeat", "frame_stack", "frame_skip"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise unsupported(f"EnvConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.sticky_actions <= 1.0:
            raise unsupported(f"EnvConfig.sticky_actions must be in [0, 1], got {self.sticky_actions!r}")

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
        raise unsupported(f"unknown {cls.__name__} field(s) {unknown}: expected {sorted(fields)}")
    missing = sorted(n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING)
    if missing:
        raise unsupported(f"{cls.__name__} is missing field(s) {missing}")
    return dict(d)


def no_kwargs(config: EnvConfig) -> dict[str, Any]:
    return {}


def nothing_to_set_up(env: gym.Env) -> None:
    return None


def nothing_to_register() -> None:
    return None


def no_context(config: EnvConfig) -> ContextManager[None]:
    return contextlib.nullcontext()


def no_paper_name(gym_id: str, pixels: bool) -> str | None:
    return None


@dataclass(frozen=True)
class Family:
    """One kind of env, all in one module: how its ids resolve, how it is built, preprocessed and recorded, the
    paper's budget for it and the model card's sentence about it."""

    name: str  # EnvConfig.family: the one place a family is named (envs.FAMILIES is keyed by it)
    prefixes: dict[str, Callable[[str], tuple[str, bool]]]  # id prefix -> (the id after it -> gym id, from pixels)
    resolve: Callable[[str, str, bool], EnvConfig]  # (env id, gym id, from pixels) -> its config; checks the env exists
    wrap: Callable[[gym.Env, EnvConfig], gym.Env]  # the preprocessing (before actions are scaled to [-1, 1])
    budget: Callable[[EnvConfig], tuple[int, int]]  # the paper's (total env steps, evaluate every)
    describe: Callable[[EnvConfig], str]  # the preprocessing, in the model card's words
    video_fps: Callable[[gym.Env, EnvConfig], float]  # real-time playback: one frame per agent step
    register: Callable[[], None] = nothing_to_register  # imports what registers the family's ids with gymnasium
    make_kwargs: Callable[[EnvConfig], dict[str, Any]] = no_kwargs  # keyword arguments for gymnasium.make
    render_kwargs: Callable[[EnvConfig], dict[str, Any]] = no_kwargs  # gymnasium.make arguments for recordings
    set_up_recording: Callable[[gym.Env], None] = nothing_to_set_up  # after gymnasium.make with a render mode
    building: Callable[[EnvConfig], ContextManager[None]] = no_context  # around gymnasium.make (its warnings)
    pixel_fields: tuple[str, ...] = ()  # the EnvConfig fields a pixel config of this family must set
    paper_name: Callable[[str, bool], str | None] = no_paper_name  # (gym id, pixels) -> the paper's name for it


def register_envs_of(module: str, requirement: str, install: str) -> None:
    """Import `module` and register its envs with gymnasium; without it, a one-line MissingDependencyError naming
    `requirement` and the `install` command (callers let it win over guesses at what else an id could be).
    Importing an env package may import MuJoCo, which reads its OpenGL backend then: `choose_gl_backend` runs first."""
    choose_gl_backend()
    try:
        package = importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            " ".join(f"{requirement}, which does not import ({e}): {install}".split())
        ) from None
    gym.register_envs(package)


def check_registered(gym_id: str, env_id: str, expected: str) -> None:
    try:
        gym.spec(gym_id)
    except gym.error.Error as e:
        raise unsupported(f"unknown env id {env_id!r}: expected {expected} ({e})") from None


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


def float32_obs(env: gym.Env) -> gym.Env:
    space = env.observation_space
    if space.dtype == np.float32:
        return env
    new_space = spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
    return gym.wrappers.TransformObservation(env, lambda obs: np.asarray(obs, dtype=np.float32), new_space)


def channel_first(env: gym.Env) -> gym.Env:
    space = env.observation_space
    new_space = spaces.Box(space.low.transpose(2, 0, 1), space.high.transpose(2, 0, 1), dtype=space.dtype)
    return gym.wrappers.TransformObservation(
        env, lambda obs: np.ascontiguousarray(np.transpose(obs, (2, 0, 1))), new_space
    )  # (H, W, C) -> (C, H, W)


def stack_frames(env: gym.Env, frame_stack: int) -> gym.Env:
    """(C, H, W) frames -> (frame_stack * C, H, W), oldest frame first."""
    c, h, w = env.observation_space.shape
    env = gym.wrappers.FrameStackObservation(env, frame_stack)  # (k, C, H, W)
    return gym.wrappers.ReshapeObservation(env, (frame_stack * c, h, w))


def unit_actions(env: gym.Env) -> gym.Env:
    """Box actions: the agent acts in float32 [-1, 1]; rescaled to the env's bounds and dtype."""
    space = env.action_space
    if not isinstance(space, spaces.Box):
        return env
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        unit = np.ones(space.shape, space.dtype)  # bounds in the env's dtype (no precision-loss warning)
        env = gym.wrappers.RescaleAction(env, -unit, unit)
    if env.action_space.dtype != np.float32:
        dtype = env.action_space.dtype
        env = gym.wrappers.TransformAction(
            env, lambda a: np.asarray(a, dtype=dtype), spaces.Box(-1.0, 1.0, space.shape, np.float32)
        )
    return env


def check_actions(env: gym.Env, name: str) -> None:
    space = env.action_space
    if isinstance(space, spaces.Discrete) and space.start == 0:
        return
    if (
        isinstance(space, spaces.Box)
        and len(space.shape) == 1
        and np.issubdtype(space.dtype, np.floating)
        and np.all(np.isfinite(space.low))
        and np.all(np.isfinite(space.high))
        and np.all(space.low < space.high)
    ):
        return
    raise unsupported(f"unsupported action space {space} for {name!r}: expected {SUPPORTED_ACTIONS}")


def is_image(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


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
                raise unsupported(f"frame_stack must be 1 for vector observations, got {frame_stack}")
            pixels = False
        elif isinstance(obs, spaces.Box) and len(obs.shape) == 3 and obs.dtype == np.uint8:
            if frame_stack < 1 or obs.shape[0] % frame_stack:
                raise unsupported(
                    f"{obs.shape[0]} observation channels do not split into frame_stack={frame_stack} frames"
                )
            pixels = True
        else:
            raise unsupported(
                f"unsupported observation space {obs}: expected a 1-D Box or a uint8 Box (C, H, W); {hint}"
            )
        if isinstance(act, spaces.Discrete) and act.start == 0:
            discrete, action_dim = True, int(act.n)
        elif isinstance(act, spaces.Box) and len(act.shape) == 1:
            if not (np.all(act.low == -1.0) and np.all(act.high == 1.0)):
                raise unsupported(f"Box actions must lie in [-1, 1], got {act}; {hint}")
            discrete, action_dim = False, int(act.shape[0])
        else:
            raise unsupported(f"unsupported action space {act}: expected {SUPPORTED_ACTIONS}")
        return cls(tuple(int(n) for n in obs.shape), pixels, frame_stack, discrete, action_dim)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "obs_shape": list(self.obs_shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvSpec":
        """Inverse of to_dict; unknown or missing names are an error."""
        d = _checked_fields(cls, d)
        return cls(**{**d, "obs_shape": tuple(int(n) for n in d["obs_shape"])})
