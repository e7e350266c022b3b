"""Training throughput of MR.Q at the paper's config, per update path (plain, fast) and precision (fp32, bf16):
env-steps/s and peak memory.

    python benchmarks/throughput.py                       # HalfCheetah-v4 and ALE/Pong-v5 on the default device
    python benchmarks/throughput.py --device cpu --measure-steps 250 --envs HalfCheetah-v4 --paths fast
    python benchmarks/throughput.py --device cpu --paths plain --precisions fp32 bf16 --repeats 3

Each (env, path) runs in its own process (clean peak-memory figures): fill the replay with `--fill-steps` random
steps, run `--warmup-updates` untimed training steps (the fast path captures its CUDA graphs there), then time
`--measure-steps` steps of the full training step (act with exploration, env step, store, one update).
`--measure-steps` should be a multiple of `target_update_freq` (250) so that the timed span holds the same share
of encoder bursts as training does (one burst of 250 encoder updates every 250 steps). With `--repeats N` the
variants (path x precision) take turns N times (plain fp32, fast fp32, plain bf16, ...); a row gives the median rate
and the range of the N runs, and "vs first" compares its median with the first variant's (plain fp32 by default).
bf16 where the hardware lacks native bf16 units is refused (as `mrq train --precision bf16` is) and its row says so.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from mrq_agents.config import MRQConfig
from mrq_agents.device import resolve_device
from mrq_agents.envs import EnvSpec, make_env, resolve_env
from mrq_agents.fast import FastLearner, captures, resolve_fast
from mrq_agents.learner import MRQLearner
from mrq_agents.precision import fast_bf16, resolve_precision
from mrq_agents.replay import ReplayBuffer


def measure(
    env_id: str,
    device: torch.device,
    fast: bool,
    precision: str,
    fill_steps: int,
    warmup_updates: int,
    measure_steps: int,
    seed: int = 0,
) -> dict:
    precision = resolve_precision(precision, device)  # bf16 without native units: a one-line error
    config = MRQConfig()
    env_config = resolve_env(env_id)
    env = make_env(env_config, seed=seed)
    spec = EnvSpec.from_env(env, env_config.frame_stack)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fast = resolve_fast(fast, device)
    learner = (FastLearner if fast else MRQLearner)(spec, config, device, precision=precision)
    horizons = (config.enc_horizon, config.q_horizon)
    static_shapes = fast and captures(device)
    buffer = ReplayBuffer(spec, config.buffer_size, horizons, config.prioritized, device, static_shapes=static_shapes)
    obs, _ = env.reset(seed=seed)
    buffer.start_episode(obs)

    def step(act_fn) -> None:
        nonlocal obs
        action = act_fn(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(action, float(reward), terminated, truncated, obs)
        if terminated or truncated:
            obs, _ = env.reset()
            buffer.start_episode(obs)

    def random_action(_obs):
        if spec.discrete:
            return int(rng.integers(spec.action_dim))
        return rng.uniform(-1, 1, spec.action_dim).astype(np.float32)

    for _ in range(fill_steps):
        step(random_action)
    for _ in range(warmup_updates):
        step(lambda o: learner.act(o, explore=True))
        learner.update(buffer)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(measure_steps):
        step(lambda o: learner.act(o, explore=True))
        learner.update(buffer)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    peak_host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    params = sum(p.numel() for p in learner.nets.parameters())
    return {
        "env": env_id,
        "device": str(device),
        "path": "fast" if fast else "plain",
        "precision": precision,
        "params_M": params / 1e6,
        "steps_per_s": measure_steps / elapsed,
        "seconds": elapsed,
        "peak_host_GiB": peak_host,
        "peak_gpu_GiB": peak_gpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v4", "ALE/Pong-v5"])
    parser.add_argument("--paths", nargs="+", choices=["plain", "fast"], default=["plain", "fast"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fill-steps", type=int, default=1_000)
    parser.add_argument("--warmup-updates", type=int, default=10)
    parser.add_argument("--measure-steps", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1, help="runs per (env, path), taking turns between paths")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--one", nargs=3, metavar=("ENV", "PATH", "PRECISION"), help=argparse.SUPPRESS)  # a worker
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.one:
        env_id, path, precision = args.one
        print(
            json.dumps(
                measure(
                    env_id, device, path == "fast", precision, args.fill_steps, args.warmup_updates, args.measure_steps
                )
            )
        )
        return
    print(
        f"# {cpu_model()} | {fast_bf16(device)[1]} | {torch.get_num_threads()} torch threads | "
        f"torch {torch.__version__} | device {device}",
        flush=True,
    )
    header = (
        f"| {'env':<16} | {'device':<7} | {'path':<5} | {'precision':<9} | {'params':>7} | {'env-steps/s':>11} | "
        f"{'range':>13} | {'vs first':>8} | {'peak host RSS':>13} | {'peak GPU':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|", flush=True)
    worker = [
        sys.executable,
        __file__,
        "--device",
        str(device),
        "--fill-steps",
        str(args.fill_steps),
        "--warmup-updates",
        str(args.warmup_updates),
        "--measure-steps",
        str(args.measure_steps),
    ]
    worker += ["--threads", str(args.threads)] if args.threads else []
    variants = [(precision, path) for precision in args.precisions for path in args.paths]
    for env_id in args.envs:
        runs: dict[tuple[str, str], list[dict]] = {variant: [] for variant in variants}
        failed: dict[tuple[str, str], str] = {}
        for _ in range(args.repeats):
            for precision, path in variants:
                if (precision, path) in failed:
                    continue
                done = subprocess.run(worker + ["--one", env_id, path, precision], capture_output=True, text=True)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    failed[precision, path] = last.partition("Error: ")[2] or last  # without the exception's name
                    continue
                runs[precision, path].append(json.loads(done.stdout.strip().splitlines()[-1]))
        medians = {v: float(np.median([r["steps_per_s"] for r in rs])) for v, rs in runs.items() if rs}
        first = medians.get(variants[0])
        for (precision, path), rs in runs.items():
            if not rs:
                print(
                    f"| {env_id:<16} | {str(device):<7} | {path:<5} | {precision:<9} | not measured: "
                    f"{failed.get((precision, path), 'no run')} |",
                    flush=True,
                )
                continue
            rates = [r["steps_per_s"] for r in rs]
            spread = f"{min(rates):.2f}-{max(rates):.2f}" if len(rates) > 1 else "-"
            ratio = f"{medians[precision, path] / first:.2f}x" if first else "-"
            peak_gpu = [r["peak_gpu_GiB"] for r in rs if r["peak_gpu_GiB"] is not None]
            gpu = f"{max(peak_gpu):.2f} GiB" if peak_gpu else "-"
            print(
                f"| {env_id:<16} | {rs[0]['device']:<7} | {path:<5} | {precision:<9} | {rs[0]['params_M']:>6.2f}M | "
                f"{medians[precision, path]:>11.2f} | {spread:>13} | {ratio:>8} | "
                f"{max(r['peak_host_GiB'] for r in rs):>9.2f} GiB | {gpu:>8} |",
                flush=True,
            )


def cpu_model() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
