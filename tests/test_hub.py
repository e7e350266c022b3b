"""Hub layer (`mrq_agents.hub`) against the real `huggingface_hub` client, fully offline.

The client talks to a loopback Hub (tests/helpers/hub_server.py) and keeps its cache in a temp dir.
huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE once, when it is imported, so every
scenario runs the client in a fresh subprocess whose environment sets them: the same thing a user's shell does.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from helpers.hub_server import HubServer, client_env
from mrq_agents.errors import CheckpointError
from mrq_agents.hub import push_folder, resolve_source

REPO, TOKEN = "org/mrq-test", "hf_dummy_test_token"
DOWNLOADED = [
    "README.md",
    "actor.onnx",
    "config.json",
    "metrics.csv",
    "model.safetensors",
    "results.json",
]  # what resolve_source fetches
UPLOADED = DOWNLOADED + ["learning_curve.png", "replay.mp4"]  # what push_folder sends
NOT_UPLOADED = ["checkpoint.safetensors", "events.out.tfevents.1700000000.host.123.0"]
MODEL_CARD = """---
library_name: mrq-agents
tags:
- reinforcement-learning
- mrq
- CartPole-v1
model-index:
- name: mrq-CartPole-v1
  results:
  - task:
      type: reinforcement-learning
      name: reinforcement-learning
    dataset:
      name: CartPole-v1
      type: CartPole-v1
    metrics:
    - type: mean_reward
      value: 500.00 +/- 0.00
      name: mean_reward
---

# MR.Q agent for CartPole-v1
"""

# Runs in the subprocess: each call is [op, kwargs]; prints one JSON list of {"ok": str} or {"error": message}.
CLIENT = """
import json, sys
from mrq_agents.errors import CheckpointError
from mrq_agents.hub import push_folder, resolve_source
results = []
for op, kwargs in json.loads(sys.argv[1]):
    try:
        results.append({"ok": str({"push": push_folder, "resolve": resolve_source}[op](**kwargs))})
    except CheckpointError as e:
        results.append({"error": str(e)})
print(json.dumps(results))
"""


def hub_client(env: dict, *calls: tuple[str, dict]) -> list[dict]:
    """Run `calls` in order in one fresh Python process with environment `env`."""
    run = subprocess.run(
        [sys.executable, "-c", CLIENT, json.dumps(calls)], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.splitlines()[-1])


def error_of(result: dict) -> str:
    assert "error" in result, f"expected a CheckpointError, got {result}"
    assert "\n" not in result["error"]
    return result["error"]


def write_weights(path: Path, value: float) -> None:
    save_file({"encoder.weight": torch.full((4, 3), value), "policy.bias": torch.arange(2.0) + value}, str(path))


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """An export folder as `mrq` writes it, plus run-folder files that must never be uploaded."""
    folder = tmp_path / "export"
    folder.mkdir()
    config = {
        "format_version": 1,
        "algorithm": {"zs_dim": 32},
        "env": {"env_id": "CartPole-v1"},
        "spaces": {"obs_shape": [4], "action_kind": "discrete", "action_dim": 2},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    write_weights(folder / "model.safetensors", 1.0)
    (folder / "actor.onnx").write_bytes(b"\x08\x07onnx graph")
    (folder / "README.md").write_text(MODEL_CARD)
    (folder / "results.json").write_text(json.dumps({"mean_return": 500.0, "std_return": 0.0, "episodes": 10}))
    (folder / "replay.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    (folder / "metrics.csv").write_text("step,eval_return\n1000,500.0\n")
    (folder / "learning_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    save_file({"optimizer.state": torch.zeros(64)}, str(folder / NOT_UPLOADED[0]))
    (folder / NOT_UPLOADED[1]).write_bytes(b"tensorboard events")
    return folder


@pytest.fixture
def hf_env(tmp_path: Path) -> dict:
    """The subprocess environment: a fresh HF cache, a dummy token, no telemetry; HF_ENDPOINT is added per test."""
    return client_env(tmp_path / "hf_home", TOKEN)


def push(folder: Path, **kwargs) -> tuple[str, dict]:
    return "push", {"folder": str(folder), "repo_id": REPO, **kwargs}


def resolve(source: str = REPO, **kwargs) -> tuple[str, dict]:
    return "resolve", {"source": source, **kwargs}


# huggingface_hub with hf_xet installed uploads through its streamed pipeline; HF_HUB_DISABLE_XET=1 takes the
# single create_commit path. Both must round-trip.
@pytest.mark.parametrize("disable_xet", ["0", "1"], ids=["pipelined-upload", "create-commit-upload"])
def test_push_pull_round_trip(export_dir: Path, hf_env: dict, disable_xet: str):
    from huggingface_hub import ModelCard

    with HubServer(token=TOKEN) as hub:
        env = {**hf_env, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": disable_xet}
        first, pulled = hub_client(env, push(export_dir, private=True), resolve())
        sha1 = first["ok"].rsplit("/commit/", 1)[-1]
        assert first["ok"] == f"{hub.url}/{REPO}/commit/{sha1}" and re.fullmatch(r"[0-9a-f]{40}", sha1)
        # The Hub got the export files only (plus the .gitattributes a new repo starts with), as a private repo.
        assert sorted(hub.repos[REPO].commits[sha1]) == sorted([".gitattributes", *UPLOADED])
        assert hub.repos[REPO].private
        folder = Path(pulled["ok"])
        assert folder.name == sha1 and sorted(p.name for p in folder.iterdir()) == DOWNLOADED
        for name in DOWNLOADED:
            assert (folder / name).read_bytes() == (export_dir / name).read_bytes(), name
        card = ModelCard.load(folder / "README.md")
        assert card.data.library_name == "mrq-agents"
        assert {"reinforcement-learning", "mrq", "CartPole-v1"} <= set(card.data.tags)
        assert card.data.eval_results[0].dataset_name == "CartPole-v1"

        # A second push is a new revision; the first stays reachable by its commit sha.
        old_weights = (export_dir / "model.safetensors").read_bytes()
        write_weights(export_dir / "model.safetensors", 2.0)
        (export_dir / "results.json").write_text(json.dumps({"mean_return": 480.0}))
        second, latest, old = hub_client(
            env, push(export_dir, commit_message="Retrained"), resolve(), resolve(revision=sha1)
        )
    sha2 = second["ok"].rsplit("/commit/", 1)[-1]
    assert re.fullmatch(r"[0-9a-f]{40}", sha2) and sha2 != sha1
    assert Path(latest["ok"]).name == sha2 and Path(old["ok"]).name == sha1
    assert (Path(latest["ok"]) / "model.safetensors").read_bytes() == (export_dir / "model.safetensors").read_bytes()
    assert (Path(latest["ok"]) / "results.json").read_text() == (export_dir / "results.json").read_text()
    assert (Path(latest["ok"]) / "README.md").read_text() == MODEL_CARD  # unchanged files carry over
    assert (Path(old["ok"]) / "model.safetensors").read_bytes() == old_weights


def test_cached_repo_resolves_when_hub_is_down_or_offline(export_dir: Path, hf_env: dict):
    with HubServer(token=TOKEN) as hub:
        env = {**hf_env, "HF_ENDPOINT": hub.url}
        _, online = hub_client(env, push(export_dir), resolve())
    # Server stopped: the cached snapshot is used; pushing says it cannot reach the Hub.
    unreachable, unreachable_push = hub_client(env, resolve(), push(export_dir))
    assert unreachable["ok"] == online["ok"]
    assert "could not reach the Hub" in error_of(unreachable_push)
    # HF_HUB_OFFLINE=1: no request at all; the cache answers, and an uncached repo is a one-line error.
    offline, by_flag, unknown, offline_push = hub_client(
        {**env, "HF_HUB_OFFLINE": "1"},
        resolve(),
        resolve(local_files_only=True),
        resolve("org/never-pushed"),
        push(export_dir),
    )
    assert offline["ok"] == by_flag["ok"] == online["ok"]
    assert sorted(p.name for p in Path(offline["ok"]).iterdir()) == DOWNLOADED
    message = error_of(unknown)
    assert message.startswith("org/never-pushed not found on the Hub or in the local cache")
    assert "HF_HUB_OFFLINE=1" in message and "download it once online" in message
    assert "needs the network but HF_HUB_OFFLINE=1 is set" in error_of(offline_push)


def test_onnx_backend_acts_from_the_hub_cache(hf_env: dict, tmp_path: Path):
    """actor.onnx reads its tensors from the model.safetensors beside it; in the Hub cache both are symlinks into
    blobs/ named by hash, and onnxruntime still finds them: a pulled export acts as the pushed one."""
    import numpy as np

    from helpers.model_folders import make_model_folder
    from mrq_agents import Policy

    run, _, _ = make_model_folder(tmp_path / "run", "Pendulum-v1")
    export = Policy.from_pretrained(run, backend="torch").save_pretrained(tmp_path / "export")
    with HubServer(token=TOKEN) as hub:
        _, pulled = hub_client({**hf_env, "HF_ENDPOINT": hub.url}, push(export), resolve())
    folder = Path(pulled["ok"])
    assert (folder / "actor.onnx").is_symlink() and (folder / "model.safetensors").is_symlink()
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    want = Policy.from_pretrained(export, backend="onnx").act(obs)
    np.testing.assert_array_equal(Policy.from_pretrained(folder, backend="onnx").act(obs), want)


def test_hub_errors_are_one_line(export_dir: Path, hf_env: dict, tmp_path: Path):
    with HubServer(token=TOKEN) as hub:
        hub.commit("org/not-mrq", {"README.md": b"# just a readme\n"})
        env = {**hf_env, "HF_ENDPOINT": hub.url}
        results = hub_client(
            env,
            push(export_dir),
            resolve("org/not-mrq"),
            resolve("org/missing"),
            resolve(revision="no-such-branch"),
            resolve(revision="0" * 40),
            push(export_dir, token="hf_wrong_token"),
            push(export_dir, repo_id="org/bad--name"),
        )
    pushed, not_mrq, missing, bad_branch, bad_sha, bad_token, bad_id = results
    assert "ok" in pushed
    assert error_of(not_mrq).startswith("org/not-mrq is not an MR.Q export: no config.json")
    assert error_of(missing).startswith("org/missing not found on the Hub or in the local cache")
    assert "HF_HUB_OFFLINE" not in error_of(missing)
    assert error_of(bad_branch).startswith(f"revision 'no-such-branch' not found in Hub repo {REPO}")
    assert error_of(bad_sha).startswith(f"revision '{'0' * 40}' not found in Hub repo {REPO}")
    assert "(HTTP 401: Invalid credentials in Authorization header); check your token" in error_of(bad_token)
    assert "not a valid Hub repo id" in error_of(bad_id)


def test_local_errors_are_one_line(export_dir: Path, tmp_path: Path):
    """Input mistakes caught before any Hub request."""
    not_export = tmp_path / "not_export"
    not_export.mkdir()
    (not_export / "README.md").write_text("# notes\n")
    no_version = tmp_path / "no_version"
    no_version.mkdir()
    (no_version / "config.json").write_text('{"algorithm": {}}')
    write_weights(no_version / "model.safetensors", 0.0)
    cases = [
        (lambda: resolve_source(tmp_path / "missing"), "no folder at"),
        (lambda: resolve_source("./runs/missing"), "no folder at"),
        (lambda: resolve_source("a/b/c"), "no folder at"),
        (lambda: resolve_source(export_dir / "config.json"), "is a file, not a model folder"),
        (lambda: push_folder(tmp_path / "missing", REPO), "no folder at"),
        (lambda: push_folder(not_export, REPO), "is not an MR.Q export: no config.json or model.safetensors"),
        (lambda: push_folder(no_version, REPO), "is not an MR.Q model config (no format_version)"),
    ]
    for call, expected in cases:
        with pytest.raises(CheckpointError, match=re.escape(expected)) as info:
            call()
        assert "\n" not in str(info.value)
    assert resolve_source(export_dir) == export_dir  # a local folder is returned as is
    assert resolve_source(str(export_dir)) == export_dir
