"""The actor computed by onnxruntime from an export folder's `actor.onnx`; imports no torch.

`actor.onnx` (written by `mrq_agents.actor_torch.export_onnx`) holds the state encoder and the policy head:
    input   obs     (N, *obs_shape): float32 vectors, or the uint8 stacked frames (N, C * stack, H, W)
    output  action  continuous: (N, action_dim) float32 tanh(pre) in [-1, 1]; discrete: (N,) int64 argmax(pre)
    output  logits  discrete only: (N, n) float32 pre, to sample from as the paper's evaluation does
N is free. Continuous actions are in [-1, 1] as `Policy.act` returns them: the env's preprocessing
(`policy.make_env()`, `policy.wrap(env)`) rescales them to the env's bounds.

Graphs exported since 2026-12-02 read their float32 tensors from the model.safetensors beside them (ONNX
external data) rather than holding a copy: keep the two files together. A self-contained copy, for runtimes
given one file: `onnx.save(onnx.load("actor.onnx"), "actor-standalone.onnx")`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrq_agents.envs import EnvSpec
from mrq_agents.errors import CheckpointError, MissingDependencyError, one_line
from mrq_agents.files import MODEL_FILE, ONNX_FILE, sha256_file

INPUT = "obs"
OUTPUTS = {False: ["action"], True: ["action", "logits"]}  # by spec.discrete
REEXPORT = "re-export it with `mrq export {folder} --out NEW_FOLDER` (needs torch), or load it with backend='torch'"


class OnnxActor:
    """Observation batch (numpy) -> (action, logits or None), by onnxruntime on the CPU."""

    backend = "onnx"

    def __init__(self, folder: Path, spec: EnvSpec, weights_sha256: str | None = None, threads: int | None = None):
        path = folder / ONNX_FILE
        fix = REEXPORT.format(folder=folder)
        if not path.is_file():
            raise CheckpointError(
                f"{folder} has no {ONNX_FILE} (exported before mrq-agents could act without "
                f"torch, or a run folder): {fix}"
            )
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                "backend='onnx' needs onnxruntime, which is not installed: "
                "pip install onnxruntime (or reinstall mrq-agents)"
            ) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr when a graph loads
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own error types (InvalidProtobuf, Fail, ...)
            if not (folder / MODEL_FILE).is_file():
                raise CheckpointError(
                    f"{path} could not be loaded ({one_line(err)}); it reads its weights from the {MODEL_FILE} "
                    f"beside it, which is missing: keep the export folder's files together"
                ) from None
            raise CheckpointError(f"{path} is corrupt or not an MR.Q actor ({one_line(err)}); {fix}") from None
        self.spec = spec
        self._check(path, spec, weights_sha256, fix)

    def _check(self, path: Path, spec: EnvSpec, weights_sha256: str | None, fix: str) -> None:
        inputs, outputs = self.session.get_inputs(), [o.name for o in self.session.get_outputs()]
        dtype = "tensor(uint8)" if spec.pixels else "tensor(float)"
        if len(inputs) != 1 or inputs[0].name != INPUT or outputs != OUTPUTS[spec.discrete]:
            raise CheckpointError(
                f"{path} is not an MR.Q actor for this config (inputs "
                f"{[i.name for i in inputs]}, outputs {outputs}); {fix}"
            )
        shape = tuple(inputs[0].shape[1:])
        if shape != spec.obs_shape or inputs[0].type != dtype:
            raise CheckpointError(
                f"{path} takes {inputs[0].type} observations of shape {shape}, but config.json "
                f"says {dtype} {spec.obs_shape}: the files belong to different models; {fix}"
            )
        graph_meta = self.session.get_modelmeta().custom_metadata_map
        exported_from = graph_meta.get("weights_sha256")
        if weights_sha256 and exported_from and exported_from != weights_sha256:
            raise CheckpointError(
                f"{path} was exported from other weights than the model.safetensors beside it "
                f"(sha256 {exported_from[:12]}... vs {weights_sha256[:12]}...); {fix}"
            )
        # The graph may read its tensors from a file beside it (external data). With `weights_sha256` given, the
        # caller has checked that file against it (`policy.read_model_config`); without, check it here.
        shared = graph_meta.get("weights_file")
        if shared and exported_from and not weights_sha256 and sha256_file(path.parent / shared) != exported_from:
            raise CheckpointError(
                f"{path} reads its weights from the {shared} beside it, which is not the file it was exported "
                f"with (sha256 {exported_from[:12]}...); {fix}"
            )

    def compute(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """obs (N, *obs_shape) in the graph's dtype -> (action (N, action_dim) or (N,), logits (N, n) or None)."""
        out = self.session.run(None, {INPUT: obs})
        return out[0], (out[1] if self.spec.discrete else None)
