"""Test helper: model folders (config.json + model.safetensors) of freshly initialised MR.Q networks."""

from pathlib import Path
from typing import Any

import torch

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec, make_env, resolve_env
from mrq_agents.files import CONFIG_FILE, MODEL_FILE
from mrq_agents.learner import MRQLearner
from mrq_agents.serialization import atomic_write_json, save_tensors
from mrq_agents.training.checkpoint import network_tensors
from mrq_agents.training.run_config import RunConfig, run_config_json

TINY = MRQConfig(zs_dim=16, zsa_dim=16, za_dim=8, enc_hdim=16, value_hdim=16, policy_hdim=16, batch_size=8)


def write_model_folder(
    folder: str | Path, env_id: str, config: MRQConfig, seed: int = 0, device: str = "cpu"
) -> tuple[MRQLearner, Any]:
    """A run-like folder (config.json + model.safetensors) of freshly initialised networks for `env_id`.

    For benchmarks and tests that need a loadable model without training one; returns (learner, its env).
    """
    env_config = resolve_env(env_id)
    env = make_env(env_config)
    spec = EnvSpec.from_env(env, env_config.frame_stack)
    torch.manual_seed(seed)
    learner = MRQLearner(spec, config, device)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = RunConfig(env_id=env_id, steps=1, seed=seed)
    atomic_write_json(folder / CONFIG_FILE, run_config_json(run, config, env_config, spec, learner.device))
    save_tensors(folder / MODEL_FILE, network_tensors(learner))
    return learner, env


def make_model_folder(folder, env_id, seed=0):
    """A run-like folder of tiny networks for `env_id`; returns (folder, learner, preprocessed env)."""
    learner, env = write_model_folder(folder, env_id, TINY, seed=seed)
    return folder, learner, env
