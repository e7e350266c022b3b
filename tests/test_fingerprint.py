"""What the agent learns, bit for bit: a fingerprint of short fixed-seed runs, kept across refactors.

For each kind of agent (continuous vector, discrete, pixels; tiny networks) on each update path (plain, fast; on
the CPU), a fixed-seed run of 12 updates (three target syncs with their encoder bursts, new transitions midway)
is hashed: the final online and target parameters, the replay priorities, the reward scales and every update's
losses (the case's name). `<case> digest` hashes the same run's `helpers.learning_digest.learner_digest`, which
adds every optimizer state; the `-finetune` cases run on a fine-tune's schedule (some encoder layers frozen, the
policy and the encoder held at first, the critics converted). Float results depend on the machine (its vector
unit, its libraries), so the recorded hashes are kept per machine fingerprint (`mrq_agents.machine`) in
tests/data/fingerprints.json; on a machine with a record they must match exactly (a record made before a hash
existed skips it). On any machine the run must hash the same twice.

Record this machine's (after checking that nothing learned changed, e.g. with tests/helpers/learning_digest.py
against the previous install): python tests/test_fingerprint.py
"""

import functools
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.learning_digest import learner_digest
from helpers.replay import fill_random
from helpers.tiny import SPECS, tiny_config
from mrq_agents.fast import FastLearner
from mrq_agents.learner import MRQLearner, build_networks
from mrq_agents.machine import DESCRIPTION_ONLY, fingerprint
from mrq_agents.replay import ReplayBuffer
from mrq_agents.training.transfer import FinetuneSchedule

RECORD = Path(__file__).parent / "data" / "fingerprints.json"
CONFIG = tiny_config(batch_size=8, buffer_size=1_000, target_update_freq=5)
RUNS = [f"{kind}-{path}" for kind in SPECS for path in ("plain", "fast")] + [
    f"continuous-{path}-finetune" for path in ("plain", "fast")
]
CASES = [*RUNS, *(f"{run} digest" for run in RUNS)]
UPDATES = 12
SCHEDULE = FinetuneSchedule(  # the encoder's first layers frozen; no burst at update 0; the policy waits 3 updates
    frozen=("encoder.zs_mlp.net.0.weight", "encoder.zs_mlp.net.0.bias", "encoder.za.weight", "encoder.za.bias"),
    hold_policy=3,
    hold_encoder=1,
    source_reward_scale=2.5,
)


@functools.lru_cache(maxsize=None)
def recorded_run_hash(case: str) -> str:
    return run_hash(case)


def run_hash(case: str) -> str:
    """sha256 of what a fixed-seed run of `case` ('continuous-plain', 'pixels-fast digest', ...) learned, on one
    thread (the thread count changes how convolutions split their sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_hashes(case.removesuffix(" digest"))[case.endswith(" digest")]
    finally:
        torch.set_num_threads(threads)


def _run_hashes(run: str) -> tuple[str, str]:
    """(the run's hash, the hash of its `learner_digest`)."""
    kind, path, *finetune = run.split("-")
    spec = SPECS[kind]
    torch.manual_seed(0)
    nets = build_networks(spec, CONFIG)
    schedule = SCHEDULE if finetune else None
    if schedule is not None:
        schedule.freeze(nets)
    learner = (FastLearner if path == "fast" else MRQLearner)(spec, CONFIG, "cpu", nets=nets)
    buffer = ReplayBuffer(spec, CONFIG.buffer_size, (CONFIG.enc_horizon, CONFIG.q_horizon), device="cpu")
    rng = np.random.default_rng(0)
    fill_random(buffer, spec, rng, steps=300, episode_length=30, offset=1)
    digest = hashlib.sha256()
    for i in range(UPDATES):
        if i == UPDATES // 2:
            fill_random(buffer, spec, rng, steps=20, episode_length=30, offset=1)
        metrics = learner.update(buffer) if schedule is None else schedule.update(learner, buffer)
        for name in sorted(metrics):
            digest.update(name.encode() + metrics[name].detach().float().numpy().tobytes())
    for module in (learner.nets, learner.target):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode() + tensor.detach().numpy().tobytes())
    digest.update(buffer.priority.numpy().tobytes() + buffer.max_priority.numpy().tobytes())
    digest.update(np.float64([learner.reward_scale, learner.target_reward_scale]).tobytes())
    everything = json.dumps(learner_digest(learner, buffer, metrics), sort_keys=True)
    return digest.hexdigest(), hashlib.sha256(everything.encode()).hexdigest()


def machine_key() -> str:
    here = {k: v for k, v in fingerprint("torch").items() if k not in DESCRIPTION_ONLY}
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
    if case not in record:
        pytest.skip(f"this machine's record has no {case!r} (recorded before it existed)")
    assert recorded_run_hash(case) == record[case], f"{case}: what the agent learns changed"


if __name__ == "__main__":
    records = recorded()
    records[machine_key()] = {case: run_hash(case) for case in CASES}
    RECORD.write_text(json.dumps(records, indent=2) + "\n")
    print(json.dumps(records[machine_key()], indent=2), file=sys.stderr)
