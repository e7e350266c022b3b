"""`mrq sweep SPEC --plan`: what a sweep costs before anything trains (no Ray, no torch, nothing written).

Device-hours come from the training rates measured in benchmarks/README.md at the paper's config (every default
of `MRQConfig`), each printed with the env, machine and README section it was measured in; replay memory from
the bytes per stored transition measured there. Only HalfCheetah-v4 (vector networks) and ALE/Pong-v5 (pixel
networks) were measured: every other env's hours use the rate of its kind of networks, and the table says on
which envs its rates were measured. Runs with another algorithm config (a preset, `--set`, `fast` or `precision`
of their own) get no hours at all. tests/test_sweep_plan.py checks every figure here against the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrq_agents.sweep import RunSpec

CPU_SECTION = "CPU (measured 2026-11-25)"
GPU_SECTION = "GPU (measured 2026-11-26, one NVIDIA H200, the only device time so far)"
CPU_MACHINE = "2-core Intel Xeon, torch 2.13.0+cpu, plain path (the CPU default)"
GPU_MACHINE = "one NVIDIA H200, fast path, fp32 (the CUDA default)"
DEVICES = ("cpu", "gpu")
ORDER = ("gym", "dmc", "dmc-visual", "atari", "other")  # the table's rows


@dataclass(frozen=True)
class Measured:
    """A figure of benchmarks/README.md, and what and where it was measured."""

    value: float
    env: str  # what it was measured on, as the README names it
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
# bytes per stored transition ("0.12 GB at 1M", "7 GB at 1M", "21 GB at 1M" in the README's CPU section); the
# frames' figures hold for every env of their benchmark, the vector one for HalfCheetah-v4's observations only
REPLAY_BYTES = {
    "vector": Measured(120, "HalfCheetah-v4", "float32 observation, action, reward, flags, priority", CPU_SECTION),
    "atari": Measured(7_000, "Atari", "one 84x84 grayscale frame", CPU_SECTION),
    "dmc-visual": Measured(21_000, "DMC pixels", "one 84x84 RGB frame", CPU_SECTION),
}
KINDS = {  # the paper's benchmarks -> (their kind of networks: the key of RATES, their replay figure)
    "gym": ("vector", "vector"),
    "dmc": ("vector", "vector"),
    "dmc-visual": ("pixels", "dmc-visual"),
    "atari": ("pixels", "atari"),
}


@dataclass(frozen=True)
class RunCost:
    """One run's budget, replay memory and device-hours."""

    run: RunSpec
    benchmark: str  # the paper's benchmark of its env, or "other"
    paper_name: str | None  # the paper's name of its env
    networks: str  # "vector" or "pixels": which rates apply
    steps: int
    replay_bytes: float | None  # None: no figure for this kind of observation
    replay_measured: bool  # False: HalfCheetah-v4's figure used for another env's vector observations
    hours: dict[str, float] | None  # per device; None: a config other than the paper's, for which no rate exists

    @property
    def rate_measured(self) -> bool:
        """Whether its rates were measured on this very env."""
        from mrq_agents.paper import paper_env_name

        return self.paper_name is not None and self.paper_name == paper_env_name(RATES["cpu", self.networks].env)


def run_cost(run: RunSpec) -> RunCost:
    """What one run costs at the measured rates."""
    from mrq_agents.config import MRQConfig, preset_config
    from mrq_agents.envs import benchmark_defaults, resolve_env
    from mrq_agents.paper import benchmark, paper_env_name

    name = benchmark(run.env)
    if name is not None and run.steps is not None:
        (networks, replay_key), steps = KINDS[name], run.steps
    else:  # resolving the env tells its budget and, outside the paper's benchmarks, vector or pixels
        config = resolve_env(run.env)
        steps = run.steps or benchmark_defaults(config)[0]
        networks, replay_key = KINDS[name] if name else ("pixels", None) if config.pixels else ("vector", "vector")
    algo = preset_config(run.preset).with_overrides(run.overrides)
    paper_config = algo == MRQConfig() and run.fast is None and run.precision in (None, "auto", "fp32")
    hours = {d: steps / RATES[d, networks].value / 3600 for d in DEVICES} if paper_config else None
    replay = min(steps, algo.buffer_size) * REPLAY_BYTES[replay_key].value if replay_key else None
    paper_name = paper_env_name(run.env)
    replay_measured = replay_key != "vector" or paper_name == paper_env_name(REPLAY_BYTES["vector"].env)
    return RunCost(run, name or "other", paper_name, networks, steps, replay, replay_measured, hours)


def plan_text(runs: list[RunSpec], spec: Path | str) -> str:
    """The runs of a spec, then per benchmark its runs, budget, replay per run and CPU/GPU device-hours."""
    costs = [run_cost(run) for run in runs]
    notes = Notes()
    rows = [
        ("benchmark", "envs", "runs", "steps per run", "replay per run", "CPU hours", "GPU hours", "rates measured on")
    ]
    for name in ORDER:
        for networks in ("vector", "pixels"):
            for rated in (True, False):
                group = [c for c in costs if (c.benchmark, c.networks, c.hours is not None) == (name, networks, rated)]
                if group:
                    label = name + (f" ({networks})" if name == "other" else "") + ("" if rated else ", own config")
                    rows.append(_row(label, group, notes))
    rows.append(_total_row(costs))
    lines = [
        f"plan for {spec}: {len(runs):,} runs of {len({r.env for r in runs}):,} envs; nothing is trained",
        "",
        "runs:",
        *_run_lines(costs),
        "",
        *_table(rows),
        "",
        "hours: one run per device at a time, training at the measured rate (evaluation not included); runs "
        "sharing a GPU (--gpus-per-run < 1) each go slower (benchmarks/README.md)",
    ]
    if any(c.hours is not None and not c.rate_measured for c in costs):
        lines.append(
            "rates measured on: benchmarks/README.md has rates for HalfCheetah-v4 and ALE/Pong-v5 only; "
            "every other env's hours are estimates at the rate of its kind of networks (vector or pixels)"
        )
    lines += [
        *notes.lines(),
        "replay: transitions stored (at most the run's buffer_size) x bytes per transition measured in "
        f'benchmarks/README.md ("{CPU_SECTION}"): '
        + ", ".join(f"{m.env} {m.value:,.0f} B ({m.detail})" for m in REPLAY_BYTES.values()),
    ]
    if any(not c.replay_measured for c in costs):
        lines.append(
            "* not measured for these envs' observations: HalfCheetah-v4's bytes per transition; larger "
            "observations need more"
        )
    return "\n".join(lines)


def _row(label: str, group: list[RunCost], notes: "Notes") -> tuple[str, ...]:
    """A row of the table: envs, runs, steps, the largest replay, the hours of all its runs, where rates come from."""
    envs = {c.run.env for c in group}
    steps = sorted({c.steps for c in group})
    replay = max((c.replay_bytes for c in group if c.replay_bytes is not None), default=None)
    guessed = not all(c.replay_measured for c in group)
    span = f"{steps[0]:,}" + (f" to {steps[-1]:,}" if len(steps) > 1 else "")
    cells = [
        label,
        f"{len(envs):,}",
        f"{len(group):,}",
        span,
        "no figure" if replay is None else ("~" if guessed else "") + _gb(replay) + (" *" if guessed else ""),
    ]
    if group[0].hours is None:
        no_rate = "no rate" + notes.add("config")
        return (*cells, no_rate, no_rate, "-")
    networks = group[0].networks
    cells += [_hours(sum(c.hours[d] for c in group)) + notes.add(RATES[d, networks]) for d in DEVICES]
    measured = {c.run.env for c in group if c.rate_measured}
    source = RATES["cpu", networks].env
    cells.append(f"{source} ({len(measured)} of {len(envs)} envs)" if measured else f"none: {source}'s rates")
    return tuple(cells)


def _total_row(costs: list[RunCost]) -> tuple[str, ...]:
    """The hours of every run with a rate, and how many runs have none."""
    rated = [c for c in costs if c.hours is not None]
    without = f" + {len(costs) - len(rated):,} runs without a rate" if len(rated) < len(costs) else ""
    return (
        "total",
        f"{len({c.run.env for c in costs}):,}",
        f"{len(costs):,}",
        "",
        "",
        *(_hours(sum(c.hours[d] for c in rated)) + without for d in DEVICES),
        "",
    )


class Notes:
    """Numbered footnotes: a rate's source, or why a config has no rate."""

    def __init__(self) -> None:
        self.keys: list[Measured | str] = []

    def add(self, key: Measured | str) -> str:
        if key not in self.keys:
            self.keys.append(key)
        return f" [{self.keys.index(key) + 1}]"

    def lines(self) -> list[str]:
        return [
            f"[{i}] "
            + (
                f"{k.value:g} env-steps/s: {k.source()}"
                if isinstance(k, Measured)
                else "benchmarks/README.md measured the paper's config only; these runs set a preset, --set, "
                "fast or precision of their own"
            )
            for i, k in enumerate(self.keys, start=1)
        ]


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
