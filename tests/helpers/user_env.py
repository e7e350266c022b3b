"""Test helper: run the `mrq` console script the way a user does, without the test suite's environment."""

import os
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
