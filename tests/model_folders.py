"""Test helper: model folders (config.json + model.safetensors) of freshly initialised tiny MR.Q networks."""

import torch

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec, make_env, resolve_env
from mrq_agents.learner import MRQLearner
from mrq_agents.serialization import atomic_write_json, save_tensors
from mrq_agents.training.trainer import RunConfig, network_tensors, run_config_json

TINY = MRQConfig(zs_dim=16, zsa_dim=16, za_dim=8, enc_hdim=16, value_hdim=16, policy_hdim=16, batch_size=8)


def make_model_folder(folder, env_id, seed=0):
    """A run-like folder for `env_id`; returns (folder, learner, preprocessed env)."""
    env_config = resolve_env(env_id)
    env = make_env(env_config)
    spec = EnvSpec.from_env(env, env_config.frame_stack)
    torch.manual_seed(seed)
    learner = MRQLearner(spec, TINY, "cpu")
    folder.mkdir(parents=True, exist_ok=True)
    run = RunConfig(env_id=env_id, steps=1000, seed=seed)
    atomic_write_json(folder / "config.json", run_config_json(run, TINY, env_config, spec, torch.device("cpu")))
    save_tensors(folder / "model.safetensors", network_tensors(learner))
    return folder, learner, env
