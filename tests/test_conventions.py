"""Ecosystem conventions: gymnasium's env checker, `module:EnvId` ids with --env-kwargs for custom envs, the
package data a non-editable install ships, `mrq --version`, and choices listed in --help."""

import glob
import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import tomllib
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

import mrq_agents
from helpers.user_env import MRQ, user_env
from mrq_agents import Policy, zoo
from mrq_agents.cli import app
from mrq_agents.envs import make_env

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

CUSTOM_ENV = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np


    class Reach(gym.Env):
        """Move a point towards the origin; `size` sets its dimension."""

        def __init__(self, size=2, horizon=20):
            self.size, self.horizon = size, horizon
            self.observation_space = gym.spaces.Box(-10, 10, (size,), np.float32)
            self.action_space = gym.spaces.Box(-1, 1, (size,), np.float32)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.x, self.t = self.np_random.uniform(-1, 1, self.size).astype(np.float32), 0
            return self.x.copy(), {}

        def step(self, action):
            self.x = np.clip(self.x + 0.1 * np.asarray(action, np.float32), -10, 10)
            self.t += 1
            return self.x.copy(), -float(np.abs(self.x).sum()), False, self.t >= self.horizon, {}


    gym.register("Reach-v0", entry_point=Reach)
''')


@pytest.mark.parametrize("source", ["zoo", "Dmc-visual-cartpole-balance"])
def test_gymnasium_env_checker_passes_on_dmc_envs(source):
    env = (
        Policy.from_pretrained(zoo.find_by_env("dm_control/cartpole-balance-v0")["repo_id"]).make_env()
        if source == "zoo"
        else make_env(source)
    )
    check_env(env, skip_render_check=True)
    env.close()


def test_custom_env_from_the_command_line(tmp_path):
    """Train `module:EnvId` with --env-kwargs, then evaluate and play the run: each rebuilds the same env."""
    (tmp_path / "custom_reach.py").write_text(CUSTOM_ENV)
    env = user_env(PYTHONPATH=str(tmp_path))
    out = tmp_path / "run"

    def mrq(*args):
        proc = subprocess.run(
            MRQ + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    mrq(
        "train",
        "custom_reach:Reach-v0",
        "--env-kwargs",
        '{"size": 3}',
        "--steps",
        60,
        "--eval-every",
        60,
        "--eval-episodes",
        1,
        "--out",
        out,
        "--preset",
        "small",
        "--set",
        "warmup_steps=40",
        "--set",
        "batch_size=8",
        "--device",
        "cpu",
    )
    config = json.loads((out / "config.json").read_text())
    assert config["env"]["gym_id"] == "custom_reach:Reach-v0" and config["env"]["env_kwargs"] == {"size": 3}
    assert config["spaces"]["obs_shape"] == [3]
    assert "--env-kwargs '{\"size\": 3}'" in config["training"]["command"]
    assert mrq("eval", out, "--episodes", 2).startswith("custom_reach:Reach-v0: return ")
    assert "20 steps" in mrq("play", out)


def test_bad_env_kwargs_and_modules_are_one_line(tmp_path):
    for args, fragment in [
        (["Pendulum-v1", "--env-kwargs", "{nope"], "--env-kwargs is not valid JSON"),
        (["Pendulum-v1", "--env-kwargs", "[1]"], "must be a JSON object"),
        (["Pendulum-v1", "--env-kwargs", '{"colour": 1}'], "colour"),
        (["no_such_module_xyz:Env-v0"], "cannot import 'no_such_module_xyz'"),
    ]:
        result = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "run"), "--steps", "10"])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and fragment in line, line


def test_package_data_ships_every_bundled_file():
    """What the cards link (learning_curve.png, metrics.csv) must be in a non-editable install too."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    zoo_dir = ROOT / "zoo"
    shipped = {
        Path(p) for pattern in patterns["mrq_agents.zoo"] for p in glob.glob(pattern, root_dir=zoo_dir, recursive=True)
    }
    bundled = {
        p.relative_to(zoo_dir)
        for p in zoo_dir.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    }
    assert bundled - shipped == set()
    for entry in zoo.entries():
        card = (zoo.bundled_folder(entry) / "README.md").read_text()
        for linked in ("learning_curve.png", "metrics.csv"):
            if linked in card:
                assert Path(entry["folder"]) / linked in shipped


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"mrq-agents {mrq_agents.__version__}"
    proc = subprocess.run(MRQ + ["--version"], capture_output=True, text=True, env=user_env(), timeout=60)
    assert proc.stdout.strip() == f"mrq-agents {mrq_agents.__version__}"


@pytest.mark.parametrize(
    "command, option, choices",
    [
        ("train", "--preset", ["paper", "small"]),
        ("config", "--preset", ["paper", "small"]),
        ("finetune", "--freeze", ["none", "encoder"]),
    ],
)
def test_help_lists_choices(command, option, choices):
    from mrq_agents.config import PRESETS
    from mrq_agents.training.transfer import FREEZE_CHOICES

    assert set(choices) == set(PRESETS if option == "--preset" else FREEZE_CHOICES)
    text = " ".join(runner.invoke(app, [command, "--help"], terminal_width=200).stdout.split())
    assert f"one of: {', '.join(choices)}" in text.lower()


def test_readme_says_how_the_reward_scale_differs_from_the_authors():
    """The authors' code clamps a zero reward scale to 1e-8 (no division by zero there either); README says what
    differs, as tests/test_learner.py::test_scales_without_rewards_against_the_authors_clamp measures it."""
    readme = (ROOT / "README.md").read_text()
    assert "instead of dividing by zero" not in readme
    assert "clamps the scale to 1e-8" in readme and "1/1e-8 = 1e8" in readme


def test_every_subpackage_is_installed():
    """A non-editable install ships only the packages pyproject.toml lists: every folder of modules is one."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {package: ROOT / folder for package, folder in setuptools["package-dir"].items()}
    found = {
        package + "".join("." + part for part in init.parent.relative_to(folder).parts)
        for package, folder in folders.items()
        for init in folder.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed
