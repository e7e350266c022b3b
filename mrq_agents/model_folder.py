"""Reading an export or run folder: its config.json (checked), its weights (checked) and its metrics.csv.

Acting (`mrq_agents.policy`) and fine-tuning (training/finetune.py) both start from such a folder; neither imports
the other. Nothing here imports torch until weights are loaded.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvConfig, EnvSpec, family_of
from mrq_agents.errors import CheckpointError, ConfigError, UnsupportedEnvError
from mrq_agents.files import CONFIG_FILE, METRICS_FILE, MODEL_FILE, sha256_file
from mrq_agents.files import FORMAT_VERSION as SUPPORTED_FORMAT
from mrq_agents.serialization import load_tensors, read_json

if TYPE_CHECKING:
    import torch


def read_model_config(folder: Path) -> tuple[dict[str, Any], MRQConfig, EnvSpec, EnvConfig]:
    """Read and validate the config.json of an export or run folder (no weights, no torch)."""
    meta = read_json(folder / CONFIG_FILE, "model config")
    version = meta.get("format_version")
    if not isinstance(version, int) or not {"algorithm", "env", "spaces"} <= set(meta):
        raise CheckpointError(
            f"{folder / CONFIG_FILE} is not an MR.Q model config (needs format_version, env, "
            "spaces, algorithm): pass an export folder or a run folder of `mrq train`"
        )
    if version > SUPPORTED_FORMAT:
        raise CheckpointError(
            f"{folder} uses format version {version}; this mrq-agents reads up to "
            f"{SUPPORTED_FORMAT}: upgrade mrq-agents (pip install -U mrq-agents)"
        )
    try:
        config = MRQConfig.from_dict(meta["algorithm"])
        spec = EnvSpec.from_dict(meta["spaces"])
        env_config = EnvConfig.from_dict(meta["env"])
        family_of(env_config)
    except (ConfigError, UnsupportedEnvError, TypeError, KeyError) as err:
        raise CheckpointError(f"{folder / CONFIG_FILE} is malformed ({err}): re-export the model") from None
    expected = meta.get("weights_sha256")
    weights = folder / MODEL_FILE
    if expected is not None and weights.is_file() and sha256_file(weights) != expected:
        raise CheckpointError(
            f"{folder / MODEL_FILE} does not match the weights_sha256 in its config.json: the "
            "file is damaged or was replaced; download or export the model again"
        )
    return meta, config, spec, env_config


def load_model_folder(folder: Path) -> tuple[dict[str, Any], MRQConfig, EnvSpec, EnvConfig, dict[str, torch.Tensor]]:
    """Read and validate config.json + model.safetensors of an export or run folder (nothing half-loaded)."""
    import torch

    meta, config, spec, env_config = read_model_config(folder)
    tensors, _ = load_tensors(folder / MODEL_FILE, what="model weights")
    # Compact exports store what acting does not read as float16 (`save_pretrained(compact=True)`): float32 here.
    tensors = {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}
    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all())
    if bad:
        raise CheckpointError(
            f"{folder / MODEL_FILE} holds NaN or infinite weights ({', '.join(bad[:3])}): the "
            "run diverged or the file is damaged; use another checkpoint or train again"
        )
    return meta, config, spec, env_config, tensors


def metrics_rows(folder: Path) -> list[dict[str, str]]:
    """The rows of `folder`'s metrics.csv as strings (none when it has no such file)."""
    path = folder / METRICS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
