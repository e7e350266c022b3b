"""actor.onnx and the ONNX backend: export, parity with the torch backend, the same Policy API, bad input.

The same checks in an environment without torch: tests/test_torch_free.py.
"""

import json
import shutil

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from helpers.model_folders import make_model_folder
from mrq_agents import Policy, zoo
from mrq_agents.cli import app
from mrq_agents.errors import CheckpointError, ConfigError, MRQError, ObservationError

# env id -> (kind, uses a pixel observation)
CASES = {
    "Pendulum-v1": "vector",
    "CartPole-v1": "discrete",
    "ALE/Pong-v5": "pixel",
    "Dmc-visual-cartpole-balance": "pixel-continuous",
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """env id -> export folder (save_pretrained of freshly initialised tiny networks) with actor.onnx."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for env_id in CASES:
        name = env_id.replace("/", "_")
        run, _, _ = make_model_folder(root / f"{name}-run", env_id)
        out[env_id] = Policy.from_pretrained(run, backend="torch").save_pretrained(root / name)
    return out


def observations(policy, count=32, seed=0):
    """Observations from the policy's own env (a short episode) and from its observation space."""
    env = policy.make_env(seed=seed)
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for _ in range(count // 2 - 1):
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        seen.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    env.observation_space.seed(seed)
    seen += [env.observation_space.sample() for _ in range(count - len(seen))]
    env.close()
    return np.stack(seen)


def assert_same_actions(onnx_policy, torch_policy, batch):
    """Continuous to 1e-5, discrete argmax exactly: batched, and one observation at a time."""
    got, want = onnx_policy.act(batch), torch_policy.act(batch)
    assert got.dtype == want.dtype and got.shape == want.shape
    if torch_policy.spec.discrete:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(onnx_policy.act(batch[0]), torch_policy.act(batch[0]))
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(onnx_policy.act(batch[0]), torch_policy.act(batch[0]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("env_id", list(CASES))
def test_actor_onnx_is_a_valid_graph_with_a_free_batch_axis(env_id, exports):
    model = onnx.load(str(exports[env_id] / "actor.onnx"))
    onnx.checker.check_model(model, full_check=True)
    policy = Policy.from_pretrained(exports[env_id], backend="torch")
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "obs" and dims[0].dim_param == "batch"
    assert tuple(d.dim_value for d in dims[1:]) == policy.spec.obs_shape
    pixels = CASES[env_id].startswith("pixel")
    assert graph_input.type.tensor_type.elem_type == (onnx.TensorProto.UINT8 if pixels else onnx.TensorProto.FLOAT)
    outputs = [o.name for o in model.graph.output]
    assert outputs == (["action", "logits"] if policy.spec.discrete else ["action"])
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["weights_sha256"] == json.loads((exports[env_id] / "config.json").read_text())["weights_sha256"]


@pytest.mark.parametrize("env_id", list(CASES))
def test_onnx_backend_acts_like_the_torch_backend(env_id, exports):
    onnx_policy = Policy.from_pretrained(exports[env_id], backend="onnx")
    torch_policy = Policy.from_pretrained(exports[env_id], backend="torch")
    assert (onnx_policy.backend, torch_policy.backend) == ("onnx", "torch")
    batch = observations(torch_policy)
    assert_same_actions(onnx_policy, torch_policy, batch)
    for size in (1, 7):  # any batch size, including a batch of one
        assert onnx_policy.act(batch[:size]).shape[0] == size
    actions, state = onnx_policy.predict(batch)  # Stable-Baselines3's signature
    assert state is None and actions.shape[0] == len(batch)


def test_discrete_raw_graph_outputs_argmax_and_logits(exports):
    import onnxruntime as ort

    folder = exports["CartPole-v1"]
    torch_policy = Policy.from_pretrained(folder, backend="torch")
    batch = observations(torch_policy)
    action, logits = ort.InferenceSession(str(folder / "actor.onnx")).run(None, {"obs": batch})
    _, want_logits = torch_policy.actor.compute(batch)
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(action, logits.argmax(1))
    assert action.dtype == np.int64 and logits.shape == (len(batch), 2)


def test_stochastic_discrete_rollouts_match_across_backends(exports):
    """The paper's sampled argmax draws its Gumbel noise in Policy, seeded per rollout: same seed, same samples."""
    onnx_policy = Policy.from_pretrained(exports["CartPole-v1"], backend="onnx")
    torch_policy = Policy.from_pretrained(exports["CartPole-v1"], backend="torch")
    first = onnx_policy.rollout(episodes=3, seed=4, deterministic=False)
    np.testing.assert_array_equal(first.returns, torch_policy.rollout(episodes=3, seed=4, deterministic=False).returns)
    np.testing.assert_array_equal(first.lengths, onnx_policy.rollout(episodes=3, seed=4, deterministic=False).lengths)


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e["env_id"])
def test_zoo_entries_ship_actor_onnx_and_play_on_the_onnx_backend(entry):
    onnx_policy = Policy.from_pretrained(entry["repo_id"], backend="onnx")
    torch_policy = Policy.from_pretrained(entry["repo_id"], backend="torch")
    assert_same_actions(onnx_policy, torch_policy, observations(torch_policy))
    result = onnx_policy.rollout(episodes=1, seed=0)
    assert result.lengths[0] > 0 and np.isfinite(result.mean)


@pytest.mark.parametrize("env_id", list(CASES))
def test_actor_onnx_reads_its_float32_tensors_from_model_safetensors(env_id, exports, tmp_path):
    """Every initializer refers to the identical bytes of model.safetensors (ONNX external data) rather than holding
    a copy; the documented one-liner writes a self-contained graph that acts the same with no weights beside it."""
    from mrq_agents.serialization import tensor_locations

    folder = exports[env_id]
    model = onnx.load(str(folder / "actor.onnx"), load_external_data=False)
    assert {p.key: p.value for p in model.metadata_props}["weights_file"] == "model.safetensors"
    weights, locations = (folder / "model.safetensors").read_bytes(), tensor_locations(folder / "model.safetensors")
    loaded = {t.name: t.raw_data for t in onnx.load(str(folder / "actor.onnx")).graph.initializer}
    for tensor in model.graph.initializer:
        where = {e.key: e.value for e in tensor.external_data}
        assert tensor.data_location == onnx.TensorProto.EXTERNAL and where["location"] == "model.safetensors"
        start, length = int(where["offset"]), int(where["length"])
        assert locations[tensor.name][2:] == (start, start + length)
        assert loaded[tensor.name] == weights[start : start + length]
    assert (folder / "actor.onnx").stat().st_size < 16 * 1024  # the graph and its metadata only
    alone = tmp_path / "alone"
    alone.mkdir()
    onnx.save(onnx.load(str(folder / "actor.onnx")), str(alone / "actor.onnx"))
    import onnxruntime as ort

    batch = observations(Policy.from_pretrained(folder, backend="torch"))
    want = ort.InferenceSession(str(folder / "actor.onnx")).run(None, {"obs": batch})
    got = ort.InferenceSession(str(alone / "actor.onnx")).run(None, {"obs": batch})
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_a_self_contained_actor_onnx_still_loads(exports, tmp_path):
    """Exports written before the graph shared model.safetensors' tensors hold them itself; they load as before."""
    folder = shutil.copytree(exports["CartPole-v1"], tmp_path / "old")
    onnx.save(onnx.load(str(folder / "actor.onnx")), str(folder / "actor.onnx"))
    torch_policy = Policy.from_pretrained(folder, backend="torch")
    assert_same_actions(Policy.from_pretrained(folder, backend="onnx"), torch_policy, observations(torch_policy))


@pytest.mark.parametrize("case", ["missing", "other_bytes"])
def test_actor_onnx_without_its_weights_file_is_a_one_line_error(case, exports, tmp_path):
    """The graph reads model.safetensors: without it, or with other bytes there (same layout, config.json not
    updated), loading stops with one line rather than acting with weights the graph was not exported with."""
    folder = shutil.copytree(exports["Pendulum-v1"], tmp_path / "model")
    if case == "missing":
        (folder / "model.safetensors").unlink()
        expected = "model.safetensors beside it, which is missing: keep the export folder's files together"
    else:
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-4:] = bytes(4)  # the last float32 of the last tensor
        (folder / "model.safetensors").write_bytes(bytes(data))
        expected = "model.safetensors does not match the weights_sha256 in its config.json"
        # The actor on its own (no config.json sha256 to check against) checks the file against the graph's.
        from mrq_agents.actor_onnx import OnnxActor

        spec = Policy.from_pretrained(exports["Pendulum-v1"], backend="onnx").spec
        with pytest.raises(CheckpointError, match="not the file it was exported with"):
            OnnxActor(folder, spec, weights_sha256=None)
    with pytest.raises(CheckpointError) as err:
        Policy.from_pretrained(folder, backend="onnx")
    assert "\n" not in str(err.value) and expected in str(err.value)
    result = CliRunner().invoke(app, ["play", str(folder), "--backend", "onnx"])
    assert result.exit_code == 2 and result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1


def test_old_export_without_actor_onnx_loads_with_torch_and_says_how_to_add_it(exports, tmp_path):
    old = shutil.copytree(exports["Pendulum-v1"], tmp_path / "old")
    (old / "actor.onnx").unlink()
    assert Policy.from_pretrained(old).backend == "torch"  # auto: torch is installed here
    with pytest.raises(CheckpointError) as err:
        Policy.from_pretrained(old, backend="onnx")
    message = str(err.value)
    assert "\n" not in message and "no actor.onnx" in message and f"mrq export {old} --out" in message
    # Exporting again adds it, and the new export acts the same on both backends.
    result = CliRunner().invoke(app, ["export", str(old), "--out", str(tmp_path / "new"), "--episodes", "1"])
    assert result.exit_code == 0, result.output
    new = Policy.from_pretrained(tmp_path / "new", backend="onnx")
    batch = observations(Policy.from_pretrained(old))
    assert_same_actions(new, Policy.from_pretrained(old), batch)


def test_save_pretrained_on_the_onnx_backend_copies_weights_and_graph(exports, tmp_path):
    policy = Policy.from_pretrained(exports["CartPole-v1"], backend="onnx")
    out = policy.save_pretrained(tmp_path / "copy")
    for name in ("model.safetensors", "actor.onnx"):
        assert (out / name).read_bytes() == (exports["CartPole-v1"] / name).read_bytes()
    assert (
        json.loads((out / "config.json").read_text())["weights_sha256"]
        == json.loads((exports["CartPole-v1"] / "config.json").read_text())["weights_sha256"]
    )
    batch = observations(policy)
    np.testing.assert_array_equal(Policy.from_pretrained(out, backend="onnx").act(batch), policy.act(batch))


@pytest.mark.parametrize("case", ["missing", "corrupt", "empty", "other_model", "stale_weights"])
def test_bad_actor_onnx_is_a_one_line_error(case, exports, tmp_path):
    folder = shutil.copytree(exports["Pendulum-v1"], tmp_path / "model")
    if case == "missing":
        (folder / "actor.onnx").unlink()
    elif case == "corrupt":
        data = (folder / "actor.onnx").read_bytes()
        (folder / "actor.onnx").write_bytes(data[: len(data) // 2])
    elif case == "empty":
        (folder / "actor.onnx").write_bytes(b"")
    elif case == "other_model":  # CartPole's graph beside Pendulum's config
        shutil.copyfile(exports["CartPole-v1"] / "actor.onnx", folder / "actor.onnx")
    elif case == "stale_weights":  # the weights were replaced (and recorded) after the graph was exported
        from mrq_agents.files import sha256_file
        from mrq_agents.serialization import load_tensors, save_tensors

        tensors, metadata = load_tensors(folder / "model.safetensors")
        save_tensors(folder / "model.safetensors", {k: v * 1.01 for k, v in tensors.items()}, metadata)
        meta = json.loads((folder / "config.json").read_text())
        meta["weights_sha256"] = sha256_file(folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as err:
        Policy.from_pretrained(folder, backend="onnx")
    assert "\n" not in str(err.value) and "actor.onnx" in str(err.value) and "mrq export" in str(err.value)
    result = CliRunner().invoke(app, ["play", str(folder), "--backend", "onnx"])
    assert result.exit_code == 2 and result.output.startswith("error:") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_wrong_observation_shape_is_a_one_line_error(exports):
    policy = Policy.from_pretrained(exports["ALE/Pong-v5"], backend="onnx")
    with pytest.raises(ObservationError, match=r"observation shape \(3, 84, 84\) does not match") as err:
        policy.act(np.zeros((3, 84, 84), np.uint8))
    assert "\n" not in str(err.value) and isinstance(err.value, (MRQError, ValueError))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "tensorflow"}, "unknown backend 'tensorflow'"),
        ({"backend": "onnx", "device": "cuda"}, "backend='onnx' runs on the CPU"),
    ],
)
def test_bad_backend_arguments_are_one_line_errors(kwargs, message, exports):
    with pytest.raises(ConfigError, match=message):
        Policy.from_pretrained(exports["Pendulum-v1"], **kwargs)
