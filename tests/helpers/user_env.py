"""Test helper: run the `mrq` console script the way a user does, without the test suite's environment."""

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

MRQ = (
    [str(Path(sys.executable).with_name("mrq"))]
    if Path(sys.executable).with_name("mrq").exists()
    else [sys.executable, "-m", "mrq_agents.cli"]
)

# Variables a user's shell does not have: whatever a test harness or CI runner may have set for rendering
# or threading. A subprocess given `user_env()` has to make these choices itself.
HARNESS_VARIABLES = (
    "MUJOCO_GL",
    "PYOPENGL_PLATFORM",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARIABLES}
    return {**env, **extra}


def files_limited_to(size: int):
    """For `preexec_fn`: the process may not grow a file past `size` bytes (RLIMIT_FSIZE), and a write that would
    fails with EFBIG, as on a full disk (SIGXFSZ, which would kill the process, ignored)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def run_limited(args: list, size: int, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        MRQ + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=user_env(),
        cwd=cwd,
        preexec_fn=files_limited_to(size),
        timeout=300,
    )
