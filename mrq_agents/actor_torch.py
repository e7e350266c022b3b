"""The actor computed by torch (the state encoder and the policy of a trained MR.Q), and its ONNX export.

`TorchActor.forward` is the graph `actor.onnx` holds (see `mrq_agents.actor_onnx` for its inputs and outputs);
`compute` runs it on numpy observations for `Policy`, like `OnnxActor.compute`.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrq_agents.actor_onnx import INPUT, OUTPUTS
from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.errors import CheckpointError, MissingDependencyError
from mrq_agents.files import MODEL_FILE, ONNX_FILE
from mrq_agents.networks import Encoder
from mrq_agents.networks import Policy as PolicyNet
from mrq_agents.serialization import atomic_write_bytes, tensor_locations

OPSET = 17  # LayerNormalization's first opset; onnxruntime >= 1.14 and onnxruntime-web run it
# The tensors of model.safetensors that acting reads (Encoder.state and the policy); the rest (the encoder's
# state-action and model layers, the critics) only fine-tuning reads.
ACTING_PREFIXES = ("policy.", "encoder.zs_mlp.", "encoder.pixel_trunk.", "encoder.zs_head.", "encoder.zs_norm.")


def is_acting_tensor(name: str) -> bool:
    """Whether acting reads the tensor `name` of model.safetensors."""
    return name.startswith(ACTING_PREFIXES)


def compact_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with those acting does not read stored as float16 (halving them), the acting ones untouched.

    Acting is then bit-identical; fine-tuning starts from the float16-rounded critics and model layers. A tensor
    whose values float16 cannot hold (beyond +-65504) stays float32.
    """
    f16 = torch.finfo(torch.float16).max
    return {
        k: v.half()
        if (v.dtype == torch.float32 and not is_acting_tensor(k) and (v.numel() == 0 or float(v.abs().max()) <= f16))
        else v
        for k, v in tensors.items()
    }


class TorchActor(torch.nn.Module):
    """The part of MR.Q that acting needs: the state encoder and the policy (module names as in training)."""

    backend = "torch"

    def __init__(self, spec: EnvSpec, config: MRQConfig):
        super().__init__()
        self.spec = spec
        self.encoder = Encoder(spec.obs_shape, spec.pixels, spec.action_dim, config)
        self.policy = PolicyNet(spec.action_dim, spec.discrete, config)

    def forward(self, obs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """obs (N, *obs_shape) -> continuous: tanh(pre) (N, action_dim); discrete: (argmax(pre) (N,), pre (N, n))."""
        pre = self.policy.net(self.encoder.state(obs))
        if self.spec.discrete:
            return pre.argmax(1), pre
        return torch.tanh(pre)

    @torch.no_grad()
    def compute(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """numpy obs (N, *obs_shape) -> numpy (action, logits or None), as `OnnxActor.compute`."""
        device = next(self.parameters()).device
        out = self(torch.as_tensor(obs, device=device))
        if self.spec.discrete:
            return out[0].cpu().numpy(), out[1].cpu().numpy()
        return out.cpu().numpy(), None


def load_torch_actor(
    folder: Path, spec: EnvSpec, config: MRQConfig, tensors: dict[str, torch.Tensor], device: torch.device
) -> TorchActor:
    """A TorchActor with the encoder and policy weights of `tensors`, loaded strictly, in eval mode on `device`."""
    actor = TorchActor(spec, config)
    wanted = actor.state_dict()
    acting = {k: v for k, v in tensors.items() if k.split(".")[0] in ("encoder", "policy")}
    missing = sorted(set(wanted) - set(acting))
    unexpected = sorted(set(acting) - set(wanted))
    wrong = sorted(k for k in set(acting) & set(wanted) if acting[k].shape != wanted[k].shape)
    if missing or unexpected or wrong:
        problem = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"wrong shapes for {wrong[:3]}"
        )
        raise CheckpointError(
            f"{folder / MODEL_FILE} does not fit its config.json ({problem}): the weights "
            "belong to another env or config"
        )
    actor.load_state_dict(acting, strict=True)
    return actor.to(device).eval()


def export_onnx(
    actor: TorchActor, path: str | Path, metadata: dict[str, Any] | None = None, weights_file: str | Path | None = None
) -> Path:
    """Write `actor` as an ONNX graph (batch size free) to `path`, checked by `onnx.checker`; returns `path`.

    `metadata` (e.g. the weights' sha256) goes into the model's metadata_props as strings. `weights_file`, a
    safetensors file in `path`'s folder, holds the actor's float32 tensors: the graph then refers to them there
    (ONNX external data) rather than repeating them, and names the file in its metadata (`weights_file`).
    """
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError(
            'writing actor.onnx needs the onnx package: pip install "mrq-agents[train]"'
        ) from None
    spec = actor.spec
    cpu = copy.deepcopy(actor).cpu().eval()
    example = torch.zeros(2, *spec.obs_shape, dtype=torch.uint8 if spec.pixels else torch.float32)
    outputs = OUTPUTS[spec.discrete]
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice (see benchmarks/README.md)
        # The TorchScript-based exporter: 0.5 s and one self-contained file, where the dynamo exporter takes
        # 5-11 s per actor and needs onnxscript; both give the same actions (tests/test_onnx.py checks parity).
        torch.onnx.export(
            cpu,
            (example,),
            buffer,
            input_names=[INPUT],
            output_names=outputs,
            opset_version=OPSET,
            dynamic_axes={name: {0: "batch"} for name in [INPUT, *outputs]},
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    props = {
        "producer": "mrq-agents",
        "obs_shape": str(list(spec.obs_shape)),
        "pixels": str(spec.pixels),
        "discrete": str(spec.discrete),
        "action_dim": str(spec.action_dim),
        "action": (
            "argmax(logits), int64"
            if spec.discrete
            else "tanh(pre) in [-1, 1]; the env's preprocessing rescales it to the env's bounds"
        ),
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    for key, value in props.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    if weights_file is not None and share_weights(model, Path(weights_file)):
        model.metadata_props.append(onnx.StringStringEntryProto(key="weights_file", value=Path(weights_file).name))
    atomic_write_bytes(path, model.SerializeToString())
    return path


def share_weights(model: Any, weights_file: Path) -> int:
    """Make `model`'s initializers that `weights_file` holds byte for byte (float32, same name and shape) refer to
    that file (ONNX external data: location, offset, length) instead of holding a copy; returns how many did.
    onnxruntime and `onnx.load` read them from the file of that name beside the graph."""
    import onnx

    locations, data = tensor_locations(weights_file), weights_file.read_bytes()
    shared = 0
    for tensor in model.graph.initializer:
        dtype, shape, start, end = locations.get(tensor.name, ("", [], 0, 0))
        if dtype != "F32" or shape != list(tensor.dims) or not tensor.raw_data or data[start:end] != tensor.raw_data:
            continue
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", weights_file.name), ("offset", str(start)), ("length", str(end - start))):
            tensor.external_data.add(key=key, value=value)
        shared += 1
    return shared


def write_actor_onnx(folder: str | Path, actor: TorchActor, weights_sha256: str, env_id: str) -> Path:
    """Write `folder`/actor.onnx for `actor`, naming the sha256 of the model.safetensors it was exported from and
    reading its float32 tensors from that file (written first), so an export does not hold them twice."""
    folder = Path(folder)
    metadata = {"weights_sha256": weights_sha256, "env_id": env_id}
    return export_onnx(actor, folder / ONNX_FILE, metadata, weights_file=folder / MODEL_FILE)
