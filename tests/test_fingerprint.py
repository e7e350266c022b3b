"""What the agent learns, bit for bit: a fingerprint of short fixed-seed runs, kept across refactors.

For each kind of agent (continuous vector, discrete, pixels; tiny networks) on each update path (plain, fast; on
the CPU), a fixed-seed run of 12 updates (three target syncs with their encoder bursts, new transitions midway)
is hashed: the final online and target parameters, the replay priorities, the reward scales and every update's
losses. Float results depend on the machine (its vector unit, its libraries), so the recorded hashes are kept per
machine fingerprint (`mrq_agents.machine`) in tests/data/fingerprints.json; on a machine with a record they must
match exactly. On any machine the run must hash the same twice.

Record this machine's (after checking that nothing learned changed): python tests/test_fingerprint.py
"""

import functools
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.replay import fill_random
from helpers.tiny import SPECS, tiny_config
from mrq_agents.fast import accelerate
from mrq_agents.learner import MRQLearner
from mrq_agents.machine import fingerprint
from mrq_agents.replay import ReplayBuffer

RECORD = Path(__file__).parent / "data" / "fingerprints.json"
CONFIG = tiny_config(batch_size=8, buffer_size=1_000, target_update_freq=5)
CASES = [f"{kind}-{path}" for kind in SPECS for path in ("plain", "fast")]
UPDATES = 12


@functools.lru_cache(maxsize=None)
def recorded_run_hash(case: str) -> str:
    return run_hash(case)


def run_hash(case: str) -> str:
    """sha256 of what a fixed-seed run of `case` ('continuous-plain', ...) learned, on one thread (the thread
    count changes how convolutions split their sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_hash(case)
    finally:
        torch.set_num_threads(threads)


def _run_hash(case: str) -> str:
    kind, path = case.split("-")
    spec = SPECS[kind]
    torch.manual_seed(0)
    learner = MRQLearner(spec, CONFIG, "cpu")
    if path == "fast":
        accelerate(learner)
    buffer = ReplayBuffer(spec, CONFIG.buffer_size, (CONFIG.enc_horizon, CONFIG.q_horizon), device="cpu")
    rng = np.random.default_rng(0)
    fill_random(buffer, spec, rng, steps=300, episode_length=30, offset=1)
    digest = hashlib.sha256()
    for i in range(UPDATES):
        if i == UPDATES // 2:
            fill_random(buffer, spec, rng, steps=20, episode_length=30, offset=1)
        metrics = learner.update(buffer)
        for name in sorted(metrics):
            digest.update(name.encode() + metrics[name].detach().float().numpy().tobytes())
    for module in (learner.nets, learner.target):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode() + tensor.detach().numpy().tobytes())
    digest.update(buffer.priority.numpy().tobytes() + buffer.max_priority.numpy().tobytes())
    digest.update(np.float64([learner.reward_scale, learner.target_reward_scale]).tobytes())
    return digest.hexdigest()


def machine_key() -> str:
    here = {k: v for k, v in fingerprint("torch").items() if k != "cpu"}
    return json.dumps(here, sort_keys=True)


def recorded() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


@pytest.mark.parametrize("case", CASES)
def test_a_run_hashes_the_same_twice(case):
    assert run_hash(case) == recorded_run_hash(case)


@pytest.mark.parametrize("case", CASES)
def test_what_the_agent_learns_is_unchanged(case):
    record = recorded().get(machine_key())
    if record is None:
        pytest.skip(
            f"no fingerprint recorded for this machine ({machine_key()}); the recorded ones are for "
            f"{len(recorded())} other machine(s). Record with: python tests/test_fingerprint.py"
        )
    assert recorded_run_hash(case) == record[case], f"{case}: what the agent learns changed"


if __name__ == "__main__":
    records = recorded()
    records[machine_key()] = {case: run_hash(case) for case in CASES}
    RECORD.write_text(json.dumps(records, indent=2) + "\n")
    print(json.dumps(records[machine_key()], indent=2), file=sys.stderr)
