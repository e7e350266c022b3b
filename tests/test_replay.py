"""LAP replay buffer (mrq_agents.replay): window eligibility, frame-history reconstruction, wrap-around,
priorities and checkpoint round trips, checked against what a scripted environment produced."""

import numpy as np
import pytest
import torch

from mrq_agents.envs import EnvSpec
from mrq_agents.functional import masked_multistep_return
from mrq_agents.replay import ReplayBuffer

VECTOR = EnvSpec(obs_shape=(2,), pixels=False, frame_stack=1, discrete=False, action_dim=1)


def vec_obs(episode, t):
    """A vector observation that says which state it is: [episode, step]."""
    return np.array([episode, t], dtype=np.float32)


def eligible_starts(buffer, horizon):
    buffer.flush()
    return sorted(buffer.eligible[horizon].nonzero().flatten().tolist())


def run_vector_episode(buffer, episode, rewards, end="truncated"):
    """Steps [episode, 0] -> [episode, 1] -> ...; action t/10; `end` in truncated/terminated/none (unfinished)."""
    buffer.start_episode(vec_obs(episode, 0))
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        buffer.add(
            np.array([t / 10], dtype=np.float32),
            r,
            terminated=last and end == "terminated",
            truncated=last and end == "truncated",
            next_obs=vec_obs(episode, t + 1),
        )


# ------------------------------------------------------------------ eligibility near episode ends
def test_truncated_episode_windows():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(5, 3), prioritized=True, device="cpu")
    run_vector_episode(buffer, 0, [1, 2, 3, 4, 5, 6], end="truncated")
    # Slots: s_t at slot t (t = 0..5 acted in), final observation s_6 at slot 6.
    # H = 3: windows 0-2, 1-3, 2-4, 3-5 (ends exactly on the truncation: its successor s_6 is stored).
    assert eligible_starts(buffer, 3) == [0, 1, 2, 3]
    # H = 5: windows 0-4, 1-5.
    assert eligible_starts(buffer, 5) == [0, 1]
    assert buffer.can_sample()

    batch = buffer.gather(torch.tensor([3, 0]), 3)
    assert batch.state.tolist() == [[0, 3], [0, 0]]
    assert batch.reward.tolist() == [[4, 5, 6], [1, 2, 3]]
    assert batch.not_done.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert batch.action[0, :, 0].tolist() == pytest.approx([0.3, 0.4, 0.5])
    # next states of window 3: s_4, s_5, s_6 (the final observation)
    assert batch.next_state[0].tolist() == [[0, 4], [0, 5], [0, 6]]
    assert batch.indices.tolist() == [3, 0]

    # Only the last next state when asked for it: (B, 1, obs)
    last = buffer.gather(torch.tensor([3]), 3, all_next_states=False)
    assert last.next_state.shape == (1, 1, 2) and last.next_state[0, 0].tolist() == [0, 6]

    # The next episode does not make the cut windows 4, 5 (nor the final observation's slot 6) eligible.
    run_vector_episode(buffer, 1, [7, 8, 9, 10, 11], end="truncated")
    assert eligible_starts(buffer, 3) == [0, 1, 2, 3, 7, 8, 9]
    assert eligible_starts(buffer, 5) == [0, 1, 7]


def test_terminated_episode_windows_repeat_the_terminating_slot():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(5, 3), prioritized=True, device="cpu")
    run_vector_episode(buffer, 0, [1, 2, 3, 4, 5, 6], end="terminated")
    # Windows running into the termination are eligible: every acted-in state 0..5, never the final slot 6.
    assert eligible_starts(buffer, 3) == [0, 1, 2, 3, 4, 5]
    assert eligible_starts(buffer, 5) == [0, 1, 2, 3, 4, 5]

    batch = buffer.gather(torch.tensor([4, 5]), 3)
    # Start 4: steps 4, 5, then the terminating slot 5 again.
    assert batch.state.tolist() == [[0, 4], [0, 5]]
    assert batch.reward.tolist() == [[5, 6, 6], [6, 6, 6]]
    assert batch.not_done.tolist() == [[1, 0, 0], [0, 0, 0]]
    assert batch.action[:, :, 0].flatten().tolist() == pytest.approx([0.4, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert batch.next_state.tolist() == [[[0, 5], [0, 6], [0, 6]], [[0, 6], [0, 6], [0, 6]]]
    # The masked return then ignores the repeated steps (gamma 0.5):
    # start 4: 5 + 0.5 * 6 = 8, D = 0; start 5: 6, D = 0.
    returns, bootstrap = masked_multistep_return(batch.reward, batch.not_done, 0.5)
    assert returns[:, 0].tolist() == [8.0, 6.0]
    assert bootstrap[:, 0].tolist() == [0.0, 0.0]

    # H = 5 from start 2: steps 2, 3, 4, 5, 5
    batch5 = buffer.gather(torch.tensor([2]), 5)
    assert batch5.reward.tolist() == [[3, 4, 5, 6, 6]]
    assert batch5.not_done.tolist() == [[1, 1, 1, 0, 0]]
    assert batch5.next_state[0, :, 1].tolist() == [3, 4, 5, 6, 6]


def test_short_terminated_episode_is_eligible():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(5, 3), prioritized=True, device="cpu")
    run_vector_episode(buffer, 0, [1, 2], end="terminated")  # 2 steps < both horizons
    assert eligible_starts(buffer, 3) == [0, 1]
    assert eligible_starts(buffer, 5) == [0, 1]
    run_vector_episode(buffer, 1, [3, 4], end="truncated")  # slots 3, 4 (final 5): too short when cut
    assert eligible_starts(buffer, 3) == [0, 1]


def test_unfinished_episode_at_the_head():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(5, 3), prioritized=True, device="cpu")
    run_vector_episode(buffer, 0, [1, 2, 3, 4, 5, 6], end="truncated")  # slots 0..6
    run_vector_episode(buffer, 1, [7, 8, 9, 10], end="none")  # s'_0..s'_3 at slots 7..10, s'_4 at 11
    # Fully stored H = 3 windows of the running episode: 7-9, 8-10 only.
    assert eligible_starts(buffer, 3) == [0, 1, 2, 3, 7, 8]
    assert eligible_starts(buffer, 5) == [0, 1]
    buffer.add(np.array([0.4], dtype=np.float32), 11, False, False, vec_obs(1, 5))
    assert eligible_starts(buffer, 3) == [0, 1, 2, 3, 7, 8, 9]
    assert eligible_starts(buffer, 5) == [0, 1, 7]


def test_add_before_start_episode_is_an_error():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(3,), device="cpu")
    with pytest.raises(RuntimeError):
        buffer.add(np.zeros(1, dtype=np.float32), 0.0, False, False, vec_obs(0, 1))
    run_vector_episode(buffer, 0, [1.0], end="terminated")
    with pytest.raises(RuntimeError):  # the episode ended
        buffer.add(np.zeros(1, dtype=np.float32), 0.0, False, False, vec_obs(0, 2))


# ------------------------------------------------------------------ frame history (pixels)
PIXEL = EnvSpec(obs_shape=(3 * 2, 4, 4), pixels=True, frame_stack=3, discrete=True, action_dim=3)


def frame(value):
    return np.full((2, 4, 4), value, dtype=np.uint8)


class FrameStackEnv:
    """Emits stacks of 3 frames (oldest first) like a FrameStack wrapper; padding at reset by repeating
    the first frame ("repeat") or by zeros ("zeros"). Frame k of episode e is filled with 10 * e + k + 1."""

    def __init__(self, padding):
        self.padding = padding

    def stack(self, episode, t):
        frames = []
        for k in (t - 2, t - 1, t):
            if k >= 0:
                frames.append(frame(10 * episode + k + 1))
            else:
                frames.append(frame(10 * episode + 1) if self.padding == "repeat" else frame(0))
        return np.concatenate(frames, axis=0)  # (6, 4, 4)


@pytest.mark.parametrize("padding", ["repeat", "zeros"])
def test_pixel_frame_stacks_are_rebuilt_exactly(padding):
    env = FrameStackEnv(padding)
    buffer = ReplayBuffer(PIXEL, 64, horizons=(3,), prioritized=False, device="cpu")
    log = {}  # slot of s_t -> (s_t, action, reward, s_{t+1})
    plan = [(0, 5, "terminated"), (1, 4, "truncated"), (2, 3, "terminated")]
    slot = 0
    for episode, length, end in plan:
        buffer.start_episode(env.stack(episode, 0))
        slot += 2  # two prefix frames, then s_0
        for t in range(length):
            last = t == length - 1
            action = (episode + t) % 3
            buffer.add(
                action,
                float(10 * episode + t),
                last and end == "terminated",
                last and end == "truncated",
                env.stack(episode, t + 1),
            )
            log[slot] = (env.stack(episode, t), action, float(10 * episode + t), env.stack(episode, t + 1))
            slot += 1
        slot += 1  # final observation
    # Layout: episode 0 at slots 0..7 (s_0 at 2), episode 1 at 8..14 (s_0 at 10), episode 2 at 15..20 (s_0 at 17).
    assert sorted(log) == [2, 3, 4, 5, 6, 10, 11, 12, 13, 17, 18, 19]
    # Eligible (H = 3): all of the terminated episodes, starts 0-1 of the 4-step truncated one.
    assert eligible_starts(buffer, 3) == [2, 3, 4, 5, 6, 10, 11, 17, 18, 19]

    starts = [s for s in sorted(log)]
    batch = buffer.gather(torch.tensor(starts), 3)
    assert batch.state.dtype == torch.uint8 and batch.state.shape == (len(starts), 6, 4, 4)
    for row, start in enumerate(starts):
        state, action, reward, next_state = log[start]
        np.testing.assert_array_equal(batch.state[row].numpy(), state)
        np.testing.assert_array_equal(batch.next_state[row, 0].numpy(), next_state)
        assert batch.reward[row, 0].item() == reward
        assert batch.action[row, 0].tolist() == np.eye(3)[action].tolist()  # int actions stored one-hot

    # The next episode's first state holds only its own frames.
    first_of_episode_1 = batch.state[starts.index(10)].numpy()
    np.testing.assert_array_equal(first_of_episode_1, env.stack(1, 0))
    assert set(np.unique(first_of_episode_1)) <= ({11} if padding == "repeat" else {0, 11})
    # Window 10 (H = 3) reads next states s_1, s_2, s_3 of episode 1.
    for k in range(3):
        np.testing.assert_array_equal(batch.next_state[starts.index(10), k].numpy(), env.stack(1, k + 1))


def test_pixel_observation_shape_is_checked():
    buffer = ReplayBuffer(PIXEL, 64, horizons=(3,), device="cpu")
    with pytest.raises(ValueError):
        buffer.start_episode(np.zeros((2, 4, 4), dtype=np.uint8))


# ------------------------------------------------------------------ wrap-around
class ScriptedWriter:
    """Drives a buffer with episodes of known content and keeps a python-side log of every slot written,
    by absolute position (frames ever written)."""

    def __init__(self, buffer, spec):
        self.buffer, self.spec = buffer, spec
        self.history = spec.frame_stack
        self.written = 0
        self.transitions = {}  # absolute slot -> dict(episode, t, length, end, reward, action, state, next)
        self.episodes = []

    def obs(self, episode, t):
        if not self.spec.pixels:
            return vec_obs(episode, t)
        # frames (2, 1, 1) = [episode, step]; reset padding repeats frame 0
        frames = [
            np.array([episode, max(k, 0)], dtype=np.uint8).reshape(2, 1, 1) for k in range(t - self.history + 1, t + 1)
        ]
        return np.concatenate(frames, axis=0)

    def episode(self, length, end):
        episode = len(self.episodes)
        self.episodes.append((length, end))
        self.buffer.start_episode(self.obs(episode, 0))
        self.written += self.history
        for t in range(length):
            last = t == length - 1
            reward = (-1) ** t * (episode + 0.25 * t + 0.5)
            action = np.array([((episode * 7 + t) % 11) / 10 - 0.5], dtype=np.float32)
            self.buffer.add(
                action, reward, last and end == "terminated", last and end == "truncated", self.obs(episode, t + 1)
            )
            self.transitions[self.written - 1] = dict(
                episode=episode,
                t=t,
                length=length,
                end=end,
                reward=reward,
                action=float(action[0]),
                state=self.obs(episode, t),
                next=self.obs(episode, t + 1),
                terminated=last and end == "terminated",
            )
            self.written += 1

    def oldest(self):
        return self.written - self.buffer.capacity

    def expected_eligible(self, horizon):
        """Slots whose window is complete inside one episode (or runs into its termination) and reads no
        overwritten frame."""
        slots = set()
        for pos, tr in self.transitions.items():
            complete = tr["t"] + horizon <= tr["length"] if tr["end"] != "terminated" else True
            if tr["end"] == "none":  # unfinished: the steps up to t + horizon - 1 must have been added
                complete = pos + horizon - 1 in self.transitions
            if complete and pos - self.history + 1 >= self.oldest():
                slots.add(pos % self.buffer.capacity)
        return sorted(slots)

    def expected_window(self, pos, horizon):
        """(rewards, not_done, next states) of the window at absolute slot `pos`, stepping the env log."""
        rewards, not_done, nexts = [], [], []
        for _ in range(horizon):
            tr = self.transitions[pos]
            rewards.append(tr["reward"])
            not_done.append(0.0 if tr["terminated"] else 1.0)
            nexts.append(tr["next"])
            if not tr["terminated"]:
                pos += 1
        return rewards, not_done, nexts


@pytest.mark.parametrize(
    "spec",
    [
        VECTOR,
        EnvSpec(obs_shape=(2 * 2, 1, 1), pixels=True, frame_stack=2, discrete=False, action_dim=1),
    ],
    ids=["vector", "pixels-history-2"],
)
def test_wrap_around_keeps_windows_consistent(spec):
    capacity, horizon = 30, 3
    buffer = ReplayBuffer(spec, capacity, horizons=(horizon,), prioritized=True, device="cpu")
    writer = ScriptedWriter(buffer, spec)
    plan = [
        (7, "truncated"),
        (4, "terminated"),
        (9, "truncated"),
        (2, "terminated"),
        (11, "truncated"),
        (5, "terminated"),
        (3, "truncated"),
        (8, "terminated"),
        (6, "truncated"),
        (10, "terminated"),
        (4, "truncated"),
        (2, "truncated"),
        (9, "terminated"),
        (7, "truncated"),
        (12, "terminated"),
        (3, "terminated"),
        (5, "none"),
    ]
    for length, end in plan:
        writer.episode(length, end)
        # After every episode: the eligible set is what the log says, and every eligible window reads
        # exactly what the env produced.
        assert eligible_starts(buffer, horizon) == writer.expected_eligible(horizon)
        positions = {pos % capacity: pos for pos in writer.transitions if pos >= writer.oldest()}
        starts = eligible_starts(buffer, horizon)
        batch = buffer.gather(torch.tensor(starts, dtype=torch.long), horizon)
        for row, slot in enumerate(starts):
            pos = positions[slot]
            rewards, not_done, nexts = writer.expected_window(pos, horizon)
            np.testing.assert_array_equal(batch.state[row].numpy(), writer.transitions[pos]["state"])
            assert batch.reward[row].tolist() == pytest.approx(rewards)
            assert batch.not_done[row].tolist() == not_done
            assert batch.action[row, 0, 0].item() == pytest.approx(writer.transitions[pos]["action"])
            for k in range(horizon):
                np.testing.assert_array_equal(batch.next_state[row, k].numpy(), nexts[k])
        # Reward scale: mean |r| over the transitions still stored.
        stored = [abs(tr["reward"]) for pos, tr in writer.transitions.items() if pos >= writer.oldest()]
        assert buffer.reward_scale() == pytest.approx(sum(stored) / len(stored))
    assert writer.written > 4 * capacity  # the ring wrapped several times


def test_wrap_around_by_hand():
    # Capacity 10 (the smallest allowed for H = 3, history 1: 2 * (3 + 1 + 1)).
    buffer = ReplayBuffer(VECTOR, 10, horizons=(3,), prioritized=True, device="cpu")
    assert buffer.reward_scale() == 0.0  # empty
    run_vector_episode(buffer, 0, [1, -2, 3, -4], end="truncated")  # transitions at 0..3, final at 4
    run_vector_episode(buffer, 1, [10, -20, 30], end="terminated")  # transitions at 5..7, final at 8
    # (1 + 2 + 3 + 4 + 10 + 20 + 30) / 7 = 70 / 7 = 10
    assert buffer.reward_scale() == pytest.approx(10.0)
    assert eligible_starts(buffer, 3) == [0, 1, 5, 6, 7]

    buffer.start_episode(vec_obs(2, 0))  # slot 9
    buffer.add(np.array([0.0], dtype=np.float32), 5, False, False, vec_obs(2, 1))  # s_1 over slot 0 (r = 1)
    # (2 + 3 + 4 + 10 + 20 + 30 + 5) / 7 = 74 / 7
    assert buffer.reward_scale() == pytest.approx(74 / 7)
    assert eligible_starts(buffer, 3) == [1, 5, 6, 7]  # window 0 lost its first state
    buffer.add(np.array([0.1], dtype=np.float32), -7, False, False, vec_obs(2, 2))  # s_2 over slot 1 (r = -2)
    # (3 + 4 + 10 + 20 + 30 + 5 + 7) / 7 = 79 / 7
    assert buffer.reward_scale() == pytest.approx(79 / 7)
    assert eligible_starts(buffer, 3) == [5, 6, 7]  # window 1 read slot 1: gone
    buffer.add(np.array([0.2], dtype=np.float32), 2, False, False, vec_obs(2, 3))  # s_3 over slot 2 (r = 3)
    # (4 + 10 + 20 + 30 + 5 + 7 + 2) / 7 = 78 / 7
    assert buffer.reward_scale() == pytest.approx(78 / 7)
    # The window 9 -> 0 -> 1 (next state at slot 2) wraps around the ring and is now complete.
    assert eligible_starts(buffer, 3) == [5, 6, 7, 9]
    batch = buffer.gather(torch.tensor([9]), 3)
    assert batch.state.tolist() == [[2, 0]]
    assert batch.reward.tolist() == [[5, -7, 2]]
    assert batch.not_done.tolist() == [[1, 1, 1]]
    assert batch.next_state[0].tolist() == [[2, 1], [2, 2], [2, 3]]
    assert batch.action[0, :, 0].tolist() == pytest.approx([0.0, 0.1, 0.2])


def test_too_small_capacity_is_rejected():
    from mrq_agents.errors import ConfigError

    with pytest.raises(ConfigError):
        ReplayBuffer(VECTOR, 9, horizons=(3,), device="cpu")  # needs 2 * (3 + 1 + 1) = 10


# ------------------------------------------------------------------ priorities
def test_new_transitions_get_the_max_priority():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(3,), prioritized=True, device="cpu")
    run_vector_episode(buffer, 0, [1, 2, 3, 4], end="none")  # transitions at slots 0..3
    buffer.flush()  # device writes are staged until something reads them
    assert buffer.max_priority.item() == 1.0
    assert buffer.priority[:4].tolist() == [1.0, 1.0, 1.0, 1.0]

    buffer.update_priority(torch.tensor([0, 1]), torch.tensor([3.0, 0.5]))
    assert buffer.max_priority.item() == 3.0
    assert buffer.priority[:4].tolist() == [3.0, 0.5, 1.0, 1.0]
    buffer.add(np.array([0.0], dtype=np.float32), 0.0, False, False, vec_obs(0, 5))  # slot 4
    buffer.flush()
    assert buffer.priority[4].item() == 3.0

    # A smaller update does not lower the maximum.
    buffer.update_priority(torch.tensor([2]), torch.tensor([2.0]))
    assert buffer.max_priority.item() == 3.0
    buffer.add(np.array([0.0], dtype=np.float32), 0.0, False, False, vec_obs(0, 6))  # slot 5
    buffer.flush()
    assert buffer.priority[5].item() == 3.0


def _fill_for_sampling(prioritized):
    buffer = ReplayBuffer(VECTOR, 60, horizons=(3,), prioritized=prioritized, device="cpu")
    run_vector_episode(buffer, 0, [1.0] * 6, end="truncated")  # eligible 0..3, final at 6
    run_vector_episode(buffer, 1, [1.0] * 4, end="terminated")  # slots 7..10 eligible, final 11
    run_vector_episode(buffer, 2, [1.0] * 5, end="none")  # slots 12..16: eligible 12, 13, 14
    eligible = [0, 1, 2, 3, 7, 8, 9, 10, 12, 13, 14]
    assert eligible_starts(buffer, 3) == eligible
    return buffer, eligible


def test_sampling_only_returns_eligible_starts():
    torch.manual_seed(0)
    buffer, eligible = _fill_for_sampling(prioritized=True)
    # A huge priority on slots that are not starts (truncated tail 4, final observation 6, head 16) is ignored.
    buffer.update_priority(torch.tensor([4, 6, 16]), torch.tensor([1e6, 1e6, 1e6]))
    samples = buffer.sample_indices(3, 5000)
    assert samples.shape == (5000,)
    assert set(samples.tolist()) == set(eligible)


def _start_frequencies(buffer, n):
    """Share of `n` sampled 3-step window starts that fell on each of the first 60 slots."""
    return torch.bincount(buffer.sample_indices(3, n), minlength=60).float() / n


def test_prioritized_sampling_is_proportional_to_priority():
    torch.manual_seed(0)
    buffer, eligible = _fill_for_sampling(prioritized=True)
    # Priority 1 everywhere (new transitions) except slot 8 at 21: P(8) = 21 / (10 * 1 + 21) = 21 / 31 = 0.677,
    # every other eligible slot 1 / 31 = 0.032.
    buffer.update_priority(torch.tensor([8]), torch.tensor([21.0]))
    counts = _start_frequencies(buffer, 20000)
    assert counts[8].item() == pytest.approx(21 / 31, abs=0.03)
    for slot in eligible:
        if slot != 8:
            assert counts[slot].item() == pytest.approx(1 / 31, abs=0.01)
    # Batches gathered at sampled starts carry their start slots for the priority update.
    batch = buffer.gather(buffer.sample_indices(3, 16), 3)
    assert set(batch.indices.tolist()) <= set(eligible)


def test_uniform_sampling_ignores_priorities():
    torch.manual_seed(0)
    buffer, eligible = _fill_for_sampling(prioritized=False)
    buffer.update_priority(torch.tensor([8]), torch.tensor([21.0]))
    counts = _start_frequencies(buffer, 22000)
    assert set(counts.nonzero().flatten().tolist()) == set(eligible)
    for slot in eligible:  # 1 / 11 = 0.0909 each
        assert counts[slot].item() == pytest.approx(1 / 11, abs=0.015)


# ------------------------------------------------------------------ termination flag
def test_any_termination_flips_only_on_a_terminated_transition():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(3,), device="cpu")
    assert buffer.any_termination is False
    run_vector_episode(buffer, 0, [1, 2, 3, 4], end="truncated")
    assert buffer.any_termination is False
    buffer.start_episode(vec_obs(1, 0))
    buffer.add(np.array([0.0], dtype=np.float32), 1.0, False, False, vec_obs(1, 1))
    assert buffer.any_termination is False
    buffer.add(np.array([0.0], dtype=np.float32), 1.0, True, False, vec_obs(1, 2))
    assert buffer.any_termination is True
    run_vector_episode(buffer, 2, [1, 2, 3], end="truncated")
    assert buffer.any_termination is True


def test_terminated_and_truncated_at_once_counts_as_termination():
    buffer = ReplayBuffer(VECTOR, 50, horizons=(3,), device="cpu")
    buffer.start_episode(vec_obs(0, 0))
    buffer.add(np.array([0.0], dtype=np.float32), 1.0, True, True, vec_obs(0, 1))
    assert buffer.any_termination is True
    buffer.flush()
    assert buffer.not_done[0].item() == 0.0
    assert eligible_starts(buffer, 3) == [0]


# ------------------------------------------------------------------ checkpoint round trip
def test_state_dict_round_trip_gives_identical_gathers():
    spec = EnvSpec(obs_shape=(2 * 2, 1, 1), pixels=True, frame_stack=2, discrete=False, action_dim=1)
    buffer = ReplayBuffer(spec, 30, horizons=(5, 3), prioritized=True, device="cpu")
    writer = ScriptedWriter(buffer, spec)
    for length, end in [(7, "truncated"), (4, "terminated"), (9, "truncated"), (6, "terminated"), (5, "none")]:
        writer.episode(length, end)
    buffer.update_priority(torch.tensor(eligible_starts(buffer, 3)[:3]), torch.tensor([2.0, 5.0, 3.0]))

    restored = ReplayBuffer(spec, 30, horizons=(5, 3), prioritized=True, device="cpu")
    restored.load_state_dict(buffer.state_dict())

    def same(a, b):
        for h in (3, 5):
            assert torch.equal(a.eligible[h], b.eligible[h])
            starts = a.eligible[h].nonzero().flatten()
            ga, gb = a.gather(starts, h), b.gather(starts, h)
            for name in ga._fields:
                assert torch.equal(getattr(ga, name), getattr(gb, name)), name
        assert torch.equal(a.priority, b.priority)
        assert a.max_priority.item() == b.max_priority.item() == 5.0
        assert a.reward_scale() == b.reward_scale()
        assert a.any_termination == b.any_termination

    same(buffer, restored)
    torch.manual_seed(3)
    sampled = buffer.sample_indices(3, 64)
    torch.manual_seed(3)
    assert torch.equal(restored.sample_indices(3, 64), sampled)

    # Both continue identically: the unfinished episode goes on, then a new one wraps the ring.
    for b in (buffer, restored):
        b.add(np.array([0.3], dtype=np.float32), 2.5, False, True, writer.obs(4, 6))
        b.start_episode(writer.obs(5, 0))
        for t in range(8):
            b.add(np.array([0.1 * t], dtype=np.float32), float(t), t == 7, False, writer.obs(5, t + 1))
    same(buffer, restored)


def test_writes_are_staged_until_flushed_and_the_latest_write_to_a_slot_wins():
    buffer = ReplayBuffer(VECTOR, 10, horizons=(3,), device="cpu")
    for episode in range(3):  # 3 episodes of 3 steps: 4 slots each, so the ring of 10 wraps over staged slots
        run_vector_episode(buffer, episode, [episode + 1.0] * 3, end="truncated")
    assert buffer.frames.shape == (10, 2) and buffer._pending_frames  # nothing copied yet
    buffer.flush()
    assert not buffer._pending_frames and not buffer._pending_steps and not buffer._dirty_eligible
    # written slots 0..11: episode 2's frames [2, t] at slots 8, 9, 0, 1 (the last two overwrote episode 0's)
    assert buffer.frames[[8, 9, 0, 1]].tolist() == [[2, 0], [2, 1], [2, 2], [2, 3]]
    assert buffer.reward[[8, 9, 0]].tolist() == [3.0, 3.0, 3.0]
    # Eligibility on the device matches the host mirror after the flush.
    assert torch.equal(buffer.eligible[3], torch.from_numpy(buffer.host_eligible[3]))
    assert eligible_starts(buffer, 3) == [4, 8]


def test_sampling_the_written_prefix_or_the_whole_ring_draws_the_same_indices():
    buffers = []
    for static_shapes in (False, True):  # True: what a captured update uses, fixed shapes
        buffer = ReplayBuffer(VECTOR, 500, horizons=(3,), device="cpu", static_shapes=static_shapes)
        for episode in range(4):
            run_vector_episode(buffer, episode, [1.0] * 12, end="terminated" if episode % 2 else "truncated")
        buffer.update_priority(torch.tensor([0, 5, 14]), torch.tensor([4.0, 2.0, 0.5]))
        buffers.append(buffer)
    prefix, whole = buffers
    assert prefix.sampling_weights(3).shape == (52,)  # 4 episodes of 13 slots written
    assert whole.sampling_weights(3).shape == (500,)
    torch.manual_seed(0)
    drawn = prefix.sample_indices(3, 1000)
    torch.manual_seed(0)
    assert torch.equal(whole.sample_indices(3, 1000), drawn)
