"""Damaged or diverged weights are refused on load with one line, never acted on."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from helpers.model_folders import make_model_folder
from mrq_agents import Policy, zoo
from mrq_agents.cli import app
from mrq_agents.errors import CheckpointError
from mrq_agents.serialization import load_tensors, save_tensors


def overwrite_tensor_bytes(path):
    """Fill the first tensor's bytes with float32 NaN bit patterns, leaving the header as it was."""
    with safe_open(str(path), framework="pt") as f:
        name = next(iter(f.keys()))
        numel = f.get_tensor(name).numel()
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[:8], "little")
    offsets = json.loads(raw[8 : 8 + header_len])[name]["data_offsets"]
    start = 8 + header_len + offsets[0]
    raw[start : start + 4 * numel] = b"\xff\xff\xff\x7f" * numel  # float32 NaN
    path.write_bytes(bytes(raw))


def eval_error(folder) -> str:
    result = CliRunner().invoke(app, ["eval", str(folder), "--episodes", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "nan" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    return line


def test_export_with_overwritten_tensor_bytes_is_refused(tmp_path):
    folder = shutil.copytree(zoo.agent_folder(zoo.entries()[0]), tmp_path / "export")
    overwrite_tensor_bytes(folder / "model.safetensors")
    line = eval_error(folder)
    assert "does not match the weights_sha256 in its config.json" in line


def test_run_folder_with_overwritten_tensor_bytes_is_refused(tmp_path):
    folder, _, _ = make_model_folder(tmp_path / "run", "Pendulum-v1")
    overwrite_tensor_bytes(folder / "model.safetensors")
    assert "do not match the sha256 in its header" in eval_error(folder)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_tensors(folder / "model.safetensors")


def test_nan_weights_are_refused(tmp_path):
    folder, _, _ = make_model_folder(tmp_path / "run", "Pendulum-v1")
    tensors, meta = load_tensors(folder / "model.safetensors")
    name = next(k for k in sorted(tensors) if k.startswith("policy.") and tensors[k].is_floating_point())
    tensors[name].fill_(float("inf"))
    save_tensors(folder / "model.safetensors", tensors, meta)  # a consistent file holding diverged weights
    assert "NaN or infinite weights" in eval_error(folder)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        Policy.from_pretrained(folder)


def test_intact_files_still_load(tmp_path):
    folder, _, _ = make_model_folder(tmp_path / "run", "Pendulum-v1")
    policy = Policy.from_pretrained(folder)
    assert torch.isfinite(torch.as_tensor(policy.act(policy.make_env().reset(seed=0)[0]))).all()
