"""Inference speed of `Policy.act` at the paper's network size, torch and ONNX backends side by side.

    python benchmarks/acting.py                                  # HalfCheetah-v4 and ALE/Pong-v5 shapes, CPU
    python benchmarks/acting.py --envs HalfCheetah-v4 --batches 1 256 --seconds 1
    python benchmarks/acting.py --envs --venvs /tmp/mrq-base /tmp/mrq-full   # install sizes only

Actions/s for one observation and for batches, on a vector actor (HalfCheetah-v4: obs 17, action 6) and a pixel
actor (Atari: 4 stacked 84x84 uint8 frames, 6 actions), each backend with its default threads or --threads; the two
backends take turns, `--rounds` times, and the median is printed. `1 + env.step` is one observation at a time
with the environment in the loop. `--venvs` prints the size (du) of each virtual environment's site-packages:
the base install (torch-free) against the full one (`.[train]`).
The paper reports about 1.9k evaluation frames/s on a GPU (HalfCheetah, including the environment).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from mrq_agents import Policy
from mrq_agents.config import MRQConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' helpers write model folders
from helpers.model_folders import write_model_folder  # noqa: E402

BACKENDS = ("torch", "onnx")


def paper_size_policies(env_id: str, folder: Path, threads: int | None) -> dict[str, Policy]:
    """Both backends on one export of freshly initialised paper-size networks (speed does not depend on weights)."""
    write_model_folder(folder / "run", env_id, MRQConfig())
    export = Policy.from_pretrained(folder / "run", backend="torch").save_pretrained(folder / "export")
    return {backend: Policy.from_pretrained(export, backend=backend, threads=threads) for backend in BACKENDS}


def actions_per_second(policy: Policy, obs: np.ndarray, seconds: float) -> float:
    batch = 1 if obs.shape == policy.spec.obs_shape else obs.shape[0]
    for _ in range(5):
        policy.act(obs)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        policy.act(obs)  # returns numpy: includes the conversions at the Policy boundary
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def with_env_per_second(policy: Policy, seconds: float) -> float:
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        steps += 1
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def site_packages_size(venv: Path) -> tuple[int, bool]:
    """(bytes on disk of venv's site-packages as `du` counts them, whether torch is installed there)."""
    (site,) = list(venv.glob("lib/python*/site-packages"))
    kib = int(subprocess.run(["du", "-sk", str(site)], capture_output=True, text=True, check=True).stdout.split()[0])
    return kib * 1024, (site / "torch").is_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="*", default=["HalfCheetah-v4", "ALE/Pong-v5"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per backend, taking turns (median)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of each backend (default: theirs)")
    parser.add_argument("--venvs", type=Path, nargs="*", default=[], help="virtual environments to size")
    args = parser.parse_args()
    if args.envs:
        threads = f"{args.threads} threads each" if args.threads else "each backend's default threads"
        print(
            f"# torch {torch.__version__} | onnxruntime {onnxruntime.__version__} | CPU, {threads} | "
            f"{args.rounds} rounds of {args.seconds:g} s, median"
        )
        print("| actor | batch | torch actions/s | onnx actions/s | onnx / torch |")
        print("|---|---:|---:|---:|---:|")
    for env_id in args.envs:
        with tempfile.TemporaryDirectory() as tmp:
            policies = paper_size_policies(env_id, Path(tmp), args.threads)
            spec = policies["torch"].spec
            env = policies["torch"].make_env()
            obs, _ = env.reset(seed=0)
            env.close()
            actor = f"{env_id} {spec.obs_shape} {'uint8' if spec.pixels else 'float32'}"
            rows = [
                (str(b), lambda p, b=b: actions_per_second(p, obs if b == 1 else np.stack([obs] * b), args.seconds))
                for b in args.batches
            ]
            rows.append(("1 + env.step", lambda p: with_env_per_second(p, args.seconds)))
            for label, measure in rows:
                rates: dict[str, list[float]] = {b: [] for b in BACKENDS}
                for _ in range(args.rounds):
                    for backend in BACKENDS:
                        rates[backend].append(measure(policies[backend]))
                t, o = statistics.median(rates["torch"]), statistics.median(rates["onnx"])
                print(f"| {actor} | {label} | {t:,.0f} | {o:,.0f} | {o / t:.2f}x |", flush=True)
    if args.venvs:
        print("\n| environment | torch | site-packages (du) |")
        print("|---|---|---:|")
        for venv in args.venvs:
            size, has_torch = site_packages_size(venv)
            print(f"| {venv} | {'yes' if has_torch else 'no'} | {size / 2**20:,.0f} MiB |")


if __name__ == "__main__":
    main()
