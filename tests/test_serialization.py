"""Pickle-free persistence: atomic writes, JSON/safetensors error messages, nested-state round trips."""

import json
import math
import os
import random

import numpy as np
import pytest
import torch

from mrq_agents import serialization as ser
from mrq_agents.errors import CheckpointError


def _via_file(tmp_path, tree):
    """flatten -> save_tensors (skeleton as metadata) -> load_tensors -> unflatten."""
    tensors, skeleton = ser.flatten_state(tree, prefix="state")
    ser.save_tensors(tmp_path / "state.safetensors", tensors, {"skeleton": skeleton})
    loaded, meta = ser.load_tensors(tmp_path / "state.safetensors")
    return ser.unflatten_state(meta["skeleton"], loaded)


def _assert_one_line_error(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


# ------------------------------------------------------------------ atomic writes and JSON


def test_atomic_write_json_round_trip(tmp_path):
    obj = {"b": 1, "a": [1.5, None, "x"], "big": 2**100}
    ser.atomic_write_json(tmp_path / "sub" / "c.json", obj)
    text = (tmp_path / "sub" / "c.json").read_text()
    assert text.endswith("\n") and text.index('"b"') < text.index('"a"')  # insertion order, not sorted
    assert ser.read_json(tmp_path / "sub" / "c.json", "config") == obj
    assert os.listdir(tmp_path / "sub") == ["c.json"]


def test_staged_files_replace_the_named_file_last_and_leave_nothing_on_error(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("old")
    (tmp_path / "weights").write_text("old")
    moved = []
    replace = os.replace
    monkeypatch.setattr(ser.os, "replace", lambda a, b: (moved.append(os.path.basename(b)), replace(a, b)))
    with ser.staged_files(tmp_path, last="config.json") as stage:
        for name in ("config.json", "weights", "z.txt"):
            (stage / name).write_text("new")
    assert moved == ["weights", "z.txt", "config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights", "z.txt"]
    with pytest.raises(RuntimeError), ser.staged_files(tmp_path, last="config.json") as stage:
        (stage / "weights").write_text("newer")
        raise RuntimeError("a failure part-way")
    assert (tmp_path / "weights").read_text() == "new" and len(list(tmp_path.iterdir())) == 3


def test_atomic_write_crash_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    ser.atomic_write_json(path, {"old": True})

    def crash(fd):  # the temp file exists and is written when fsync runs
        raise OSError("disk full")

    monkeypatch.setattr(ser.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        ser.atomic_write_json(path, {"new": True})
    with pytest.raises(OSError):
        ser.save_tensors(tmp_path / "w.safetensors", {"x": torch.ones(3)})
    assert sorted(os.listdir(tmp_path)) == ["c.json"]
    assert json.loads(path.read_text()) == {"old": True}


def test_read_json_errors(tmp_path):
    with pytest.raises(CheckpointError) as e:
        ser.read_json(tmp_path / "missing.json", "run config")
    _assert_one_line_error(e, "run config not found at", "missing.json")
    (tmp_path / "bad.json").write_text('{"a": 1,\n  oops')
    with pytest.raises(CheckpointError) as e:
        ser.read_json(tmp_path / "bad.json", "run config")
    _assert_one_line_error(e, "run config at", "is not valid JSON", "line 2")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError) as e:
        ser.read_json(tmp_path / "bin.json", "run config")
    _assert_one_line_error(e, "is not valid JSON")


# ------------------------------------------------------------------ safetensors files


def test_save_load_tensors_shared_noncontiguous_and_metadata(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {
        "base": base,
        "view": base[1],
        "t": base.T,
        "i": torch.tensor([1, 2], dtype=torch.int64),
        "empty": torch.zeros(0, 5),
        "h": torch.randn(2, dtype=torch.bfloat16),
    }
    meta = {"env": "Pendulum-v1", "step": 2**70, "nested": {"a": [1, 2]}}
    ser.save_tensors(tmp_path / "w.safetensors", tensors, meta)
    loaded, got_meta = ser.load_tensors(tmp_path / "w.safetensors")
    assert got_meta == meta and set(loaded) == set(tensors)
    for k, t in tensors.items():
        assert loaded[k].dtype == t.dtype and torch.equal(loaded[k], t)
    ser.save_tensors(tmp_path / "plain.safetensors", {"x": torch.ones(2)})
    assert ser.load_tensors(tmp_path / "plain.safetensors")[1] == {}
    assert sorted(os.listdir(tmp_path)) == ["plain.safetensors", "w.safetensors"]  # no temp files left


def test_same_tensors_and_metadata_give_the_same_bytes(tmp_path):
    """One header key (safetensors orders several at random), so re-saving identical weights changes no sha256."""
    tensors = {"b": torch.randn(3, 4), "a": torch.arange(5)}
    for i in range(4):
        ser.save_tensors(
            tmp_path / f"{i}.safetensors",
            dict(reversed(tensors.items())) if i % 2 else tensors,
            {"z": 1, "env_id": "Pendulum-v1"},
        )
    assert len({(tmp_path / f"{i}.safetensors").read_bytes() for i in range(4)}) == 1
    with pytest.raises(ValueError, match="reserved"):
        ser.save_tensors(tmp_path / "x.safetensors", tensors, {"tensors_sha256": "mine"})


def test_files_with_the_old_two_key_header_still_load_and_are_checked(tmp_path):
    from safetensors.torch import save_file

    tensors = {"x": torch.randn(8)}
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"mrq": json.dumps({"a": 1}), "mrq.sha256": ser.tensor_digest(tensors)})
    loaded, meta = ser.load_tensors(path)
    assert meta == {"a": 1} and ser.read_metadata(path) == {"a": 1} and torch.equal(loaded["x"], tensors["x"])
    save_file({"x": tensors["x"] + 1}, str(path), metadata={"mrq": "{}", "mrq.sha256": ser.tensor_digest(tensors)})
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        ser.load_tensors(path)


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "garbage", "bad_metadata"])
def test_load_tensors_bad_file_is_one_line_checkpoint_error(tmp_path, kind):
    path = tmp_path / "w.safetensors"
    ser.save_tensors(path, {"x": torch.randn(64, 64)}, {"a": 1})
    data = path.read_bytes()
    if kind == "missing":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    else:
        from safetensors.torch import save_file

        save_file({"x": torch.ones(1)}, str(path), metadata={"mrq": "{not json"})
    with pytest.raises(CheckpointError) as e:
        ser.load_tensors(path, what="value weights")
    _assert_one_line_error(e, "value weights", str(path))
    assert ("not found" if kind == "missing" else "corrupt or truncated") in str(e.value)


# ------------------------------------------------------------------ flatten_state / unflatten_state


def test_flatten_unflatten_mixed_tree_exact(tmp_path):
    tree = {
        "ints": {0: "zero", 7: (1, 2**127 + 3, -5)},
        "floats": [1.0, -0.0, math.inf, -math.inf, math.nan, 1e-300],
        "flags": (True, False, None),
        "arr": np.arange(6, dtype=np.uint32).reshape(2, 3)[:, ::2],
        "arr_empty": np.zeros((0, 3), dtype=np.float16),
        "np_scalars": [np.float64(2.5), np.int64(-3), np.bool_(True)],
        "t": torch.randn(3, 2).T,
        "s": "text / with slash",
        "tricky": {"__tensor__": "not a tag"},
    }
    tensors, skeleton = ser.flatten_state(tree)
    assert json.loads(json.dumps(skeleton, allow_nan=False)) == skeleton  # strict JSON, no NaN literals
    for got in (ser.unflatten_state(skeleton, tensors), _via_file(tmp_path, tree)):
        assert set(got) == set(tree)
        assert got["ints"] == {0: "zero", 7: (1, 2**127 + 3, -5)} and type(next(iter(got["ints"]))) is int
        f = got["floats"]
        assert f[:4] == [1.0, -0.0, math.inf, -math.inf] and math.isnan(f[4]) and f[5] == 1e-300
        assert math.copysign(1.0, f[1]) == -1.0
        assert got["flags"] == (True, False, None)
        for k in ("arr", "arr_empty"):
            assert isinstance(got[k], np.ndarray) and got[k].dtype == tree[k].dtype
            np.testing.assert_array_equal(got[k], tree[k])
        assert [type(v) for v in got["np_scalars"]] == [np.float64, np.int64, np.bool_]
        assert got["np_scalars"] == tree["np_scalars"]
        assert torch.equal(got["t"], tree["t"]) and got["s"] == tree["s"] and got["tricky"] == tree["tricky"]


def test_flatten_tensor_names_and_errors():
    tensors, _ = ser.flatten_state({"value": {"state": {3: {"exp_avg": torch.zeros(1)}}}}, prefix="opt")
    assert list(tensors) == ["opt/value/state/3/exp_avg"]
    with pytest.raises(ValueError, match="same name"):
        ser.flatten_state({"a/b": torch.zeros(1), "a": {"b": torch.zeros(1)}})
    with pytest.raises(TypeError, match="keys must be str or int"):
        ser.flatten_state({(1, 2): 3})
    with pytest.raises(TypeError, match="cannot store a set"):
        ser.flatten_state({"x": {1, 2}})
    with pytest.raises(CheckpointError, match="missing tensor"):
        ser.unflatten_state({"__tensor__": "gone"}, {})


def test_adamw_state_round_trip_gives_identical_next_step(tmp_path):
    torch.manual_seed(0)

    def make():
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        return net, torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-4, amsgrad=True)

    def step(net, opt, x):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()

    net, opt = make()
    xs = torch.randn(3, 16, 4)
    step(net, opt, xs[0])
    step(net, opt, xs[1])
    net2, opt2 = make()
    net2.load_state_dict(net.state_dict())
    opt2.load_state_dict(_via_file(tmp_path, opt.state_dict()))
    step(net, opt, xs[2])
    step(net2, opt2, xs[2])
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)


def test_rng_states_round_trip(tmp_path):
    torch.manual_seed(123)
    random.seed(7)
    gen = np.random.default_rng(0)
    gen.random(3)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": gen.bit_generator.state}
    expected = (torch.rand(5), [random.random() for _ in range(5)], gen.random(5))
    got = _via_file(tmp_path, state)
    torch.set_rng_state(got["torch"])
    random.setstate(got["python"])
    gen2 = np.random.default_rng()
    gen2.bit_generator.state = got["numpy"]
    assert torch.equal(torch.rand(5), expected[0])
    assert [random.random() for _ in range(5)] == expected[1]
    np.testing.assert_array_equal(gen2.random(5), expected[2])
