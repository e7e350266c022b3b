"""The MR.Q learner: networks, target copies, optimizers and reward scales of one agent, and its update.

`update(buffer)` is one training step, as docs/algorithm.md writes it: every `target_update_freq` (250) updates,
copy the networks into their targets, refresh the reward scales and train the encoder for a burst of 250 updates;
then, every update, train the value and the policy once. It calls its two steps, each one screen as the authors'
`train_encoder` and `train_rl`: `encoder_step` (the encoder's model loss) and `rl_step` (value, priorities, policy).
Every random number a step uses is drawn before it (replay uniforms, `draw_encoder_noise`, `draw_value_noise`) and
passed in, so each step is a function of its inputs: `mrq_agents.fast.FastLearner` is a subclass that replays both
as captured CUDA graphs, and this module does not know which path runs.

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
from mrq_agents.device import resolve_device
from mrq_agents.envs import EnvSpec
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
from mrq_agents.replay import ReplayBuffer


def build_networks(spec: EnvSpec, config: MRQConfig) -> MRQNetworks:
    """Freshly initialised encoder, value and policy for `spec` (draws from torch's random generator)."""
    return MRQNetworks(spec.obs_shape, spec.pixels, spec.action_dim, spec.discrete, config)


def buffer_reward_scale(buffer: ReplayBuffer) -> float:
    """The reward scale of `buffer`: mean |r|, or 1 while it holds no reward (where the authors clamp to 1e-8:
    docs/algorithm.md)."""
    return buffer.reward_scale() or 1.0


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
    """Networks, target copies, optimizers, reward scales and the update counter of one MR.Q agent.

    `mrq_agents.fast.FastLearner` is this learner with its two steps replayed as captured CUDA graphs."""

    def __init__(
        self,
        spec: EnvSpec,
        config: MRQConfig,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        nets: MRQNetworks | None = None,
    ):
        """`precision`: "fp32" or "bf16" matrix products in the updates (`mrq_agents.precision`; resolve "auto" with
        `resolve_precision` first). Acting always runs in fp32. `nets`: the networks to start from (default:
        `build_networks`); the targets start as their copy, and encoder parameters with `requires_grad` off are
        not trained (a fine-tune's frozen layers, training/transfer.py)."""
        self.spec = spec
        self.config = config
        self.device = resolve_device(device)
        self.precision = precision
        compute_context(precision, self.device)  # an unknown precision fails here, not at the first update
        self.nets = (build_networks(spec, config) if nets is None else nets).to(self.device)
        self.target = copy.deepcopy(self.nets).requires_grad_(False)
        c = config
        trainable = [p for p in self.nets.encoder.parameters() if p.requires_grad]
        # An encoder with nothing to train keeps an optimizer over a placeholder: a checkpoint always holds three.
        self.encoder_opt = self.make_optimizer(trainable or [torch.zeros(1, device=self.device)], c.enc_lr, c.enc_wd)
        self.value_opt = self.make_optimizer(self.nets.value.parameters(), c.value_lr, c.value_wd)
        self.policy_opt = self.make_optimizer(self.nets.policy.parameters(), c.policy_lr, c.policy_wd)
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

    def make_optimizer(self, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """AdamW, PyTorch's default kernel (the fast path's subclass takes the fused one)."""
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

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
    def update(
        self, buffer: ReplayBuffer, train_encoder: bool = True, train_policy: bool = True
    ) -> dict[str, torch.Tensor]:
        """One training step (docs/algorithm.md, "The update"); returns the latest losses as device tensors.

        `train_encoder=False` leaves out the encoder's burst at a target sync, `train_policy=False` the policy's
        update: the caller's schedule (a fine-tune holds them at first, training/transfer.py)."""
        c = self.config
        buffer.flush()
        if self.num_updates % c.target_update_freq == 0:
            # Every 250 updates, from the first: targets <- online networks, fresh reward scales, encoder burst.
            self.sync_targets()
            self.refresh_scales(buffer)
            if train_encoder:
                starts = buffer.sample_indices(c.enc_horizon, c.target_update_freq * c.batch_size)
                for batch_starts in starts.view(c.target_update_freq, c.batch_size):
                    noise = self.draw_encoder_noise(c.batch_size, c.enc_horizon)
                    self.encoder_metrics = self.encoder_step(buffer, batch_starts, noise)
        # Every update: one value and one policy update on a prioritised batch.
        uniforms = buffer.draw_uniforms(c.batch_size)
        noise = self.draw_value_noise(c.batch_size)
        metrics = {**self.encoder_metrics, **self.rl_step(buffer, uniforms, noise, train_policy)}
        self.num_updates += 1
        return metrics

    @torch.no_grad()
    def sync_targets(self) -> None:
        """Copy the online encoder, value and policy into their targets, in place."""
        torch._foreach_copy_(list(self.target.parameters()), list(self.nets.parameters()))

    def refresh_scales(self, buffer: ReplayBuffer) -> None:
        """target_reward_scale <- reward_scale; reward_scale <- the buffer's (`buffer_reward_scale`); the termination
        loss counts once the buffer holds a termination."""
        self.target_reward_scale = self.reward_scale
        self.reward_scale = buffer_reward_scale(buffer)
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
        """One encoder update on the windows of `enc_horizon` steps starting at `starts` (B,): roll the model out
        from f(s_0) through the windows' actions; fit the next embeddings, rewards and terminations."""
        c = self.config
        encoder = self.nets.encoder
        batch = buffer.gather(starts, c.enc_horizon, all_next_states=True)
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

    def rl_step(
        self, buffer: ReplayBuffer, uniforms: torch.Tensor, noise: ValueNoise, train_policy: bool = True
    ) -> dict[str, torch.Tensor]:
        """One value update on windows of `q_horizon` steps drawn by priority with `uniforms` (B,), their new LAP
        priorities, then one policy update on the same states (unless `train_policy` is False)."""
        c = self.config
        starts = sample_proportional(buffer.sampling_weights(c.q_horizon), uniforms)
        batch = buffer.gather(starts, c.q_horizon, all_next_states=False)
        reward_scale, target_reward_scale = self.scales[0], self.scales[1]
        with torch.no_grad():
            with self._compute():
                next_zs = self.target.encoder.state(self._augmented(batch.next_state[:, -1], noise.next_shifts))
                # a' = clip(pi_target(z') + clip(noise)): the target policy, smoothed (discrete: one-hot argmax)
                next_action, _ = self.target.policy(next_zs)
                clip = self.target_noise_clip
                next_action = next_action + (noise.target_noise * self.target_noise).clamp(-clip, clip)
                if self.spec.discrete:
                    next_action = F.one_hot(next_action.argmax(1), self.spec.action_dim).float()
                else:
                    next_action = next_action.clamp(-1.0, 1.0)
                next_q = self.target.value(self.target.encoder.state_action(next_zs, next_action))
                zs = self.nets.encoder.state(self._augmented(batch.state, noise.state_shifts))
                zsa = self.nets.encoder.state_action(zs, batch.action[:, 0])
            next_q = next_q.float().min(1, keepdim=True).values  # min over the two target critics
            returns, bootstrap = masked_multistep_return(batch.reward, batch.not_done, c.discount)
            horizon = batch.reward.shape[1]
            # y = (R + D gamma^H min_i Q_target_i * target_reward_scale) / reward_scale
            target = (returns + bootstrap * c.discount**horizon * next_q * target_reward_scale) / reward_scale
        # Value: Huber loss of both critics against y.
        with self._compute():
            q = self.nets.value(zsa)  # (B, 2)
        q = q.float()
        value_loss = F.smooth_l1_loss(q, target.expand_as(q))
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.nets.value.parameters(), c.value_grad_clip)
        self.value_opt.step()
        buffer.update_priority(batch.indices, lap_priority(q.detach() - target, c.min_priority, c.alpha))
        metrics = {"value_loss": value_loss.detach(), "q_mean": q.detach().mean()}
        if not train_policy:
            return metrics
        # Policy: maximise the mean of both critics at its action, with a small penalty on pre-activations.
        with self._compute():
            action, pre = self.nets.policy(zs)
            q = self.nets.value(self.nets.encoder.state_action(zs, action))
        policy_loss = -q.float().mean() + c.pre_activ_weight * pre.float().pow(2).mean()
        self.policy_opt.zero_grad(set_to_none=True)
        policy_loss.backward(inputs=list(self.nets.policy.parameters()))  # only the policy is stepped
        self.policy_opt.step()
        return {**metrics, "policy_loss": policy_loss.detach()}

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
