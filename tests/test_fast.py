"""The fast update path (mrq_agents.fast) against the plain one: same seed, same replay, same random draws,
a few hundred updates, parameters equal within float32 rounding. The same comparison on CUDA, with the fast path
replaying captured CUDA graphs, is marked `gpu`: it shows as skipped on a machine without one."""

import numpy as np
import pytest
import torch

from helpers.replay import fill_random
from helpers.tiny import SPECS, tiny_config
from mrq_agents.fast import FastLearner, captures, restore
from mrq_agents.learner import MRQLearner
from mrq_agents.replay import ReplayBuffer
from mrq_agents.serialization import flatten_state, load_tensors, save_tensors, unflatten_state

CONFIG = tiny_config(batch_size=16, buffer_size=2_000, target_update_freq=50)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def fill(buffer, spec, seed, steps=600, episode_length=40):
    """Random episodes; every third one terminates (the first too), the others are truncated."""
    fill_random(buffer, spec, np.random.default_rng(seed), steps, episode_length)


def make_learner(spec, device, fast):
    return (FastLearner if fast else MRQLearner)(spec, CONFIG, device)


def train(spec, fast, device, updates, seed=0, new_data_every=0):
    torch.manual_seed(seed)
    learner = make_learner(spec, device, fast)
    static = fast and captures(torch.device(device))
    horizons = (CONFIG.enc_horizon, CONFIG.q_horizon)
    buffer = ReplayBuffer(spec, CONFIG.buffer_size, horizons, device=device, static_shapes=static)
    fill(buffer, spec, seed)
    torch.manual_seed(seed + 1)
    metrics = []
    for i in range(updates):
        if new_data_every and i % new_data_every == 0:
            fill(buffer, spec, seed + 2 + i, steps=10)
        metrics.append({k: v.clone() for k, v in learner.update(buffer).items()})
    return learner, buffer, metrics


def assert_close(a, b, atol, rtol):
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", list(SPECS))
def test_fast_path_matches_the_plain_path(kind, device):
    spec = SPECS[kind]
    updates = 120 if spec.pixels else 300  # 3 and 6 target cycles: 150 and 300 encoder updates
    # On CUDA, PyTorch lets cuDNN convolutions run in TF32 (10-bit mantissa) and pick their algorithm per call;
    # 120 updates grow those differences past float32 rounding (seen on an H200: conv weights 4e-3 apart).
    # The comparison is of the two paths' math, so it runs IEEE float32 convolutions with fixed algorithms.
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        plain, plain_buffer, plain_metrics = train(spec, fast=False, device=device, updates=updates, new_data_every=25)
        fast, fast_buffer, fast_metrics = train(spec, fast=True, device=device, updates=updates, new_data_every=25)
    assert isinstance(fast, FastLearner) and not isinstance(plain, FastLearner)
    assert plain.num_updates == fast.num_updates == updates
    # The networks moved a long way from their initial values, and both paths moved them the same way.
    torch.manual_seed(0)
    initial = MRQLearner(spec, CONFIG, device).nets
    drift = max((p - q).abs().max().item() for p, q in zip(plain.nets.parameters(), initial.parameters()))
    assert drift > 1e-2
    assert_close(fast.nets, plain.nets, atol=1e-4, rtol=1e-3)
    assert_close(fast.target, plain.target, atol=1e-4, rtol=1e-3)
    # Same sampled windows all along: the priorities written and the running maximum agree.
    torch.testing.assert_close(fast_buffer.priority, plain_buffer.priority, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(fast_buffer.max_priority, plain_buffer.max_priority, atol=1e-4, rtol=1e-3)
    assert (fast.reward_scale, fast.target_reward_scale) == (plain.reward_scale, plain.target_reward_scale)
    for a, b in zip(fast_metrics, plain_metrics):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-3, rtol=1e-3)


def test_fast_path_uses_fused_adamw_and_plain_the_default():
    from mrq_agents.fast import resolve_fast

    spec = SPECS["continuous"]
    for name in ("encoder_opt", "value_opt", "policy_opt"):
        assert getattr(make_learner(spec, "cpu", fast=True), name).defaults["fused"] is True
        assert not getattr(make_learner(spec, "cpu", fast=False), name).defaults["fused"]
    # Default: fast on CUDA only.
    assert resolve_fast(None, torch.device("cpu")) is False and resolve_fast(None, torch.device("cuda")) is True


@pytest.mark.gpu
def test_a_captured_step_needs_a_buffer_with_static_shapes():
    spec = SPECS["continuous"]
    learner = make_learner(spec, "cuda", fast=True)
    buffer = ReplayBuffer(spec, CONFIG.buffer_size, (CONFIG.enc_horizon, CONFIG.q_horizon), device="cuda")
    fill(buffer, spec, 0)
    with pytest.raises(ValueError, match="static_shapes=True"):
        learner.update(buffer)


@pytest.mark.parametrize("kind", list(SPECS))
def test_the_warm_up_before_capture_leaves_no_trace(kind):
    """Capture warms a step up with real updates and then restores everything they changed, the random
    generator included (the discrete policy draws Gumbel noise inside the step). Rehearse that on the CPU
    mid-training: the run continues exactly as one that never warmed up."""
    spec = SPECS[kind]
    runs = []
    for rehearse in (False, True):
        learner, buffer, _ = train(spec, fast=True, device="cpu", updates=60)  # optimizer state exists
        if rehearse:
            encoder_step, value_step = learner.captured_encoder_step, learner.captured_rl_step
            rng = torch.get_rng_state()  # capture's static inputs are copies of real draws: undo the test's own
            noise = learner.draw_encoder_noise(CONFIG.batch_size, CONFIG.enc_horizon)
            encoder_step.inputs = {
                "starts": buffer.sample_indices(CONFIG.enc_horizon, CONFIG.batch_size),
                **{k: v for k, v in noise._asdict().items() if v is not None},
            }
            noise = learner.draw_value_noise(CONFIG.batch_size)
            value_step.inputs = {
                "uniforms": buffer.draw_uniforms(CONFIG.batch_size),
                **{k: v for k, v in noise._asdict().items() if v is not None},
            }
            torch.set_rng_state(rng)
            encoder_step.rehearse(3)
            value_step.rehearse(3)
            assert torch.equal(torch.get_rng_state(), rng)
        for _ in range(60):  # crosses a target sync at update 100
            learner.update(buffer)
        runs.append((learner, buffer))
    (a, a_buffer), (b, b_buffer) = runs
    for x, y in zip(a.nets.parameters(), b.nets.parameters()):
        assert torch.equal(x, y)
    assert torch.equal(a_buffer.priority, b_buffer.priority)
    for opt in ("encoder_opt", "value_opt", "policy_opt"):
        for p, q in zip(getattr(a, opt).state.values(), getattr(b, opt).state.values()):
            assert all(torch.equal(p[k], q[k]) for k in p)


def test_restore_zeroes_optimizer_state_created_after_the_snapshot():
    from mrq_agents.fast import snapshot

    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=0.1, fused=True)
    saved = snapshot([param], [optimizer])  # before the first step: no optimizer state
    param.grad = torch.ones(3)
    optimizer.step()
    assert optimizer.state[param]["exp_avg"].abs().sum() > 0 and not torch.equal(param, torch.ones(3))
    restore(saved, [optimizer])
    assert torch.equal(param.detach(), torch.ones(3))
    assert all(torch.count_nonzero(v) == 0 for v in optimizer.state[param].values())
    # ...which is exactly where a fresh AdamW starts: the same step from here gives the same parameters.
    fresh_param = torch.nn.Parameter(torch.ones(3))
    fresh = torch.optim.AdamW([fresh_param], lr=0.1, fused=True)
    for p, opt in ((param, optimizer), (fresh_param, fresh)):
        p.grad = torch.full((3,), 0.5)
        opt.step()
    assert torch.equal(param, fresh_param)


def test_fast_learner_state_round_trip_continues_identically(tmp_path):
    """Resuming a fast run from a checkpoint file: load_state_dict refreshes the device-side reward scales and
    the steps are bound (captured, on CUDA) again."""
    spec = SPECS["continuous"]
    learner, buffer, _ = train(spec, fast=True, device="cpu", updates=70)
    tensors, skeleton = flatten_state(learner.state_dict())
    save_tensors(tmp_path / "learner.safetensors", tensors)
    copy = make_learner(spec, "cpu", fast=True)
    copy.update(buffer)  # bind the steps, which loading must undo
    copy.load_state_dict(unflatten_state(skeleton, load_tensors(tmp_path / "learner.safetensors")[0]))
    assert copy._bound_to == ()
    assert copy.scales.tolist() == pytest.approx([learner.reward_scale, learner.target_reward_scale])
    rng = torch.get_rng_state()
    priorities = buffer.priority.clone(), buffer.max_priority.clone()
    expected = [learner.update(buffer)["value_loss"].item() for _ in range(5)]
    torch.set_rng_state(rng)
    buffer.priority.copy_(priorities[0])
    buffer.max_priority.copy_(priorities[1])
    assert [copy.update(buffer)["value_loss"].item() for _ in range(5)] == expected
