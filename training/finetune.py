"""`mrq finetune`: start MR.Q on a new env from a pretrained agent.

`load_pretrained` reads the agent from its folder, `finetune_config` makes the run's algorithm config from the
agent's, and `finetune` prepares the run: which layers transfer and what trains differently are
training/transfer.py's (`plan_transfer`, `FinetuneSchedule`); the run is a normal `Trainer` run folder.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mrq_agents.config import CRITIC_UNITS, MRQConfig, parse_assignments
from mrq_agents.envs import EnvConfig, EnvSpec, make_env, resolve_env
from mrq_agents.errors import ConfigError
from mrq_agents.files import MODEL_FILE, sha256_file
from mrq_agents.model_folder import load_model_folder, metrics_rows
from mrq_agents.training.run_config import default_run_config
from mrq_agents.training.trainer import Trainer
from mrq_agents.training.transfer import plan_transfer


@dataclass(frozen=True)
class Pretrained:
    """The agent a fine-tune starts from, as `load_pretrained` reads it."""

    config: MRQConfig  # its algorithm config
    env: EnvConfig  # the env it was trained on
    tensors: dict[str, torch.Tensor] = field(repr=False)  # its weights, float32, named by module
    provenance: dict[str, Any]  # source, revision, sha256 of its weights, source_env_id: goes into config.json
    reward_scale: float | None = None  # the scale its critics were trained at (its metrics.csv), None if unknown


def load_pretrained(folder: str | Path, source: str | None = None, revision: str | None = None) -> Pretrained:
    """The agent in the export or run `folder` as a fine-tune starts from it: its config, env, float32 weights
    (checked) and provenance. `source` and `revision`: what the folder was resolved from (a zoo or Hub id; default
    the folder), for the provenance; `mrq_agents.policy.resolve_model_folder` resolves any model source."""
    folder = Path(folder)
    _, config, _, env, tensors = load_model_folder(folder)
    return Pretrained(
        config,
        env,
        tensors,
        {
            "source": str(folder) if source is None else str(source),
            "revision": revision,
            "sha256": sha256_file(folder / MODEL_FILE),
            "source_env_id": env.env_id,
        },
        last_reward_scale(folder),
    )


def last_reward_scale(folder: Path) -> float | None:
    """The reward scale at the last row of `folder`'s metrics.csv (what its critics were last trained at), or None
    when there is no such number."""
    try:
        rows = metrics_rows(folder)
        scale = float(rows[-1]["reward_scale"]) if rows else None
    except (KeyError, TypeError, ValueError, OSError, csv.Error):
        return None
    return scale if scale is not None and 0 < scale < math.inf else None


def finetune_config(
    source: MRQConfig, encoder_lr_scale: float, overrides: list[str], warmup_steps: int | None = None
) -> MRQConfig:
    """The source config with `overrides` (`--set name=value`) applied and the encoder learning rate times
    `encoder_lr_scale` (6 significant digits: 1e-4 x 0.1 is 1e-05), unless `overrides` set `enc_lr` themselves.
    `warmup_steps` (`--warmup-steps`), when given, wins over a `--set warmup_steps`; None keeps the source's:
    a tenth of it learned more slowly (docs/finetune.md)."""
    if not 0 < encoder_lr_scale < math.inf:
        raise ConfigError(f"--encoder-lr-scale must be a positive number, got {encoder_lr_scale}")
    changes: dict[str, object] = dict(parse_assignments(overrides))
    if encoder_lr_scale != 1 and "enc_lr" not in changes:
        changes["enc_lr"] = f"{source.enc_lr * encoder_lr_scale:.6g}"
    if warmup_steps is not None:
        changes["warmup_steps"] = warmup_steps
    return source.with_changes(changes)


def finetune(
    pretrained: Pretrained,
    env_id: str,
    steps: int,
    out: str | Path,
    overrides: list[str] | None = None,
    freeze: str = "none",
    warmup_steps: int | None = None,
    overwrite: bool = False,
    log=print,
    critic_units: str = "keep",
    warmup_actions: str | None = "policy",
    encoder_lr_scale: float = 0.1,
    **run_options: Any,
) -> Trainer:
    """Prepare a fine-tune run of `pretrained` on `env_id`; `run_options` are RunConfig's (seed, device, fast,
    precision, eval_every, eval_episodes, checkpoint_every, hold_policy, hold_encoder), None for their defaults.

    The warm-up acts with the pretrained policy and its exploration noise (`warmup_actions="policy"`): at the
    paper's size a uniform random warm-up ("random", `mrq train`'s) lost most of what the agent knew in its
    first updates (docs/finetune.md, "At the paper's size"); None takes "policy" too. `critic_units="convert"`
    converts the transferred critics from the source's reward scale into the new buffer's at the first update
    (`transfer.convert_critics`); "keep" leaves them as they are. The encoder learns at a tenth of the source
    config's rate (`encoder_lr_scale=0.1`; 1 keeps the source's; `overrides` that set `enc_lr` give the rate
    itself): at the source's rate the encoder's first updates moved the state embedding the pretrained policy
    reads, and the cheetah pair lost 69% of its score (docs/finetune.md).

    Returns the Trainer; call `.train()` to run it. The run folder is a normal one: resumable with
    `mrq train ENV --out DIR --resume`, exportable and pushable; its config.json records `finetuned_from`.
    """
    if critic_units not in CRITIC_UNITS:
        raise ConfigError(f"--critic-units must be one of {CRITIC_UNITS}, got {critic_units!r}")
    source_scale = pretrained.reward_scale if critic_units == "convert" else None
    config = finetune_config(pretrained.config, encoder_lr_scale, overrides or [], warmup_steps)
    run = default_run_config(
        env_id,
        steps=steps,
        source_reward_scale=source_scale,
        warmup_actions=warmup_actions or "policy",
        **run_options,
    )
    env_config = resolve_env(env_id)
    spec = EnvSpec.from_env(make_env(env_config), env_config.frame_stack)
    source_env, source = pretrained.env, pretrained.provenance["source"]
    provenance = {
        **pretrained.provenance,
        "critic_units": critic_units,
        # What the encoder's rate came to, whether from the scale or from `--set enc_lr`.
        "encoder_lr_scale": float(f"{config.enc_lr / pretrained.config.enc_lr:.6g}"),
    }
    transfer = plan_transfer(pretrained.tensors, spec, config, freeze, provenance)
    log(
        f"fine-tuning {source} ({source_env.env_id}) on {env_id}: kept {len(transfer.kept_layers)} layers, "
        f"re-initialised {len(transfer.new_layers)}" + (", encoder frozen" if transfer.frozen else "")
    )
    log("  kept:           " + ", ".join(transfer.kept_layers))
    log("  re-initialised: " + (", ".join(transfer.new_layers) or "none"))
    if config.enc_lr != pretrained.config.enc_lr:
        log(f"  encoder learning rate: {config.enc_lr:g} (the source's {pretrained.config.enc_lr:g})")
    if critic_units == "convert" and source_scale is None:
        log("  the source's reward scale is unknown (no reward_scale in its metrics.csv): critics keep their units")
    elif source_scale is not None:
        log(f"  critics: converted at the first update from the source's reward scale {source_scale:.4g}")
    if source_env.pixels != spec.pixels:
        log("  vector <-> pixel transfer: the state encoder's trunk starts over; only downstream layers are reused")
    return Trainer(run, config, out, transfer=transfer, overwrite=overwrite, log=log)
