"""Torch CPU threads against network size: milliseconds per learner update and per single-observation action
at each thread count, for the `small` and `paper` presets (vector obs) and the paper's pixel encoder.
Prints one markdown table. The rule `mrq_agents.threads.choose_threads` applies is in benchmarks/README.md.

    python benchmarks/threads.py --threads 1 2 --updates 20
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from components import filled_buffer

from mrq_agents.config import MRQConfig, preset_config
from mrq_agents.envs import EnvSpec
from mrq_agents.learner import MRQLearner
from mrq_agents.threads import choose_threads

VECTOR = EnvSpec(obs_shape=(17,), pixels=False, frame_stack=1, discrete=False, action_dim=6)
PIXELS = EnvSpec(obs_shape=(9, 84, 84), pixels=True, frame_stack=3, discrete=False, action_dim=6)
CASES = {
    "small preset, vector": (preset_config("small"), VECTOR),
    "paper preset, vector": (MRQConfig(), VECTOR),
    "paper preset, pixels": (MRQConfig(), PIXELS),
}


def ms_per_call(fn, calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--updates", type=int, default=20, help="timed learner updates per case (10 per target sync)")
    args = parser.parse_args()
    print(f"# torch {torch.__version__} | {os.cpu_count()} CPUs | load average {os.getloadavg()[0]:.2f} at start\n")
    print("| case | chosen | " + " | ".join(f"update ms, {n} thr | act ms, {n} thr" for n in args.threads) + " |")
    print("|---|---:|" + "---:|---:|" * len(args.threads))
    for name, (config, spec) in CASES.items():
        config = config.with_overrides(["target_update_freq=10"])  # a 10-update encoder burst every 10 updates
        torch.manual_seed(0)
        learner = MRQLearner(spec, config, "cpu")
        buffer = filled_buffer(spec, 20_000, 5_000, torch.device("cpu"))
        obs = np.zeros(spec.obs_shape, np.uint8 if spec.pixels else np.float32)
        cells = []
        for n in args.threads:
            torch.set_num_threads(n)
            cells.append(f"{ms_per_call(lambda: learner.update(buffer), args.updates):.1f}")
            cells.append(f"{ms_per_call(lambda: learner.act(obs, explore=False), 200):.2f}")
        print(f"| {name} | {choose_threads(config, spec)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
