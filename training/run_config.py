"""A training run's settings, its config.json, and the rules for resuming it.

`RunConfig` holds what is not the algorithm (steps, seed, evaluation and checkpoint cadence, device, precision,
env kwargs); `run_config_json` writes it into the run folder's config.json with the algorithm config, the env
and its preprocessing, the spaces and where it trained; `check_resumable` refuses a resume that would not
continue the same run, and `resumed_training_info` records where each part of a resumed run trained.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mrq_agents import __version__
from mrq_agents.config import WARMUP_ACTIONS, MRQConfig, train_command
from mrq_agents.envs import EnvConfig, EnvSpec, benchmark_defaults, resolve_env
from mrq_agents.errors import CheckpointError, ConfigError
from mrq_agents.fast import resolve_fast
from mrq_agents.files import CONFIG_FILE, FORMAT_VERSION
from mrq_agents.precision import PRECISIONS, resolve_precision

# What the agent does during the warm-up (no updates yet): uniform random actions, as the paper; or, for a
# fine-tune, the transferred policy's own actions with the training exploration noise.


@dataclass(frozen=True)
class RunConfig:
    """Settings of one training run (not part of the algorithm)."""

    env_id: str
    steps: int
    seed: int = 0
    eval_every: int = 5_000
    eval_episodes: int = 10
    checkpoint_every: int | None = None  # None: the eval cadence, bounded by the write cost (module docstring)
    device: str = "auto"
    fast: bool | None = None  # the fast update path (mrq_agents.fast); None: on for CUDA, off for the CPU
    precision: str = "auto"  # fp32 or bf16 matrix products (mrq_agents.precision); config.json stores the resolved one
    env_kwargs: dict[str, Any] | None = None  # keyword arguments for gymnasium.make (--env-kwargs)
    warmup_actions: str = "random"  # the warm-up's actions: "random" (the paper's) or "policy" (with its noise)
    # A fine-tune's schedule (training/transfer.py, FinetuneSchedule), kept here so that a resume keeps it:
    hold_policy: int = 0  # first updates that train the encoder and the critics but not the policy
    hold_encoder: int = 0  # first updates that train the critics and the policy but not the encoder
    source_reward_scale: float | None = None  # the transferred critics' reward scale, converted before update 0

    def __post_init__(self) -> None:
        if self.warmup_actions not in WARMUP_ACTIONS:
            raise ConfigError(
                f"unknown warm-up actions {self.warmup_actions!r}: choose one of {', '.join(WARMUP_ACTIONS)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.hold_policy < 0:
            raise ConfigError(f"--hold-policy must be >= 0 updates, got {self.hold_policy}")
        if self.hold_encoder < 0:
            raise ConfigError(f"--hold-encoder must be >= 0 updates, got {self.hold_encoder}")
        if self.source_reward_scale is not None and not 0 < self.source_reward_scale < math.inf:
            raise ConfigError(f"a source reward scale must be a positive number, got {self.source_reward_scale}")
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


def default_run_config(env_id: str, **overrides: Any) -> RunConfig:
    """The paper's steps and eval cadence for the env's benchmark (others: 100k steps, eval every 5k)."""
    steps, eval_every = benchmark_defaults(resolve_env(env_id, overrides.get("env_kwargs")))
    values = {"steps": steps, "eval_every": eval_every}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig(env_id=env_id, **values)


def run_config_json(
    run: RunConfig, algo: MRQConfig, env_config: EnvConfig, spec: EnvSpec, device: torch.device
) -> dict:
    """config.json of a run; its precision is the resolved one, so a resumed run keeps it on any machine."""
    run_dict = {**dataclasses.asdict(run), "precision": resolve_precision(run.precision, device)}
    return {
        "format_version": FORMAT_VERSION,
        "package": "mrq-agents",
        "package_version": __version__,
        "env": env_config.to_dict(),
        "spaces": spec.to_dict(),
        "algorithm": algo.to_dict(),
        "run": run_dict,
        "training": {
            "device": str(device),
            "torch": torch.__version__,
            "fast_path": resolve_fast(run.fast, device),
            "precision": run_dict["precision"],
            "command": train_command(run.env_id, run_dict, algo.to_dict()),
        },
    }


HARDWARE_KEYS = ("device", "torch", "fast_path")  # where a run trained; a resume elsewhere starts a new segment


def resumed_training_info(saved: dict[str, Any], current: dict[str, Any], step: int) -> dict[str, Any]:
    """config.json's `training` for a run resumed at `step`: `current`, plus `segments` (where each part of the
    run trained, from which step) once it has trained on more than one device, torch or update path."""
    segments = saved.get("segments") or [{"from_step": 0, **{k: saved.get(k) for k in HARDWARE_KEYS}}]
    if any(segments[-1].get(k) != current.get(k) for k in HARDWARE_KEYS):
        segments = [*segments, {"from_step": int(step), **{k: current.get(k) for k in HARDWARE_KEYS}}]
    return {**current, "segments": segments} if len(segments) > 1 else dict(current)


def check_resumable(saved: dict, run: RunConfig, algo: MRQConfig, env_config: EnvConfig, out: Path) -> None:
    """Refuse to resume a run with another env, algorithm config, seed or eval protocol."""
    if saved.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{out / CONFIG_FILE} has format version {saved.get('format_version')}, this "
            f"package reads version {FORMAT_VERSION}: resume it with the version that wrote it"
        )
    saved_env = EnvConfig.from_dict(saved["env"])  # fills fields added since the run was written
    if saved_env != env_config:
        detail = (
            f"with env kwargs {saved_env.env_kwargs}, not {env_config.env_kwargs}"
            if saved_env.env_id == env_config.env_id
            else f"on {saved_env.env_id!r}, not {env_config.env_id!r}"
        )
        raise ConfigError(f"{out} was trained {detail}: resume with the same env or choose another --out")
    saved_algo = saved["algorithm"]
    changed = sorted(k for k, v in algo.to_dict().items() if saved_algo.get(k) != v)
    if changed:
        detail = ", ".join(f"{k}: {saved_algo.get(k)} -> {getattr(algo, k)}" for k in changed)
        raise ConfigError(
            f"cannot resume {out} with a different algorithm config ({detail}): "
            "drop the --set overrides that differ or choose another --out"
        )
    for name in ("seed", "eval_every", "eval_episodes"):
        if saved["run"][name] != getattr(run, name):
            raise ConfigError(
                f"cannot resume {out} with --{name.replace('_', '-')} {getattr(run, name)}: "
                f"it was started with {saved['run'][name]}"
            )
