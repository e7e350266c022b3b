"""LAP replay buffer (docs/algorithm.md, "Replay"): frames stored once, windows rebuilt from indices.

Layout. One ring of `capacity` slots. Each slot holds one frame (a vector observation, or one image of a
pixel stack) and, when it is the newest frame of a state s_t that was acted in, the transition data
(a_t, r_t, d_t = 1 - terminated_t). An episode of T steps with frame history h occupies T + h slots:
h - 1 frames of the first observation's stack, the T acted-in states, and the final observation:

    [prefix frames (h-1)] [s_0, a_0, r_0, d_0] ... [s_{T-1}, a_{T-1}, ...] [s_T]

so the stack of a state ending at slot q is frames q-h+1..q and its successor ends at q+1, exactly as the
environment produced them (whatever its padding rule at reset).

Windows. A window of horizon H starting at slot i reads the transitions i..i+H-1. It is eligible when they
all belong to one episode, or when it runs into a termination: then the steps after the termination
repeat the terminating slot and are masked by `prod_{j<t} d_j` downstream. A window that would run past a
truncation (time limit) or past the newest stored step is not eligible; one that ends exactly on a
truncation is, since its successor state (the final observation) is stored.

Device writes. `add` and `start_episode` only touch host memory: frames, transitions and eligibility changes
wait in a staging area and reach the device in a few batched copies (pinned and asynchronous on CUDA) when
`flush()` runs. Everything that reads the device tensors (`sample_indices`, `gather`, `state_dict`, the learner's
update) flushes first, so a step costs no small blocking host-to-device copies.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from mrq_agents.envs import EnvSpec
from mrq_agents.errors import ConfigError
from mrq_agents.functional import sample_proportional


class Batch(NamedTuple):
    """A batch of windows; B windows of H steps."""

    state: torch.Tensor  # (B, *obs_shape): s_0
    action: torch.Tensor  # (B, H, action_dim): continuous in [-1, 1], discrete one-hot
    reward: torch.Tensor  # (B, H)
    not_done: torch.Tensor  # (B, H): 1 - terminated
    next_state: torch.Tensor  # (B, H, *obs_shape): s_{t+1} for each step (or (B, 1, ...): only the last)
    indices: torch.Tensor  # (B,): start slots, for priority updates


class ReplayBuffer:
    """Prioritised (LAP) replay of frames and transitions on `device`; see the module docstring."""

    def __init__(
        self,
        spec: EnvSpec,
        capacity: int,
        horizons: tuple[int, ...],
        prioritized: bool = True,
        device: torch.device | str = "cpu",
        static_shapes: bool = False,
    ):
        """`static_shapes`: sample over the whole ring, in fixed shapes, as a captured CUDA graph needs
        (`mrq_agents.fast.captures`); else over the slots written so far (`sampling_weights`)."""
        self.spec = spec
        self.capacity = capacity
        self.horizons = tuple(sorted(set(horizons)))
        self.history = spec.frame_stack
        if capacity < 2 * (max(self.horizons) + self.history + 1):
            raise ConfigError(f"buffer_size={capacity} is too small for windows of {max(self.horizons)} steps")
        self.prioritized = prioritized
        self.device = torch.device(device)
        frame_dtype = torch.uint8 if spec.pixels else torch.float32
        # Uninitialised on purpose: only written slots are ever read (eligibility guarantees it), and on the CPU
        # the pages of a 1M-frame ring (7 GB for Atari, 21 GB for DMC pixels) are only mapped as they fill.
        self.frames = torch.empty((capacity, *spec.frame_shape), dtype=frame_dtype, device=self.device)
        self.action = torch.zeros((capacity, spec.action_dim), device=self.device)
        self.reward = torch.zeros(capacity, device=self.device)
        self.not_done = torch.ones(capacity, device=self.device)
        self.priority = torch.zeros(capacity, device=self.device)
        self.max_priority = torch.ones((), device=self.device)
        self.eligible = {h: torch.zeros(capacity, dtype=torch.bool, device=self.device) for h in self.horizons}
        # Host-side bookkeeping (no device reads in the step loop).
        self.abs_reward = np.zeros(capacity)  # |r| of the transition in each slot, 0 where none
        self.has_transition = np.zeros(capacity, dtype=bool)
        self.num_eligible = {h: 0 for h in self.horizons}
        self.host_eligible = {h: np.zeros(capacity, dtype=bool) for h in self.horizons}
        self.abs_reward_sum = 0.0
        self.num_transitions = 0
        self.any_termination = False
        self.written = 0  # frames ever written (absolute position of the next slot)
        self.cursor = -1  # absolute slot of the current state's newest frame
        self.episode_start = 0  # absolute slot of the current episode's first state
        self.in_episode = False
        self._offsets = torch.arange(-self.history + 1, 1, device=self.device)
        # Staged device writes (see the module docstring); the latest write to a slot wins.
        self._pending_frames: dict[int, np.ndarray] = {}
        self._pending_steps: dict[int, np.ndarray] = {}  # slot -> [action..., reward, not_done]
        self._dirty_eligible: set[int] = set()
        self.static_shapes = static_shapes

    # ---------------------------------------------------------------- writing
    def start_episode(self, obs: np.ndarray) -> None:
        """Store the first observation of an episode (all of its frame stack)."""
        for frame in self._frames_of(obs):
            self._write_frame(frame)
        self.cursor = self.written - 1
        self.episode_start = self.cursor
        self.in_episode = True

    def add(self, action: np.ndarray, reward: float, terminated: bool, truncated: bool, next_obs: np.ndarray) -> None:
        """Store one step taken in the current state. `action` is in [-1, 1] (or a one-hot / int for discrete)."""
        if not self.in_episode:
            raise RuntimeError("call start_episode(obs) before add()")
        slot = self.cursor % self.capacity
        self._pending_steps[slot] = np.concatenate(
            [self._action_vector(action), [float(reward), 0.0 if terminated else 1.0]]
        ).astype(np.float32)
        self.abs_reward[slot] = abs(float(reward))
        self.abs_reward_sum += abs(float(reward))
        self.has_transition[slot] = True
        self.num_transitions += 1
        self.any_termination |= bool(terminated)
        self._write_frame(self._frames_of(next_obs)[-1])
        step = self.cursor
        for h in self.horizons:
            first = max(self.episode_start, step - h + 1)
            starts = range(first, step + 1) if terminated else ([step - h + 1] if step - h + 1 >= first else [])
            self._set_eligible(h, [s % self.capacity for s in starts], True)
        self.cursor += 1
        self.in_episode = not (terminated or truncated)

    def end_episode(self) -> None:
        """Close an episode cut short outside the env (e.g. a training budget ending mid-episode): like a
        truncation, windows that would run past its last stored step stay ineligible."""
        self.in_episode = False

    def _write_frame(self, frame: np.ndarray) -> None:
        slot = self.written % self.capacity
        # Windows whose frame stacks read this slot (old data being overwritten) are no longer valid.
        readers = [(slot + k) % self.capacity for k in range(self.history)]
        for h in self.horizons:
            self._set_eligible(h, readers, False)
        if self.has_transition[slot]:
            self.abs_reward_sum -= self.abs_reward[slot]
            self.abs_reward[slot] = 0.0
            self.has_transition[slot] = False
            self.num_transitions -= 1
        self._pending_frames[slot] = np.array(frame, copy=True)  # the env may reuse its observation buffer
        self.written += 1

    def _set_eligible(self, horizon: int, slots: list[int], value: bool) -> None:
        if not slots:
            return
        host = self.host_eligible[horizon]
        before = int(host[slots].sum())
        host[slots] = value
        self.num_eligible[horizon] += int(host[slots].sum()) - before
        self._dirty_eligible.update(slots)

    def flush(self) -> None:
        """Copy the staged frames, transitions and eligibility changes to the device tensors.

        New transitions get the current maximum priority here; no update runs between `add` and the next flush
        (every reader flushes first), so that is the maximum at the time they were added.
        """
        if self._pending_frames:
            slots = self._upload(np.fromiter(self._pending_frames, dtype=np.int64))
            self.frames[slots] = self._upload(np.stack(list(self._pending_frames.values())))
            self._pending_frames.clear()
        if self._pending_steps:
            slots = self._upload(np.fromiter(self._pending_steps, dtype=np.int64))
            rows = self._upload(np.stack(list(self._pending_steps.values())))
            action_dim = self.spec.action_dim
            self.action[slots] = rows[:, :action_dim]
            self.reward[slots] = rows[:, action_dim]
            self.not_done[slots] = rows[:, action_dim + 1]
            self.priority[slots] = self.max_priority.expand(slots.shape[0])  # index_fill_ would .item()
            self._pending_steps.clear()
        if self._dirty_eligible:
            slot_array = np.fromiter(self._dirty_eligible, dtype=np.int64)
            slots = self._upload(slot_array)
            values = self._upload(np.stack([self.host_eligible[h][slot_array] for h in self.horizons]))
            for row, h in enumerate(self.horizons):
                self.eligible[h][slots] = values[row]
            self._dirty_eligible.clear()

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        """Host array -> device tensor; on CUDA through pinned memory, without blocking the host."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def _frames_of(self, obs: np.ndarray) -> np.ndarray:
        """Split a (stacked) observation into its frames: (h, *frame_shape)."""
        obs = np.asarray(obs)
        if obs.shape != self.spec.obs_shape:
            raise ValueError(f"observation shape {obs.shape} does not match the env spec {self.spec.obs_shape}")
        return obs.reshape(self.history, *self.spec.frame_shape)

    def _action_vector(self, action: np.ndarray) -> np.ndarray:
        if self.spec.discrete and np.ndim(action) == 0:
            return np.eye(self.spec.action_dim, dtype=np.float32)[int(action)]
        return np.asarray(action, dtype=np.float32)

    # ---------------------------------------------------------------- reading
    def can_sample(self) -> bool:
        return all(n > 0 for n in self.num_eligible.values())

    def reward_scale(self) -> float:
        """Mean |r| over the stored transitions (0.0 when empty)."""
        return self.abs_reward_sum / self.num_transitions if self.num_transitions else 0.0

    def draw_uniforms(self, count: int) -> torch.Tensor:
        """The random numbers `sample_indices` consumes for `count` samples: (count,) float64 in [0, 1)."""
        return torch.rand(count, dtype=torch.float64, device=self.device)

    def sampling_weights(self, horizon: int) -> torch.Tensor:
        """Unnormalised sampling weights of window starts: priority (or 1) where eligible, else 0.

        Only the slots written so far, (min(written, capacity),): nothing beyond them is eligible, so the
        distribution is the same and early sampling does not scan a mostly empty 1M ring. With `static_shapes`
        (a buffer for captured updates, which need fixed shapes) always the whole ring, (capacity,).
        """
        n = self.capacity if self.static_shapes else min(self.written, self.capacity)
        weights = self.eligible[horizon][:n].float()
        return weights * self.priority[:n] if self.prioritized else weights

    def sample_indices(self, horizon: int, count: int) -> torch.Tensor:
        """`count` start slots, proportional to priority (or uniform) among eligible windows: (count,)."""
        self.flush()
        return sample_proportional(self.sampling_weights(horizon), self.draw_uniforms(count))

    def gather(self, start: torch.Tensor, horizon: int, all_next_states: bool = True) -> Batch:
        """Rebuild the windows of `horizon` steps starting at `start` (B,)."""
        self.flush()  # a no-op when nothing is staged (always so inside a captured update)
        steps = [start]
        for _ in range(horizon - 1):  # stay on a terminating slot: later steps are masked downstream
            prev = steps[-1]
            steps.append((prev + self.not_done[prev].long()) % self.capacity)
        idx = torch.stack(steps, dim=1)  # (B, H)
        next_idx = (idx + 1) % self.capacity if all_next_states else (idx[:, -1:] + 1) % self.capacity
        return Batch(
            state=self._stack(start),
            action=self.action[idx],
            reward=self.reward[idx],
            not_done=self.not_done[idx],
            next_state=self._stack(next_idx),
            indices=start,
        )

    def _stack(self, newest: torch.Tensor) -> torch.Tensor:
        """Frame stacks ending at slots `newest` (...,) -> (..., *obs_shape)."""
        idx = (newest[..., None] + self._offsets) % self.capacity  # (..., h)
        frames = self.frames[idx]  # (..., h, *frame_shape)
        return frames.reshape(*newest.shape, *self.spec.obs_shape)

    def update_priority(self, indices: torch.Tensor, priority: torch.Tensor) -> None:
        """Set the priorities of sampled windows (B,) and raise the running maximum (all on the device)."""
        self.flush()  # staged transitions take the maximum from before this update
        self.priority[indices] = priority.detach()
        torch.maximum(self.max_priority, priority.detach().max(), out=self.max_priority)  # in place: graph-safe

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        """Everything needed to continue, as tensors and plain values (only the written part of the ring)."""
        self.flush()
        n = min(self.written, self.capacity)
        return {
            "frames": self.frames[:n],
            "action": self.action[:n],
            "reward": self.reward[:n],
            "not_done": self.not_done[:n],
            "priority": self.priority[:n],
            "max_priority": self.max_priority,
            "eligible": {str(h): self.eligible[h][:n] for h in self.horizons},
            "abs_reward": self.abs_reward[:n],
            "has_transition": self.has_transition[:n],
            "abs_reward_sum": self.abs_reward_sum,
            "num_transitions": self.num_transitions,
            "any_termination": self.any_termination,
            "written": self.written,
            "cursor": self.cursor,
            "episode_start": self.episode_start,
            "in_episode": self.in_episode,
            "capacity": self.capacity,
            "horizons": list(self.horizons),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity or tuple(state["horizons"]) != self.horizons:
            raise ConfigError("the checkpoint's replay buffer was made with another buffer_size or horizons")
        n = min(state["written"], self.capacity)
        self._pending_frames.clear()
        self._pending_steps.clear()
        self._dirty_eligible.clear()
        # In place throughout: a captured update graph keeps reading these same tensors.
        for name in ("frames", "action", "reward", "not_done", "priority"):
            getattr(self, name)[:n] = torch.as_tensor(state[name]).to(self.device)
        self.max_priority.copy_(torch.as_tensor(state["max_priority"]))
        for h in self.horizons:
            self.eligible[h].zero_()
            self.eligible[h][:n] = torch.as_tensor(state["eligible"][str(h)]).to(self.device)
            self.host_eligible[h][:] = False
            self.host_eligible[h][:n] = self.eligible[h][:n].cpu().numpy()
            self.num_eligible[h] = int(self.host_eligible[h].sum())
        self.abs_reward[:n] = state["abs_reward"]
        self.has_transition[:n] = state["has_transition"]
        for name in (
            "abs_reward_sum",
            "num_transitions",
            "any_termination",
            "written",
            "cursor",
            "episode_start",
            "in_episode",
        ):
            setattr(self, name, state[name])
