"""Torch's thread count: chosen from the network size and the machine, and overridable on every command."""

import pytest
import torch
from typer.testing import CliRunner

from helpers.model_folders import make_model_folder
from mrq_agents import threads
from mrq_agents.cli import app
from mrq_agents.config import MRQConfig, preset_config
from mrq_agents.envs import EnvSpec

VECTOR = EnvSpec(obs_shape=(17,), pixels=False, frame_stack=1, discrete=False, action_dim=6)
PIXELS = EnvSpec(obs_shape=(9, 84, 84), pixels=True, frame_stack=3, discrete=False, action_dim=6)


@pytest.fixture
def machine(monkeypatch):
    """machine(cpus, load): pretend to run on `cpus` CPUs with this 1-minute load average."""

    def set_machine(cpus: int, load: float) -> None:
        monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))

    return set_machine


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "config, spec, cpus, load, expected",
    [
        (preset_config("small"), VECTOR, 16, 0.0, 1),  # small networks: one thread, however idle the machine
        (MRQConfig(), VECTOR, 2, 0.0, 2),  # paper size on an idle 2-core machine: both cores
        (MRQConfig(), VECTOR, 2, 1.2, 1),  # ... with another run on it: one
        (MRQConfig(), PIXELS, 16, 2.0, 4),  # at most 4
        (preset_config("small"), PIXELS, 8, 0.0, 4),  # a conv encoder is never small
        (MRQConfig(), VECTOR, 4, 9.0, 1),  # overloaded: still at least 1
    ],
)
def test_choose_threads(machine, config, spec, cpus, load, expected):
    machine(cpus, load)
    assert threads.choose_threads(config, spec, "cpu") == expected


def test_gpu_runs_use_one_cpu_thread(machine):
    machine(16, 0.0)
    assert threads.choose_threads(MRQConfig(), PIXELS, "cuda:0") == 1


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "MODEL", "--episodes", "1"],
        ["play", "MODEL"],
        ["export", "MODEL", "--out", "EXPORT", "--episodes", "1"],
    ],
)
def test_acting_commands_use_one_thread_by_default_and_take_threads(tmp_path, restore_threads, command):
    folder, _, _ = make_model_folder(tmp_path / "model", "Pendulum-v1")
    args = [str(folder) if a == "MODEL" else str(tmp_path / "export") if a == "EXPORT" else a for a in command]
    torch.set_num_threads(2)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    result = CliRunner().invoke(app, [*args, "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2
    result = CliRunner().invoke(app, [*args, "--threads", "0"])
    assert result.exit_code == 2 and "--threads must be >= 1, got 0" in result.stderr


def test_train_reports_its_thread_count(tmp_path, restore_threads):
    torch.set_num_threads(2)
    args = "train Pendulum-v1 --preset small --steps 5 --eval-every 5 --eval-episodes 1 --out".split()
    result = CliRunner().invoke(app, [*args, str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "(plain path, fp32) | threads 1 |" in result.stdout and torch.get_num_threads() == 1


def test_finetune_takes_threads(tmp_path, restore_threads):
    folder, _, _ = make_model_folder(tmp_path / "model", "Pendulum-v1")
    options = "--env Pendulum-v1 --steps 5 --eval-every 5 --eval-episodes 1 --threads 2 --out".split()
    result = CliRunner().invoke(app, ["finetune", str(folder), *options, str(tmp_path / "ft")])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2
