"""Pick MuJoCo's OpenGL backend before anything imports `mujoco`, so rendering works on a headless machine.

`mrq_agents.envs` calls `choose_gl_backend` where an env is built or its family registered (the first places that
import MuJoCo); importing `mrq_agents` changes nothing in the environment.

MuJoCo reads `MUJOCO_GL` once, when it is imported: `glfw` (the default) needs a display, `egl` and `osmesa`
render off-screen. `choose_gl_backend` keeps a user's own `MUJOCO_GL`/`PYOPENGL_PLATFORM`, keeps GLFW where
there is a display, and otherwise takes EGL, then OSMesa, whichever library the machine has.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from typing import Callable, MutableMapping

# backend -> the shared library it loads (ctypes.util.find_library name)
HEADLESS_BACKENDS: dict[str, str] = {"egl": "EGL", "osmesa": "OSMesa"}


def choose_gl_backend(
    environ: MutableMapping[str, str] | None = None,
    platform: str = sys.platform,
    find_library: Callable[[str], str | None] = ctypes.util.find_library,
) -> str | None:
    """Set MUJOCO_GL (and PYOPENGL_PLATFORM to match) in `environ` where nothing else would render.

    Returns the backend in force afterwards (None: MuJoCo's own default, GLFW, with a display).
    Linux only: macOS and Windows render with their native GL without any setting.
    """
    environ = os.environ if environ is None else environ
    if environ.get("MUJOCO_GL"):
        return environ["MUJOCO_GL"]  # the user's choice
    if not platform.startswith("linux") or environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    for backend, library in HEADLESS_BACKENDS.items():
        if find_library(library):
            environ["MUJOCO_GL"] = backend
            environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    return None  # no off-screen GL: rendering fails with MuJoCo's own message (docs/install.md: install libegl1)
