"""The algorithm config: one frozen dataclass with the paper's names and defaults (docs/algorithm.md)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from mrq_agents.errors import ConfigError, closest


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


AT_LEAST_ONE = (
    "batch_size buffer_size enc_horizon q_horizon target_update_freq num_bins zs_dim zsa_dim za_dim enc_hdim "
    "value_hdim policy_hdim"
).split()
POSITIVE = ("enc_lr", "value_lr", "policy_lr", "value_grad_clip", "gumbel_tau", "min_priority")
NON_NEGATIVE = (
    "alpha exploration_noise target_policy_noise noise_clip dyn_weight reward_weight done_weight enc_wd value_wd "
    "policy_wd pre_activ_weight"
).split()

# The choices of `mrq finetune`'s options: training/ checks them, the command line's help lists them.
FREEZE_CHOICES = ("none", "encoder")  # --freeze
CRITIC_UNITS = ("keep", "convert")  # --critic-units
WARMUP_ACTIONS = ("policy", "random")  # --warmup-actions (`mrq train` warms up with "random", the paper's)


@dataclass(frozen=True)
class MRQConfig:
    """Every MR.Q hyperparameter. The defaults reproduce the paper; override with `--set name=value`."""

    # Replay and sampling
    batch_size: int = _f(256, "transitions (windows) per update")
    buffer_size: int = _f(1_000_000, "replay capacity in stored frames/transitions")
    prioritized: bool = _f(True, "LAP prioritised sampling (False: uniform)")
    alpha: float = _f(0.4, "LAP priority exponent")
    min_priority: float = _f(1.0, "LAP priorities are clamped below at this value")
    enc_horizon: int = _f(5, "window length of the encoder's multi-step model rollout")
    q_horizon: int = _f(3, "window length of the value's multi-step return")
    # RL
    discount: float = _f(0.99, "discount factor gamma")
    target_update_freq: int = _f(250, "updates between target syncs; each sync runs this many encoder updates")
    warmup_steps: int = _f(10_000, "environment steps with uniform random actions and no updates")
    exploration_noise: float = _f(0.2, "std of Gaussian action noise while training (halved for discrete)")
    target_policy_noise: float = _f(0.2, "std of the target policy smoothing noise (halved for discrete)")
    noise_clip: float = _f(0.3, "clip of the target policy smoothing noise (halved for discrete)")
    # Encoder losses
    dyn_weight: float = _f(1.0, "weight of the next-embedding MSE")
    reward_weight: float = _f(0.1, "weight of the two-hot reward cross-entropy")
    done_weight: float = _f(0.1, "weight of the termination MSE")
    num_bins: int = _f(65, "two-hot reward bins")
    lower: float = _f(-10.0, "lowest bin in symlog space")
    upper: float = _f(10.0, "highest bin in symlog space")
    # Encoder
    zs_dim: int = _f(512, "state embedding size")
    zsa_dim: int = _f(512, "state-action embedding size")
    za_dim: int = _f(256, "action embedding size")
    enc_hdim: int = _f(512, "encoder hidden width")
    enc_lr: float = _f(1e-4, "encoder AdamW learning rate")
    enc_wd: float = _f(1e-4, "encoder AdamW weight decay")
    pixel_augs: bool = _f(True, "random-shift augmentation of pixel observations")
    # Value
    value_hdim: int = _f(512, "value hidden width")
    value_lr: float = _f(3e-4, "value AdamW learning rate")
    value_wd: float = _f(1e-4, "value AdamW weight decay")
    value_grad_clip: float = _f(20.0, "value gradient-norm clip")
    # Policy
    policy_hdim: int = _f(512, "policy hidden width")
    policy_lr: float = _f(3e-4, "policy AdamW learning rate")
    policy_wd: float = _f(1e-4, "policy AdamW weight decay")
    gumbel_tau: float = _f(10.0, "Gumbel-softmax temperature for discrete actions")
    pre_activ_weight: float = _f(1e-5, "weight of the policy's pre-activation penalty")

    def __post_init__(self) -> None:
        floats = tuple(f.name for f in dataclasses.fields(self) if f.type == "float")
        rules = (  # (fields, what holds for each, how to say it), checked in this order
            (AT_LEAST_ONE, lambda v: v >= 1, ">= 1"),
            (("warmup_steps",), lambda v: v >= 0, ">= 0"),
            (floats, math.isfinite, "a finite number"),
            (POSITIVE, lambda v: v > 0, "> 0"),
            (NON_NEGATIVE, lambda v: v >= 0, ">= 0"),
        )
        for names, holds, what in rules:
            for name in names:
                if not holds(getattr(self, name)):
                    raise ConfigError(f"{name} must be {what}, got {getattr(self, name)}")
        if not 0.0 <= self.discount <= 1.0:
            raise ConfigError(f"discount must be in [0, 1], got {self.discount}")
        if self.lower >= self.upper:
            raise ConfigError(f"lower must be below upper, got lower={self.lower}, upper={self.upper}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "MRQConfig":
        """Build from a dict (e.g. a saved config.json); unknown names are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown algorithm config field(s) {unknown}; known fields: {sorted(names)}")
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})

    def with_overrides(self, assignments: Iterable[str]) -> "MRQConfig":
        """Apply `name=value` strings, e.g. `["enc_hdim=64", "prioritized=false"]`."""
        return self.with_changes(parse_assignments(assignments))

    def with_changes(self, changes: Mapping[str, Any]) -> "MRQConfig":
        """This config with the named fields replaced (values as from the command line or JSON)."""
        base = self.to_dict()
        for name in changes:
            if name not in base:
                near = closest(name, base)
                hint = f"; did you mean {near!r}?" if near else f"; known fields: {sorted(base)}"
                raise ConfigError(f"unknown config field {name!r}{hint}")
        return MRQConfig.from_dict({**base, **changes})


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`--set` strings (`name=value`) as a dict of names to raw values; a later name wins."""
    changes: dict[str, str] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--set expects name=value, got {item!r}")
        changes[name] = raw.strip()
    return changes


KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false"}  # a field's type, as a message says it


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a string (from the command line) or JSON value to the field's declared type."""
    kind = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} expects {KIND_WORDS[kind]}, got {value!r}") from None
    return value


# Named sets of overrides, applied before `--set`. "paper" is the default config; "small" shrinks the
# networks and the warm-up so that small envs (Pendulum-v1, CartPole-v1) learn on a laptop CPU in minutes.
PRESETS: dict[str, dict[str, object]] = {
    "paper": {},
    "small": {
        "zs_dim": 128,
        "zsa_dim": 128,
        "za_dim": 64,
        "enc_hdim": 128,
        "value_hdim": 128,
        "policy_hdim": 128,
        "batch_size": 128,
        "warmup_steps": 1_000,
    },
}


PRESET_NOTES = {  # each preset in a few words, for the command line's help
    "paper": "the paper's defaults",
    "small": "128-wide networks, 1k warm-up (small envs learn on a CPU in minutes)",
}


def presets_help() -> str:
    """The presets for `--preset`'s help: `one of: paper, small. 'paper': the paper's defaults; 'small': ...`."""
    return f"one of: {', '.join(PRESETS)}. " + "; ".join(f"'{name}': {PRESET_NOTES[name]}" for name in PRESETS)


def preset_name(algorithm: dict[str, Any]) -> str:
    """The preset a saved algorithm config equals ('paper', 'small'), or 'custom'."""
    for name in PRESETS:
        if preset_config(name).to_dict() == algorithm:
            return name
    return "custom"


def preset_config(name: str) -> MRQConfig:
    """The config of a named preset (see PRESETS)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return MRQConfig(**PRESETS[name])  # type: ignore[arg-type]


def changed_fields(algorithm: dict[str, Any]) -> dict[str, Any]:
    """The fields of a saved algorithm config that differ from the paper's defaults, in the config's order."""
    defaults = MRQConfig().to_dict()
    return {k: v for k, v in algorithm.items() if defaults.get(k) != v}


def train_command_line(env_id: str, options: dict[str, Any], overrides: Iterable[str] = ()) -> str:
    """`mrq train ENV` with `options` as flags in their order (None left out, a bool as --name/--no-name, a dict as
    JSON) and `overrides` ("name=value") as --set: the one place a train command line is written."""
    parts = [f"mrq train {env_id}"]
    for name, value in options.items():
        flag = name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, dict):
            parts.append(f"--{flag} '{json.dumps(value)}'")
        else:
            parts.append(f"--{flag} {value}")
    parts += [f"--set {item}" for item in overrides]
    return " ".join(parts)


def train_command(env_id: str, run: dict[str, Any], algorithm: dict[str, Any]) -> str:
    """The `mrq train` command line that reproduces a saved run config (overrides of the paper's defaults as --set)."""
    options = {name: run[name] for name in ("steps", "seed", "eval_every", "eval_episodes")}
    options["precision"] = run["precision"] if run.get("precision", "fp32") != "fp32" else None
    options["env_kwargs"] = run.get("env_kwargs") or None
    return train_command_line(env_id, options, [f"{k}={v}" for k, v in changed_fields(algorithm).items()])
