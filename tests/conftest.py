"""Shared fixtures; helpers live in tests/helpers/. `pytest` runs everything; `pytest -m "not slow"` skips the
tests marked slow (long physics episodes, real training, subprocesses with their own interpreters, Ray). Tests
marked `gpu` need CUDA: without it they are reported as skipped, never left out silently."""

import os
from pathlib import Path

import pytest

# Small test networks run fastest on one thread, and 2-core CI machines thrash with OpenMP spin-waits
# when parallel test processes each use every core. Set before torch is imported.
# (No rendering set-up here: the package picks MuJoCo's headless backend itself, see test_headless.py.)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU (marked gpu)")


@pytest.fixture(scope="session")
def pendulum_model(tmp_path_factory):
    """(folder, learner, env): a run-like folder of fresh tiny networks for Pendulum-v1 (continuous actions).
    Shared by the whole session: read it, copy it, never write into it."""
    from helpers.model_folders import make_model_folder

    return make_model_folder(tmp_path_factory.mktemp("pendulum") / "run", "Pendulum-v1")


@pytest.fixture(scope="session")
def cartpole_model(tmp_path_factory):
    """(folder, learner, env) as `pendulum_model`, for CartPole-v1 (discrete actions)."""
    from helpers.model_folders import make_model_folder

    return make_model_folder(tmp_path_factory.mktemp("cartpole") / "run", "CartPole-v1")


@pytest.fixture
def offline_hub(monkeypatch):
    """HF_HUB_OFFLINE=1: the zoo and the Hub cache only, as on a machine without network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def torch_free_python() -> Path:
    """The Python of an environment holding only the built wheel (no torch, no zoo files): `.ci/run` builds it and
    names it in MRQ_TORCH_FREE_PYTHON. Outside CI the tests that need it skip without it; in CI (CI=true) they fail.
    To build it locally:

        pip wheel --no-deps -w /tmp/dist . && python3 -m venv /tmp/mrq-notorch
        /tmp/mrq-notorch/bin/pip install /tmp/dist/mrq_agents-*.whl
        MRQ_TORCH_FREE_PYTHON=/tmp/mrq-notorch/bin/python pytest tests/test_torch_free.py tests/test_wheel.py
    """
    path = os.environ.get("MRQ_TORCH_FREE_PYTHON")
    if not path:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("MRQ_TORCH_FREE_PYTHON is not set: .ci/run must build the torch-free environment")
        pytest.skip("no torch-free environment (set MRQ_TORCH_FREE_PYTHON; see tests/conftest.py)")
    if not Path(path).is_file():
        pytest.fail(f"MRQ_TORCH_FREE_PYTHON={path} does not exist")
    return Path(path)
