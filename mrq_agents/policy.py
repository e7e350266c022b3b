"""The lightweight inference `Policy`: load saved MR.Q weights (safetensors + JSON only) and act."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvConfig, EnvSpec, make_env, wrap_env
from mrq_agents.errors import CheckpointError
from mrq_agents.networks import Encoder, Policy as PolicyNet
from mrq_agents.serialization import load_tensors, read_json

CONFIG_FILE, MODEL_FILE = "config.json", "model.safetensors"
SUPPORTED_FORMAT = 1


class _Actor(torch.nn.Module):
    """The part of MR.Q that acting needs: the state encoder and the policy (module names as in training)."""

    def __init__(self, spec: EnvSpec, config: MRQConfig):
        super().__init__()
        self.encoder = Encoder(spec.obs_shape, spec.pixels, spec.action_dim, config)
        self.policy = PolicyNet(spec.action_dim, spec.discrete, config)


class Policy:
    """An MR.Q agent ready to act: `Policy.from_pretrained(folder).act(obs)`."""

    def __init__(self, actor: _Actor, spec: EnvSpec, env_config: EnvConfig, config: MRQConfig,
                 metadata: dict[str, Any], device: torch.device):
        self.actor, self.spec, self.env_config, self.config = actor, spec, env_config, config
        self.metadata, self.device = metadata, device

    @classmethod
    def from_pretrained(cls, source: str | Path, device: str | torch.device = "cpu") -> "Policy":
        """Load from a run folder of `mrq train` (or an export folder): config.json + model.safetensors."""
        folder = Path(source)
        if not folder.is_dir():
            raise CheckpointError(f"no model folder at {folder}: pass a run folder of `mrq train` or an export folder")
        meta = read_json(folder / CONFIG_FILE, "model config")
        version = meta.get("format_version")
        if not isinstance(version, int) or "algorithm" not in meta or "env" not in meta:
            raise CheckpointError(f"{folder / CONFIG_FILE} is not an MR.Q model config (no format_version/env/algorithm)")
        if version > SUPPORTED_FORMAT:
            raise CheckpointError(f"{folder} uses format version {version}; this mrq-agents reads up to "
                                  f"{SUPPORTED_FORMAT}: upgrade mrq-agents")
        config = MRQConfig.from_dict(meta["algorithm"])
        spec = EnvSpec.from_dict(meta["spaces"])
        env_config = EnvConfig.from_dict(meta["env"])
        device = torch.device(device)
        tensors, _ = load_tensors(folder / MODEL_FILE, what="model weights")
        actor = _Actor(spec, config)
        wanted = actor.state_dict()
        acting = {k: v for k, v in tensors.items() if k in wanted}
        missing = sorted(set(wanted) - set(acting))
        wrong = sorted(k for k in acting if acting[k].shape != wanted[k].shape)
        if missing or wrong:
            problem = f"missing {missing[:3]}" if missing else f"wrong shapes for {wrong[:3]}"
            raise CheckpointError(f"{folder / MODEL_FILE} does not fit its config.json ({problem}): "
                                  "the weights belong to another env or config")
        actor.load_state_dict(acting, strict=True)
        return cls(actor.to(device).eval(), spec, env_config, config, meta, device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation (obs_shape) or a batch (N, *obs_shape).

        Continuous: tanh(pre) in [-1, 1] (the env's preprocessing rescales to its bounds). Discrete:
        `argmax(pre)` when deterministic, else the paper's evaluation `argmax(gumbel_softmax(pre))`.
        """
        obs = np.asarray(obs)
        single = obs.shape == self.spec.obs_shape
        if not single and obs.shape[1:] != self.spec.obs_shape:
            raise ValueError(f"observation shape {obs.shape} does not match this policy's {self.spec.obs_shape} "
                             f"(or a batch of them): was the env built with policy.make_env()/wrap()?")
        x = torch.as_tensor(obs[None] if single else obs, device=self.device)
        if not self.spec.pixels:
            x = x.float()
        action, pre = self.actor.policy(self.actor.encoder.state(x))
        if self.spec.discrete:
            out = (pre if deterministic else action).argmax(1).cpu().numpy()
        else:
            out = action.cpu().numpy().astype(np.float32)
        return out[0] if single else out

    def make_env(self, render_mode: str | None = None, seed: int | None = None) -> gym.Env:
        """The env this policy was trained on, with exactly the training preprocessing."""
        return make_env(self.env_config, seed=seed, render_mode=render_mode)

    def wrap(self, env: gym.Env) -> gym.Env:
        """Apply the training preprocessing to an env you built yourself."""
        return wrap_env(env, self.env_config)
