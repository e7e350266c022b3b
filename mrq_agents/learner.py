"""The MR.Q learner: networks, target copies, optimizers and reward scales of one agent, and its update.

`update(buffer)` is one training step, as docs/algorithm.md writes it: every `target_update_freq` (250) updates,
copy the networks into their targets, refresh the reward scales and train the encoder for a burst of 250 updates;
then, every update, train the value and the policy once. Its two steps are `encoder_step` (the encoder's model
loss) and `rl_step` (value, priorities, policy). Every random number a step uses is drawn before it (replay
uniforms, `draw_encoder_noise`, `draw_value_noise`) and passed in, so each step is a function of its inputs:
`mrq_agents.fast` swaps both for captured CUDA graphs from outside, and this module does not know which path runs.

`update` returns its metrics as device tensors; nothing in it reads a value back to the host, so a caller decides
when to synchronise (at log time).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.errors import ConfigError
from mrq_agents.functional import (
    draw_shifts,
    encoder_loss,
    lap_priority,
    masked_multistep_return,
    random_shift,
    sample_proportional,
    twohot_bins,
)
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
            raise ConfigError(
                f"device {str(device)!r} requested but this torch has no usable CUDA "
                f"(torch {torch.__version__}): use --device cpu or install a CUDA build of torch"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(device)!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ConfigError(f"device {str(device)!r} is not supported: use auto, cpu, cuda or cuda:N")
    return resolved


def resolve_fast(fast: bool | None, device: torch.device) -> bool:
    """`None` (auto): the fast path (`mrq_agents.fast`) on CUDA, the plain one on the CPU."""
    return device.type == "cuda" if fast is None else bool(fast)


def build_networks(spec: EnvSpec, config: MRQConfig) -> MRQNetworks:
    return MRQNetworks(spec.obs_shape, spec.pixels, spec.action_dim, spec.discrete, config)


class EncoderNoise(NamedTuple):
    """The random numbers of one encoder update, drawn in this order (None without pixel augmentation)."""

    target_shifts: torch.Tensor | None  # (B*H, 2) random shifts of the target encoder's next states
    state_shifts: torch.Tensor | None  # (B, 2) random shifts of the first states


class ValueNoise(NamedTuple):
    """The random numbers of one value update, drawn in this order (shifts None without pixel augmentation)."""

    next_shifts: torch.Tensor | None  # (B, 2) random shifts of the next states
    target_noise: torch.Tensor  # (B, action_dim) standard normal: the target policy's smoothing noise
    state_shifts: torch.Tensor | None  # (B, 2) random shifts of the states


class DeviceMirrored:
    """A learner's float that the update steps read on the device: reading gives the host number (for checkpoints
    and logs), setting also fills `learner.scales[index]` (from a host number: no synchronisation)."""

    def __init__(self, index: int, doc: str):
        self.index, self.__doc__ = index, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = "_" + name

    def __get__(self, learner: "MRQLearner | None", owner: type | None = None) -> float:
        return self if learner is None else getattr(learner, self.attribute)

    def __set__(self, learner: "MRQLearner", value: float) -> None:
        setattr(learner, self.attribute, float(value))
        learner.scales[self.index].fill_(float(value))


class MRQLearner:
    """Networks, target copies, optimizers, reward scales and the update counter of one MR.Q agent."""

    def __init__(
        self,
        spec: EnvSpec,
        config: MRQConfig,
        device: str | torch.device = "cpu",
        frozen: tuple[str, ...] = (),
        precision: str = "fp32",
        hold_policy: int = 0,
        source_reward_scale: float | None = None,
        hold_encoder: int = 0,
    ):
        """`frozen`: encoder parameter names (e.g. "encoder.zsa.net.0.weight") kept fixed, for fine-tuning.
        `hold_policy`: updates that train the encoder and the critics but not the policy, for fine-tuning.
        `hold_encoder`: updates that train the critics and the policy but not the encoder, for fine-tuning (the
        encoder trains in bursts at every target sync; its first is the first sync at or after `hold_encoder`).
        `source_reward_scale`: for fine-tuning, the reward scale the transferred critics were trained with; the first
        update converts them into this buffer's units (`convert_critics`).
        `precision`: "fp32" or "bf16" matrix products in the updates (`mrq_agents.precision`; resolve "auto" with
        `resolve_precision` first). Acting always runs in fp32."""
        self.spec = spec
        self.config = config
        self.device = resolve_device(device)
        self.precision = precision
        self.hold_policy = hold_policy
        self.hold_encoder = hold_encoder
        self.source_reward_scale = source_reward_scale
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
        self.encoder_opt = torch.optim.AdamW(
            trainable or [torch.zeros(1, device=self.device)], lr=c.enc_lr, weight_decay=c.enc_wd
        )
        self.value_opt = torch.optim.AdamW(self.nets.value.parameters(), lr=c.value_lr, weight_decay=c.value_wd)
        self.policy_opt = torch.optim.AdamW(self.nets.policy.parameters(), lr=c.policy_lr, weight_decay=c.policy_wd)
        self.bins = twohot_bins(c.num_bins, c.lower, c.upper, self.device)
        # The steps read the reward scales and the termination flag from device tensors at fixed addresses (a
        # captured graph does too); `reward_scale` and `target_reward_scale` set them from host numbers.
        self.scales = torch.zeros(2, device=self.device)  # (reward_scale, target_reward_scale)
        self.use_termination = torch.zeros((), device=self.device)  # 1.0 once the buffer holds a termination
        self.reward_scale = 1.0
        self.target_reward_scale = 0.0
        self.num_updates = 0
        self.encoder_metrics: dict[str, torch.Tensor] = {}
        self._augment = spec.pixels and c.pixel_augs
        # Discrete actions use half the noise.
        noise_factor = 0.5 if spec.discrete else 1.0
        self.exploration_noise = c.exploration_noise * noise_factor
        self.target_noise = c.target_policy_noise * noise_factor
        self.target_noise_clip = c.noise_clip * noise_factor

    reward_scale = DeviceMirrored(0, "mean |r| of the buffer at the last target sync (1 before any reward)")
    target_reward_scale = DeviceMirrored(
        1, "the reward scale of the previous sync, of the targets' values (0 at first)"
    )

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
    def update(self, buffer: ReplayBuffer) -> dict[str, torch.Tensor]:
        """One training step (docs/algorithm.md, "The update"); returns the latest losses as device tensors."""
        c = self.config
        buffer.flush()
        if self.num_updates % c.target_update_freq == 0:
            # Every 250 updates, from the first: targets <- online networks, fresh reward scales, encoder burst
            # (none while the encoder is held).
            self.sync_targets()
            self.refresh_scales(buffer)
            if self.num_updates == 0 and self.source_reward_scale is not None:
                self.convert_critics(self.source_reward_scale)
            if self.train_encoder and self.num_updates >= self.hold_encoder:
                starts = buffer.sample_indices(c.enc_horizon, c.target_update_freq * c.batch_size)
                for batch_starts in starts.view(c.target_update_freq, c.batch_size):
                    noise = self.draw_encoder_noise(c.batch_size, c.enc_horizon)
                    self.encoder_metrics = self.encoder_step(buffer, batch_starts, noise)
        # Every update: one value and one policy update on a prioritised batch (the policy's waits while held).
        uniforms = buffer.draw_uniforms(c.batch_size)
        noise = self.draw_value_noise(c.batch_size)
        if self.num_updates < self.hold_policy:
            rl_metrics = self.value_step(buffer, uniforms, noise)[0]
        else:
            rl_metrics = self.rl_step(buffer, uniforms, noise)
        metrics = {**self.encoder_metrics, **rl_metrics}
        self.num_updates += 1
        return metrics

    @torch.no_grad()
    def sync_targets(self) -> None:
        """Copy the online encoder, value and policy into their targets, in place."""
        torch._foreach_copy_(list(self.target.parameters()), list(self.nets.parameters()))

    @torch.no_grad()
    def convert_critics(self, source_reward_scale: float) -> None:
        """Put transferred critics into this buffer's units. Critics learn values divided by the reward scale of
        their training data, so a critic trained at scale s_src outputs Q / s_src; times s_src / reward_scale it
        outputs Q / reward_scale, as its targets here are. The last layer is linear: its weight and bias carry the
        factor. The targets are synced to the converted critics and read in the same units."""
        factor = source_reward_scale / self.reward_scale
        for critic in (self.nets.value.q1, self.nets.value.q2):
            critic.head.weight.mul_(factor)
            critic.head.bias.mul_(factor)
        self.sync_targets()
        self.target_reward_scale = self.reward_scale

    def refresh_scales(self, buffer: ReplayBuffer) -> None:
        """target_reward_scale <- reward_scale; reward_scale <- mean |r| of the buffer (1 while it holds no reward,
        where the authors clamp to 1e-8: README); the termination loss counts once the buffer holds a termination."""
        self.target_reward_scale = self.reward_scale
        self.reward_scale = buffer.reward_scale() or 1.0
        self.use_termination.fill_(float(buffer.any_termination))

    # The random numbers of one update, drawn in a fixed order, before the step that uses them.
    def draw_encoder_noise(self, batch_size: int, horizon: int) -> EncoderNoise:
        if not self._augment:
            return EncoderNoise(None, None)
        return EncoderNoise(draw_shifts(batch_size * horizon, self.device), draw_shifts(batch_size, self.device))

    def draw_value_noise(self, batch_size: int) -> ValueNoise:
        next_shifts = draw_shifts(batch_size, self.device) if self._augment else None
        target_noise = torch.randn(batch_size, self.spec.action_dim, device=self.device)
        return ValueNoise(next_shifts, target_noise, draw_shifts(batch_size, self.device) if self._augment else None)

    def encoder_step(self, buffer: ReplayBuffer, starts: torch.Tensor, noise: EncoderNoise) -> dict[str, torch.Tensor]:
        """One encoder update on the windows of `enc_horizon` steps starting at `starts` (B,)."""
        batch = buffer.gather(starts, self.config.enc_horizon, all_next_states=True)
        return self.encoder_update(batch, noise)

    def rl_step(self, buffer: ReplayBuffer, uniforms: torch.Tensor, noise: ValueNoise) -> dict[str, torch.Tensor]:
        """`value_step`, then one policy update on the same batch."""
        metrics, zs = self.value_step(buffer, uniforms, noise)
        return {**metrics, **self.policy_update(zs)}

    def value_step(
        self, buffer: ReplayBuffer, uniforms: torch.Tensor, noise: ValueNoise
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One value update on a batch drawn by priority with `uniforms` (B,) and its new priorities; returns the
        metrics and the batch's z_s for the policy update."""
        c = self.config
        starts = sample_proportional(buffer.sampling_weights(c.q_horizon), uniforms)
        batch = buffer.gather(starts, c.q_horizon, all_next_states=False)
        metrics, zs, priority = self.value_update(batch, noise)
        buffer.update_priority(batch.indices, priority)
        return metrics, zs

    def encoder_update(self, batch: Batch, noise: EncoderNoise) -> dict[str, torch.Tensor]:
        """Roll the model out from f(s_0) through the batch's actions; fit next embeddings, rewards, terminations."""
        c = self.config
        encoder = self.nets.encoder
        batch_size, horizon = batch.reward.shape
        with self._compute():
            with torch.no_grad():  # targets: zbar_{t+1} = f_target(s_{t+1})
                next_obs = batch.next_state.flatten(0, 1)  # (B*H, *obs_shape)
                target_zs = self.target.encoder.state(self._augmented(next_obs, noise.target_shifts)).view(
                    batch_size, horizon, -1
                )
            zs = encoder.state(self._augmented(batch.state, noise.state_shifts))
            pred_zs, reward_logits, done_pred = [], [], []
            for t in range(horizon):  # (d_hat, z, r_hat) = m(g(z, a_t))
                done_t, zs, reward_t = encoder.predict(encoder.state_action(zs, batch.action[:, t]))
                pred_zs.append(zs)
                reward_logits.append(reward_t)
                done_pred.append(done_t)
        loss, parts = encoder_loss(  # float32 losses (no-op casts on fp32)
            torch.stack(pred_zs, 1).float(),
            target_zs.float(),
            torch.stack(reward_logits, 1).float(),
            batch.reward,
            torch.stack(done_pred, 1).float(),
            batch.not_done,
            self.bins,
            c.dyn_weight,
            c.reward_weight,
            c.done_weight,
            self.use_termination,
        )
        self.encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.encoder_opt.step()
        return {"encoder_loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}

    def value_update(
        self, batch: Batch, noise: ValueNoise
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Huber loss of both critics against the scaled multi-step target; returns metrics, the batch's z_s (no
        gradient, for the policy update) and its new LAP priorities (B,)."""
        c = self.config
        reward_scale, target_reward_scale = self.scales[0], self.scales[1]
        with torch.no_grad():
            with self._compute():
                next_zs = self.target.encoder.state(self._augmented(batch.next_state[:, -1], noise.next_shifts))
                next_action = self._target_action(next_zs, noise.target_noise)
                next_q = self.target.value(self.target.encoder.state_action(next_zs, next_action))
                zs = self.nets.encoder.state(self._augmented(batch.state, noise.state_shifts))
                zsa = self.nets.encoder.state_action(zs, batch.action[:, 0])
            next_q = next_q.float().min(1, keepdim=True).values  # min over the two target critics
            returns, bootstrap = masked_multistep_return(batch.reward, batch.not_done, c.discount)
            horizon = batch.reward.shape[1]
            # y = (R + D gamma^H min_i Q_target_i * target_reward_scale) / reward_scale
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
        """a' = clip(pi_target(z') + clip(noise)): the target policy smoothed (discrete: one-hot of its argmax)."""
        action, _ = self.target.policy(next_zs)
        noise = (standard_noise * self.target_noise).clamp(-self.target_noise_clip, self.target_noise_clip)
        if self.spec.discrete:
            return F.one_hot((action + noise).argmax(1), self.spec.action_dim).float()
        return (action + noise).clamp(-1.0, 1.0)

    def policy_update(self, zs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Maximise the mean of both critics at the policy's action, with a small penalty on pre-activations."""
        with self._compute():
            action, pre = self.nets.policy(zs)
            q = self.nets.value(self.nets.encoder.state_action(zs, action))
        loss = -q.float().mean() + self.config.pre_activ_weight * pre.float().pow(2).mean()
        self.policy_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.nets.policy.parameters()))  # only the policy is stepped
        self.policy_opt.step()
        return {"policy_loss": loss.detach()}

    def _augmented(self, obs: torch.Tensor, shifts: torch.Tensor | None) -> torch.Tensor:
        """Replay observations -> encoder input, randomly shifted for pixels. The shift moves whole pixels, so it
        runs on the stored uint8 frames (a quarter of the bytes of float32); the encoder converts them."""
        return random_shift(obs, shifts) if self._augment else obs

    def _compute(self):
        """The context of the updates' network forwards: bf16 autocast or nothing (`mrq_agents.precision`).
        Everything computed from their outputs (losses, targets, priorities) is float32 on both precisions."""
        return compute_context(self.precision, self.device)

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
