"""Any Gymnasium env (`Pendulum-v1`, `CartPole-v1`, `module:EnvId`), and the Gym MuJoCo locomotion tasks of the
paper (`HalfCheetah-v4`, alias `Gym-HalfCheetah-v4`): no preprocessing beyond float32 vectors or channel-first
images and actions scaled to [-1, 1]."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from typing import Any, Iterator

import gymnasium as gym
from gymnasium import spaces

from mrq_agents.envs import base
from mrq_agents.envs.base import EnvConfig, Family
from mrq_agents.errors import Note

NAME = "gym"  # EnvConfig.family, as config.json saves it
LOCOMOTION = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid")
DEFAULT_FPS = 30


def resolve(env_id: str, gym_id: str, pixels: bool = False) -> EnvConfig:
    """A registered Gymnasium id, or gymnasium's "module:EnvId" (importing the module registers the env). No Gym
    id names a pixel form: `pixels` is always False."""
    module, _, name = gym_id.rpartition(":")
    if module:  # gym.make does the same
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise base.unsupported(
                f"cannot import {module!r} for env {env_id!r} ({e}): put the module that registers "
                f"{name!r} on PYTHONPATH or install it"
            ) from None
    base.check_registered(name, env_id, base.SUPPORTED_IDS)
    return EnvConfig(env_id=env_id, family=NAME, gym_id=gym_id)


def wrap(env: gym.Env, config: EnvConfig) -> gym.Env:
    space = env.observation_space
    if not (isinstance(space, spaces.Box) and len(space.shape) == 1) and not base.is_image(space):
        raise base.unsupported(
            f"unsupported observation space {space} for {config.env_id!r}: expected {base.SUPPORTED_OBS}"
        )
    if config.action_repeat > 1:
        env = base.ActionRepeat(env, config.action_repeat)
    return base.channel_first(env) if base.is_image(space) else base.float32_obs(env)


def budget(config: EnvConfig) -> tuple[int, int]:
    """Gym MuJoCo locomotion (any version): 1M steps, evaluate every 5k; any other env: 100k / 5k."""
    namespace, name, _ = gym.envs.registration.parse_env_id(config.gym_id.rpartition(":")[2])
    if namespace is None and name in LOCOMOTION:
        return 1_000_000, 5_000
    return 100_000, 5_000


def describe(config: EnvConfig) -> str:
    return f"`{config.gym_id}` with actions rescaled to [-1, 1]"


def video_fps(env: gym.Env, config: EnvConfig) -> float:
    return float(env.metadata.get("render_fps") or DEFAULT_FPS)


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


_NOTED: set[str] = set()  # the older versions already explained in this process


@contextlib.contextmanager
def building(config: EnvConfig) -> Iterator[None]:
    """Around gymnasium.make of a Gymnasium MuJoCo env: for an older version than Gymnasium's newest (the paper's
    v4), one note, once per process, on why it is used, instead of Gymnasium's deprecation warning at every build;
    MuJoCo's warnings about the bundled model files (`settotalmass`, deprecated) neither printed nor written to
    MUJOCO_LOG.TXT in the working folder, MuJoCo's other warnings passed on as Python warnings."""
    try:
        spec = gym.spec(config.gym_id.rpartition(":")[2])  # `module:EnvId`: resolving imported the module
    except gym.error.Error:  # gymnasium.make says what is wrong
        spec = None
    if spec is None or not (isinstance(spec.entry_point, str) and spec.entry_point.startswith("gymnasium.envs.mujoco")):
        yield
        return
    import mujoco

    newest = gym.envs.registration.find_highest_version(spec.namespace, spec.name)
    older = spec.version is not None and newest is not None and spec.version < newest
    if older and spec.id not in _NOTED:
        _NOTED.add(spec.id)
        warnings.warn(
            f"{spec.id} is used as named, though Gymnasium's newest version is v{newest}: the paper measured its Gym "
            "MuJoCo results on v4, and the zoo's agents follow it",
            Note,
            stacklevel=4,
        )
    previous, seen = mujoco.get_mju_user_warning(), []
    mujoco.set_mju_user_warning(seen.append)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*is out of date", category=DeprecationWarning)
            yield
    finally:
        mujoco.set_mju_user_warning(previous)
    for text in seen:
        if "settotalmass" not in text:
            warnings.warn(f"MuJoCo: {text}", RuntimeWarning, stacklevel=4)


FAMILY = Family(
    name=NAME,
    prefixes={"Gym-": lambda rest: (rest, False)},
    resolve=resolve,
    wrap=wrap,
    budget=budget,
    describe=describe,
    video_fps=video_fps,
    set_up_recording=follow_agent,
    building=building,
    paper_name=lambda gym_id, pixels: None if pixels else "Gym-" + gym_id,
)
