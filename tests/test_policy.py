"""The inference Policy: loading from run and export folders, acting, SB3 compatibility, save/load, bad input."""

import errno
import json
import shutil

import numpy as np
import pytest
import torch

from helpers.model_folders import make_model_folder
from helpers.user_env import run_limited
from mrq_agents import Policy, export
from mrq_agents.errors import CheckpointError, MRQError


@pytest.fixture
def pendulum(pendulum_model):
    return pendulum_model


@pytest.fixture
def cartpole(cartpole_model):
    return cartpole_model


def test_policy_acts_like_the_learner(pendulum):
    folder, learner, env = pendulum
    policy = Policy.from_pretrained(folder)
    obs, _ = env.reset(seed=3)
    expected = learner.act(obs, explore=False)
    np.testing.assert_array_equal(policy.act(obs), expected)
    assert policy.act(obs).dtype == np.float32 and policy.act(obs).shape == (1,)


def test_batched_act_matches_single(pendulum, cartpole):
    for folder, _, env in (pendulum, cartpole):
        policy = Policy.from_pretrained(folder)
        batch = np.stack([env.observation_space.sample() for _ in range(5)])
        batched = policy.act(batch)
        singles = np.stack([policy.act(o) for o in batch])
        np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)
        assert batched.shape[0] == 5


def test_save_load_round_trip_gives_identical_actions(pendulum, cartpole, tmp_path):
    for folder, _, env in (pendulum, cartpole):
        policy = Policy.from_pretrained(folder)
        export = policy.save_pretrained(tmp_path / folder.parent.name)
        loaded = Policy.from_pretrained(export)
        batch = np.stack([env.observation_space.sample() for _ in range(16)])
        np.testing.assert_array_equal(policy.act(batch), loaded.act(batch))
        assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in export.iterdir()}
        meta = json.loads((export / "config.json").read_text())
        assert meta["format_version"] == 1 and meta["env"]["env_id"] == policy.env_config.env_id


def test_export_keeps_value_weights_for_further_learning(pendulum, tmp_path):
    from safetensors.torch import load_file

    folder, learner, _ = pendulum
    export = Policy.from_pretrained(folder).save_pretrained(tmp_path / "export")
    tensors = load_file(str(export / "model.safetensors"))
    assert {k.split(".")[0] for k in tensors} == {"encoder", "value", "policy"}
    for name, value in learner.nets.state_dict().items():
        torch.testing.assert_close(tensors[name], value)


def test_discrete_deterministic_and_stochastic(cartpole):
    folder, _, env = cartpole
    policy = Policy.from_pretrained(folder)
    obs, _ = env.reset(seed=0)
    action = policy.act(obs)
    assert isinstance(int(action), int) and 0 <= int(action) < 2
    torch.manual_seed(0)
    samples = {int(policy.act(obs, deterministic=False)) for _ in range(50)}
    assert samples <= {0, 1}


def test_discrete_scores_default_to_the_papers_sampled_action(cartpole, tmp_path):
    """Policy.evaluate/rollout, `mrq eval` and `mrq export` all score a discrete policy as training's evaluations
    and the paper do: actions sampled from softmax(pre), seeded by the evaluation seed."""
    from typer.testing import CliRunner

    from mrq_agents.cli import app

    folder, _, _ = cartpole
    policy = Policy.from_pretrained(folder)
    default = policy.evaluate(episodes=3, seed=0)
    assert default["deterministic"] is False
    assert default["returns"] == policy.evaluate(episodes=3, seed=0, deterministic=False)["returns"]
    assert policy.rollout(episodes=3, seed=0).returns.tolist() == default["returns"]
    evaluated = CliRunner().invoke(app, ["eval", str(folder), "--episodes", "3", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["returns"] == default["returns"]
    exported = CliRunner().invoke(app, ["export", str(folder), "--out", str(tmp_path / "export"), "--episodes", "3"])
    assert exported.exit_code == 0, exported.output
    results = json.loads((tmp_path / "export" / "results.json").read_text())
    assert results["deterministic"] is False and results["returns"] == default["returns"]
    assert "stochastic (the paper's sampled argmax) policy" in (tmp_path / "export" / "README.md").read_text()


def test_an_argmax_score_says_so_where_it_meets_the_paper():
    from mrq_agents.paper import placement, protocol_note

    breakout, cartpole = placement("ALE/Breakout-v5", 100_000, 12.0), placement("CartPole-v1", 1_000, 500.0)
    assert "argmax(pre)" in protocol_note(breakout, discrete=True, deterministic=True)
    assert protocol_note(breakout, discrete=True, deterministic=False) == ""
    assert protocol_note(breakout, discrete=False, deterministic=True) == ""  # continuous: one policy only
    assert protocol_note(cartpole, discrete=True, deterministic=True) == ""  # no paper score to compare with


def test_rollout_and_make_env(pendulum):
    folder, _, _ = pendulum
    policy = Policy.from_pretrained(folder)
    first = policy.rollout(episodes=2, seed=5)
    again = policy.rollout(episodes=2, seed=5)
    np.testing.assert_array_equal(first.returns, again.returns)
    np.testing.assert_array_equal(first.lengths, [200, 200])
    assert policy.make_env().observation_space.shape == (3,)


def test_wrap_user_env(pendulum):
    import gymnasium as gym

    folder, _, _ = pendulum
    policy = Policy.from_pretrained(folder)
    env = policy.wrap(gym.make("Pendulum-v1"))
    obs, _ = env.reset(seed=0)
    _, _, _, _, _ = env.step(policy.act(obs))
    assert float(env.action_space.high[0]) == 1.0  # the agent acts in [-1, 1]; the wrapper rescales


def test_predict_works_with_stable_baselines3(pendulum, cartpole):
    evaluation = pytest.importorskip("stable_baselines3.common.evaluation")  # in the [test] extras
    for folder, _, _ in (pendulum, cartpole):
        policy = Policy.from_pretrained(folder)
        mean, std = evaluation.evaluate_policy(policy, policy.make_env(), n_eval_episodes=2, deterministic=True)
        assert np.isfinite(mean) and np.isfinite(std)
        actions, state = policy.predict(np.stack([policy.make_env().observation_space.sample()] * 3))
        assert actions.shape[0] == 3 and state is None


def test_wrong_observation_shape_is_a_clear_error(pendulum):
    policy = Policy.from_pretrained(pendulum[0])
    with pytest.raises(ValueError, match="observation shape .* does not match"):
        policy.act(np.zeros(4))


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "file",
        "no_config",
        "newer",
        "not_mrq",
        "unknown_family",
        "corrupt",
        "wrong_shapes",
        "missing_tensor",
        "empty_weights",
    ],
)
def test_bad_sources_are_one_line_errors(case, pendulum, cartpole, tmp_path):
    source = tmp_path / "model"
    if case != "missing":
        shutil.copytree(pendulum[0], source)
    if case == "file":
        source = source / "config.json"
    elif case == "no_config":
        (source / "config.json").unlink()
    elif case == "newer":
        meta = json.loads((source / "config.json").read_text())
        meta["format_version"] = 99
        (source / "config.json").write_text(json.dumps(meta))
    elif case == "not_mrq":
        (source / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif case == "unknown_family":
        meta = json.loads((source / "config.json").read_text())
        meta["env"]["family"] = "mujoco"
        (source / "config.json").write_text(json.dumps(meta))
    elif case == "corrupt":
        (source / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    elif case == "wrong_shapes":  # CartPole's weights under Pendulum's config
        shutil.copyfile(cartpole[0] / "model.safetensors", source / "model.safetensors")
    elif case == "missing_tensor":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(source / "model.safetensors"))
        tensors.pop("policy.net.net.0.weight")
        save_file(tensors, str(source / "model.safetensors"))
    elif case == "empty_weights":
        (source / "model.safetensors").write_bytes(b"")
    with pytest.raises(MRQError) as err:
        Policy.from_pretrained(source)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, CheckpointError)


@pytest.mark.parametrize("device", ["gpu", "cuda:7" if not torch.cuda.is_available() else "cuda:99"])
def test_unusable_device_is_a_clear_error(device, pendulum):
    with pytest.raises(MRQError, match="device"):
        Policy.from_pretrained(pendulum[0], device=device)


def test_train_with_unusable_device_exits_cleanly(tmp_path):
    from typer.testing import CliRunner

    from mrq_agents.cli import app

    result = CliRunner().invoke(app, ["train", "Pendulum-v1", "--device", "gpu", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown device 'gpu'" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "env_id, difference",
    [
        ("CartPole-v1", "observation shape (4,) instead of (3,); actions Discrete(2) instead of Box(1,)"),
        ("InvertedPendulum-v4", "observation shape (4,) instead of (3,)"),
    ],
)
def test_wrap_refuses_an_env_with_other_spaces(pendulum, env_id, difference):
    import gymnasium as gym

    policy = Policy.from_pretrained(pendulum[0])
    with pytest.raises(
        MRQError,
        match=r"^the env '" + env_id + r"' does not fit this policy \(trained on "
        r"'Pendulum-v1'\): " + difference.replace("(", r"\(").replace(")", r"\)"),
    ):
        policy.wrap(gym.make(env_id))


def test_wrap_refuses_an_env_the_preprocessing_cannot_take(cartpole):
    import gymnasium as gym

    policy = Policy.from_pretrained(cartpole[0])
    with pytest.raises(MRQError, match="'FrozenLake-v1' does not fit this policy .*unsupported observation space"):
        policy.wrap(gym.make("FrozenLake-v1"))


def test_non_finite_observations_are_refused(pendulum):
    policy = Policy.from_pretrained(pendulum[0])
    obs = np.array([0.0, np.nan, 1.0], np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        policy.act(obs)
    with pytest.raises(ValueError, match="NaN or infinite"):
        policy.act(np.stack([np.zeros(3, np.float32), np.full(3, np.inf, np.float32)]))


def _acting_parameters(policy, obs):
    """Names of the parameters that the actor's output depends on (those that receive a gradient)."""
    actor = policy.actor
    actor.zero_grad(set_to_none=True)
    out = actor(torch.as_tensor(obs))
    sum(o.float().sum() for o in (out if isinstance(out, tuple) else (out,)) if o.is_floating_point()).backward()
    return {n for n, p in actor.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1", "Dmc-visual-cartpole-balance"])
def test_acting_tensors_are_exactly_those_the_actor_reads(env_id, tmp_path):
    from mrq_agents.actor_torch import is_acting_tensor

    folder, _, env = make_model_folder(tmp_path / "run", env_id)
    policy = Policy.from_pretrained(folder, backend="torch")
    obs = np.stack([env.observation_space.sample() for _ in range(4)]).astype(np.float32)
    read = _acting_parameters(policy, obs)
    assert read == {n for n, _ in policy.actor.named_parameters() if is_acting_tensor(n)}


def test_compact_export_halves_what_acting_does_not_read_and_acts_identically(pendulum, cartpole, tmp_path):
    from safetensors.torch import load_file

    from mrq_agents.actor_torch import is_acting_tensor

    for folder, learner, env in (pendulum, cartpole):
        policy = Policy.from_pretrained(folder, backend="torch")
        full = policy.save_pretrained(tmp_path / "full" / folder.parent.name)
        compact = policy.save_pretrained(tmp_path / "compact" / folder.parent.name, compact=True)
        stored = load_file(str(compact / "model.safetensors"))
        assert {k for k, v in stored.items() if v.dtype == torch.float16} == {
            k for k in stored if not is_acting_tensor(k)
        }
        for name, value in learner.nets.state_dict().items():  # acting tensors exact, the rest float16-rounded
            expected = value if is_acting_tensor(name) else value.half()
            assert torch.equal(stored[name], expected), name
        assert (compact / "model.safetensors").stat().st_size < (full / "model.safetensors").stat().st_size
        meta = json.loads((compact / "config.json").read_text())
        assert meta["weights_storage"] == "compact" and "weights_storage" not in json.loads(
            (full / "config.json").read_text()
        )
        assert "float16" in (compact / "README.md").read_text()
        loaded = Policy.from_pretrained(compact, backend="torch")
        batch = np.stack([env.observation_space.sample() for _ in range(16)])
        np.testing.assert_array_equal(policy.act(batch), loaded.act(batch))
        onnx = Policy.from_pretrained(compact, backend="onnx")
        np.testing.assert_allclose(onnx.act(batch), policy.act(batch), atol=1e-5)
        # Re-exporting a compact folder keeps it compact; loading gives float32 tensors.
        again = loaded.save_pretrained(tmp_path / "again" / folder.parent.name)
        assert load_file(str(again / "model.safetensors")).keys() == stored.keys()
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                load_file(str(again / "model.safetensors")).values(),
                load_file(str(compact / "model.safetensors")).values(),
            )
        )
        from mrq_agents.model_folder import load_model_folder

        assert {t.dtype for t in load_model_folder(compact)[-1].values()} == {torch.float32}


def test_compact_needs_the_torch_backend(pendulum, tmp_path):
    export = Policy.from_pretrained(pendulum[0]).save_pretrained(tmp_path / "export")
    with pytest.raises(MRQError, match="needs the torch backend"):
        Policy.from_pretrained(export, backend="onnx").save_pretrained(tmp_path / "again", compact=True)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_re_export_leaves_the_earlier_export_whole(pendulum, tmp_path, monkeypatch):
    """A write that fails part-way (a full disk) leaves the folder's earlier export as it was, never new weights
    beside an old config.json; the error names the file asked for, not a staging copy."""
    out = Policy.from_pretrained(pendulum[0], backend="torch").save_pretrained(tmp_path / "export")
    before = snapshot(out)

    def full_disk(folder, *args):  # the model card is written after the weights and actor.onnx
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "README.md"))

    monkeypatch.setattr(export, "write_card", full_disk)
    with pytest.raises(OSError) as failed:
        Policy.from_pretrained(out, backend="torch").save_pretrained(out, compact=True)
    assert failed.value.filename == str(out / "README.md")
    assert snapshot(out) == before  # no hidden staging folder left either
    monkeypatch.undo()
    again = Policy.from_pretrained(out, backend="torch").save_pretrained(out, compact=True)
    assert snapshot(again) != before and Policy.from_pretrained(again).metadata["weights_storage"] == "compact"


def test_mrq_export_on_a_full_disk_is_one_line_and_keeps_the_earlier_export(pendulum, tmp_path):
    out = Policy.from_pretrained(pendulum[0]).save_pretrained(tmp_path / "export")
    before = snapshot(out)
    done = run_limited(["export", out, "--out", out, "--compact", "--episodes", "1"], 2000, tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(out) in line and ".staging" not in line, line
    assert snapshot(out) == before
