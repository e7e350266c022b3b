"""The MR.Q learner (MRQ_SPEC sections 3-4): owns networks, targets and optimizers; acts; updates from replay.

`update(buffer)` is one training step and returns its metrics as device tensors; nothing in it reads a
value back to the host, so a caller decides when to synchronise (at log time).

Two paths run the same math. The plain path is eager PyTorch with default optimizers. The fast path
(`fast=True`, the default on CUDA) uses fused AdamW and runs each encoder update and each value+policy step as
one captured CUDA graph (`mrq_agents.fast`); on the CPU it runs the same step functions eagerly. Every random
number an update uses is drawn eagerly, in the same order, by `draw_encoder_noise` / `draw_value_noise` and
`ReplayBuffer.draw_uniforms`, so the two paths consume the same random stream.
"""

from __future__ import annotations

import copy
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.errors import ConfigError
from mrq_agents.functional import (draw_shifts, encoder_loss, lap_priority, masked_multistep_return, random_shift,
                                   sample_proportional, twohot_bins)
from mrq_agents.networks import MRQNetworks
from mrq_agents.precision import compute_context
from mrq_agents.replay import Batch, ReplayBuffer


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU. Unknown or unavailable devices are a one-line error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {str(device)!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} requested but this torch has no usable CUDA "
                              f"(torch {torch.__version__}): use --device cpu or install a CUDA build of torch")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(device)!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ConfigError(f"device {str(device)!r} is not supported: use auto, cpu, cuda or cuda:N")
    return resolved


Scalar = Union[float, torch.Tensor]  # a Python number (plain path) or a 0-d device tensor (captured path)


def resolve_fast(fast: bool | None, device: torch.device) -> bool:
    """`None` (auto): the fast path on CUDA, the plain one on the CPU."""
    return device.type == "cuda" if fast is None else bool(fast)


def build_networks(spec: EnvSpec, config: MRQConfig) -> MRQNetworks:
    return MRQNetworks(spec.obs_shape, spec.pixels, spec.action_dim, spec.discrete, config)


class MRQLearner:
    """Networks, target copies, optimizers, reward scales and the update counter of one MR.Q agent."""

    def __init__(self, spec: EnvSpec, config: MRQConfig, device: str | torch.device = "cpu",
                 frozen: tuple[str, ...] = (), fast: bool | None = None, precision: str = "fp32"):
        """`frozen`: encoder parameter names (e.g. "encoder.zsa.net.0.weight") kept fixed, for fine-tuning.
        `fast`: the fast update path (see the module docstring); None picks it on CUDA.
        `precision`: "fp32" or "bf16" matrix products in the updates (`mrq_agents.precision`; resolve "auto" with
        `resolve_precision` first). Acting always runs in fp32."""
        self.spec = spec
        self.config = config
        self.device = resolve_device(device)
        self.fast = resolve_fast(fast, self.device)
        self.precision = precision
        compute_context(precision, self.device)  # an unknown precision fails here, not at the first update
        self.nets = build_networks(spec, config).to(self.device)
        self.target = copy.deepcopy(self.nets).requires_grad_(False)
        c = config
        named = dict(self.nets.named_parameters())
        unknown = [n for n in frozen if not n.startswith("encoder.") or n not in named]
        if unknown:
            raise ValueError(f"only encoder parameters can be frozen, got {unknown[:3]}")
        for name in frozen:
            named[name].requires_grad_(False)
        trainable = [p for p in self.nets.encoder.parameters() if p.requires_grad]
        self.train_encoder = bool(trainable)
        self.encoder_opt = self._adamw(trainable or [torch.zeros(1, device=self.device)], c.enc_lr, c.enc_wd)
        self.value_opt = self._adamw(self.nets.value.parameters(), c.value_lr, c.value_wd)
        self.policy_opt = self._adamw(self.nets.policy.parameters(), c.policy_lr, c.policy_wd)
        self.bins = twohot_bins(c.num_bins, c.lower, c.upper, self.device)
        self.reward_scale = 1.0
        self.target_reward_scale = 0.0
        self.num_updates = 0
        self.encoder_metrics: dict[str, torch.Tensor] = {}
        self._augment = spec.pixels and c.pixel_augs
        # Discrete actions use half the noise (MRQ_SPEC sections 3-4).
        noise_factor = 0.5 if spec.discrete else 1.0
        self.exploration_noise = c.exploration_noise * noise_factor
        self.target_noise = c.target_policy_noise * noise_factor
        self.target_noise_clip = c.noise_clip * noise_factor
        self._fast_update = None
        if self.fast:
            from mrq_agents.fast import FastUpdate
            self._fast_update = FastUpdate(self)

    def _adamw(self, params, lr: float, weight_decay: float) -> torch.optim.AdamW:
        """AdamW; the fast path uses the fused kernel (capturable in a CUDA graph on CUDA)."""
        if not self.fast:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True,
                                 capturable=self.device.type == "cuda")

    # ---------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, deterministic: bool = False) -> np.ndarray | int:
        """Action for one observation: a float32 vector in [-1, 1], or an int for discrete envs.

        explore: add the training noise. Without it, continuous actions are tanh(pre); discrete ones are the
        paper's `argmax(gumbel_softmax(pre))`, or `argmax(pre)` with `deterministic=True`.
        """
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device).unsqueeze(0)
        if not self.spec.pixels:
            obs_t = obs_t.float()
        action, pre = self.nets.policy(self.nets.encoder.state(obs_t))
        if self.spec.discrete:
            if explore:
                action = action + torch.randn_like(action) * self.exploration_noise
            elif deterministic:
                action = pre
            return int(action.argmax(1).item())
        if explore:
            action = (action + torch.randn_like(action) * self.exploration_noise).clamp(-1.0, 1.0)
        return action[0].cpu().numpy().astype(np.float32)

    # ---------------------------------------------------------------- learning
    def _compute(self):
        """The context of the updates' network forwards: bf16 autocast or nothing (`mrq_agents.precision`).
        Everything computed from their outputs (losses, targets, priorities) is float32 on both precisions."""
        return compute_context(self.precision, self.device)

    def update(self, buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
        """One training step: every `target_update_freq` updates (from the first) sync targets, refresh the
        reward scales and run that many encoder updates; then one value and one policy update."""
        buffer.flush()
        c = self.config
        if self.num_updates % c.target_update_freq == 0:
            self.start_cycle(buffer)
            if self.train_encoder:
                starts = buffer.sample_indices(c.enc_horizon, c.target_update_freq * c.batch_size)
                for batch_starts in starts.view(c.target_update_freq, c.batch_size):
                    self.encoder_metrics = self._encoder_step(buffer, batch_starts)
        metrics = {**self.encoder_metrics, **self._value_policy_step(buffer)}  # encoder's: latest burst
        self.num_updates += 1
        return metrics

    def start_cycle(self, buffer: ReplayBuffer) -> None:
        """Every `target_update_freq` updates: sync the targets and refresh the reward scales."""
        self.sync_targets()
        self.target_reward_scale = self.reward_scale
        # Choice where the spec is silent: a buffer with no reward yet keeps the scale at 1 (not 0).
        self.reward_scale = buffer.reward_scale() or 1.0
        if self._fast_update is not None:
            self._fast_update.refresh(buffer)

    def _encoder_step(self, buffer: ReplayBuffer, starts: torch.Tensor) -> dict[str, torch.Tensor]:
        """One encoder update on the windows starting at `starts`, on this learner's path."""
        if self._fast_update is not None:
            return self._fast_update.run_encoder(buffer, starts)
        batch = buffer.gather(starts, self.config.enc_horizon, all_next_states=True)
        return self.encoder_update(batch, use_termination=buffer.any_termination)

    def _value_policy_step(self, buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
        """One value and one policy update on a freshly sampled batch, on this learner's path."""
        if self._fast_update is not None:
            return self._fast_update.run_value_policy(buffer)
        return self.value_policy_step(buffer, buffer.draw_uniforms(self.config.batch_size))

    def value_policy_step(self, buffer: ReplayBuffer, uniforms: torch.Tensor, draws: dict | None = None,
                          reward_scale: Scalar | None = None, target_reward_scale: Scalar | None = None
                          ) -> dict[str, torch.Tensor]:
        """Sample a batch with `uniforms`, update the value, write the new priorities, update the policy."""
        c = self.config
        batch = buffer.gather(sample_proportional(buffer.sampling_weights(c.q_horizon), uniforms), c.q_horizon,
                              all_next_states=False)
        metrics, zs, priority = self.value_update(batch, draws, reward_scale, target_reward_scale)
        buffer.update_priority(batch.indices, priority)
        metrics.update(self.policy_update(zs))
        return metrics

    @torch.no_grad()
    def sync_targets(self) -> None:
        """Copy the online encoder, value and policy into their targets, in place."""
        torch._foreach_copy_(list(self.target.parameters()), list(self.nets.parameters()))

    # The random numbers of one update, drawn in a fixed order (see the module docstring).
    def draw_encoder_noise(self, batch_size: int, horizon: int) -> dict[str, torch.Tensor]:
        """Random shifts of the B*H target next states, then of the B states (pixels with augmentation)."""
        if not self._augment:
            return {}
        return {"target_shifts": draw_shifts(batch_size * horizon, self.device),
                "state_shifts": draw_shifts(batch_size, self.device)}

    def draw_value_noise(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Shifts of the next states, the target policy's standard-normal noise, shifts of the states."""
        draws = {"next_shifts": draw_shifts(batch_size, self.device)} if self._augment else {}
        draws["target_noise"] = torch.randn(batch_size, self.spec.action_dim, device=self.device)
        if self._augment:
            draws["state_shifts"] = draw_shifts(batch_size, self.device)
        return draws

    def _prepare(self, obs: torch.Tensor, shifts: torch.Tensor | None) -> torch.Tensor:
        """Replay observations -> encoder input, with random-shift augmentation for pixels. The shift moves
        whole pixels, so it runs on the stored uint8 frames (a quarter of the bytes of float32); the encoder
        converts them."""
        return random_shift(obs, shifts) if self._augment else obs

    def encoder_update(self, batch: Batch, use_termination: bool | torch.Tensor,
                       draws: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One encoder update. `use_termination`: a bool, or a 0-d 0/1 tensor on the captured path.
        `draws`: from `draw_encoder_noise` (drawn here when None)."""
        c = self.config
        encoder = self.nets.encoder
        batch_size, horizon = batch.reward.shape
        if draws is None:
            draws = self.draw_encoder_noise(batch_size, horizon)
        with self._compute():
            with torch.no_grad():
                next_obs = batch.next_state.flatten(0, 1)  # (B*H, *obs_shape)
                target_zs = self.target.encoder.state(
                    self._prepare(next_obs, draws.get("target_shifts"))).view(batch_size, horizon, -1)
            zs = encoder.state(self._prepare(batch.state, draws.get("state_shifts")))
            pred_zs, reward_logits, done_pred = [], [], []
            for t in range(horizon):
                done_t, zs, reward_t = encoder.predict(encoder.state_action(zs, batch.action[:, t]))
                pred_zs.append(zs)
                reward_logits.append(reward_t)
                done_pred.append(done_t)
        loss, parts = encoder_loss(  # float32 losses (no-op casts on fp32)
            torch.stack(pred_zs, 1).float(), target_zs.float(), torch.stack(reward_logits, 1).float(), batch.reward,
            torch.stack(done_pred, 1).float(), batch.not_done, self.bins,
            c.dyn_weight, c.reward_weight, c.done_weight, use_termination,
        )
        self.encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.encoder_opt.step()
        return {"encoder_loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}

    def value_update(self, batch: Batch, draws: dict[str, torch.Tensor] | None = None,
                     reward_scale: Scalar | None = None, target_reward_scale: Scalar | None = None
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Returns metrics, the (no-gradient) z_s of the batch for the policy update, and new priorities.

        `draws`: from `draw_value_noise` (drawn here when None); the scales default to the learner's own."""
        c = self.config
        if draws is None:
            draws = self.draw_value_noise(batch.reward.shape[0])
        reward_scale = self.reward_scale if reward_scale is None else reward_scale
        target_reward_scale = self.target_reward_scale if target_reward_scale is None else target_reward_scale
        with torch.no_grad():
            with self._compute():
                next_zs = self.target.encoder.state(self._prepare(batch.next_state[:, -1], draws.get("next_shifts")))
                next_action = self._target_action(next_zs, draws["target_noise"])
                next_q = self.target.value(self.target.encoder.state_action(next_zs, next_action))
                zs = self.nets.encoder.state(self._prepare(batch.state, draws.get("state_shifts")))
                zsa = self.nets.encoder.state_action(zs, batch.action[:, 0])
            next_q = next_q.float().min(1, keepdim=True).values
            returns, bootstrap = masked_multistep_return(batch.reward, batch.not_done, c.discount)
            horizon = batch.reward.shape[1]
            target = (returns + bootstrap * c.discount**horizon * next_q * target_reward_scale) / reward_scale
        with self._compute():
            q = self.nets.value(zsa)  # (B, 2)
        q = q.float()
        loss = F.smooth_l1_loss(q, target.expand_as(q))
        self.value_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.nets.value.parameters(), c.value_grad_clip)
        self.value_opt.step()
        priority = lap_priority(q.detach() - target, c.min_priority, c.alpha)
        return {"value_loss": loss.detach(), "q_mean": q.detach().mean()}, zs, priority

    def _target_action(self, next_zs: torch.Tensor, standard_noise: torch.Tensor) -> torch.Tensor:
        action, _ = self.target.policy(next_zs)
        noise = (standard_noise * self.target_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
        if self.spec.discrete:
            return F.one_hot((action + noise).argmax(1), self.spec.action_dim).float()
        return (action + noise).clamp(-1.0, 1.0)

    def policy_update(self, zs: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._compute():
            action, pre = self.nets.policy(zs)
            q = self.nets.value(self.nets.encoder.state_action(zs, action))
        loss = -q.float().mean() + self.config.pre_activ_weight * pre.float().pow(2).mean()
        self.policy_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.nets.policy.parameters()))  # only the policy is stepped
        self.policy_opt.step()
        return {"policy_loss": loss.detach()}

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        return {
            "nets": self.nets.state_dict(),
            "target": self.target.state_dict(),
            "encoder_opt": self.encoder_opt.state_dict(),
            "value_opt": self.value_opt.state_dict(),
            "policy_opt": self.policy_opt.state_dict(),
            "reward_scale": self.reward_scale,
            "target_reward_scale": self.target_reward_scale,
            "num_updates": self.num_updates,
            "encoder_metrics": self.encoder_metrics,
        }

    def load_state_dict(self, state: dict) -> None:
        self.nets.load_state_dict(state["nets"])
        self.target.load_state_dict(state["target"])
        self.encoder_opt.load_state_dict(state["encoder_opt"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.reward_scale = float(state["reward_scale"])
        self.target_reward_scale = float(state["target_reward_scale"])
        self.num_updates = int(state["num_updates"])
        self.encoder_metrics = dict(state.get("encoder_metrics", {}))
        if self._fast_update is not None:
            self._fast_update.reset()  # the optimizers' state tensors were replaced: capture again
