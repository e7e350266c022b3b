"""`mrq sweep` on Ray: the only module that imports Ray.

Each run is one Ray core task that calls `sweep.train_run`, i.e. the `Trainer` of `mrq train` writing an
ordinary run folder; Ray only places tasks on CPUs/GPUs (fractional GPUs share a card). A run that raised or
whose worker process died is submitted again (up to `retries` times) and resumes from its checkpoint. Resuming, skipping finished runs and retrying failed ones all follow from the
run folders and their checkpoints, so the driver keeps no state that a kill -9 could lose: `DIR/sweep.json`
is a report of the last launch, rebuilt from the folders on the next.

Why core tasks rather than Ray Tune: a run already has its own folder, checkpoints, resume logic and
metrics; Tune would add a second experiment folder, its own trial checkpoints and restore rules to keep in
step with ours, for a scheduler (a grid of independent runs, no early stopping) that tasks give directly.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from mrq_agents.errors import MRQError, one_line
from mrq_agents.sweep import RunSpec, read_state, run_status, train_run, write_state

INSTALL_HINT = 'mrq sweep needs Ray: pip install "mrq-agents[ray]"'
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # runs exchange only small dicts; keep the embedded Ray lean


class RayMissingError(MRQError):
    """Ray is not installed."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayMissingError(INSTALL_HINT) from None
    return ray


class ProgressBoard:
    """A Ray actor that holds each run's latest progress (runs report to it; the driver reads it)."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}

    def update(self, name: str, info: dict[str, Any]) -> None:
        self.runs[name] = {**self.runs.get(name, {}), **info, "time": time.time()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.runs


def _train_task(run: RunSpec, out: str, threads: int, gpus: float, board: Any) -> dict[str, Any]:
    """Body of one Ray task: train the run; errors come back as one line (no exception objects to unpickle)."""
    if run.device is None and gpus == 0:
        import dataclasses

        run = dataclasses.replace(run, device="cpu")
    try:
        summary = train_run(run, Path(out), threads=threads,
                            report=lambda info: board.update.remote(run.name, info))
    except MRQError as err:  # the run's input is wrong: retrying cannot help
        return {"ok": False, "retry": False, "error": one_line(err)}
    except Exception as err:  # noqa: BLE001 - anything else is reported and retried
        return {"ok": False, "retry": True, "error": f"{type(err).__name__}: {one_line(err)}"}
    return {"ok": True, "summary": summary}


def init_ray(address: str | None, num_cpus: int | None) -> Any:
    """Attach to `address` (or RAY_ADDRESS), else start an embedded local Ray with `num_cpus` CPUs."""
    ray = import_ray()
    import logging

    common = {"log_to_driver": False, "logging_level": logging.ERROR, "ignore_reinit_error": True}
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            return ray.init(address=address, **common)
        return ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                        object_store_memory=OBJECT_STORE_BYTES, **common)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "an embedded local Ray"
        raise MRQError(f"cannot start {where}: {one_line(err)}") from None


def run_sweep(runs: list[RunSpec], out: Path, address: str | None = None, max_concurrent: int | None = None,
              cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, retries: int = 2,
              show: Callable[[list[dict[str, Any]]], None] | None = None, poll_s: float = 1.0) -> list[dict[str, Any]]:
    """Train every run of the sweep into `out`; returns one record per run (status, step, eval, error, ...).

    Finished runs are skipped, started ones resume from their checkpoints, and a run that fails for any
    reason but bad input is tried again up to `retries` times. `show(records)` is called as progress arrives.
    """
    if cpus_per_run <= 0 or gpus_per_run < 0 or retries < 0 or (max_concurrent is not None and max_concurrent < 1):
        raise MRQError("--cpus-per-run must be > 0, --gpus-per-run and --retries >= 0, --max-concurrent >= 1")
    out.mkdir(parents=True, exist_ok=True)
    records = _initial_records(runs, out)
    todo = deque(r for r in runs if records[r.name]["status"] != "done")
    state = {"runs": records}
    write_state(out, state)
    if not todo:
        return list(records.values())
    ray = import_ray()
    local_cpus = None if (address or os.environ.get("RAY_ADDRESS")) else _local_cpus(max_concurrent, cpus_per_run)
    init_ray(address, local_cpus)
    try:
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        # one retry policy, ours: a dead worker comes back from ray.get as an error and is retried below
        task = ray.remote(_train_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
        threads = max(1, int(cpus_per_run))
        inflight: dict[Any, RunSpec] = {}
        limit = max_concurrent or len(todo)
        while todo or inflight:
            while todo and len(inflight) < limit:
                run = todo.popleft()
                rec = records[run.name]
                rec.update(status="queued", attempts=rec["attempts"] + 1, error=None)
                inflight[task.remote(run, str(out), threads, gpus_per_run, board)] = run
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll_s)
            for ref in ready:
                run = inflight.pop(ref)
                rec = records[run.name]
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - the worker died (after Ray's own retries)
                    result = {"ok": False, "retry": True, "error": f"{type(err).__name__}: {one_line(err)}"}
                if result["ok"]:
                    summary = result["summary"]
                    rec.update(status="done", step=summary["step"], eval_return=summary["eval_return_mean"])
                elif result["retry"] and rec["attempts"] <= retries:
                    rec.update(status="retrying", error=result["error"])
                    todo.append(run)
                else:
                    rec.update(status="failed", error=result["error"])
            _merge_progress(records, ray.get(board.snapshot.remote()))
            write_state(out, state)
            if show is not None:
                show(list(records.values()))
    finally:
        ray.shutdown()
    return list(records.values())


def _local_cpus(max_concurrent: int | None, cpus_per_run: float) -> int:
    """CPUs for the embedded Ray: the machine's, or just what `max_concurrent` runs need if that is fewer."""
    machine = os.cpu_count() or 1
    if max_concurrent is None:
        return max(machine, math.ceil(cpus_per_run))
    return max(1, min(machine, math.ceil(max_concurrent * cpus_per_run)))


def _initial_records(runs: list[RunSpec], out: Path) -> dict[str, dict[str, Any]]:
    previous = read_state(out).get("runs", {})
    records = {}
    for run in runs:
        status, step = run_status(run, out / run.name)
        records[run.name] = {
            "name": run.name, "env": run.env, "seed": run.seed, "folder": str(out / run.name),
            "status": "done" if status == "done" else "pending", "skipped": status == "done",
            "resumed_from": step if status == "resume" else None, "step": step, "steps": run.steps,
            "steps_per_s": math.nan, "eval_return": _last_eval(out / run.name), "attempts": 0, "error": None,
            "previous_error": previous.get(run.name, {}).get("error"), "command": run.command(out),
        }
    return records


def _last_eval(folder: Path) -> float:
    from mrq_agents.export import metrics_rows

    rows = metrics_rows(folder)
    return float(rows[-1]["eval_return_mean"]) if rows else math.nan


def _merge_progress(records: dict[str, dict[str, Any]], progress: dict[str, dict[str, Any]]) -> None:
    for name, info in progress.items():
        rec = records.get(name)
        if rec is None or rec["status"] in ("done", "failed"):
            continue
        if rec["status"] in ("queued", "retrying"):
            rec["status"] = "running"
        rec.update(step=info["step"], steps=info["steps"], eval_return=info["eval_return"])
        if not math.isnan(info["steps_per_s"]):
            rec["steps_per_s"] = info["steps_per_s"]


def is_tty() -> bool:
    return sys.stdout.isatty()
