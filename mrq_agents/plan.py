"""`mrq sweep SPEC --plan`: what a sweep costs before anything trains (no Ray, no torch, nothing written).

Device-hours come from the training rates measured in benchmarks/README.md at the paper's config (every default
of `MRQConfig`), each printed with the env, machine and README section it was measured in; replay memory from
the bytes per stored transition measured there. Where a benchmark has no measured rate the plan says so and
marks its hours as an estimate at the rate of the same kind of networks (vector or pixel); runs with another
algorithm config (a preset, `--set`, `fast` or `precision` of their own) get no hours at all. `tests/test_sweep_plan.py`
checks every figure here against benchmarks/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrq_agents.sweep import RunSpec

CPU_SECTION = "CPU (measured 2026-11-25)"
GPU_SECTION = "GPU (measured 2026-11-26, one NVIDIA H200, the only device time so far)"
CPU_MACHINE = "2-core Intel Xeon, torch 2.13.0+cpu, plain path (the CPU default)"
GPU_MACHINE = "one NVIDIA H200, fast path, fp32 (the CUDA default)"
ORDER = ("gym", "dmc", "dmc-visual", "atari", "other")  # the table's rows


@dataclass(frozen=True)
class Measured:
    """A figure of benchmarks/README.md, and what and where it was measured."""

    value: float
    env: str  # what it was measured on, as the README's table names it
    detail: str  # the machine and path of a rate; what a replay figure counts
    section: str  # the README section (heading) that holds it

    def source(self) -> str:
        return f'{self.env}, {self.detail} (benchmarks/README.md, "{self.section}")'


# training env-steps/s at the paper's config (`benchmarks/throughput.py`), by device and kind of networks
RATES = {
    ("cpu", "vector"): Measured(9.05, "HalfCheetah-v4", CPU_MACHINE, CPU_SECTION),
    ("cpu", "pixels"): Measured(1.42, "ALE/Pong-v5", CPU_MACHINE, CPU_SECTION),
    ("gpu", "vector"): Measured(196.8, "HalfCheetah-v4", GPU_MACHINE, GPU_SECTION),
    ("gpu", "pixels"): Measured(104.9, "ALE/Pong-v5", GPU_MACHINE, GPU_SECTION),
}
# bytes per stored transition ("0.12 GB at 1M", "7 GB at 1M", "21 GB at 1M" in the README's CPU section)
REPLAY_BYTES = {
    "vector": Measured(120, "HalfCheetah", "float32 observation, action, reward, flags, priority", CPU_SECTION),
    "atari": Measured(7_000, "Atari", "one 84x84 grayscale frame", CPU_SECTION),
    "dmc-visual": Measured(21_000, "DMC pixels", "one 84x84 RGB frame", CPU_SECTION),
}


@dataclass(frozen=True)
class Family:
    """How a benchmark's runs are costed: which rates and replay size apply, and whether they were measured on it."""

    kind: str  # "vector" or "pixels": the key of RATES
    rate_measured: bool  # False: an estimate at the rate of the same kind of networks
    replay: str | None  # the key of REPLAY_BYTES (None: unknown)
    replay_measured: bool


FAMILIES = {  # the paper's benchmarks; Gym's rate was measured on HalfCheetah-v4, whose networks all five share
    "gym": Family("vector", True, "vector", True),
    "dmc": Family("vector", False, "vector", False),  # vector observations of other sizes
    "dmc-visual": Family("pixels", False, "dmc-visual", True),
    "atari": Family("pixels", True, "atari", True),
}


@dataclass(frozen=True)
class RunCost:
    """One run's budget, replay and device-hours (None: no measured rate applies to its config)."""

    run: RunSpec
    benchmark: str
    family: Family
    steps: int
    replay_bytes: float | None
    hours: dict[str, float | None]  # "cpu", "gpu"


def run_cost(run: RunSpec) -> RunCost:
    """What one run costs at the measured rates."""
    from mrq_agents.config import MRQConfig, preset_config
    from mrq_agents.envs import benchmark_defaults, resolve_env
    from mrq_agents.paper import benchmark

    name = benchmark(run.env)
    if name is not None and run.steps is not None:
        family, steps = FAMILIES[name], run.steps
    else:  # resolving the env tells its budget and, outside the paper's benchmarks, vector or pixels
        config = resolve_env(run.env)
        steps = run.steps or benchmark_defaults(config)[0]
        kind = "pixels" if config.pixels else "vector"
        family = FAMILIES[name] if name is not None else Family(kind, False, None if config.pixels else "vector", False)
    algo = preset_config(run.preset).with_overrides(run.overrides)
    paper_config = algo == MRQConfig() and run.fast is None and run.precision in (None, "auto", "fp32")
    hours = {device: steps / RATES[device, family.kind].value / 3600 if paper_config else None
             for device in ("cpu", "gpu")}
    replay = min(steps, algo.buffer_size) * REPLAY_BYTES[family.replay].value if family.replay else None
    return RunCost(run, name or "other", family, steps, replay, hours)


def plan_text(runs: list[RunSpec], spec: Path | str) -> str:
    """The runs of a spec, then per benchmark its runs, budget, replay per run and CPU/GPU device-hours."""
    costs = [run_cost(run) for run in runs]
    notes = Notes()
    rows = [("benchmark", "envs", "runs", "steps per run", "replay per run", "CPU hours", "GPU hours")]
    for name in ORDER:
        for paper_config in (True, False):
            group = [c for c in costs if c.benchmark == name and (c.hours["cpu"] is not None) == paper_config]
            if group:
                rows.append(_row(name if paper_config else f"{name}, own config", group, notes))
    rows.append(_total_row(costs))
    lines = [f"plan for {spec}: {len(runs):,} runs of {len({r.env for r in runs}):,} envs; nothing is trained", "",
             "runs:", *_run_lines(costs), "", *_table(rows), "",
             "hours: one run per device at a time, training at the measured rate (evaluation not included); runs "
             "sharing a GPU (--gpus-per-run < 1) each go slower (benchmarks/README.md)",
             *notes.lines(),
             "replay: transitions stored (at most the run's buffer_size) x bytes per transition measured in "
             f'benchmarks/README.md ("{CPU_SECTION}"): ' + ", ".join(
                 f"{m.env} {m.value:,.0f} B ({m.detail})" for m in REPLAY_BYTES.values())]
    if any(not c.family.rate_measured or not c.family.replay_measured for c in costs):
        lines.append("* not measured on this benchmark: estimated from the figure measured on the same kind of "
                     "networks or observations")
    return "\n".join(lines)


def _row(label: str, group: list[RunCost], notes: "Notes") -> tuple[str, ...]:
    """A benchmark's row: envs, runs, steps, the largest replay, and the hours of all its runs per device."""
    family = group[0].family
    steps = sorted({c.steps for c in group})
    replay = max((c.replay_bytes for c in group if c.replay_bytes is not None), default=None)
    estimate = ("", "") if family.replay_measured else ("~", " *")
    cells = [label, f"{len({c.run.env for c in group}):,}", f"{len(group):,}",
             f"{steps[0]:,}" + (f" to {steps[-1]:,}" if len(steps) > 1 else ""),
             "not measured" if replay is None else estimate[0] + _gb(replay) + estimate[1]]
    estimate = ("", "") if family.rate_measured else ("~", " *")
    for device in ("cpu", "gpu"):
        if group[0].hours[device] is None:
            cells.append("no rate" + notes.add("config"))
        else:
            total = sum(c.hours[device] for c in group)
            cells.append(estimate[0] + _hours(total) + notes.add(RATES[device, family.kind]) + estimate[1])
    return tuple(cells)


def _total_row(costs: list[RunCost]) -> tuple[str, ...]:
    """The hours of every run with a rate ("~" if some are estimates), and how many runs have none."""
    rated = [c for c in costs if c.hours["cpu"] is not None]
    approx = "~" if any(not c.family.rate_measured for c in rated) else ""
    without = f" + {len(costs) - len(rated):,} runs without a rate" if len(rated) < len(costs) else ""
    return ("total", f"{len({c.run.env for c in costs}):,}", f"{len(costs):,}", "", "",
            *(approx + _hours(sum(c.hours[device] for c in rated)) + without for device in ("cpu", "gpu")))


class Notes:
    """Numbered footnotes: a rate's source, or why a config has no rate."""

    def __init__(self) -> None:
        self.keys: list[Measured | str] = []

    def add(self, key: Measured | str) -> str:
        if key not in self.keys:
            self.keys.append(key)
        return f" [{self.keys.index(key) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{i}] " + (f"{k.value:g} env-steps/s: {k.source()}" if isinstance(k, Measured) else
                             "benchmarks/README.md measured the paper's config only; these runs set a preset, --set, "
                             "fast or precision of their own") for i, k in enumerate(self.keys, start=1)]


def _run_lines(costs: list[RunCost]) -> list[str]:
    """One line per env and options: its seeds, steps and evaluation cadence."""
    groups: dict[tuple, list[RunCost]] = {}
    for c in costs:
        key = (c.run.env, c.steps, c.run.preset, c.run.overrides, c.run.eval_every, c.run.eval_episodes)
        groups.setdefault(key, []).append(c)
    rows = []
    for (env, steps, preset, overrides, eval_every, episodes), group in groups.items():
        options = [f"{steps:,} steps"]
        if eval_every is not None:
            options.append(f"eval every {eval_every:,}" + (f" ({episodes} episodes)" if episodes else ""))
        if preset != "paper" or overrides:
            options.append(" ".join([f"preset {preset}", *(f"--set {o}" for o in overrides)]))
        rows.append((f"  {env}", "seeds " + _seeds([c.run.seed for c in group]), ", ".join(options)))
    return _table(rows)


def _seeds(seeds: list[int]) -> str:
    """[0, 1, 2, 3, 7] -> '0-3, 7'."""
    spans: list[list[int]] = []
    for s in sorted(seeds):
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:.1f}" if h >= 1 else f"{h:.2g}"


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e9:.2g} GB"


def _table(rows: list[tuple]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
