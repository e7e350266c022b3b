"""What a resumable checkpoint costs at the paper's size: file size, atomic write time, read time.

    python benchmarks/checkpoint.py                              # Atari shapes, 25k and 100k stored steps
    python benchmarks/checkpoint.py --steps 10000 --env-shape halfcheetah --out /tmp/ckpt

The checkpoint holds the learner (networks, targets, optimizers) and the written part of the replay (for pixels,
each 84x84 frame once). Filled with random steps (episodes of 1,000 steps), then written the way `Trainer`
writes it (flatten, safetensors to a temp file, fsync, rename) and read back. Run it on the disk the runs use.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from components import ATARI, HALFCHEETAH, filled_buffer

from mrq_agents.config import MRQConfig
from mrq_agents.learner import MRQLearner
from mrq_agents.serialization import flatten_state, load_tensors, save_tensors

SHAPES = {"atari": ATARI, "halfcheetah": HALFCHEETAH}


def measure(spec, steps: int, folder: Path) -> dict:
    config = MRQConfig()
    learner = MRQLearner(spec, config, "cpu")
    buffer = filled_buffer(spec, config.buffer_size, steps, torch.device("cpu"))
    path = folder / "checkpoint.safetensors"
    start = time.perf_counter()
    tensors, skeleton = flatten_state({"learner": learner.state_dict(), "buffer": buffer.state_dict()})
    save_tensors(path, tensors, {"state": skeleton})
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    loaded, _ = load_tensors(path, what="checkpoint")
    for tensor in loaded.values():  # into memory, as resuming copies them into the networks and the replay
        tensor.clone()
    read_s = time.perf_counter() - start
    size = path.stat().st_size
    path.unlink()
    return {"size_GiB": size / 2**30, "write_s": write_s, "read_s": read_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-shape", choices=sorted(SHAPES), default="atari")
    parser.add_argument("--steps", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--out", type=Path, default=None, help="folder to write in (default: a temp folder)")
    args = parser.parse_args()
    print(f"| {args.env_shape} shapes, stored steps | checkpoint size | atomic write s | read s | write MB/s |")
    print("|---|---|---|---|---|")
    for steps in args.steps:
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            r = measure(SHAPES[args.env_shape], steps, Path(tmp))
        print(
            f"| {steps:,} | {r['size_GiB']:.2f} GiB | {r['write_s']:.1f} | {r['read_s']:.1f} | "
            f"{r['size_GiB'] * 1024 / r['write_s']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
