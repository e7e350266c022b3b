"""Test helper: model folders (config.json + model.safetensors) of freshly initialised tiny MR.Q networks."""

from mrq_agents.config import MRQConfig
from mrq_agents.training.checkpoint import write_model_folder

TINY = MRQConfig(zs_dim=16, zsa_dim=16, za_dim=8, enc_hdim=16, value_hdim=16, policy_hdim=16, batch_size=8)


def make_model_folder(folder, env_id, seed=0):
    """A run-like folder for `env_id`; returns (folder, learner, preprocessed env)."""
    learner, env = write_model_folder(folder, env_id, TINY, seed=seed)
    return folder, learner, env
