"""Acting without torch, for real: in a virtual environment holding only the built wheel (`pip install
mrq-agents`, no torch), zoo agents (downloaded from the loopback Hub, as a user gets them) and export folders load
with the ONNX backend, play, record, and act like the torch backend on the same observations; training says it
needs torch. The environment: the `torch_free_python` fixture (tests/conftest.py).
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers.hub_server import HubServer, client_env
from helpers.model_folders import make_model_folder
from helpers.zoo_hub import serve
from mrq_agents import Policy, zoo

pytestmark = pytest.mark.slow

CHILD = Path(__file__).parent / "helpers" / "torch_free_child.py"
EXPORTS = {"Pendulum-v1": "vector", "CartPole-v1": "discrete", "ALE/Pong-v5": "pixel"}


@pytest.fixture(scope="module")
def python(torch_free_python):
    return torch_free_python


@pytest.fixture(scope="module")
def hub_env(tmp_path_factory):
    """The environment of a user whose zoo agents come from the Hub: every entry on the loopback Hub, an empty cache."""
    with HubServer() as hub:
        serve(hub, zoo.entries())
        yield client_env(tmp_path_factory.mktemp("hf"), "hf_unused", HF_ENDPOINT=hub.url)


def run(args, env, cwd):
    env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


def observations(policy, count=24):
    env = policy.make_env(seed=0)
    obs, _ = env.reset(seed=0)
    seen = [obs]
    while len(seen) < count:
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        seen.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(seen)


def test_zoo_agents_and_exports_act_like_torch_without_torch(python, hub_env, tmp_path):
    sources = {}
    for env_id, kind in EXPORTS.items():
        run_dir, _, _ = make_model_folder(tmp_path / f"{kind}-run", env_id)
        sources[kind] = Policy.from_pretrained(run_dir, backend="torch").save_pretrained(tmp_path / kind)
    for entry in zoo.entries():
        sources[f"zoo {entry['env_id']}"] = entry["repo_id"]
    cases, expected = [], {}
    for name, source in sources.items():
        policy = Policy.from_pretrained(source, backend="torch")
        obs = observations(policy)
        np.save(tmp_path / f"{len(cases)}-obs.npy", obs)
        expected[str(source)] = (policy, obs, tmp_path / f"{len(cases)}-out.npy")
        cases.append(
            {
                "source": str(source),
                "obs": str(tmp_path / f"{len(cases)}-obs.npy"),
                "out": str(tmp_path / f"{len(cases)}-out.npy"),
            }
        )
    result = run([str(python), str(CHILD), json.dumps(cases)], hub_env, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["torch_imported"] is False
    assert len(report["cases"]) == len(cases)
    for case in report["cases"]:
        assert case["backend"] == "onnx" and case["length"] > 0 and case["evaluate_episodes"] == 1
        policy, obs, out = expected[case["source"]]
        got, want = np.load(out), policy.act(obs)
        if policy.spec.discrete:  # the deterministic argmax, exactly
            np.testing.assert_array_equal(got, want)
            assert case["single"] == int(want[0])
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
            np.testing.assert_allclose(case["single"], want[0], rtol=0, atol=1e-5)
    zoo_return = next(c["return"] for c in report["cases"] if c["source"] == "mrq-agents/mrq-InvertedPendulum-v4")
    assert zoo_return == 1000.0  # the zoo agent balances for the whole episode, as with torch


def test_mrq_play_records_a_zoo_agent_without_torch(python, hub_env, tmp_path):
    mrq = python.parent / "mrq"
    result = run(
        [str(mrq), "play", "InvertedPendulum-v4", "--episodes", "1", "--record", "--video-dir", str(tmp_path)],
        hub_env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "episode 1: return 1000.00, 1000 steps" in result.stdout
    assert (tmp_path / "InvertedPendulum-v4-seed0.mp4").stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "Pendulum-v1", "--steps", "10"],
            '`mrq train` needs torch, which is not installed: pip install "mrq-agents[train]"',
        ),
        (["play", "InvertedPendulum-v4", "--backend", "torch"], "backend='torch'"),
    ],
)
def test_what_needs_torch_says_so_in_one_line(python, hub_env, args, message, tmp_path):
    result = run([str(python.parent / "mrq"), *args], hub_env, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
