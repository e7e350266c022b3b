"""Training precision (mrq_agents.precision): how it is chosen, that bf16 keeps float32 where docs/precision.md
puts it, that one bf16 update stays close to the fp32 one, and the channels-last pixel trunk.

Tiny networks: bf16 is emulated (slow) on CPUs without AMX/AVX512-BF16, and these tests only check placement
and closeness, not speed."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers.replay import fill_random
from helpers.tiny import SPECS, tiny_config
from mrq_agents import precision as precision_module
from mrq_agents.cli import app
from mrq_agents.errors import ConfigError
from mrq_agents.learner import MRQLearner
from mrq_agents.networks import PixelTrunk
from mrq_agents.precision import compute_context, fast_bf16, resolve_precision
from mrq_agents.replay import ReplayBuffer

CONFIG = tiny_config(embedding=32, batch_size=16, buffer_size=2_000, target_update_freq=3)
CPU = torch.device("cpu")


def filled(spec, seed=0, steps=300, episode_length=30):
    """A buffer of random episodes; every second one terminates."""
    buffer = ReplayBuffer(spec, CONFIG.buffer_size, (CONFIG.enc_horizon, CONFIG.q_horizon), device="cpu")
    fill_random(buffer, spec, np.random.default_rng(seed), steps, episode_length, terminal_every=2, offset=1)
    buffer.flush()
    return buffer


# ------------------------------------------------------------------ choosing a precision


@pytest.fixture
def hardware(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16 units."""

    def set_fast(fast: bool):
        monkeypatch.setattr(
            precision_module,
            "fast_bf16",
            lambda device: (fast, "CPU with AMX" if fast else "CPU without AMX or AVX512-BF16"),
        )

    return set_fast


def test_auto_is_fp32_until_the_study_clears_bf16(hardware, monkeypatch):
    for fast in (False, True):
        hardware(fast)
        assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setitem(precision_module.AUTO_BF16, "cpu", True)
    assert resolve_precision("auto", CPU) == "bf16"  # with fast units and a cleared study
    hardware(False)
    assert resolve_precision("auto", CPU) == "fp32"  # never where it would be emulated


def test_bf16_without_native_units_is_refused_with_the_way_out(hardware):
    hardware(False)
    with pytest.raises(ConfigError, match="emulated.*--precision fp32"):
        resolve_precision("bf16", CPU)
    hardware(True)
    assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", CPU)


def test_fast_bf16_reads_the_cpu_probes(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert fast_bf16(CPU) == (True, "CPU with AMX")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert fast_bf16(CPU) == (False, "CPU without AMX or AVX512-BF16")


def test_fp32_context_does_nothing_and_unresolved_precisions_are_refused():
    with compute_context("fp32", CPU):
        assert not torch.is_autocast_enabled("cpu")
    with compute_context("bf16", CPU):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ConfigError):
        MRQLearner(SPECS["continuous"], CONFIG, "cpu", precision="auto")


# ------------------------------------------------------------------ what bf16 keeps in float32


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_bf16_keeps_weights_optimizer_state_losses_and_priorities_in_float32(kind):
    spec = SPECS[kind]
    buffer = filled(spec)
    torch.manual_seed(0)
    learner = MRQLearner(spec, CONFIG, "cpu", precision="bf16")
    for _ in range(4):
        metrics = learner.update(buffer)
    assert all(p.dtype == torch.float32 for p in learner.nets.parameters())
    assert all(p.dtype == torch.float32 for p in learner.target.parameters())
    for optimizer in (learner.encoder_opt, learner.value_opt, learner.policy_opt):
        for state in optimizer.state.values():
            assert all(v.dtype == torch.float32 for k, v in state.items() if k != "step")
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in metrics.values()), metrics
    assert buffer.priority.dtype == torch.float32
    assert torch.isfinite(buffer.priority).all()
    # acting stays float32 whatever the training precision
    obs = torch.zeros(spec.obs_shape, dtype=torch.uint8 if spec.pixels else torch.float32).numpy()
    action = learner.act(obs, explore=False)
    assert isinstance(action, int) if spec.discrete else action.dtype == np.float32


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_one_bf16_update_is_close_to_the_fp32_update(kind):
    """Same initial weights, same batch and noise: losses agree to bf16 rounding (a few parts in a thousand per
    product, far above float32's), and every gradient points the same way. (Gradients, not steps: Adam's first
    step is about lr * sign(gradient), which blows rounding in near-zero gradients up to full-size steps.)"""
    spec = SPECS[kind]
    learners, metrics, buffers = {}, {}, {}
    for name in ("fp32", "bf16"):
        buffers[name] = filled(spec)
        torch.manual_seed(0)
        learners[name] = MRQLearner(spec, CONFIG, "cpu", precision=name)
        torch.manual_seed(1)
        metrics[name] = learners[name].update(buffers[name])
    for key, value in metrics["fp32"].items():
        torch.testing.assert_close(metrics["bf16"][key], value, rtol=0.05, atol=0.02, msg=key)
    compared = 0
    for (name, p32), (_, p16) in zip(
        learners["fp32"].nets.named_parameters(), learners["bf16"].nets.named_parameters()
    ):
        if p32.grad is not None and p32.grad.abs().max() > 0:  # the last update's gradients (kept after step)
            assert p16.grad.dtype == torch.float32
            cos = torch.nn.functional.cosine_similarity(p32.grad.flatten(), p16.grad.flatten(), dim=0)
            assert cos > 0.9, f"{name}: the bf16 gradient points elsewhere (cosine {cos:.3f})"
            compared += 1
    assert compared >= 10
    torch.testing.assert_close(buffers["bf16"].priority, buffers["fp32"].priority, rtol=0.05, atol=0.02)


# ------------------------------------------------------------------ channels-last pixels


def test_channels_last_trunk_computes_the_nchw_function():
    torch.manual_seed(0)
    trunk = PixelTrunk(6, (40, 40))
    frames = torch.randint(0, 256, (8, 6, 40, 40), dtype=torch.uint8)
    reference = frames.double() / 255.0 - 0.5  # float64, plain NCHW layout
    for layer in trunk.convs:
        if isinstance(layer, torch.nn.Conv2d):
            reference = torch.nn.functional.conv2d(reference, layer.weight.double(), layer.bias.double(), layer.stride)
        elif isinstance(layer, torch.nn.ELU):
            reference = torch.nn.functional.elu(reference)
        else:
            reference = layer(reference)
    out = trunk(frames)
    assert out.shape == reference.shape == (8, trunk.out_dim)
    torch.testing.assert_close(out.double(), reference, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the in-place ELU path of the target encoder; one stack (acting) stays NCHW
        torch.testing.assert_close(trunk(frames).double(), reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(trunk(frames[:1]).double(), reference[:1], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ the command line

TINY = [
    "zs_dim=16",
    "zsa_dim=16",
    "za_dim=8",
    "enc_hdim=16",
    "value_hdim=16",
    "policy_hdim=16",
    "batch_size=8",
    "target_update_freq=10",
    "buffer_size=1000",
    "warmup_steps=50",
]


def _train(out, *extra):
    sets = [arg for item in TINY for arg in ("--set", item)]
    return CliRunner().invoke(
        app,
        [
            "train",
            "Pendulum-v1",
            "--out",
            str(out),
            "--steps",
            "100",
            "--eval-every",
            "100",
            "--eval-episodes",
            "1",
            "--device",
            "cpu",
            *sets,
            *extra,
        ],
    )


def test_train_records_the_resolved_precision_and_refuses_emulated_bf16(tmp_path, hardware):
    hardware(False)
    result = _train(tmp_path / "auto")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["run"]["precision"] == config["training"]["precision"] == "fp32"
    assert "fp32" in result.output.splitlines()[0]

    result = _train(tmp_path / "bf16", "--precision", "bf16")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "--precision fp32" in result.stderr
    assert not (tmp_path / "bf16" / "config.json").exists()


def test_a_run_from_before_precision_resumes_in_fp32(tmp_path):
    out = tmp_path / "old"
    assert _train(out, "--steps", "60").exit_code == 0
    config = json.loads((out / "config.json").read_text())
    del config["run"]["precision"], config["training"]["precision"]  # as written before --precision existed
    (out / "config.json").write_text(json.dumps(config))
    result = _train(out, "--resume")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["run"]["precision"] == "fp32"
