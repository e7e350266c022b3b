"""Ecosystem conventions: gymnasium's env checker, `module:EnvId` ids with --env-kwargs for custom envs, the
zoo index a non-editable install ships, `mrq --version`, and choices listed in --help."""

import importlib.util
import json
import os
import subprocess
import textwrap
import zipfile
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


def test_the_wheel_carries_the_zoo_index_not_its_files(tmp_path):
    """pyproject ships zoo/manifest.json only; what an entry's card links is among the files its Hub repo gets; and
    the check CI runs on the built wheel (tools/check_wheel.py) refuses agent files and size."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert patterns["mrq_agents.zoo"] == ["manifest.json"]
    for entry in zoo.entries():
        card = (zoo.checkout_folder(entry) / "README.md").read_text()
        for linked in ("learning_curve.png", "metrics.csv"):
            if linked in card:
                assert linked in entry["files"], (entry["folder"], linked)
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "tools" / "check_wheel.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    small, large = tmp_path / "small-0-py3-none-any.whl", tmp_path / "large-0-py3-none-any.whl"
    with zipfile.ZipFile(small, "w") as archive:
        archive.writestr("mrq_agents/zoo/manifest.json", "{}")
    with zipfile.ZipFile(large, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("mrq_agents/zoo/x/model.safetensors", os.urandom(check.LIMIT_BYTES))
        archive.writestr("mrq_agents/zoo/x/replay.mp4", b"mp4")
    assert check.problems(small) == []
    assert check.problems(large) == [
        f"{large.name} is 5.0 MB, over the 5 MB limit",
        f"{large.name} holds mrq_agents/zoo/x/model.safetensors",
        f"{large.name} holds mrq_agents/zoo/x/replay.mp4",
    ]
    assert check.main([str(small)]) == 0 and check.main([str(large)]) == 1


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
        ("finetune", "--critic-units", ["keep", "convert"]),
        ("finetune", "--warmup-actions", ["policy", "random"]),
    ],
)
def test_help_lists_choices(command, option, choices):
    from mrq_agents.config import CRITIC_UNITS, FREEZE_CHOICES, PRESETS, WARMUP_ACTIONS

    known = {"--preset": PRESETS, "--freeze": FREEZE_CHOICES, "--critic-units": CRITIC_UNITS}
    assert set(choices) == set(known.get(option, WARMUP_ACTIONS))
    text = " ".join(runner.invoke(app, [command, "--help"], terminal_width=200).stdout.split())
    assert f"one of: {', '.join(choices)}" in text.lower()


def test_docs_say_how_the_reward_scale_differs_from_the_authors():
    """The authors' code clamps a zero reward scale to 1e-8 (no division by zero there either); the algorithm page's
    choices say what differs, as tests/test_learner.py::test_scales_without_rewards_against_the_authors_clamp
    measures it."""
    page = (ROOT / "docs" / "algorithm.md").read_text()
    assert "instead of dividing by zero" not in page
    assert "clamps the scale to 1e-8" in page and "1/1e-8 = 1e8" in page


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


def command_paths() -> list[list[str]]:
    """The words of every command and command group of `mrq`: [], ["train"], ..., ["zoo"], ["zoo", "list"]."""
    import typer

    paths = []

    def walk(command, words):
        paths.append(words)
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            walk(sub, [*words, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_help_reads_plainly_on_every_command():
    """`-h` works as `--help`; usage lines name arguments plainly (ENV, not {env}); each default is said once."""
    paths = command_paths()
    assert {"train", "eval", "play", "export", "finetune", "zoo"} <= {p[0] for p in paths if p}
    for words in paths:
        short, long = (
            runner.invoke(app, [*words, flag], terminal_width=1000, prog_name="mrq") for flag in ("-h", "--help")
        )
        assert short.exit_code == 0 and short.stdout == long.stdout, (words, short.output)
        usage = short.stdout.splitlines()[0]
        assert usage.startswith("Usage: mrq") and "{" not in usage, usage
        for line in short.stdout.splitlines():  # one line per option at this width
            assert line.count("[default:") <= 1, line
    assert "Usage: mrq train [OPTIONS] ENV" in runner.invoke(app, ["train", "-h"], prog_name="mrq").stdout


def test_shell_completion_is_offered():
    text = runner.invoke(app, ["--help"], terminal_width=200).stdout
    assert "--install-completion" in text and "--show-completion" in text


def test_finetune_warmup_help_does_not_say_random():
    """The fine-tune's warm-up acts with the pretrained policy by default (--warmup-actions)."""
    text = " ".join(runner.invoke(app, ["finetune", "-h"], terminal_width=1000).stdout.split())
    warmup = text.split("--warmup-steps", 1)[1].split("--warmup-actions", 1)[0]
    assert "random" not in warmup.lower() and "--warmup-actions" in text, warmup


def test_counts_of_one_episode_are_singular(pendulum_model):
    from mrq_agents.export import render_card

    folder, _, _ = pendulum_model
    meta = json.loads((folder / "config.json").read_text())
    results = {"mean": -1200.0, "std": 0.0, "episodes": 1, "seed": 0, "deterministic": True}
    card = render_card(meta, results, None, has_video=False, has_curve=False)
    assert "over 1 episode |" in card and "1 episodes" not in card
    result = runner.invoke(app, ["eval", str(folder), "--episodes", "1"])
    assert result.exit_code == 0, result.output
    assert " over 1 episode (" in result.stdout


def test_docs_promise_replay_videos_only_where_the_zoo_has_them():
    """Two `small` entries have no replay.mp4: no page may say that every entry has one."""
    without = [e["repo_id"] for e in zoo.entries() if "replay.mp4" not in e["files"]]
    assert without  # otherwise this test checks nothing: drop it once every entry has a video
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = " ".join(page.read_text().split())
        assert "a replay video per entry" not in text and "a replay video for every entry" not in text, page
