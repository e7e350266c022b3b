"""`mrq sweep` on Ray: the only module that imports Ray.

Each run is one Ray core task that calls `sweep.train_run`, i.e. the `Trainer` of `mrq train` writing an
ordinary run folder; Ray only places tasks on CPUs/GPUs (fractional GPUs share a card). A run that raised, whose
worker process died or whose node was lost is submitted again (up to `retries` times) and resumes from its
checkpoint, on whichever node has room. Resuming, skipping finished runs and retrying failed ones all follow from
the run folders and their checkpoints, so the driver keeps no state that a kill -9 could lose: `DIR/sweep.json`
is a report of the last launch (with what happened to each run: its nodes, lost attempts, resumed steps),
rebuilt from the folders on the next. A run folder has one writer at a time (its lock), so a relaunched sweep
never trains a run beside a dying worker of the killed one.

Connecting (`connected`): `--address HOST:PORT` (or RAY_ADDRESS) attaches to a running cluster, else an
embedded local Ray starts for the sweep. Ray 2.60 on Linux swaps a loopback address for the machine's network
address and starts its servers on every interface; a loopback `--address` and the embedded Ray keep every Ray
process on 127.0.0.1 instead. The embedded Ray gets a token of this process's own, so no other user of the
machine can join it and nothing is written to ~/.ray. Attaching sends the user's Ray token (RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), which Ray 2.60 itself does only when it finds a cluster without an
address. A malformed address, a dead cluster and a refused token are each one line.

Why core tasks rather than Ray Tune: a run already has its own folder, checkpoints, resume logic and
metrics; Tune would add a second experiment folder, its own trial checkpoints and restore rules to keep in
step with ours, for a scheduler (a grid of independent runs, no early stopping) that tasks give directly.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
import socket
import sys
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from mrq_agents.errors import MRQError, one_line
from mrq_agents.sweep import RunSpec, read_state, run_status, train_run, write_state

INSTALL_HINT = 'mrq sweep needs Ray: pip install "mrq-agents[ray]"'
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # runs exchange only small dicts; keep the embedded Ray lean
PROBE_TIMEOUT_S = 5.0  # a cluster's GCS port answers a TCP connect in well under this
RAY_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # set while connected, then restored
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
_PROCESS_TOKEN = secrets.token_hex(32)  # the embedded Ray's token: one per process, as Ray caches the first it reads
LOSSES = {  # Ray's errors for a task whose process or node went away -> what the sweep's status says
    "NodeDiedError": "its node was lost",
    "WorkerCrashedError": "its worker process died",
    "OutOfMemoryError": "Ray's memory monitor killed it",
    "TaskUnschedulableError": "no node can run it",
}


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
        previous = self.runs.get(name, {})
        if previous.get("attempt") != info.get("attempt"):  # a new attempt starts afresh
            previous = {}
        self.runs[name] = {**previous, **info, "time": time.time()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.runs


def _train_task(run: RunSpec, out: str, threads: int, gpus: float, board: Any, attempt: int) -> dict[str, Any]:
    """Body of one Ray task: train the run; errors come back as one line (no exception objects to unpickle)."""
    import dataclasses

    import ray

    if run.device is None and gpus == 0:
        run = dataclasses.replace(run, device="cpu")
    context = ray.get_runtime_context()
    where = {"attempt": attempt, "node": f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"}
    try:
        summary = train_run(
            run, Path(out), threads=threads, report=lambda info: board.update.remote(run.name, {**info, **where})
        )
    except MRQError as err:  # the run's input is wrong, or another process trains it: retrying cannot help
        return {"ok": False, "retry": False, "error": one_line(err)}
    except Exception as err:  # noqa: BLE001 - anything else is reported and retried
        return {"ok": False, "retry": True, "error": f"{type(err).__name__}: {one_line(err)}"}
    return {"ok": True, "summary": summary}


# --------------------------------------------------------------------------------------------- connecting


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of a cluster address HOST:PORT ([::1]:PORT for IPv6); anything else is a one-line MRQError."""
    if "://" in address:
        raise MRQError(
            f"--address {address}: Ray Client addresses (ray://...) are not supported: run mrq sweep on a "
            "node of the cluster with --address HEAD_HOST:PORT (the port of `ray start --head --port`)"
        )
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MRQError(
            f"--address {address!r} is not HOST:PORT: give the head node's address and the port of "
            "`ray start --head --port`, e.g. 10.0.0.1:6379"
        )
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IPs (127.0.0.0/8, ::1)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_source() -> str | None:
    """Where this machine's Ray token comes from, in Ray's order of precedence; None where there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
    default = DEFAULT_TOKEN_FILE.expanduser()
    return str(default) if default.is_file() else None


@contextmanager
def connected(address: str | None, num_cpus: int | None) -> Iterator[Any]:
    """Ray, attached to `address` (or RAY_ADDRESS) or started locally with `num_cpus` CPUs; shut down on exit."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    host = None
    if address is not None:
        host, port = parse_address(address)
        _probe(address, host, port)
    source, mode = token_source(), os.environ.get("RAY_AUTH_MODE", "").lower()
    loopback = host is None or is_loopback(host)
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} if loopback else {}  # Ray's child processes read it
    if address is None and source is None and mode != "disabled":
        env["RAY_AUTH_TOKEN"] = _PROCESS_TOKEN
    common = {"log_to_driver": False, "logging_level": logging.ERROR, "ignore_reinit_error": True}
    written: list[str] = []
    with _environment(env), _cluster_mode(ray, on=not loopback):
        try:
            with _stderr_kept(written):
                if address is not None:
                    _send_users_token()
                    ray.init(address=address, **common)
                else:
                    ray.init(
                        address="local",
                        num_cpus=num_cpus,
                        include_dashboard=False,
                        object_store_memory=OBJECT_STORE_BYTES,
                        **common,
                    )
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
            ray.shutdown()  # whatever part of Ray did start
            raise MRQError(_connect_error(address, err, "".join(written), source, mode, ray.__version__)) from None
        try:
            yield ray
        finally:
            ray.shutdown()


def _probe(address: str, host: str, port: int) -> None:
    """Fail in seconds where nothing listens at the address (Ray itself retries for 20 s, then names no cause)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise MRQError(
            f"no Ray cluster answers at {address} ({one_line(err.strerror or err)}): start one there with "
            f"`ray start --head --port {port}`, or check --address / RAY_ADDRESS"
        ) from None


def _send_users_token() -> None:
    """Send this machine's Ray token, where it has one and RAY_AUTH_MODE is unset: Ray 2.60 does so by itself only
    for a cluster it finds without an address, with the function called here."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication (before 2.52)
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _connect_error(
    address: str | None, err: BaseException, written: str, source: str | None, mode: str, version: str
) -> str:
    """One line for a failed ray.init, from its exception and what Ray's C++ client logged meanwhile."""
    if address is None:
        return f"cannot start an embedded local Ray: {one_line(err)}"
    if "InvalidAuthToken" in written or type(err).__name__ == "AuthenticationError":
        if mode == "disabled":
            fix = "RAY_AUTH_MODE=disabled keeps this driver from sending a token: unset it"
        elif source is None:
            fix = (
                "this machine has no Ray token: put the cluster's (`ray get-auth-token` on the head node) in "
                "RAY_AUTH_TOKEN or ~/.ray/auth_token"
            )
        else:
            fix = (
                f"the token from {source} is not the cluster's: use the one `ray get-auth-token` prints on the "
                "head node"
            )
        return f"the Ray cluster at {address} refused this driver (token authentication): {fix}"
    return (
        f"cannot attach to the Ray cluster at {address}: {one_line(err)}: is it the port of `ray start --head "
        f"--port`, and does the cluster run Ray {version}, as here?"
    )


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in os.environ; on exit, restore every variable of RAY_ENV (ray.init may set RAY_AUTH_MODE)."""
    saved = {key: os.environ.get(key) for key in RAY_ENV}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _cluster_mode(ray: Any, on: bool) -> Iterator[None]:
    """Ray's multi-node mode, off for loopback: Ray 2.60 has no public switch to keep a Linux node on 127.0.0.1.

    With the mode on (the Linux default), Ray replaces 127.0.0.1 by the machine's network address; off (its
    macOS/Windows default, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), the node's address stays 127.0.0.1, and Ray's
    servers on a node with that address listen on 127.0.0.1 only. Ray reads the variable once, at import, so
    this process's copy is switched here and restored on exit.
    """
    constants = ray._private.ray_constants
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = on and saved
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


@contextmanager
def _stderr_kept(written: list[str]) -> Iterator[None]:
    """Keep what reaches file descriptor 2 (Ray's C++ client logs its retries there) off the terminal; on exit,
    append it to `written`, so that a refused connection can say why in one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            written.append(sink.read().decode(errors="replace"))


# --------------------------------------------------------------------------------------------- the sweep


def run_sweep(
    runs: list[RunSpec],
    out: Path,
    address: str | None = None,
    max_concurrent: int | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    retries: int = 2,
    show: Callable[[list[dict[str, Any]]], None] | None = None,
    poll_s: float = 1.0,
) -> list[dict[str, Any]]:
    """Train every run of the sweep into `out`; returns one record per run (status, step, eval, events, ...).

    Finished runs are skipped, started ones resume from their checkpoints, and a run that fails for any
    reason but bad input (a crash, a lost node) is tried again up to `retries` times. `show(records)` is called
    as progress arrives.
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
    address = address or os.environ.get("RAY_ADDRESS") or None
    local_cpus = None if address else _local_cpus(max_concurrent, cpus_per_run)
    with connected(address, local_cpus) as ray:
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # the board lives on the driver's node, so that losing another node loses no progress
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            board = ray.remote(num_cpus=0)(ProgressBoard).options(scheduling_strategy=here).remote()
            # one retry policy, ours: a dead worker or node comes back from ray.get as an error and is retried below
            task = ray.remote(_train_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
            threads = max(1, int(cpus_per_run))
            inflight: dict[Any, RunSpec] = {}
            limit = max_concurrent or len(todo)
            while todo or inflight:
                while todo and len(inflight) < limit:
                    run = todo.popleft()
                    rec = records[run.name]
                    rec.update(status="queued", attempts=rec["attempts"] + 1, error=None)
                    inflight[task.remote(run, str(out), threads, gpus_per_run, board, rec["attempts"])] = run
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll_s)
                _merge_progress(records, ray.get(board.snapshot.remote()))
                for ref in ready:
                    run = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - the worker or its node died
                        result = {"ok": False, "retry": True, "error": _loss(err)}
                    if _finish_attempt(records[run.name], result, retries):
                        todo.append(run)
                write_state(out, state)
                if show is not None:
                    show(list(records.values()))
        except (ray.exceptions.RayError, ConnectionError) as err:  # the driver's node or the whole cluster is gone
            write_state(out, state)
            where = f"the Ray cluster at {address}" if address else "the embedded local Ray"
            raise MRQError(
                f"lost {where} mid-sweep ({type(err).__name__}): the run folders keep their checkpoints; "
                "relaunch the same command once it is back"
            ) from None
    return list(records.values())


def _loss(err: BaseException) -> str:
    name = type(err).__name__
    return f"{LOSSES[name]} ({name})" if name in LOSSES else f"{name}: {one_line(err)}"


def _finish_attempt(rec: dict[str, Any], result: dict[str, Any], retries: int) -> bool:
    """Record an attempt's outcome (a failed one in the run's events too); True: try the run again."""
    if result["ok"]:
        summary = result["summary"]
        rec.update(status="done", step=summary["step"], eval_return=summary["eval_return_mean"])
        return False
    where = f" on {rec['node']}" if rec["node"] else ""
    rec["events"].append(f"attempt {rec['attempts']}{where}: {result['error']} (last reported at step {rec['step']:,})")
    retry = result["retry"] and rec["attempts"] <= retries
    rec.update(status="retrying" if retry else "failed", error=result["error"])
    return retry


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
            "name": run.name,
            "env": run.env,
            "seed": run.seed,
            "folder": str(out / run.name),
            "status": "done" if status == "done" else "pending",
            "skipped": status == "done",
            "resumed_from": step if status == "resume" else None,
            "step": step,
            "steps": run.steps,
            "steps_per_s": math.nan,
            "eval_return": _last_eval(out / run.name),
            "attempts": 0,
            "error": None,
            "node": None,
            "events": [],
            "previous_error": previous.get(run.name, {}).get("error"),
            "command": run.command(out),
        }
    return records


def _last_eval(folder: Path) -> float:
    from mrq_agents.model_folder import metrics_rows

    rows = metrics_rows(folder)
    return float(rows[-1]["eval_return_mean"]) if rows else math.nan


def _merge_progress(records: dict[str, dict[str, Any]], progress: dict[str, dict[str, Any]]) -> None:
    """Fold the board's reports of each run's current attempt into its record (older attempts' are ignored)."""
    for name, info in progress.items():
        rec = records.get(name)
        if rec is None or rec["status"] in ("done", "failed") or info.get("attempt") != rec["attempts"]:
            continue
        if rec["status"] in ("queued", "retrying"):  # the attempt has started: where, and from which step
            rec.update(status="running", node=info["node"], resumed_from=info["started_from"] or None)
            if rec["attempts"] > 1:
                start = (
                    f"resumed from its checkpoint at step {info['started_from']:,}"
                    if info["started_from"]
                    else "started from step 0 (no checkpoint yet)"
                )
                rec["events"].append(f"attempt {rec['attempts']} on {info['node']}: {start}")
        rec.update({key: info[key] for key in ("step", "steps", "eval_return") if key in info})
        if not math.isnan(info.get("steps_per_s", math.nan)):
            rec["steps_per_s"] = info["steps_per_s"]
