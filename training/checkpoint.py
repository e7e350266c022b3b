"""Checkpoint and weight files of a run folder.

checkpoint.safetensors holds everything to resume (learner with optimizers, replay, random generators, loop
counters) as tensors plus a JSON skeleton in the header (`mrq_agents.serialization`); model.safetensors holds
the online networks' weights, named by module. Both carry the format version, env id and step in their header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mrq_agents.errors import CheckpointError
from mrq_agents.files import CHECKPOINT_FILE, FORMAT_VERSION, MODEL_FILE
from mrq_agents.learner import MRQLearner
from mrq_agents.serialization import (
    flatten_state,
    load_tensors,
    read_metadata,
    save_tensors,
    unflatten_state,
)


def checkpoint_step(out: str | Path) -> int | None:
    """The env step of the run folder's checkpoint (None without one), read from its header only."""
    path = Path(out) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    meta = read_metadata(path, "checkpoint")
    if "step" in meta:
        return int(meta["step"])
    counters = dict(dict(meta["state"]["__dict__"])["counters"]["__dict__"])  # older checkpoints: the skeleton
    return int(counters["step"])


def write_checkpoint(out: Path, state: dict, env_id: str, step: int) -> None:
    """Write `state` (a tree of tensors and JSON values) to out/checkpoint.safetensors, atomically."""
    tensors, skeleton = flatten_state(state)
    save_tensors(
        out / CHECKPOINT_FILE,
        tensors,
        {"format_version": FORMAT_VERSION, "env_id": env_id, "step": step, "state": skeleton},
    )


def read_checkpoint(path: Path) -> dict:
    """The state tree written by `write_checkpoint`, its tensors on the CPU."""
    tensors, meta = load_tensors(path, device="cpu", what="checkpoint")
    if meta.get("format_version") != FORMAT_VERSION or "state" not in meta:
        raise CheckpointError(f"{path} is not a checkpoint of this package's format {FORMAT_VERSION}")
    return unflatten_state(meta["state"], tensors)


def write_model(out: Path, learner: MRQLearner, env_id: str, step: int) -> None:
    """out/model.safetensors: the online networks' weights (what Policy.from_pretrained loads)."""
    save_tensors(
        out / MODEL_FILE, network_tensors(learner), {"format_version": FORMAT_VERSION, "env_id": env_id, "step": step}
    )


def network_tensors(learner: MRQLearner) -> dict[str, torch.Tensor]:
    """The online networks' weights, named by module (`encoder.*`, `value.*`, `policy.*`)."""
    return {k: v.detach() for k, v in learner.nets.state_dict().items()}


def to_device(tree: Any, device: torch.device) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_device(v, device) for v in tree]
    return tree
