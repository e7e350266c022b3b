"""The run folder as a resource: one writer at a time (an OS file lock), leftovers of killed writes, starting over.

The lock is `fcntl.flock` on `run.lock` in the folder: the OS drops it when its process ends, however it ends,
so a killed run never leaves a stale lock behind. The file holds the PID of the process that holds the lock,
so a refused writer can say who holds it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import IO

from mrq_agents.errors import ConfigError
from mrq_agents.files import LOCK_FILE, RUN_FILES

EVENTS_GLOB = "events.out.tfevents.*"


class RunFolderBusyError(ConfigError):
    """Another process is writing to the run folder."""


def make_folder(out: Path) -> None:
    """Create `out` (and its parents); a path that exists but is not a folder is a one-line error."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder: choose another --out")
    out.mkdir(parents=True, exist_ok=True)  # OSErrors (read-only, missing mount, full disk) -> the CLI's one line


def lock(out: Path) -> IO[str] | None:
    """Hold the run folder's lock until the returned file is closed (or the process ends).

    Raises RunFolderBusyError naming the holder's PID. Returns None where the OS has no flock (Windows).
    """
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(out / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunFolderBusyError(
            f"{out} is in use by another mrq process (PID {holder}): wait for it to end or "
            "stop it (Ctrl-C writes a checkpoint), or choose another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def remove_leftovers(out: Path) -> list[Path]:
    """Delete the temp files of atomic writes that a killed process left behind (`.<name>.<random>.tmp`)."""
    removed = []
    for name in RUN_FILES:
        for tmp in glob.glob(glob.escape(str(out / f".{name}.")) + "*.tmp"):
            Path(tmp).unlink(missing_ok=True)
            removed.append(Path(tmp))
    return removed


def remove_run(out: Path) -> None:
    """Delete the files a run wrote (config, metrics, curve, weights, checkpoint, TensorBoard events), nothing else."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for events in glob.glob(glob.escape(str(out)) + "/" + EVENTS_GLOB):
        Path(events).unlink(missing_ok=True)
