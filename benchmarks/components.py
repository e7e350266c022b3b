"""Costs of the pieces the fast path changes, on the current device: optimizer kernels, the prioritised
sampler, what dominates a pixel encoder update, and one update on each path. Prints one markdown table per
question.

    python benchmarks/components.py --device cpu
    python benchmarks/components.py --device cpu --tables layout precision
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import profile

from mrq_agents.config import MRQConfig
from mrq_agents.device import resolve_device
from mrq_agents.envs import EnvSpec
from mrq_agents.fast import FastLearner, captures
from mrq_agents.learner import MRQLearner
from mrq_agents.networks import PixelTrunk
from mrq_agents.precision import fast_bf16
from mrq_agents.replay import ReplayBuffer

HALFCHEETAH = EnvSpec(obs_shape=(17,), pixels=False, frame_stack=1, discrete=False, action_dim=6)
ATARI = EnvSpec(obs_shape=(4, 84, 84), pixels=True, frame_stack=4, discrete=True, action_dim=6)


def filled_buffer(
    spec: EnvSpec, capacity: int, steps: int, device: torch.device, static_shapes: bool = False
) -> ReplayBuffer:
    """A replay of `capacity` slots holding `steps` random steps (episodes of 300, truncated), flushed."""
    config = MRQConfig()
    horizons = (config.enc_horizon, config.q_horizon)
    buffer = ReplayBuffer(spec, capacity, horizons, device=device, static_shapes=static_shapes)
    rng = np.random.default_rng(0)

    def obs():
        if spec.pixels:
            return rng.integers(0, 256, spec.obs_shape, dtype=np.uint8)
        return rng.standard_normal(spec.obs_shape).astype(np.float32)

    def action():
        return int(rng.integers(spec.action_dim)) if spec.discrete else rng.uniform(-1, 1, spec.action_dim)

    buffer.start_episode(obs())
    for t in range(steps):
        buffer.add(action(), float(rng.normal()), False, t % 300 == 299, obs())
        if t % 300 == 299:
            buffer.start_episode(obs())
    buffer.flush()
    return buffer


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
    buffer = filled_buffer(HALFCHEETAH, 1_000_000, 1_250, device)

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
    for name, fn in (
        ("torch.multinomial over the ring", multinomial),
        ("inverse CDF over the ring", whole_ring),
        ("inverse CDF over the written prefix", prefix),
    ):
        print(f"| {name} | {timed(fn, 20, device):.3f} |")


def encoder_step(buffer, starts):
    """One encoder update of a learner on the windows at `starts`, as `MRQLearner.update` runs it."""

    def step(learner):
        config = learner.config
        return learner.encoder_step(buffer, starts, learner.draw_encoder_noise(config.batch_size, config.enc_horizon))

    return step


def rl_step(buffer):
    """One value and one policy update of a learner, as `MRQLearner.update` runs it."""

    def step(learner):
        batch_size = learner.config.batch_size
        return learner.rl_step(buffer, buffer.draw_uniforms(batch_size), learner.draw_value_noise(batch_size))

    return step


def pixel_encoder_table(device: torch.device, top: int = 6) -> None:
    """Where the time of one encoder update goes at the paper's size for Atari shapes (profiler, self time)."""
    config = MRQConfig()
    learner = MRQLearner(ATARI, config, device)
    buffer = filled_buffer(ATARI, 5_000, 1_200, device)
    starts = buffer.sample_indices(config.enc_horizon, config.batch_size)
    learner.use_termination.fill_(1.0)
    noise = learner.draw_encoder_noise(config.batch_size, config.enc_horizon)
    learner.encoder_step(buffer, starts, noise)
    with profile() as prof:
        learner.encoder_step(buffer, starts, noise)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print("\n| op in one Atari-shape encoder update (self CPU time) | share |\n|---|---|")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        print(f"| {e.key} | {e.self_cpu_time_total / total:.0%} |")


def path_table(device: torch.device, repeats: int = 11) -> None:
    """One encoder update and one value+policy step at the paper's size, plain vs fast learner from the same
    seed on the same replay, without the environment; taking turns, median of `repeats` (each after an untimed
    call)."""
    print("\n| update at the paper's size | plain ms | fast ms | fast vs plain |\n|---|---|---|---|")
    config = MRQConfig()
    for name, spec in (("HalfCheetah shapes", HALFCHEETAH), ("Atari shapes", ATARI)):
        buffer = filled_buffer(spec, 5_000, 1_200, device, static_shapes=captures(device))  # shared by both
        learners = {}
        for path, learner_class in (("plain", MRQLearner), ("fast", FastLearner)):
            torch.manual_seed(0)
            learners[path] = learner_class(spec, config, device)
        starts = buffer.sample_indices(config.enc_horizon, config.batch_size)
        steps = {"encoder update": encoder_step(buffer, starts), "value+policy step": rl_step(buffer)}
        for step_name, step in steps.items():
            times: dict[str, list[float]] = {"plain": [], "fast": []}
            for turn in range(repeats):  # alternate who goes first, so neither path always runs on a warm cache
                for path in ("plain", "fast") if turn % 2 == 0 else ("fast", "plain"):
                    times[path].append(timed(lambda: step(learners[path]), 1, device))
            plain, fast = (float(np.median(times[path])) for path in ("plain", "fast"))
            print(f"| {name}: {step_name} | {plain:.1f} | {fast:.1f} | {plain / fast:.2f}x |")


def _turns(fns: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median ms per call of each function, taking turns (the order alternates every round)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for turn in range(repeats):
        for name in names if turn % 2 == 0 else names[::-1]:
            times[name].append(timed(fns[name], 1, device))
    return {name: float(np.median(t)) for name, t in times.items()}


def layout_table(device: torch.device, repeats: int = 7) -> None:
    """The Atari pixel trunk (4x84x84 frames) in the memory layout it had before (NCHW) and the one it uses now
    (channels-last): the target encoder's no-gradient forward over 1,280 frame stacks, and the online encoder's
    forward+backward over 256."""
    torch.manual_seed(0)
    trunk = PixelTrunk(4, (84, 84)).to(device)

    def nchw(frames):  # the trunk as it ran before: float NCHW input
        return trunk.convs(frames.to(torch.float32, copy=True).div_(255.0).sub_(0.5))

    frames = {n: torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8, device=device) for n in (256, 1280)}

    def forward(fn):
        def run():
            with torch.no_grad():
                fn(frames[1280])

        return run

    def train(fn):
        def run():
            trunk.zero_grad(set_to_none=True)
            fn(frames[256]).square().mean().backward()

        return run

    print("\n| Atari pixel trunk (median of taking turns) | NCHW ms | channels-last ms | speed-up |\n|---|---|---|---|")
    for name, make in (
        ("target forward, 1,280 stacks, no gradient", forward),
        ("online forward+backward, 256 stacks", train),
    ):
        ms = _turns({"nchw": make(nchw), "channels_last": make(trunk)}, repeats, device)
        print(f"| {name} | {ms['nchw']:.1f} | {ms['channels_last']:.1f} | {ms['nchw'] / ms['channels_last']:.2f}x |")


def precision_table(device: torch.device, repeats: int = 7) -> None:
    """One encoder update and one value+policy step at the paper's size in fp32 and bf16 (plain path), taking
    turns. Only where the device multiplies bf16 natively: elsewhere bf16 is emulated, and refused by training."""
    fast, hardware = fast_bf16(device)
    print(
        f"\n| update at the paper's size, plain path ({hardware}) | fp32 ms | bf16 ms | speed-up |\n|---|---|---|---|"
    )
    if not fast:
        print("| not measured: no native bf16 units (bf16 would be emulated) | - | - | - |")
        return
    config = MRQConfig()
    for name, spec in (("HalfCheetah shapes", HALFCHEETAH), ("Atari shapes", ATARI)):
        buffer = filled_buffer(spec, 5_000, 1_200, device)
        learners = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            learners[precision] = MRQLearner(spec, config, device, precision=precision)
        starts = buffer.sample_indices(config.enc_horizon, config.batch_size)
        for step_name, step in (
            ("encoder update", encoder_step(buffer, starts)),
            ("value+policy step", rl_step(buffer)),
        ):
            calls = {p: (lambda learner=learner: step(learner)) for p, learner in learners.items()}
            ms = _turns(calls, repeats, device)
            print(f"| {name}: {step_name} | {ms['fp32']:.1f} | {ms['bf16']:.1f} | {ms['fp32'] / ms['bf16']:.2f}x |")


def matmul_table(device: torch.device, repeats: int = 7) -> None:
    """A 1280x512 by 512x512 product (the target encoder's widest layer over 256x5 states) in float32 and
    bfloat16: what the hardware gives each precision."""
    print("\n| 1280x512x512 product | ms | GFLOP/s |\n|---|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(1280, 512, device=device, dtype=dtype)
        b = torch.randn(512, 512, device=device, dtype=dtype)
        ms = _turns({"mm": lambda: a @ b}, repeats, device)["mm"]
        print(f"| {str(dtype).removeprefix('torch.')} | {ms:.2f} | {2 * 1280 * 512 * 512 / ms / 1e6:,.1f} |")


def compile_table(device: torch.device, repeats: int = 9) -> None:
    """`torch.compile` of the encoder, value and policy modules (online and target) at HalfCheetah shapes, plain
    path, fp32: the compile time (first encoder update and value+policy step) and the per-update times after,
    taking turns with an eager learner."""
    config = MRQConfig()
    buffer = filled_buffer(HALFCHEETAH, 5_000, 1_200, device)
    learners = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        learners[name] = MRQLearner(HALFCHEETAH, config, device)
    starts = buffer.sample_indices(config.enc_horizon, config.batch_size)
    start = time.perf_counter()
    for nets in (learners["compiled"].nets, learners["compiled"].target):
        for module in (nets.encoder, nets.value, nets.policy):
            module.compile()
    encoder_step(buffer, starts)(learners["compiled"])
    rl_step(buffer)(learners["compiled"])
    compile_s = time.perf_counter() - start
    print(
        f"\n| torch.compile, HalfCheetah shapes, fp32 (compile + first calls {compile_s:.0f} s) | eager ms | "
        "compiled ms | speed-up |\n|---|---|---|---|"
    )
    for step_name, step in (("encoder update", encoder_step(buffer, starts)), ("value+policy step", rl_step(buffer))):
        ms = _turns({n: (lambda learner=learner: step(learner)) for n, learner in learners.items()}, repeats, device)
        print(f"| {step_name} | {ms['eager']:.1f} | {ms['compiled']:.1f} | {ms['eager'] / ms['compiled']:.2f}x |")


TABLES = {
    "optimizer": optimizer_table,
    "sampler": sampler_table,
    "pixel-ops": pixel_encoder_table,
    "paths": path_table,
    "layout": layout_table,
    "precision": precision_table,
    "matmul": matmul_table,
    "compile": compile_table,
}
DEFAULT_TABLES = ["optimizer", "sampler", "pixel-ops", "paths", "layout", "precision", "matmul"]  # compile: minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=DEFAULT_TABLES)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"# torch {torch.__version__} | {torch.get_num_threads()} threads | device {device} | {fast_bf16(device)[1]}\n"
    )
    for name in args.tables:
        TABLES[name](device)


if __name__ == "__main__":
    main()
