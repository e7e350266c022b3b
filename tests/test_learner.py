"""MR.Q learner (mrq_agents.learner): target-sync cadence, reward scales, which parameters each update
steps, a fine-tune's schedule on top of it, and the acting boundary. Tiny networks on CPU, buffers filled by
scripted random transitions."""

import numpy as np
import pytest
import torch

from helpers.tiny import tiny_config
from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.fast import FastLearner
from mrq_agents.learner import MRQLearner
from mrq_agents.replay import ReplayBuffer
from mrq_agents.training import transfer
from mrq_agents.training.transfer import FinetuneSchedule, convert_critics

CONFIG = tiny_config(hidden=16, batch_size=4, buffer_size=200, target_update_freq=5)
CONTINUOUS = EnvSpec(obs_shape=(3,), pixels=False, frame_stack=1, discrete=False, action_dim=2)
DISCRETE = EnvSpec(obs_shape=(3,), pixels=False, frame_stack=1, discrete=True, action_dim=4)
SPECS = pytest.mark.parametrize("spec", [CONTINUOUS, DISCRETE], ids=["continuous", "discrete"])


def fill(buffer, spec, rng, episodes=6, length=10, rewards=None):
    """Random transitions; every other episode terminates. Returns the rewards stored, in order."""
    stored = []
    for episode in range(episodes):
        buffer.start_episode(rng.standard_normal(3).astype(np.float32))
        for t in range(length):
            action = (
                int(rng.integers(spec.action_dim))
                if spec.discrete
                else rng.uniform(-1, 1, spec.action_dim).astype(np.float32)
            )
            reward = float(rng.uniform(-2, 2)) if rewards is None else rewards
            last = t == length - 1
            buffer.add(
                action,
                reward,
                last and episode % 2 == 0,
                last and episode % 2 == 1,
                rng.standard_normal(3).astype(np.float32),
            )
            stored.append(reward)
    return stored


def make(spec, seed=0, config=CONFIG, fast=False, **fill_kwargs):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    learner = (FastLearner if fast else MRQLearner)(spec, config, "cpu")
    buffer = ReplayBuffer(
        spec,
        config.buffer_size,
        horizons=(config.enc_horizon, config.q_horizon),
        prioritized=config.prioritized,
        device="cpu",
    )
    rewards = fill(buffer, spec, rng, **fill_kwargs)
    return learner, buffer, rewards, rng


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def equal(module, snap):
    return all(torch.equal(p, snap[name]) for name, p in module.named_parameters())


def changed(module, snap):
    """Most parameter tensors moved (one may see an exactly zero gradient, e.g. Huber signs cancelling)."""
    moved = [not torch.equal(p, snap[name]) for name, p in module.named_parameters()]
    return sum(moved) >= 0.75 * len(moved)


# ------------------------------------------------------------------ target sync cadence
@SPECS
def test_target_sync_cadence(spec, monkeypatch):
    learner, buffer, _, _ = make(spec)
    calls = []  # (kind, num_updates at the call)
    windows = []  # (the step that reads them, reward shape, next_state shape)
    for name in ("sync_targets", "encoder_step", "rl_step"):
        original = getattr(learner, name)

        def wrapped(*args, _name=name, _original=original, **kwargs):
            calls.append((_name, learner.num_updates))
            result = _original(*args, **kwargs)
            if _name == "sync_targets":  # right after a sync the targets equal the online networks
                for target, online in zip(learner.target.parameters(), learner.nets.parameters()):
                    assert torch.equal(target, online)
            return result

        monkeypatch.setattr(learner, name, wrapped)
    gather = buffer.gather

    def recorded_gather(*args, **kwargs):
        batch = gather(*args, **kwargs)
        windows.append((calls[-1][0], tuple(batch.reward.shape), tuple(batch.next_state.shape)))
        return batch

    monkeypatch.setattr(buffer, "gather", recorded_gather)

    for _ in range(12):
        metrics = learner.update(buffer)
        assert all(torch.isfinite(v) for v in metrics.values()) and "policy_loss" in metrics
    assert learner.num_updates == 12

    syncs = [n for kind, n in calls if kind == "sync_targets"]
    assert syncs == [0, 5, 10]
    encoder_steps = [n for kind, n in calls if kind == "encoder_step"]
    assert encoder_steps == [0] * 5 + [5] * 5 + [10] * 5  # 5 per sync, 15 in all
    assert [n for kind, n in calls if kind == "rl_step"] == list(range(12))
    # Order within a syncing step: sync, 5 encoder steps, the value and policy step.
    step_five = [kind for kind, n in calls if n == 5]
    assert step_five == ["sync_targets"] + ["encoder_step"] * 5 + ["rl_step"]
    assert [kind for kind, n in calls if n == 6] == ["rl_step"]
    # Encoder windows: H = 5 with every next state; value windows: H = 3 with only the last next state.
    # Half of the episodes terminate, so the termination loss is on.
    assert len(windows) == 15 + 12
    for kind, reward_shape, next_shape in windows:
        if kind == "encoder_step":
            assert reward_shape == (4, 5) and next_shape == (4, 5, 3)
            assert learner.use_termination.item() == 1.0
        else:
            assert kind == "rl_step" and reward_shape == (4, 3) and next_shape == (4, 1, 3)


def test_target_sync_every_250_updates_with_the_paper_default(monkeypatch):
    """The paper's cadence itself (docs/algorithm.md): target_update_freq=250, syncs at updates 0, 250 and 500,
    250 encoder updates each."""
    config = MRQConfig(
        zs_dim=8, zsa_dim=8, za_dim=4, enc_hdim=8, value_hdim=8, policy_hdim=8, batch_size=2, buffer_size=200
    )
    assert config.target_update_freq == 250
    learner, buffer, _, _ = make(CONTINUOUS, config=config)
    syncs, encoder_steps = [], []
    sync, encode = learner.sync_targets, learner.encoder_step
    monkeypatch.setattr(learner, "sync_targets", lambda: (syncs.append(learner.num_updates), sync())[1])
    monkeypatch.setattr(
        learner, "encoder_step", lambda *a, **k: (encoder_steps.append(learner.num_updates), encode(*a, **k))[1]
    )
    for _ in range(501):
        learner.update(buffer)
    assert syncs == [0, 250, 500]
    assert encoder_steps == [0] * 250 + [250] * 250 + [500] * 250


def test_termination_loss_is_off_until_a_termination_is_stored(monkeypatch):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    learner = MRQLearner(CONTINUOUS, CONFIG, "cpu")
    buffer = ReplayBuffer(CONTINUOUS, CONFIG.buffer_size, horizons=(5, 3), device="cpu")
    for _ in range(3):  # truncated episodes only
        buffer.start_episode(rng.standard_normal(3).astype(np.float32))
        for t in range(10):
            buffer.add(rng.uniform(-1, 1, 2), 1.0, False, t == 9, rng.standard_normal(3).astype(np.float32))
    flags = []
    original = learner.encoder_step

    def encoder_step(buffer, starts, noise):
        flags.append(bool(learner.use_termination))
        return original(buffer, starts, noise)

    monkeypatch.setattr(learner, "encoder_step", encoder_step)
    for _ in range(6):  # two syncs, 5 encoder updates each
        learner.update(buffer)
    assert flags == [False] * 10
    # Once a terminated transition is stored, the next sync's encoder updates use the termination loss.
    buffer.start_episode(rng.standard_normal(3).astype(np.float32))
    buffer.add(rng.uniform(-1, 1, 2), 1.0, True, False, rng.standard_normal(3).astype(np.float32))
    for _ in range(5):  # updates 6..10: the sync at 10
        learner.update(buffer)
    assert flags == [False] * 10 + [True] * 5


def test_targets_hold_the_online_weights_from_the_last_sync():
    learner, buffer, _, _ = make(CONTINUOUS)
    before_first = snapshot(learner.nets)
    learner.update(buffer)  # sync (copies the untrained weights), then 5 encoder + value + policy updates
    assert equal(learner.target, before_first)
    assert not equal(learner.nets, before_first)
    for _ in range(4):  # updates 1..4: no sync
        learner.update(buffer)
        assert equal(learner.target, before_first)
    before_sixth = snapshot(learner.nets)
    learner.update(buffer)  # update 5: sync
    assert equal(learner.target, before_sixth)
    assert not equal(learner.target, before_first)


# ------------------------------------------------------------------ reward scales
def test_reward_scales_follow_the_sync():
    learner, buffer, rewards, rng = make(CONTINUOUS)
    assert (learner.reward_scale, learner.target_reward_scale) == (
        1.0,
        0.0,
    )  # initial values (docs/algorithm.md: 1 and 0)
    mean_abs = sum(abs(r) for r in rewards) / len(rewards)  # the buffer holds 60 transitions, none overwritten
    learner.update(buffer)
    assert learner.target_reward_scale == 1.0
    assert learner.reward_scale == pytest.approx(mean_abs)

    # New transitions with |r| = 5: (60 * mean_abs + 20 * 5) / 80
    fill(buffer, CONTINUOUS, rng, episodes=2, length=10, rewards=5.0)
    new_mean_abs = (60 * mean_abs + 20 * 5.0) / 80
    for _ in range(4):  # no sync: scales unchanged
        learner.update(buffer)
        assert learner.reward_scale == pytest.approx(mean_abs)
        assert learner.target_reward_scale == 1.0
    learner.update(buffer)  # second sync
    assert learner.target_reward_scale == pytest.approx(mean_abs)
    assert learner.reward_scale == pytest.approx(new_mean_abs)


def test_all_zero_rewards_keep_the_scale_at_one():
    learner, buffer, _, _ = make(CONTINUOUS, rewards=0.0)
    assert buffer.reward_scale() == 0.0
    for _ in range(6):  # two syncs
        metrics = learner.update(buffer)
        assert learner.reward_scale == 1.0
        assert learner.target_reward_scale == 1.0
        assert all(torch.isfinite(v) for v in metrics.values())


def test_scales_without_rewards_against_the_authors_clamp():
    """What docs/algorithm.md says ("The choices we made"): while no reward is in the buffer, the authors' code
    clamps the scale to 1e-8 and ours keeps 1.

    The bootstrapped term is multiplied by target_reward_scale / reward_scale: here 1 in every cycle; with the
    clamp 1e8 in the first cycle (the initial scale 1 over 1e-8), then 1 (1e-8 / 1e-8). R is 0 in both.
    """
    ours, buffer, _, _ = make(CONTINUOUS, rewards=0.0)
    theirs, clamped, _, _ = make(CONTINUOUS, rewards=0.0)
    clamped.reward_scale = lambda: max(buffer.reward_scale(), 1e-8)  # the authors' clamp
    ratios = {"ours": [], "theirs": []}
    for _ in range(3 * CONFIG.target_update_freq):
        ours.update(buffer)
        theirs.update(clamped)
        if ours.num_updates % CONFIG.target_update_freq == 1:  # just after a sync
            ratios["ours"].append(ours.target_reward_scale / ours.reward_scale)
            ratios["theirs"].append(theirs.target_reward_scale / theirs.reward_scale)
    assert ratios["ours"] == [1.0, 1.0, 1.0]
    assert ratios["theirs"] == [pytest.approx(1e8), 1.0, 1.0]


# ------------------------------------------------------------------ which parameters each step changes
@SPECS
def test_encoder_step_changes_only_the_encoder(spec):
    learner, buffer, _, _ = make(spec)
    starts = buffer.sample_indices(CONFIG.enc_horizon, CONFIG.batch_size)
    before = {name: snapshot(getattr(learner.nets, name)) for name in ("encoder", "value", "policy")}
    targets = snapshot(learner.target)
    learner.use_termination.fill_(1.0)
    metrics = learner.encoder_step(buffer, starts, learner.draw_encoder_noise(CONFIG.batch_size, CONFIG.enc_horizon))
    assert set(metrics) >= {"encoder_loss", "dynamics_loss", "reward_loss", "termination_loss"}
    assert changed(learner.nets.encoder, before["encoder"])
    assert equal(learner.nets.value, before["value"])
    assert equal(learner.nets.policy, before["policy"])
    assert equal(learner.target, targets)


def rl_step(spec, train_policy, monkeypatch):
    """One `rl_step` on a fresh learner (the same one for both values of `train_policy`); returns the learner, its
    parameters before, its metrics and the (indices, priorities) the step wrote."""
    learner, buffer, _, _ = make(spec)
    learner.target_reward_scale = 1.0  # as after the first sync
    before = {name: snapshot(getattr(learner.nets, name)) for name in ("encoder", "value", "policy")}
    before["target"] = snapshot(learner.target)
    written = []
    monkeypatch.setattr(buffer, "update_priority", lambda indices, priority: written.append((indices, priority)))
    buffer.flush()  # as `update` does first
    torch.manual_seed(1)
    uniforms, noise = buffer.draw_uniforms(CONFIG.batch_size), learner.draw_value_noise(CONFIG.batch_size)
    metrics = learner.rl_step(buffer, uniforms, noise, train_policy=train_policy)
    return learner, before, metrics, written


@SPECS
def test_rl_step_changes_the_value_then_the_policy(spec, monkeypatch):
    """The value update changes only the value and writes the batch's LAP priorities; the policy update then changes
    only the policy, and its backward leaves the value's gradients as the value update left them and none on the
    encoder (`train_policy=False` stops after the value update: the same value step)."""
    value_only, before, metrics, written = rl_step(spec, False, monkeypatch)
    assert set(metrics) == {"value_loss", "q_mean"}
    assert changed(value_only.nets.value, before["value"])
    for name in ("encoder", "policy", "target"):
        module = value_only.target if name == "target" else getattr(value_only.nets, name)
        assert equal(module, before[name]), name
    ((indices, priority),) = written
    # LAP priorities: clamped below at min_priority 1, so >= 1 ** 0.4 = 1.
    assert indices.shape == priority.shape == (CONFIG.batch_size,) and torch.all(priority >= 1.0)
    both, before, metrics, written_both = rl_step(spec, True, monkeypatch)
    assert set(metrics) == {"value_loss", "q_mean", "policy_loss"}
    assert changed(both.nets.policy, before["policy"])
    assert equal(both.nets.encoder, before["encoder"]) and equal(both.target, before["target"])
    assert equal(both.nets.value, snapshot(value_only.nets.value))
    assert torch.equal(written_both[0][1], priority)
    for p, q in zip(both.nets.value.parameters(), value_only.nets.value.parameters()):
        assert torch.equal(p.grad, q.grad)
    assert all(p.grad is None for p in both.nets.encoder.parameters())


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_a_held_policy_waits_while_encoder_and_critics_learn(fast):
    """`hold_policy=3` (`mrq finetune --hold-policy 3`): the first 3 updates step the encoder and the value
    only; the 4th steps the policy too, on either update path."""
    learner, buffer, _, _ = make(CONTINUOUS, fast=fast)
    schedule = FinetuneSchedule(hold_policy=3)
    policy, value, encoder = (snapshot(getattr(learner.nets, n)) for n in ("policy", "value", "encoder"))
    for _ in range(3):
        metrics = schedule.update(learner, buffer)
        assert "policy_loss" not in metrics and "value_loss" in metrics
    assert equal(learner.nets.policy, policy)
    assert changed(learner.nets.value, value) and changed(learner.nets.encoder, encoder)
    assert "policy_loss" in schedule.update(learner, buffer)
    assert changed(learner.nets.policy, policy)


def test_a_held_policy_changes_nothing_else():
    """Holding the policy leaves the value's and encoder's updates as they were: the same random draws in the
    same order (the policy update draws none), so after the hold the critics match an unheld run's."""
    held, held_buffer, _, _ = make(CONTINUOUS)
    free, free_buffer, _, _ = make(CONTINUOUS)
    # Unheld, the policy moves after the first update and changes the value's targets; compare one update.
    torch.manual_seed(1)
    FinetuneSchedule(hold_policy=2).update(held, held_buffer)
    torch.manual_seed(1)
    free.update(free_buffer)
    for name in ("encoder", "value"):
        assert equal(getattr(held.nets, name), snapshot(getattr(free.nets, name))), name
    assert torch.equal(held_buffer.priority, free_buffer.priority)


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_a_held_encoder_waits_while_critics_and_policy_learn(fast):
    """`hold_encoder=6` with a sync every 5 updates: the bursts at updates 0 and 5 are skipped, so the encoder
    stays as it was for 10 updates while the value and the policy learn; the burst at update 10 trains it."""
    learner, buffer, _, _ = make(CONTINUOUS, fast=fast)
    schedule = FinetuneSchedule(hold_encoder=6)
    policy, value, encoder = (snapshot(getattr(learner.nets, n)) for n in ("policy", "value", "encoder"))
    for _ in range(2 * CONFIG.target_update_freq):
        metrics = schedule.update(learner, buffer)
        assert "policy_loss" in metrics and "value_loss" in metrics and "encoder_loss" not in metrics
    assert equal(learner.nets.encoder, encoder)
    assert changed(learner.nets.value, value) and changed(learner.nets.policy, policy)
    assert "encoder_loss" in schedule.update(learner, buffer)
    assert changed(learner.nets.encoder, encoder)


def test_convert_critics_rescales_the_heads_by_source_over_buffer_scale():
    """Source scale 2, buffer scale 0.25: factor 8 (a power of two, so the products are exact). A head with weight
    0.5 everywhere and bias 0.25 becomes 4 and 2; each critic's output is 8 times what it was; the learner's reward
    scale becomes the buffer's, the units the critics are now in."""
    learner, _, _, _ = make(CONTINUOUS)
    with torch.no_grad():
        for critic in (learner.nets.value.q1, learner.nets.value.q2):
            critic.head.weight.fill_(0.5)
            critic.head.bias.fill_(0.25)
    zsa = torch.randn(5, CONFIG.zsa_dim)
    before = learner.nets.value(zsa)
    convert_critics(learner, 2.0, 0.25)
    for critic in (learner.nets.value.q1, learner.nets.value.q2):
        assert torch.all(critic.head.weight == 4.0) and torch.all(critic.head.bias == 2.0)
    assert torch.equal(learner.nets.value(zsa), before * 8)
    assert learner.reward_scale == 0.25 and learner.scales[0].item() == 0.25


def test_the_first_update_converts_transferred_critics_once_at_the_buffer_scale(monkeypatch):
    """`source_reward_scale` (`mrq finetune --critic-units convert`): before the first update the critics are
    converted once, at the buffer's reward scale; that update's sync gives the targets the converted critics and
    reads them at that scale. A schedule without a source scale never converts."""
    calls = []
    learner, buffer, rewards, _ = make(CONTINUOUS)
    heads = [(c.head.weight.clone(), c.head.bias.clone()) for c in (learner.nets.value.q1, learner.nets.value.q2)]
    convert = transfer.convert_critics
    monkeypatch.setattr(transfer, "convert_critics", lambda *args: (calls.append(args[1:]), convert(*args))[1])
    schedule = FinetuneSchedule(source_reward_scale=3.0)
    schedule.update(learner, buffer)
    scale = pytest.approx(np.abs(rewards).mean(), rel=1e-6)
    assert calls == [(3.0, scale)]
    assert learner.reward_scale == learner.target_reward_scale == scale
    factor = 3.0 / learner.reward_scale
    for critic, (weight, bias) in zip((learner.target.value.q1, learner.target.value.q2), heads):
        assert torch.equal(critic.head.weight, weight * factor) and torch.equal(critic.head.bias, bias * factor)
    for _ in range(2 * CONFIG.target_update_freq):
        schedule.update(learner, buffer)
    assert len(calls) == 1
    plain, plain_buffer, _, _ = make(CONTINUOUS)
    FinetuneSchedule(hold_policy=1).update(plain, plain_buffer)
    assert len(calls) == 1


def test_update_raises_the_sampled_priorities():
    learner, buffer, _, _ = make(CONTINUOUS)
    learner.update(buffer)
    # Every priority written by the value update is a LAP priority >= 1; the running max is at least 1.
    assert buffer.max_priority.item() >= 1.0
    assert torch.all(buffer.priority[buffer.eligible[CONFIG.q_horizon]] >= 1.0)


# ------------------------------------------------------------------ acting
def test_act_continuous():
    torch.manual_seed(0)
    learner = MRQLearner(CONTINUOUS, CONFIG, "cpu")
    obs = np.array([0.3, -1.2, 2.0])
    for explore in (False, True):
        for _ in range(20):
            action = learner.act(obs * 5, explore=explore)
            assert isinstance(action, np.ndarray) and action.dtype == np.float32 and action.shape == (2,)
            assert np.all(action >= -1.0) and np.all(action <= 1.0)
    first = learner.act(obs, explore=False)
    assert np.array_equal(learner.act(obs, explore=False), first)
    # explore=False is tanh(pi's pre-activation): the policy's own output, no noise.
    with torch.no_grad():
        expected, _ = learner.nets.policy(learner.nets.encoder.state(torch.tensor(obs, dtype=torch.float32)[None]))
    np.testing.assert_allclose(first, expected[0].numpy(), rtol=1e-6)
    noisy = [learner.act(obs, explore=True) for _ in range(5)]
    assert any(not np.array_equal(a, first) for a in noisy)


def test_act_discrete():
    torch.manual_seed(0)
    learner = MRQLearner(DISCRETE, CONFIG, "cpu")
    obs = np.array([0.3, -1.2, 2.0], dtype=np.float32)
    for explore in (False, True):
        for _ in range(20):
            action = learner.act(obs, explore=explore)
            assert type(action) is int and 0 <= action < DISCRETE.action_dim
    greedy = learner.act(obs, explore=False, deterministic=True)
    assert all(learner.act(obs, explore=False, deterministic=True) == greedy for _ in range(10))
    with torch.no_grad():
        _, pre = learner.nets.policy(learner.nets.encoder.state(torch.tensor(obs)[None]))
    assert greedy == int(pre.argmax(1).item())


def test_act_pixels_accepts_uint8_stacks():
    spec = EnvSpec(obs_shape=(2 * 3, 32, 32), pixels=True, frame_stack=3, discrete=False, action_dim=2)
    torch.manual_seed(0)
    learner = MRQLearner(spec, CONFIG, "cpu")
    obs = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32), dtype=np.uint8)
    action = learner.act(obs, explore=False)
    assert action.dtype == np.float32 and action.shape == (2,) and np.all(np.abs(action) <= 1.0)


# ------------------------------------------------------------------ value target by hand
class ConstantQ(torch.nn.Module):
    """Stands in for the two critics: the same (q1, q2) for every input, (B, zsa_dim) -> (B, 2)."""

    def __init__(self, q1, q2, trainable):
        super().__init__()
        q = torch.tensor([q1, q2])
        if trainable:
            self.q = torch.nn.Parameter(q)
        else:
            self.register_buffer("q", q)

    def forward(self, zsa):
        return self.q.expand(zsa.shape[0], 2)


class OneBatch:
    """Stands in for the replay buffer: every draw gives `batch`; keeps the (indices, priorities) written."""

    def __init__(self, batch):
        self.batch, self.written = batch, []

    def sampling_weights(self, horizon):
        return torch.ones(self.batch.reward.shape[0])

    def gather(self, starts, horizon, all_next_states):
        return self.batch

    def update_priority(self, indices, priority):
        self.written.append((indices, priority))


@SPECS
def test_value_target_by_hand(spec):
    from mrq_agents.replay import Batch

    config = MRQConfig(**{**CONFIG.to_dict(), "discount": 0.5})
    torch.manual_seed(0)
    learner = MRQLearner(spec, config, "cpu")
    learner.target.value = ConstantQ(8.0, 6.0, trainable=False)  # min over target critics: 6
    learner.nets.value = ConstantQ(5.0, -3.0, trainable=True)  # online critics
    learner.target_reward_scale, learner.reward_scale = 2.0, 4.0
    action = torch.zeros(2, 3, spec.action_dim)
    action[..., 0] = 1.0
    batch = Batch(
        state=torch.randn(2, 3),
        action=action,
        reward=torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 1000.0]]),
        not_done=torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]),  # row 1 terminates at step 1
        next_state=torch.randn(2, 1, 3),
        indices=torch.tensor([0, 1]),
    )
    buffer = OneBatch(batch)
    uniforms = torch.rand(2, dtype=torch.float64)
    metrics = learner.rl_step(buffer, uniforms, learner.draw_value_noise(2), train_policy=False)
    ((_, priority),) = buffer.written
    # Row 0: R = 1 + 0.5 * 2 + 0.25 * 4 = 3, D = 1: y = (3 + 1 * 0.5^3 * 6 * 2.0) / 4.0 = (3 + 1.5) / 4 = 1.125
    # Row 1: R = 1 + 0.5 * 2 = 2 (the terminating step keeps its reward), D = 0: y = 2 / 4 = 0.5
    # Errors q - y: row 0 (5 - 1.125, -3 - 1.125) = (3.875, -4.125); row 1 (4.5, -3.5)
    # LAP: max |error| per row -> 4.125 ** 0.4, 4.5 ** 0.4
    assert priority.tolist() == pytest.approx([4.125**0.4, 4.5**0.4], rel=1e-6)
    # Huber (beta 1) with every |error| > 1: |e| - 0.5 -> 3.375, 3.625, 4.0, 3.0; mean = 14 / 4 = 3.5
    assert metrics["value_loss"].item() == pytest.approx(3.5, rel=1e-6)
    assert metrics["q_mean"].item() == pytest.approx(1.0)  # mean of (5, -3)


def test_discrete_noise_is_halved():
    # docs/algorithm.md: exploration 0.2, target noise 0.2 clipped at 0.3, all halved for discrete actions.
    continuous, discrete = MRQLearner(CONTINUOUS, CONFIG, "cpu"), MRQLearner(DISCRETE, CONFIG, "cpu")
    assert (continuous.exploration_noise, continuous.target_noise, continuous.target_noise_clip) == (0.2, 0.2, 0.3)
    assert (discrete.exploration_noise, discrete.target_noise, discrete.target_noise_clip) == (0.1, 0.1, 0.15)


# ------------------------------------------------------------------ network shapes and sizes
def test_paper_sized_networks_for_halfcheetah():
    from mrq_agents.networks import MRQNetworks

    nets = MRQNetworks((17,), False, 6, False, MRQConfig())
    count = {name: sum(p.numel() for p in getattr(nets, name).parameters()) for name in ("encoder", "value", "policy")}
    # Linear(i, o) has i*o + o parameters; layer norms have none.
    # encoder: zs MLP 17*512+512 + 2*(512*512+512) = 9216 + 525312 = 534528; za 6*256+256 = 1792;
    #   zsa MLP 768*512+512 + 2*262656 = 393728 + 525312 = 919040; model 512*578+578 = 296514 -> 1751874
    assert count["encoder"] == 1_751_874
    # value: 2 * (3 * 262656 + 513) = 2 * 788481 = 1576962
    assert count["value"] == 1_576_962
    # policy: 2 * 262656 + 512*6+6 = 525312 + 3078 = 528390
    assert count["policy"] == 528_390
    assert not any(isinstance(m, torch.nn.LayerNorm) and m.weight is not None for m in nets.modules())
    # Xavier-uniform with the ReLU gain, zero bias: |w| <= sqrt(2) * sqrt(6 / (fan_in + fan_out))
    for module in nets.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            fan_out, fan_in = module.weight.shape[0], module.weight[0].numel()
            if isinstance(module, torch.nn.Conv2d):
                fan_out *= module.weight[0, 0].numel()
            assert module.weight.abs().max().item() <= 2**0.5 * (6 / (fan_in + fan_out)) ** 0.5 + 1e-6
            assert torch.all(module.bias == 0)


def test_network_output_shapes():
    from mrq_agents.networks import MRQNetworks, PixelTrunk

    assert PixelTrunk(9, (84, 84)).out_dim == 1568  # 84 -> 41 -> 20 -> 9 -> 7 (strides 2, 2, 2, 1): 32 * 7 * 7
    nets = MRQNetworks((17,), False, 6, False, CONFIG)
    zs = nets.encoder.state(torch.randn(5, 17))
    assert zs.shape == (5, 16)
    zsa = nets.encoder.state_action(zs, torch.zeros(5, 6))
    assert zsa.shape == (5, 16)
    done, next_zs, reward_logits = nets.encoder.predict(zsa)
    assert done.shape == (5,) and next_zs.shape == (5, 16) and reward_logits.shape == (5, 65)
    assert nets.value(zsa).shape == (5, 2)
    action, pre = nets.policy(zs)
    assert action.shape == pre.shape == (5, 6)
    assert torch.equal(action, torch.tanh(pre))
    # Discrete: a soft Gumbel-softmax sample, rows on the simplex.
    discrete = MRQNetworks((17,), False, 4, True, CONFIG)
    action, pre = discrete.policy(discrete.encoder.state(torch.randn(5, 17)))
    assert action.shape == (5, 4) and torch.all(action >= 0)
    assert action.sum(1).tolist() == pytest.approx([1.0] * 5, abs=1e-5)
