"""Rendering on a machine without a display, with nothing set up by the user or by the test suite."""

import ctypes.util
import subprocess
import sys

import imageio.v2 as imageio
import pytest

from helpers.model_folders import make_model_folder
from helpers.user_env import MRQ, user_env
from mrq_agents.rendering import choose_gl_backend

HAS_HEADLESS_GL = bool(ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa"))


@pytest.mark.skipif(not HAS_HEADLESS_GL, reason="this machine has neither libEGL nor libOSMesa")
def test_mrq_play_records_headless_without_any_setup(tmp_path):
    """`mrq play ENV --record` in a shell with no DISPLAY and no MUJOCO_GL (the README's line, on a small model)."""
    env_id = "InvertedPendulum-v4"  # a Gym MuJoCo env; an untrained policy drops the pole in a few steps
    folder, _, _ = make_model_folder(tmp_path / "model", env_id)
    proc = subprocess.run(
        MRQ + ["play", env_id, "--model", str(folder), "--record", "--video-dir", str(tmp_path / "videos")],
        capture_output=True,
        text=True,
        env=user_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "DISPLAY" not in proc.stderr
    (path,) = (tmp_path / "videos").glob("*.mp4")
    reader = imageio.get_reader(path)
    assert reader.count_frames() > 1
    reader.close()


@pytest.mark.parametrize(
    "environ, libraries, expected, pyopengl",
    [
        ({}, {"EGL", "OSMesa"}, "egl", "egl"),  # headless: EGL first
        ({}, {"OSMesa"}, "osmesa", "osmesa"),  # then OSMesa
        ({}, set(), None, None),  # neither: left to MuJoCo's own message
        ({"DISPLAY": ":0"}, {"EGL"}, None, None),  # a display: GLFW as usual
        ({"MUJOCO_GL": "osmesa"}, {"EGL"}, "osmesa", None),  # the user's choice is kept as it is
    ],
)
def test_choose_gl_backend(environ, libraries, expected, pyopengl):
    environ = dict(environ)
    got = choose_gl_backend(environ, platform="linux", find_library=lambda name: name if name in libraries else None)
    assert got == expected
    assert environ.get("MUJOCO_GL") == expected
    assert environ.get("PYOPENGL_PLATFORM") == pyopengl


def test_choose_gl_backend_keeps_the_users_pyopengl_platform():
    environ = {"PYOPENGL_PLATFORM": "egl"}
    assert choose_gl_backend(environ, platform="linux", find_library=lambda name: name) == "egl"
    assert environ == {"PYOPENGL_PLATFORM": "egl", "MUJOCO_GL": "egl"}


def test_other_platforms_are_left_alone():
    environ: dict = {}
    assert choose_gl_backend(environ, platform="darwin", find_library=lambda name: name) is None
    assert environ == {}


def test_importing_the_package_sets_nothing_and_building_an_env_chooses_the_backend():
    """`import mrq_agents` (and its envs) leaves the environment alone; building an env, where MuJoCo may be
    imported, chooses the backend first."""
    code = (
        "import os, sys, mrq_agents, mrq_agents.envs; print(os.environ.get('MUJOCO_GL'), 'mujoco' in sys.modules); "
        "mrq_agents.envs.make_env('Pendulum-v1'); print(os.environ.get('MUJOCO_GL'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=user_env(), check=True)
    imported, built = out.stdout.splitlines()
    assert imported == "None False"
    assert built == str(choose_gl_backend(dict(user_env())))
