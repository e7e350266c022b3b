"""What a fine-tune carries over from a pretrained agent, and how its run trains differently from `mrq train`.

Everything downstream of the embeddings (z_s, z_sa) never sees raw observation or action shapes, so it
transfers between envs. `plan_transfer` keeps every layer whose shape still fits and re-initialises the rest: the
first layer of the state encoder (or the whole conv stack when the channel count differs), the action embedding,
the policy's output layer, and the predictor's heads if their sizes changed. Vector <-> pixel transfer keeps only
the layers after the state encoder's trunk. Targets start as copies of the transferred networks; replay and
optimizer states start empty.

`FinetuneSchedule` is the rest of a fine-tune, as its config.json records it, so that `mrq train --resume` keeps
it: encoder layers kept frozen, the policy's and the encoder's first updates held, and the transferred critics
converted into the new env's reward scale before the first update. The learner knows none of it: the schedule
builds its networks' frozen layers and calls `update` with what to train.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mrq_agents.config import FREEZE_CHOICES, MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.errors import ConfigError
from mrq_agents.learner import MRQLearner, buffer_reward_scale, build_networks
from mrq_agents.networks import MRQNetworks
from mrq_agents.replay import ReplayBuffer
from mrq_agents.training.run_config import RunConfig

PIXEL_TRUNK = "encoder.pixel_trunk."


def _layer(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Transfer:
    """Which of the new networks' tensors start from the source, and the provenance written to config.json."""

    weights: dict[str, torch.Tensor] = field(repr=False)  # new network name -> source tensor, for kept tensors
    kept_layers: tuple[str, ...]
    new_layers: tuple[str, ...]
    frozen: tuple[str, ...]  # parameter names not trained (kept encoder layers with --freeze encoder)
    provenance: dict[str, Any]

    def load_into(self, nets: MRQNetworks) -> None:
        """Copy the kept tensors into `nets` (before a learner is built on them: its targets copy them)."""
        with torch.no_grad():
            params = dict(nets.named_parameters())
            for name, tensor in self.weights.items():
                params[name].copy_(tensor.to(params[name].device))


def plan_transfer(
    source_tensors: dict[str, torch.Tensor], spec: EnvSpec, config: MRQConfig, freeze: str, provenance: dict[str, Any]
) -> Transfer:
    """Match the new networks' parameters to the source's by name and shape."""
    if freeze not in FREEZE_CHOICES:
        raise ConfigError(f"--freeze must be one of {FREEZE_CHOICES}, got {freeze!r}")
    fresh = dict(build_networks(spec, config).named_parameters())
    fits = {n for n, p in fresh.items() if n in source_tensors and source_tensors[n].shape == p.shape}
    first_conv = PIXEL_TRUNK + "convs.0.weight"
    if first_conv in fresh and first_conv not in fits:  # another channel count: the conv stack starts over
        fits = {n for n in fits if not n.startswith(PIXEL_TRUNK)}
    # A layer is kept only when all its tensors fit (weight and bias together).
    layers = {_layer(n) for n in fresh}
    kept = sorted(layer for layer in layers if all(n in fits for n in fresh if _layer(n) == layer))
    new = sorted(layers - set(kept))
    weights = {n: source_tensors[n] for n in fresh if _layer(n) in kept}
    frozen = tuple(n for n in weights if freeze == "encoder" and n.startswith("encoder."))
    return Transfer(
        weights,
        tuple(kept),
        tuple(new),
        frozen,
        {**provenance, "freeze": freeze, "kept_layers": kept, "reinitialised_layers": new, "frozen": list(frozen)},
    )


@dataclass(frozen=True)
class FinetuneSchedule:
    """How a fine-tune run trains differently from `mrq train` (see the module docstring)."""

    frozen: tuple[str, ...] = ()  # encoder parameter names (e.g. "encoder.zsa.net.0.weight") kept fixed
    hold_policy: int = 0  # first updates that train the encoder and the critics but not the policy
    hold_encoder: int = 0  # first updates that train the critics and the policy but not the encoder (the encoder
    # trains in bursts at every target sync: its first is the first sync at or after `hold_encoder`)
    source_reward_scale: float | None = None  # the reward scale the transferred critics were trained at

    @classmethod
    def of_run(cls, run: RunConfig, provenance: dict[str, Any] | None) -> FinetuneSchedule | None:
        """The schedule of a run (its settings and its config.json's `finetuned_from`); None when it has none."""
        schedule = cls(
            tuple((provenance or {}).get("frozen", ())), run.hold_policy, run.hold_encoder, run.source_reward_scale
        )
        return None if schedule == cls() else schedule

    def freeze(self, nets: MRQNetworks) -> None:
        """Turn off `requires_grad` of the frozen parameters (before a learner is built on `nets`)."""
        named = dict(nets.named_parameters())
        unknown = [n for n in self.frozen if not n.startswith("encoder.") or n not in named]
        if unknown:
            raise ValueError(f"only encoder parameters can be frozen, got {unknown[:3]}")
        for name in self.frozen:
            named[name].requires_grad_(False)

    def update(self, learner: MRQLearner, buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
        """`learner.update(buffer)` on this schedule: the first converts the critics (`convert_critics`); the
        encoder trains from `hold_encoder` (never when it is all frozen), the policy from `hold_policy`."""
        if learner.num_updates == 0 and self.source_reward_scale is not None:
            convert_critics(learner, self.source_reward_scale, buffer_reward_scale(buffer))
        encoder_learns = any(p.requires_grad for p in learner.nets.encoder.parameters())
        return learner.update(
            buffer,
            train_encoder=encoder_learns and learner.num_updates >= self.hold_encoder,
            train_policy=learner.num_updates >= self.hold_policy,
        )


@torch.no_grad()
def convert_critics(learner: MRQLearner, source_reward_scale: float, reward_scale: float) -> None:
    """Put transferred critics into the units of `reward_scale`. Critics learn values divided by the reward scale of
    their training data, so a critic trained at scale s_src outputs Q / s_src; times s_src / reward_scale it outputs
    Q / reward_scale. The last layer is linear: its weight and bias carry the factor. The learner's reward scale
    becomes `reward_scale`, so the next target sync gives the targets the converted critics in the same units."""
    factor = source_reward_scale / reward_scale
    for critic in (learner.nets.value.q1, learner.nets.value.q2):
        critic.head.weight.mul_(factor)
        critic.head.bias.mul_(factor)
    learner.reward_scale = reward_scale
