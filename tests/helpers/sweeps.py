"""Sweep specs and run folders for the `mrq sweep` tests."""

import csv
from pathlib import Path

# A sweep of tiny CartPole-like runs: format with steps=N and envs='["CartPole-v1"]'
TINY = """
[defaults]
steps = {steps}
preset = "small"
eval_every = 100
eval_episodes = 2
checkpoint_every = 100
set = ["warmup_steps=50", "batch_size=16", "enc_hdim=32", "value_hdim=32", "policy_hdim=32",
       "zs_dim=32", "zsa_dim=32", "za_dim=16"]
[[runs]]
envs = {envs}
seeds = [0, 1]
"""


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def eval_steps(folder: Path) -> list[int]:
    with open(folder / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]
