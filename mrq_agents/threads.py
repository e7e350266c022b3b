"""How many CPU threads torch should use, from the network size and the machine (measured: benchmarks/README.md).

Small networks run fastest on one thread: each op is microseconds long, and a second thread costs more in
hand-offs than it saves; under any other load (a second run, a test suite) OpenMP threads that wait for a
busy core make them ten times slower. Wide or convolutional networks gain from more threads on idle cores.
Acting on one observation at a time is always a small-network job.
"""

from __future__ import annotations

import os

from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec

SMALL_WIDTH = 256  # widest layer (hidden or embedding) of a vector-observation network that gets one thread
MAX_THREADS = 4  # beyond this, MR.Q's update step (batch 256) gains nothing measurable
ACTING_THREADS = 1  # eval, play, export, Policy.act: one observation at a time


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def idle_cpus() -> int:
    """Available CPUs not busy with other work, from the 1-minute load average (at least 1)."""
    cpus = available_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        load = 0.0
    return max(1, min(cpus, round(cpus - load)))


def choose_threads(config: MRQConfig, spec: EnvSpec, device: str = "cpu") -> int:
    """Torch threads for training: 1 for small vector networks and for GPU runs (the CPU only steps the env),
    else the idle CPUs, at most MAX_THREADS."""
    if not str(device).startswith("cpu"):
        return 1
    width = max(config.enc_hdim, config.value_hdim, config.policy_hdim, config.zs_dim, config.zsa_dim)
    if not spec.pixels and width <= SMALL_WIDTH:
        return 1
    return min(MAX_THREADS, idle_cpus())
