"""Inference speed of `Policy.act` at the paper's network size: actions/s for one observation and for batches.

    python benchmarks/acting.py                      # HalfCheetah-v4 shapes (obs 17, action 6), CPU
    python benchmarks/acting.py --device cuda --env ALE/Pong-v5

The paper reports about 1.9k evaluation frames/s on a GPU (HalfCheetah, including the environment).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mrq_agents import Policy
from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.training.trainer import write_model_folder


def paper_size_policy(env_id: str, folder: Path, device: str) -> tuple[Policy, EnvSpec]:
    """A Policy with freshly initialised paper-size networks (speed does not depend on the weights)."""
    write_model_folder(folder, env_id, MRQConfig())
    policy = Policy.from_pretrained(folder, device=device)
    return policy, policy.spec


def actions_per_second(policy: Policy, obs: np.ndarray, seconds: float) -> float:
    batch = 1 if obs.shape == policy.spec.obs_shape else obs.shape[0]
    for _ in range(10):
        policy.act(obs)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        policy.act(obs)  # returns numpy: includes the device->host copy
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256, 1024])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        policy, spec = paper_size_policy(args.env, Path(tmp), args.device)
        env = policy.make_env()
        obs, _ = env.reset(seed=0)
        print(f"# {args.env} obs {spec.obs_shape} | device {args.device} | {torch.get_num_threads()} torch threads | "
              f"torch {torch.__version__}")
        print("| batch | actions/s |")
        print("|------:|----------:|")
        for batch in args.batches:
            x = obs if batch == 1 else np.stack([obs] * batch)
            print(f"| {batch} | {actions_per_second(policy, x, args.seconds):,.0f} |")
        # With the environment: evaluation frames/s as the paper counts them (one env, one observation).
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            obs, _, terminated, truncated, _ = env.step(policy.act(obs))
            steps += 1
            if terminated or truncated:
                obs, _ = env.reset()
        print(f"| 1 + env.step | {steps / (time.perf_counter() - start):,.0f} |")


if __name__ == "__main__":
    main()
