"""Env resolution, preprocessing, specs and error messages (mrq_agents.envs)."""

import contextlib
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from mrq_agents.envs import ActionRepeat, EnvConfig, EnvSpec, benchmark_defaults, make_env, resolve_env, wrap_env
from mrq_agents.errors import UnsupportedEnvError


class TinyEnv(gym.Env):
    """A one-line env with chosen spaces; reward 1 per step, episode ends after `length` steps."""

    def __init__(self, observation_space=None, action_space=None, length=10):
        self.observation_space = observation_space or spaces.Box(-1.0, 1.0, (3,), np.float64)
        self.action_space = action_space or spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.length, self.t, self.last_action = length, 0, None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t, self.last_action = self.t + 1, action
        return self.observation_space.sample(), 1.0, self.t >= self.length, False, {}


def gym_config(env_id="Tiny-v0", **kw):
    return EnvConfig(env_id=env_id, family="gym", gym_id=env_id, **kw)


def assert_one_line(error):
    message = str(error.value)
    assert message and "\n" not in message, message


# ------------------------------------------------------------------------------------------- resolve


@pytest.mark.parametrize(
    "env_id, family, gym_id, pixels, repeat, stack, size, camera",
    [
        ("Pendulum-v1", "gym", "Pendulum-v1", False, 1, 1, None, None),
        ("Gym-HalfCheetah-v4", "gym", "HalfCheetah-v4", False, 1, 1, None, None),
        ("Dmc-walker-walk", "dmc", "dm_control/walker-walk-v0", False, 2, 1, None, None),
        ("dm_control/walker-walk-v0", "dmc", "dm_control/walker-walk-v0", False, 2, 1, None, None),
        ("Dmc-visual-walker-walk", "dmc", "dm_control/walker-walk-v0", True, 2, 3, 84, 0),
        ("Dmc-visual-quadruped-run", "dmc", "dm_control/quadruped-run-v0", True, 2, 3, 84, 2),
        ("Atari-Pong-v5", "atari", "ALE/Pong-v5", True, 1, 4, 84, None),
        ("ALE/Pong-v5", "atari", "ALE/Pong-v5", True, 1, 4, 84, None),
    ],
)
def test_resolve(env_id, family, gym_id, pixels, repeat, stack, size, camera):
    c = resolve_env(env_id)
    assert (c.env_id, c.family, c.gym_id, c.pixels) == (env_id, family, gym_id, pixels)
    assert (c.action_repeat, c.frame_stack, c.image_size, c.camera_id) == (repeat, stack, size, camera)


def test_resolve_atari_protocol():
    c = resolve_env("Atari-Pong-v5")
    assert (c.frame_skip, c.sticky_actions, c.max_episode_frames, c.grayscale) == (4, 0.25, 108_000, True)


@pytest.mark.parametrize(
    "env_id, expected",
    [
        ("HalfCheetah-v4", (1_000_000, 5_000)),
        ("Gym-Humanoid-v5", (1_000_000, 5_000)),
        ("HumanoidStandup-v4", (100_000, 5_000)),
        ("Pendulum-v1", (100_000, 5_000)),
        ("Dmc-walker-walk", (500_000, 5_000)),
        ("Dmc-visual-walker-walk", (500_000, 5_000)),
        ("Atari-Pong-v5", (2_500_000, 100_000)),
    ],
)
def test_benchmark_defaults(env_id, expected):
    assert benchmark_defaults(resolve_env(env_id)) == expected


def test_import_is_lazy():
    code = "import sys, mrq_agents.envs; assert not {'dm_control', 'shimmy', 'ale_py', 'mujoco'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------- vector envs


@pytest.mark.parametrize(
    "env_id, obs_shape, discrete, action_dim",
    [
        ("Pendulum-v1", (3,), False, 1),
        ("CartPole-v1", (4,), True, 2),
        ("HalfCheetah-v4", (17,), False, 6),
    ],
)
def test_vector_envs(env_id, obs_shape, discrete, action_dim):
    env = make_env(env_id, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == obs_shape and obs.dtype == np.float32
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == obs_shape and obs.dtype == np.float32 and env.observation_space.dtype == np.float32
    spec = EnvSpec.from_env(env)
    assert spec == EnvSpec(obs_shape, False, 1, discrete, action_dim)
    assert spec.frame_shape == obs_shape
    if not discrete:
        assert env.action_space == spaces.Box(-1.0, 1.0, (action_dim,), np.float32)


def test_pendulum_action_rescaling():
    env = make_env("Pendulum-v1")
    env.reset(seed=0)
    env.step(np.array([1.0], np.float32))
    assert env.unwrapped.last_u == pytest.approx(2.0)
    env.step(np.array([-0.5], np.float32))
    assert env.unwrapped.last_u == pytest.approx(-1.0)


def test_seed_makes_action_samples_reproducible():
    a, b = make_env("Pendulum-v1", seed=3), make_env("Pendulum-v1", seed=3)
    assert np.array_equal(a.action_space.sample(), b.action_space.sample())


# ------------------------------------------------------------------------------------------- dm_control


def test_dmc_walker_episode_is_500_truncated_steps():
    env = make_env("dm_control/walker-walk-v0", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (24,) and obs.dtype == np.float32
    assert env.action_space == spaces.Box(-1.0, 1.0, (6,), np.float32)
    assert EnvSpec.from_env(env) == EnvSpec((24,), False, 1, False, 6)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.dtype == np.float32 and 0.0 <= reward <= 2.0  # two summed rewards in [0, 1]
        steps += 1
    assert (steps, terminated, truncated) == (500, False, True)


def test_action_repeat_sums_rewards_and_stops_at_episode_end():
    env = ActionRepeat(TinyEnv(length=3), 2)
    env.reset(seed=0)
    assert env.step(np.zeros(2, np.float32))[1:3] == (2.0, False)
    _, reward, terminated, *_ = env.step(np.zeros(2, np.float32))
    assert (reward, terminated, env.unwrapped.t) == (1.0, True, 3)


def test_dmc_visual_cartpole():
    env = make_env("Dmc-visual-cartpole-balance", seed=0, render_mode="rgb_array")
    assert env.observation_space.shape == (9, 84, 84) and env.observation_space.dtype == np.uint8
    spec = EnvSpec.from_env(env, frame_stack=3)
    assert spec == EnvSpec((9, 84, 84), True, 3, False, 1) and spec.frame_shape == (3, 84, 84)
    physics = env.unwrapped._env.physics
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, 84, 84) and obs.dtype == np.uint8
    assert np.array_equal(obs[:3], obs[6:])  # reset fills the stack with the first frame
    for _ in range(3):
        prev = obs
        obs, *_ = env.step(env.action_space.sample())
        newest = physics.render(height=84, width=84, camera_id=0).transpose(2, 0, 1)
        assert np.array_equal(obs[6:], newest) and np.array_equal(obs[:6], prev[3:])
    assert env.render().shape == (240, 320, 3)  # the normal render, not the 84x84 observation


def test_a_dmc_env_plays_the_same_twice():
    """The same seed and actions give the same episode, to the last bit (what the reproduction's comparisons of
    physics releases and of machines rest on; studies/physics_releases.py compares two releases)."""

    def play():
        env = make_env("dm_control/cartpole-swingup-v0", seed=0)
        obs, _ = env.reset(seed=0)
        trace, rewards = [obs], []
        actions = np.random.default_rng(0).uniform(-1, 1, (20, *env.action_space.shape)).astype(np.float32)
        for action in actions:
            obs, reward, *_ = env.step(action)
            trace.append(obs)
            rewards.append(reward)
        env.close()
        return np.stack(trace), np.array(rewards)

    (first, first_rewards), (again, again_rewards) = play(), play()
    assert np.array_equal(first, again) and np.array_equal(first_rewards, again_rewards)
    assert not np.array_equal(first[0], first[-1])  # the pole moved: the episode is not trivially constant


# ------------------------------------------------------------------------------------------- Atari


def test_atari_pong():
    env = make_env("ALE/Pong-v5", seed=0)
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    assert ale.getInt("max_num_frames_per_episode") == 108_000
    assert env.action_space == spaces.Discrete(6)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, reward, *_ = env.step(env.action_space.sample())
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    spec = EnvSpec.from_env(env, frame_stack=4)
    assert spec == EnvSpec((4, 84, 84), True, 4, True, 6) and spec.frame_shape == (1, 84, 84)


# ------------------------------------------------------------------------------------------- wrap_env


def test_wrap_env_matches_make_env():
    import ale_py
    import shimmy

    gym.register_envs(shimmy)
    gym.register_envs(ale_py)
    cases = [
        ("Pendulum-v1", {}),
        ("dm_control/walker-walk-v0", {}),
        ("Dmc-visual-cartpole-balance", {}),
        ("ALE/Pong-v5", {"frameskip": 1}),
    ]
    for env_id, kwargs in cases:
        config = resolve_env(env_id)
        made, wrapped = make_env(env_id), wrap_env(gym.make(config.gym_id, **kwargs), config)
        assert (wrapped.observation_space, wrapped.action_space) == (made.observation_space, made.action_space)


def test_wrap_env_image_obs_is_channel_first():
    env = wrap_env(TinyEnv(observation_space=spaces.Box(0, 255, (8, 6, 3), np.uint8)), gym_config())
    assert env.observation_space.shape == (3, 8, 6)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 8, 6) and obs.dtype == np.uint8
    assert EnvSpec.from_env(env) == EnvSpec((3, 8, 6), True, 1, False, 2)


def test_wrap_env_rescales_box_actions():
    env = wrap_env(
        TinyEnv(action_space=spaces.Box(np.array([0.0, -4.0]), np.array([1.0, 4.0]), dtype=np.float64)), gym_config()
    )
    assert env.action_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    env.reset(seed=0)
    env.step(np.array([1.0, -1.0], np.float32))
    np.testing.assert_allclose(env.unwrapped.last_action, [1.0, -4.0])


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Dmc-visual-quadruped-run", "Atari-Pong-v5"])
def test_env_config_round_trip(env_id):
    config = resolve_env(env_id)
    assert EnvConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_env_spec_round_trip():
    for spec in [EnvSpec((9, 84, 84), True, 3, False, 6), EnvSpec((17,), False, 1, True, 4)]:
        assert EnvSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "env_id",
    [
        "Foo-v0",
        "HalfCheetah-v99",
        "Dmc-walker-wolk",
        "Dmc-visual-nope-nope",
        "dm_control/walker-walk-v7",
        "ALE/Pong-v4",
        "Atari-NotAGame-v5",
        "foo bar",
        "",
        "Gym-",
    ],
)
def test_bad_ids(env_id):
    with pytest.raises(UnsupportedEnvError) as error:
        resolve_env(env_id)
    assert_one_line(error)
    with pytest.raises(UnsupportedEnvError):
        make_env(env_id)


BAD_SPACES = {
    "dict obs": dict(observation_space=spaces.Dict({"a": spaces.Box(-1, 1, (2,))})),
    "2-D float obs": dict(observation_space=spaces.Box(-1, 1, (4, 4))),
    "discrete obs": dict(observation_space=spaces.Discrete(3)),
    "multidiscrete actions": dict(action_space=spaces.MultiDiscrete([2, 3])),
    "multibinary actions": dict(action_space=spaces.MultiBinary(3)),
    "tuple actions": dict(action_space=spaces.Tuple([spaces.Discrete(2), spaces.Discrete(2)])),
    "2-D box actions": dict(action_space=spaces.Box(-1, 1, (2, 2))),
    "unbounded box actions": dict(action_space=spaces.Box(-np.inf, np.inf, (2,))),
    "discrete start 1": dict(action_space=spaces.Discrete(3, start=1)),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_bad_spaces(case):
    with pytest.raises(UnsupportedEnvError) as error:
        wrap_env(TinyEnv(**BAD_SPACES[case]), gym_config())
    assert_one_line(error)
    with pytest.raises(UnsupportedEnvError) as error:
        EnvSpec.from_env(TinyEnv(**BAD_SPACES[case]))
    assert_one_line(error)


@pytest.mark.parametrize(
    "build",
    [
        lambda: EnvSpec.from_env(gym.make("Pendulum-v1")),  # bounds not [-1, 1]: not preprocessed
        lambda: EnvSpec.from_env(make_env("Pendulum-v1"), frame_stack=2),
        lambda: EnvSpec.from_env(
            TinyEnv(observation_space=spaces.Box(0, 255, (9, 8, 8), np.uint8), action_space=spaces.Discrete(2)),
            frame_stack=2,
        ),
        lambda: EnvConfig.from_dict({**resolve_env("Pendulum-v1").to_dict(), "colour": "red"}),
        lambda: EnvConfig.from_dict({"env_id": "Pendulum-v1"}),
        lambda: make_env(EnvConfig(env_id="x", family="mujoco", gym_id="x")),  # its family, where it is looked up
        lambda: EnvConfig(env_id="x", family="gym", gym_id="x", frame_stack=0),
        lambda: EnvSpec.from_dict({"obs_shape": [3], "pixels": False}),
        lambda: wrap_env(gym.make("CartPole-v1"), resolve_env("Dmc-walker-walk")),
        lambda: make_env(42),
    ],
)
def test_other_errors_are_one_line(build):
    with pytest.raises(UnsupportedEnvError) as error:
        build()
    assert_one_line(error)


def test_atari_wrap_needs_frameskip_1():
    import ale_py

    gym.register_envs(ale_py)
    with pytest.raises(UnsupportedEnvError) as error:
        wrap_env(gym.make("ALE/Pong-v5"), resolve_env("ALE/Pong-v5"))
    assert_one_line(error)


@contextlib.contextmanager
def _hidden(model, geoms):
    """Draw the geoms `geoms` fully transparent (geom and material colour) inside the block."""
    geom_rgba, mat_rgba = model.geom_rgba.copy(), model.mat_rgba.copy()
    model.geom_rgba[geoms, 3] = 0
    materials = model.geom_matid[geoms]
    model.mat_rgba[materials[materials >= 0], 3] = 0
    try:
        yield
    finally:
        model.geom_rgba[:], model.mat_rgba[:] = geom_rgba, mat_rgba


def _changed(a, b):
    """Share of pixels that differ visibly between two frames."""
    return float((np.abs(a.astype(int) - b.astype(int)).sum(-1) > 30).mean())


@pytest.mark.parametrize("env_id", ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4", "Humanoid-v4"])
def test_locomotion_videos_keep_the_agent_in_view_on_a_floor(env_id):
    """By the frames: 100 m down the track (where a good run ends), the agent is in the picture and stands on floor.

    Gymnasium's own views lose the agent (Hopper, Walker2d, Humanoid: a free camera ignores `trackbodyid`) or
    the floor (HalfCheetah, Ant: a 40 m plane). Hiding the agent's geoms must change at least 1% of the frame
    (it covers 2-10%); hiding the floor must change most of the bottom quarter.
    """
    import mujoco

    env = make_env(env_id, render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    sim = env.unwrapped
    qpos = sim.data.qpos.copy()
    qpos[0] += 100.0  # the root's x
    sim.set_state(qpos, sim.data.qvel)
    for _ in range(5):
        env.step(env.action_space.sample())
    frame = env.render()
    model = sim.model
    with _hidden(model, np.flatnonzero(model.geom_bodyid > 0)):
        without_agent = env.render()
    with _hidden(model, np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE)):
        without_floor = env.render()
    env.close()
    assert _changed(frame, without_agent) > 0.01, "the agent is out of the picture"
    bottom = frame.shape[0] * 3 // 4
    assert _changed(frame[bottom:], without_floor[bottom:]) > 0.8, "the floor ends before the agent"


@pytest.mark.parametrize("env_id", ["HalfCheetah-v4", "Hopper-v4"])
def test_the_recording_floor_leaves_physics_unchanged(env_id):
    """Rendering widens the floor as drawn: observations and rewards match an unrendered env's bit for bit,
    also 100 m down the track, where only the widened floor is drawn."""
    plain, rendered = make_env(env_id, seed=0), make_env(env_id, seed=0, render_mode="rgb_array")
    assert (rendered.unwrapped.model.geom_size[0, :2] > plain.unwrapped.model.geom_size[0, :2]).all()
    actions = np.random.default_rng(0).uniform(-1, 1, (300, *plain.action_space.shape)).astype(np.float32)
    for env in (plain, rendered):
        env.reset(seed=0)
        sim = env.unwrapped
        qpos = sim.data.qpos.copy()
        qpos[0] += 100.0
        sim.set_state(qpos, sim.data.qvel)
    for t, action in enumerate(actions):
        a, b = plain.step(action), rendered.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4], f"step {t}"
        if a[2] or a[3]:
            for env in (plain, rendered):
                env.reset(seed=t)


def test_renders_use_the_models_track_camera_unless_the_user_names_one():
    import mujoco

    env = make_env("HalfCheetah-v4", render_mode="rgb_array")
    track = mujoco.mj_name2id(env.unwrapped.model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    assert track >= 0 and env.unwrapped.mujoco_renderer.camera_id == track
    # A camera the user names is left alone, floor included; no render, no change.
    chosen = make_env("Hopper-v4", render_mode="rgb_array", camera_id=-1).unwrapped
    assert chosen.mujoco_renderer.camera_id == -1 and chosen.model.geom_size[0, 0] == 20
    assert make_env("HalfCheetah-v4").unwrapped.mujoco_renderer.camera_id == -1


def test_dmc_videos_use_the_papers_camera():
    """dm_control's default render is its free camera, which the walker leaves; renders use camera 0 (quadruped 2)."""
    walker = make_env("Dmc-walker-walk", render_mode="rgb_array")
    assert walker.unwrapped.render_kwargs == {"camera_id": 0}
    walker.reset(seed=0)
    assert walker.render().shape == (240, 320, 3)
    assert make_env("dm_control/quadruped-run-v0", render_mode="rgb_array").unwrapped.render_kwargs == {"camera_id": 2}
    chosen = make_env("Dmc-walker-walk", render_mode="rgb_array", render_kwargs={"camera_id": 1})
    assert chosen.unwrapped.render_kwargs == {"camera_id": 1}


@pytest.mark.filterwarnings("ignore::UserWarning")  # the note of building the model folder's env here
def test_the_papers_gym_mujoco_version_is_explained_once_and_leaves_nothing_behind(tmp_path):
    """HalfCheetah-v4 (the paper's version): one note on why it is used, not Gymnasium's deprecation warning at
    each build nor MuJoCo's `settotalmass` warning, and no MUJOCO_LOG.TXT in the user's folder."""
    from helpers.model_folders import make_model_folder
    from helpers.user_env import MRQ, user_env

    folder, _, _ = make_model_folder(tmp_path / "model", "HalfCheetah-v4")
    user = tmp_path / "user"
    user.mkdir()
    done = subprocess.run(  # two episodes: the env is built twice
        MRQ + ["play", "HalfCheetah-v4", "--model", str(folder), "--episodes", "2"],
        cwd=user,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["episode 1", "episode 2"], done.stdout
    (note,) = done.stderr.strip().splitlines()
    assert note.startswith("note: HalfCheetah-v4 is used as named") and "the paper" in note and "v5" in note, note
    assert list(user.iterdir()) == []


@pytest.mark.parametrize(
    "env_id, field, missing",
    [
        ("Dmc-visual-walker-walk", "camera_id", "camera_id"),
        ("Dmc-visual-walker-walk", "image_size", "image_size"),
        ("ALE/Pong-v5", "image_size", "image_size"),
    ],
)
def test_a_pixel_config_without_a_setting_its_family_needs_is_one_line(env_id, field, missing):
    """A damaged config.json (a pixel env without its image size or camera) is refused by name where the family is
    looked up, before any env is built; a vector config needs neither."""
    from mrq_agents.envs import family_of

    config = EnvConfig.from_dict({**resolve_env(env_id).to_dict(), field: None})
    with pytest.raises(UnsupportedEnvError, match=f"has pixels=True but no {missing}$"):
        family_of(config)
    assert family_of(resolve_env("Dmc-walker-walk")).name == "dmc" and resolve_env("Dmc-walker-walk").camera_id is None
