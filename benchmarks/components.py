"""Costs of the pieces the fast path changes, on the current device: optimizer kernels, the prioritised
sampler, and what dominates a pixel encoder update. Prints one markdown table per question.

    python benchmarks/components.py --device cpu
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import profile

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.functional import sample_proportional
from mrq_agents.learner import MRQLearner, resolve_device
from mrq_agents.replay import ReplayBuffer


def timed(fn, repeats: int, device: torch.device) -> float:
    """Mean milliseconds per call after one untimed call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1e3


def optimizer_table(device: torch.device) -> None:
    """One AdamW step over the value network's parameters at the paper's size (1.58M)."""
    spec = EnvSpec(obs_shape=(17,), pixels=False, frame_stack=1, discrete=False, action_dim=6)
    params = list(MRQLearner(spec, MRQConfig(), device).nets.value.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    print("| AdamW kernel (1.58M parameters) | ms per step |\n|---|---|")
    for name, kwargs in (("default", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        optimizer = torch.optim.AdamW(params, lr=3e-4, weight_decay=1e-4, **kwargs)
        print(f"| {name} | {timed(optimizer.step, 50, device):.2f} |")


def sampler_table(device: torch.device) -> None:
    """256 prioritised start slots from the paper's 1M-slot replay holding 1,250 HalfCheetah-shape steps,
    weights included (eligibility times priority, as `ReplayBuffer.sample_indices` computes them)."""
    spec = EnvSpec(obs_shape=(17,), pixels=False, frame_stack=1, discrete=False, action_dim=6)
    buffer = ReplayBuffer(spec, 1_000_000, (5, 3), device=device)
    rng = np.random.default_rng(0)
    buffer.start_episode(rng.standard_normal(17).astype(np.float32))
    for t in range(1_250):
        buffer.add(rng.uniform(-1, 1, 6), 1.0, False, t % 1000 == 999, rng.standard_normal(17).astype(np.float32))
        if t % 1000 == 999:
            buffer.start_episode(rng.standard_normal(17).astype(np.float32))
    buffer.flush()

    def whole_ring():
        buffer.static_shapes = True
        return buffer.sample_indices(3, 256)

    def prefix():
        buffer.static_shapes = False
        return buffer.sample_indices(3, 256)

    def multinomial():
        weights = buffer.eligible[3].float() * buffer.priority
        return torch.multinomial(weights, 256, replacement=True)

    print("\n| sampler (256 draws, 1,250 of 1M slots filled) | ms |\n|---|---|")
    for name, fn in (("torch.multinomial over the ring", multinomial), ("inverse CDF over the ring", whole_ring),
                     ("inverse CDF over the written prefix", prefix)):
        print(f"| {name} | {timed(fn, 20, device):.3f} |")


def pixel_encoder_table(device: torch.device, top: int = 6) -> None:
    """Where the time of one encoder update goes at the paper's size for Atari shapes (profiler, self time)."""
    spec = EnvSpec(obs_shape=(4, 84, 84), pixels=True, frame_stack=4, discrete=True, action_dim=6)
    config = MRQConfig()
    learner = MRQLearner(spec, config, device)
    buffer = ReplayBuffer(spec, 5_000, (config.enc_horizon, config.q_horizon), device=device)
    rng = np.random.default_rng(0)

    def frame():
        return rng.integers(0, 256, spec.obs_shape, dtype=np.uint8)

    buffer.start_episode(frame())
    for t in range(1_200):
        buffer.add(int(rng.integers(6)), 1.0, False, t % 300 == 299, frame())
        if t % 300 == 299:
            buffer.start_episode(frame())
    batch = buffer.sample(config.enc_horizon, config.batch_size)
    learner.encoder_update(batch, use_termination=True)
    with profile() as prof:
        learner.encoder_update(batch, use_termination=True)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n| op in one Atari-shape encoder update (self CPU time) | share |\n|---|---|")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        print(f"| {e.key} | {e.self_cpu_time_total / total:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"# torch {torch.__version__} | {torch.get_num_threads()} threads | device {device}\n")
    optimizer_table(device)
    sampler_table(device)
    pixel_encoder_table(device)


if __name__ == "__main__":
    main()
