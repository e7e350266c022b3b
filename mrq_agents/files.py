"""The files of run folders and export folders: their names and format version, in one place.

A run folder (`mrq train --out DIR`) holds, by when each file appears:
    config.json             at the start
    run.lock                at the start; held (an OS lock) while a process trains in the folder
    events.out.tfevents.*   at the start; TensorBoard scalars from the first episode on
    metrics.csv             at the first evaluation; a row per evaluation
    learning_curve.png      at the first evaluation; redrawn at each
    model.safetensors       at the first checkpoint or evaluation, whichever comes first: the weights of the last
                            evaluation, or before the first one those of the last checkpoint
    checkpoint.safetensors  at the first checkpoint (an episode end after --checkpoint-every steps, Ctrl-C,
                            SIGTERM, or the end): everything to resume
so a folder with a checkpoint always evaluates, plays and exports.

An export folder (`mrq export`, `save_pretrained`, a Hub repo, a zoo entry) holds config.json, model.safetensors,
actor.onnx, README.md (the model card), results.json and, when the run had them, replay.mp4, learning_curve.png
and metrics.csv.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FORMAT_VERSION = 1  # of config.json, model.safetensors and checkpoint.safetensors
CONFIG_FILE, MODEL_FILE, CHECKPOINT_FILE = "config.json", "model.safetensors", "checkpoint.safetensors"
CARD_FILE, RESULTS_FILE, VIDEO_FILE, CURVE_FILE, METRICS_FILE = (
    "README.md",
    "results.json",
    "replay.mp4",
    "learning_curve.png",
    "metrics.csv",
)
ONNX_FILE = "actor.onnx"  # written by mrq_agents.actor_torch.export_onnx, run by mrq_agents.actor_onnx
LOCK_FILE = "run.lock"  # held by the process that trains in a run folder
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CURVE_FILE, MODEL_FILE, CHECKPOINT_FILE)  # what a run folder's run writes
COPIED_FILES = (VIDEO_FILE, CURVE_FILE, METRICS_FILE)  # from a run folder into its export, when they exist


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
