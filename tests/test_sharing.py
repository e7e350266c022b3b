"""`mrq export` and `mrq push`, and `Policy.from_pretrained` by repo id, against the real huggingface_hub client.

The Hub is tests/helpers/hub_server.py on 127.0.0.1; huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE when
it is imported, so each client step runs as a fresh process with its own environment, as a user's shell would.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from helpers.hub_server import HubServer
from helpers.model_folders import make_model_folder
from mrq_agents import Policy
from mrq_agents.cli import app

TOKEN = "hf_dummy_test_token"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder, _, _ = make_model_folder(tmp_path_factory.mktemp("run") / "pendulum", "Pendulum-v1")
    # A run folder also has metrics from its evaluations during training.
    (folder / "metrics.csv").write_text(
        "step,wall_time,episodes,eval_return_mean,eval_return_std\n500,10.0,2,-1200.5,30.25\n1000,21.5,5,-900.0,12.5\n"
    )
    return folder


def client_env(tmp_path, hub, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(
        {
            "HF_ENDPOINT": hub.url if hub else "http://127.0.0.1:9",
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_CACHE": str(tmp_path / "hf_cache"),
            "HF_TOKEN": TOKEN,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **extra,
        }
    )
    return env


def mrq(args, env):
    return subprocess.run(
        [sys.executable, "-m", "mrq_agents.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


ACT = """
import json, sys, numpy as np
from mrq_agents import Policy
policy = Policy.from_pretrained(sys.argv[1], revision=sys.argv[2] or None)
obs = np.asarray(json.loads(sys.argv[3]), dtype=np.float32)
print(json.dumps(policy.act(obs).tolist()))
"""


def act_via(env, source, obs, revision=""):
    run = subprocess.run(
        [sys.executable, "-c", ACT, source, revision, json.dumps(obs.tolist())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return np.asarray(json.loads(run.stdout.splitlines()[-1]))


def test_export_writes_the_format_with_a_valid_card(run_dir, tmp_path):
    out = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["export", str(run_dir), "--out", str(out), "--episodes", "2", "--repo-id", "org/mrq-pendulum"]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "model.safetensors",
        "actor.onnx",
        "README.md",
        "results.json",
        "metrics.csv",
    }
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 2 and len(results["returns"]) == 2 and results["deterministic"] is True
    assert results["mean"] == pytest.approx(np.mean(results["returns"]))
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "mrq-agents"
    assert {"Pendulum-v1", "reinforcement-learning", "deep-reinforcement-learning", "mrq"} <= set(card.data.tags)
    metric = card.data.eval_results[0]
    assert metric.metric_type == "mean_reward" and metric.dataset_name == "Pendulum-v1"
    assert metric.metric_value == f"{results['mean']:.2f} +/- {results['std']:.2f}"
    assert 'Policy.from_pretrained("org/mrq-pendulum")' in card.text
    meta = json.loads((out / "config.json").read_text())
    assert meta["training"]["steps"] == 1000 and "mrq train Pendulum-v1" in meta["training"]["command"]
    assert meta["format_version"] == 1 and meta["spaces"]["obs_shape"] == [3]


def test_compact_export_is_smaller_and_acts_the_same(run_dir, tmp_path):
    for flag in ([], ["--compact"]):
        out = tmp_path / ("compact" if flag else "full")
        result = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(out), "--episodes", "1", *flag])
        assert result.exit_code == 0, result.output
    full, compact = Policy.from_pretrained(tmp_path / "full"), Policy.from_pretrained(tmp_path / "compact")
    assert json.loads((tmp_path / "compact" / "config.json").read_text())["weights_storage"] == "compact"
    size = lambda folder: (folder / "model.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "compact") < 0.8 * size(tmp_path / "full")
    obs = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    np.testing.assert_array_equal(full.act(obs), compact.act(obs))
    assert (
        json.loads((tmp_path / "full" / "results.json").read_text())["returns"]
        == json.loads((tmp_path / "compact" / "results.json").read_text())["returns"]
    )
    # The card says what fine-tuning gets: float32 critics on load, with float16's rounding in their values.
    assert "fine-tuning starts from rounded critics" in (tmp_path / "compact" / "README.md").read_text()
    assert "rounded" not in (tmp_path / "full" / "README.md").read_text()


def test_push_pull_round_trip_through_the_hub_protocol(run_dir, tmp_path):
    export = tmp_path / "export"
    assert CliRunner().invoke(app, ["export", str(run_dir), "--out", str(export), "--episodes", "1"]).exit_code == 0
    local = Policy.from_pretrained(export)
    obs = np.asarray([0.3, -0.2, 1.5], dtype=np.float32)
    with HubServer(token=TOKEN) as hub:
        env = client_env(tmp_path, hub)
        pushed = mrq(["push", str(export), "--repo-id", "org/mrq-pendulum"], env)
        assert pushed.returncode == 0, pushed.stderr
        assert "org/mrq-pendulum" in pushed.stdout
        files = hub.repos["org/mrq-pendulum"].files("main")[1]
        assert {"config.json", "model.safetensors", "actor.onnx", "README.md", "results.json"} <= set(files)
        card = ModelCard(files["README.md"].decode())
        assert card.data.library_name == "mrq-agents" and "mrq" in card.data.tags
        # A run folder pushes too: exported on the fly, scored by its last evaluation during training.
        run_push = mrq(["push", str(run_dir), "--repo-id", "org/mrq-pendulum-run"], env)
        assert run_push.returncode == 0, run_push.stderr
        run_files = hub.repos["org/mrq-pendulum-run"].files("main")[1]
        assert "checkpoint.safetensors" not in run_files
        assert "-900.00 +/- 12.50" in ModelCard(run_files["README.md"].decode()).data.to_yaml()
        np.testing.assert_array_equal(act_via(env, "org/mrq-pendulum", obs), local.act(obs))
    # The server is gone: the cache the client wrote serves the repo id offline.
    offline = client_env(tmp_path, None, HF_HUB_OFFLINE="1")
    np.testing.assert_array_equal(act_via(offline, "org/mrq-pendulum", obs), local.act(obs))
    evaluated = mrq(["eval", "org/mrq-pendulum", "--episodes", "1", "--json"], offline)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["env_id"] == "Pendulum-v1"
    missing = mrq(["eval", "org/not-there", "--episodes", "1"], offline)
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_push_refuses_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    result = mrq(["push", str(tmp_path / "empty"), "--repo-id", "org/x"], client_env(tmp_path, None))
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
