"""`mrq sweep`: many training runs from one TOML spec, each an ordinary run folder (no Ray in this module).

A spec has one `[defaults]` table and any number of `[[runs]]` groups; each group is a grid over its `envs`
and `seeds`, every other key is an option of `mrq train` (underscores for dashes, `set` for `--set`):

    [defaults]
    steps = 100000
    preset = "paper"
    eval_every = 5000
    [[runs]]
    envs = ["Dmc-walker-walk", "Dmc-cheetah-run"]
    seeds = [0, 1, 2]

Run (env, seed) trains in `DIR/<env>-seed<seed>` (slashes in the env id become underscores) with the same
`Trainer` that `mrq train` builds (`build_trainer`), so `mrq eval`, `mrq export` and
`mrq train ENV --out DIR/<run> --resume` work on it. This module plans the runs and trains one of them;
`mrq_agents.ray_sweep` schedules them on Ray.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import tomllib

from mrq_agents.errors import ConfigError, MRQError, one_line
from mrq_agents.files import CONFIG_FILE, RUN_FILES

STATE_FILE = "sweep.json"  # DIR/sweep.json: each run's status, attempts, last error and result (JSON)
GRID_KEYS = ("envs", "seeds")
RUN_KEYS = {  # key -> (type(s), description); the options of `mrq train`
    "steps": (int, "an integer"),
    "preset": (str, "a string"),
    "eval_every": (int, "an integer"),
    "eval_episodes": (int, "an integer"),
    "checkpoint_every": (int, "an integer"),
    "device": (str, "a string"),
    "fast": (bool, "true or false"),
    "set": (list, 'a list of "name=value" strings'),
    "precision": (str, "a string"),
}
BUSY_WAIT_S = 60.0  # how long a run waits for a killed sweep's worker to let go of its folder


class SweepSpecError(ConfigError):
    """A spec file that cannot be read, or a key with a wrong name or value."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: an env and seed, and the options `mrq train` would get."""

    env: str
    seed: int
    steps: int | None = None
    preset: str = "paper"
    overrides: tuple[str, ...] = ()  # --set name=value
    eval_every: int | None = None
    eval_episodes: int | None = None
    checkpoint_every: int | None = None
    device: str | None = None
    fast: bool | None = None
    precision: str | None = None

    @property
    def name(self) -> str:
        """The run's folder name inside the sweep folder (as `mrq train`'s default run folder)."""
        return f"{self.env.replace('/', '_')}-seed{self.seed}"

    def run_options(self) -> dict[str, Any]:
        """Keyword options of `build_trainer` (None: the benchmark's default)."""
        options = {
            "steps": self.steps,
            "seed": self.seed,
            "device": self.device,
            "fast": self.fast,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "checkpoint_every": self.checkpoint_every,
        }
        overrides = list(self.overrides)
        if self.precision is not None:  # an option of the run or of the algorithm, in versions that have it
            where = precision_target()
            if where == "run":
                options["precision"] = self.precision
            else:
                overrides.append(f"precision={self.precision}")
        return {"preset": self.preset, "overrides": overrides, **options}

    def command(self, out: Path) -> str:
        """The equivalent `mrq train` command line."""
        from mrq_agents.config import train_command_line

        options = {
            "seed": self.seed,
            "out": out / self.name,
            "steps": self.steps,
            "preset": None if self.preset == "paper" else self.preset,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "checkpoint_every": self.checkpoint_every,
            "device": self.device,
            "precision": self.precision,
            "fast": self.fast,
        }
        return train_command_line(self.env, options, self.overrides)


def precision_target() -> str | None:
    """Where this version keeps a `precision` setting: "run" (RunConfig), "algorithm" (MRQConfig) or None."""
    from mrq_agents.config import MRQConfig
    from mrq_agents.training.run_config import RunConfig

    if "precision" in {f.name for f in dataclasses.fields(RunConfig)}:
        return "run"
    if "precision" in {f.name for f in dataclasses.fields(MRQConfig)}:
        return "algorithm"
    return None


# --------------------------------------------------------------------------------------------- the spec


def load_spec(path: str | Path) -> list[RunSpec]:
    """The runs of a spec file, in spec order; any problem is a one-line `SweepSpecError` naming the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SweepSpecError(f"cannot read the sweep spec {path}: {one_line(err.strerror or err)}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SweepSpecError(f"{path} is not valid TOML: {one_line(err)}") from None
    return parse_spec(data, str(path))


def parse_spec(data: dict[str, Any], where: str = "spec") -> list[RunSpec]:
    """The runs of a parsed spec (see the module docstring)."""
    unknown = sorted(set(data) - {"defaults", "runs"})
    if unknown:
        raise SweepSpecError(f"{where}: unknown top-level key {unknown[0]!r}: a spec has [defaults] and [[runs]]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SweepSpecError(f"{where}: 'defaults' must be a table ([defaults])")
    _check_keys(defaults, f"{where} [defaults]")
    groups = data.get("runs")
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise SweepSpecError(f"{where}: 'runs' must be one or more [[runs]] tables, each with 'envs' and 'seeds'")
    runs: dict[str, tuple[RunSpec, str]] = {}
    for k, group in enumerate(groups, start=1):
        label = f"{where} [[runs]] #{k}"
        _check_keys(group, label)
        merged = {**defaults, **group}
        envs, seeds = merged.get("envs"), merged.get("seeds", [0])
        if not isinstance(envs, list) or not envs or not all(isinstance(e, str) and e for e in envs):
            raise SweepSpecError(f"{label}: key 'envs' must be a non-empty list of env ids, got {envs!r}")
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        ):
            raise SweepSpecError(f"{label}: key 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
        options = {k2: v for k2, v in merged.items() if k2 not in GRID_KEYS}
        _check_options(options, label)
        for env in envs:
            for seed in seeds:
                run = RunSpec(
                    env=env,
                    seed=seed,
                    overrides=tuple(options.get("set", ())),
                    **{k2: v for k2, v in options.items() if k2 != "set"},
                )
                if run.name in runs and runs[run.name][0] != run:
                    raise SweepSpecError(
                        f"{label}: {env} seed {seed} is also in {runs[run.name][1]} with other "
                        "options; one run folder cannot hold both"
                    )
                runs.setdefault(run.name, (run, label))
    return [run for run, _ in runs.values()]


def _check_keys(table: dict[str, Any], label: str) -> None:
    known = set(RUN_KEYS) | set(GRID_KEYS)
    for key in table:
        if key not in known:
            hint = " (use 'envs = [...]')" if key == "env" else " (use 'seeds = [...]')" if key == "seed" else ""
            raise SweepSpecError(f"{label}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(known))}")


def _check_options(options: dict[str, Any], label: str) -> None:
    """Types and values of the run options, and the preset and --set overrides they name."""
    from mrq_agents.config import preset_config

    for key, value in options.items():
        kind, description = RUN_KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SweepSpecError(f"{label}: key {key!r} must be {description}, got {value!r}")
        if kind is int and value < 1:
            raise SweepSpecError(f"{label}: key {key!r} must be >= 1, got {value}")
    overrides = options.get("set", [])
    if not all(isinstance(o, str) for o in overrides):
        raise SweepSpecError(f"{label}: key 'set' must be a list of \"name=value\" strings, got {overrides!r}")
    try:
        preset_config(options.get("preset", "paper")).with_overrides(overrides)
    except MRQError as err:
        raise SweepSpecError(f"{label}: key {'set' if overrides else 'preset'!r}: {err}") from None
    if "precision" in options and precision_target() is None:
        raise SweepSpecError(f"{label}: key 'precision': precision is not supported by this version of mrq-agents")


# --------------------------------------------------------------------------------------------- run folders


def run_status(run: RunSpec, folder: Path) -> tuple[str, int]:
    """("new" | "restart" | "resume" | "done", checkpointed step) of a run's folder.

    "restart": the folder holds a run killed before its first checkpoint (nothing to resume from).
    """
    from mrq_agents.training.checkpoint import checkpoint_step

    step = checkpoint_step(folder)
    if step is None:
        started = any((folder / name).exists() for name in RUN_FILES)
        return ("restart" if started else "new"), 0
    if run.steps is not None and step >= run.steps:
        return "done", step
    if run.steps is None:  # the benchmark's default budget, as saved in the run's config
        saved = json.loads((folder / CONFIG_FILE).read_text())
        if step >= saved["run"]["steps"]:
            return "done", step
    return "resume", step


def clear_unstarted(folder: Path) -> None:
    """Remove what a run killed before its first checkpoint wrote, so it can start again."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for events in folder.glob("events.out.tfevents.*"):
        events.unlink()


def train_run(
    run: RunSpec,
    out: Path,
    threads: int | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
    report_every: float = 1.0,
    busy_wait_s: float = BUSY_WAIT_S,
) -> dict[str, Any]:
    """Train (or resume, or skip if finished) one run in `out / run.name`; returns its summary.

    `report(info)` first gets {"step", "started_from"} (the checkpointed step it starts from, 0 for none), then
    {"step", "steps", "steps_per_s", "eval_return"} at most every `report_every` seconds and after each
    evaluation. A run folder that another process still writes (a killed sweep's worker saving its last
    checkpoint) is waited for up to `busy_wait_s` seconds, then a one-line `RunFolderBusyError`. Exceptions
    propagate (the scheduler records them).
    """
    from mrq_agents.training.trainer import build_trainer

    folder = out / run.name
    wait_for_folder(folder, busy_wait_s)
    status, step = run_status(run, folder)
    if report is not None:
        report({"step": step, "started_from": step if status in ("resume", "done") else 0})
    if status == "restart":
        clear_unstarted(folder)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    trainer = build_trainer(
        run.env, folder, resume=status in ("resume", "done"), log=lambda line: None, **run.run_options()
    )
    last = {"time": 0.0, "eval": math.nan}

    def progress(step: int, info: dict[str, Any]) -> None:
        now = time.monotonic()
        evaluated = info["eval_return"] != last["eval"] and not math.isnan(info["eval_return"])
        if report is not None and (evaluated or now - last["time"] >= report_every or step == trainer.run.steps):
            last["time"], last["eval"] = now, info["eval_return"]
            report(
                {
                    "step": step,
                    "steps": trainer.run.steps,
                    "steps_per_s": info["steps_per_s"],
                    "eval_return": info["eval_return"],
                }
            )

    summary = trainer.train(progress=progress)
    if report is not None:
        report(
            {
                "step": summary["step"],
                "steps": trainer.run.steps,
                "steps_per_s": math.nan,
                "eval_return": summary["eval_return_mean"],
            }
        )
    return summary


def wait_for_folder(folder: Path, timeout: float) -> None:
    """Return once no other process holds the run folder's lock (at once if it is free or absent); after
    `timeout` seconds, raise the lock's one-line `RunFolderBusyError` naming the holder."""
    from mrq_agents.training import run_folder

    if not folder.is_dir():
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            handle = run_folder.lock(folder)
        except run_folder.RunFolderBusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
            continue
        if handle is not None:
            handle.close()
        return


# --------------------------------------------------------------------------------------------- sweep state


def read_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if not path.is_file():
        return {"runs": {}}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"runs": {}}  # a torn write of a killed driver: statuses are rebuilt from the run folders


def write_state(out: Path, state: dict[str, Any]) -> None:
    from mrq_agents.serialization import atomic_write_json

    atomic_write_json(out / STATE_FILE, _json_safe(state))


def _json_safe(x: Any) -> Any:
    """NaN (no evaluation yet) -> null, so sweep.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x
