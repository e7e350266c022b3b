"""The run folder under real use: Ctrl-C and SIGTERM leave a resumable run, one writer at a time, leftovers of
killed writes, starting over, and a machine that refuses to write (one line each, never a traceback)."""

import csv
import errno
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.tiny import TINY_SETTINGS
from helpers.user_env import MRQ, run_limited, user_env
from mrq_agents import Policy
from mrq_agents.cli import app
from mrq_agents.serialization import load_tensors, unflatten_state

TINY = [*TINY_SETTINGS, "warmup_steps=200"]
SETS = [arg for item in TINY for arg in ("--set", item)]


def train_args(out: Path, steps: int = 600, *extra: str) -> list[str]:
    return [
        "train",
        "Pendulum-v1",
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--eval-every",
        "200",
        "--eval-episodes",
        "1",
        "--device",
        "cpu",
        *SETS,
        *extra,
    ]


def invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def steps_in_metrics(out: Path) -> list[int]:
    with open(out / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def checkpoint_step(out: Path) -> int:
    tensors, meta = load_tensors(out / "checkpoint.safetensors")
    return unflatten_state(meta["state"], tensors)["counters"]["step"]


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(MRQ + args, stdout=f, stderr=subprocess.STDOUT, env=user_env())


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ Ctrl-C and SIGTERM


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_a_checkpoint_and_resume_finishes(tmp_path, signum):
    """A run stopped before its first scheduled checkpoint (no evaluation yet) still resumes."""
    out, log = tmp_path / "run", tmp_path / "run.log"
    proc = start(train_args(out, 5000, "--eval-every", "4000", "--checkpoint-every", "4000"), log)
    try:
        wait_for(lambda: (out / "config.json").exists(), proc, log)
        time.sleep(3)  # inside the loop
        proc.send_signal(signum)
        assert proc.wait(timeout=120) == 128 + signum, log.read_text()
    finally:
        stop(proc)
    text = log.read_text()
    assert "Traceback" not in text and "with a checkpoint; continue with: mrq train Pendulum-v1" in text, text
    assert f"--out {out} --resume" in text
    step = checkpoint_step(out)
    assert 0 < step < 4000
    # Stopped before its first evaluation, the folder is still an agent: its weights are the checkpoint's.
    assert not (out / "metrics.csv").exists() and load_tensors(out / "model.safetensors")[1]["step"] == step
    export = tmp_path / "export"
    for args in (["eval", out, "--episodes", 1], ["play", out], ["export", out, "--out", export, "--episodes", 1]):
        result = invoke(args)
        assert result.exit_code == 0, (args, result.output)
    assert json.loads((export / "config.json").read_text())["training"]["steps"] == step
    assert Policy.from_pretrained(out).act(np.zeros(3, np.float32)).shape == (1,)

    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume", "--steps", step + 300])
    assert result.exit_code == 0, result.output
    assert f"resumed at step {step:,}" in result.stdout and f"done: {step + 300:,} steps" in result.stdout
    assert checkpoint_step(out) == step + 300


def test_default_cadence_checkpoints_at_evaluations(tmp_path):
    result = invoke(train_args(tmp_path / "run", 700, "--eval-every", "350"))
    assert result.exit_code == 0, result.output
    # Pendulum's episodes are 200 steps: the first episode end after the evaluation at 350 is step 400, whose
    # checkpoint moved the next one to 700; the final checkpoint (step 700) recorded that before moving it on.
    tensors, meta = load_tensors(tmp_path / "run" / "checkpoint.safetensors")
    assert unflatten_state(meta["state"], tensors)["counters"]["next_checkpoint"] == 700


def test_every_way_out_works(tmp_path):
    """A run that stopped before any checkpoint: --resume and a plain rerun name --overwrite, and it works."""
    out = tmp_path / "run"
    assert invoke(train_args(out, 200)).exit_code == 0
    (out / "checkpoint.safetensors").unlink()  # as if killed before the first checkpoint
    one_line_error(invoke(["train", "Pendulum-v1", "--out", out, "--resume"]), "nothing to resume", "--overwrite")
    one_line_error(invoke(train_args(out, 200)), "already holds a run", "--overwrite")
    (out / "notes.txt").write_text("mine")
    result = invoke(train_args(out, 400, "--overwrite"))
    assert result.exit_code == 0, result.output
    assert steps_in_metrics(out) == [200, 400] and (out / "notes.txt").read_text() == "mine"
    one_line_error(invoke(train_args(out, 400)), "already holds a run", "--resume", "--overwrite")
    one_line_error(invoke(train_args(out, 400, "--resume", "--overwrite")), "contradict")


# ------------------------------------------------------------------------------------------ one writer


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    out, log = tmp_path / "run", tmp_path / "first.log"
    first = start(train_args(out, 20_000, "--eval-every", "400"), log)
    try:
        wait_for(lambda: (out / "metrics.csv").exists(), first, log)
        for extra in ([], ["--resume"]):
            second = subprocess.run(
                MRQ + train_args(out, 20_000, "--eval-every", "400", *extra),
                capture_output=True,
                text=True,
                env=user_env(),
                timeout=120,
            )
            assert second.returncode == 2, second.stdout + second.stderr
            assert second.stderr.strip() == (
                f"error: {out} is in use by another mrq process (PID {first.pid}): wait for it to end or stop "
                "it (Ctrl-C writes a checkpoint), or choose another --out"
            )
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130, log.read_text()
    finally:
        stop(first)
    steps = steps_in_metrics(out)
    assert steps and len(steps) == len(set(steps)), steps  # every row written once
    # the lock dies with its process: a resume goes ahead
    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume", "--steps", checkpoint_step(out) + 10])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------------------ leftovers, no-ops


def test_leftover_temp_files_are_removed_on_start(tmp_path):
    out = tmp_path / "run"
    assert invoke(train_args(out, 200)).exit_code == 0
    leftovers = [out / ".checkpoint.safetensors.abc123.tmp", out / ".config.json.x1.tmp"]
    for path in leftovers:
        path.write_bytes(b"partial")
    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume", "--steps", 400])
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in leftovers)
    assert not list(out.glob(".*.tmp"))


def test_noop_resume_with_fewer_steps_keeps_config(tmp_path):
    out = tmp_path / "run"
    assert invoke(train_args(out, 400)).exit_code == 0
    before = (out / "config.json").read_bytes()
    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume", "--steps", 200])
    assert result.exit_code == 0 and "nothing to do" in result.stdout
    assert (out / "config.json").read_bytes() == before


# ------------------------------------------------------------------------------------------ the machine says no


def test_out_that_is_a_file_or_under_a_file(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_line_error(invoke(train_args(a_file, 200)), "is a file, not a folder", "--out")
    one_line_error(invoke(train_args(a_file / "run", 200)), "Not a directory", "not a folder")


@pytest.mark.parametrize(
    "code, fragment",
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "no permission"),
        (errno.ENOENT, "missing mount"),
    ],
)
def test_write_failures_are_one_line(tmp_path, monkeypatch, code, fragment):
    """A full disk or a read-only folder (simulated: the tests may run as root, who may write anywhere)."""
    import mrq_agents.serialization as serialization

    def refuse(path, write):
        raise OSError(code, __import__("os").strerror(code), str(path))

    monkeypatch.setattr(serialization, "atomic_write", refuse)
    one_line_error(invoke(train_args(tmp_path / "run", 200)), fragment, "run")


# ------------------------------------------------------------------------------------------ a full disk


def test_a_full_disk_keeps_the_last_checkpoint_and_resume_continues_from_it(tmp_path):
    out = tmp_path / "run"
    no_updates = ["--set", "warmup_steps=1000"]  # the replay, which the checkpoint holds, is all this test needs
    assert invoke(train_args(out, 200, *no_updates)).exit_code == 0
    kept = (out / "checkpoint.safetensors").read_bytes()
    # No file may now outgrow the checkpoint of step 200: the next one, holding more replay, cannot be written.
    done = run_limited(["train", "Pendulum-v1", "--out", out, "--resume", "--steps", 400], len(kept), tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"error: File too large ({out / 'checkpoint.safetensors'}): a file outgrew the largest size allowed here "
        "(`ulimit -f` or the file system's): raise the limit or write somewhere else (--out); the run stopped at "
        f"step 400, the checkpoint of step 200 is kept: once fixed, continue with: mrq train Pendulum-v1 --out {out} "
        "--resume"
    )
    assert (out / "checkpoint.safetensors").read_bytes() == kept and not list(out.glob(".*.tmp"))

    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resumed at step 200" in result.stdout and "done: 400 steps" in result.stdout
    assert steps_in_metrics(out) == [200, 400] and checkpoint_step(out) == 400


@pytest.mark.parametrize("command", ["export", "play --record"])
def test_a_full_disk_during_an_export_or_a_recording_is_one_line_and_leaves_no_part(tmp_path, command):
    from helpers.model_folders import make_model_folder

    folder, _, _ = make_model_folder(tmp_path / "model", "InvertedPendulum-v5")  # untrained: episodes of a few steps
    before = snapshot(folder)
    target = tmp_path / "out"
    args = ["export", folder, "--out", target, "--episodes", 1]
    if command != "export":
        args = ["play", folder, "--record", "--video-dir", target]
    done = run_limited(args, 3000, tmp_path)  # smaller than the weights and than a video of a few frames
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(target) in line, line
    assert ("File too large" if command == "export" else "the video was cut short") in line, line
    assert not [p for p in target.rglob("*") if p.is_file()]  # no file cut short, no temp file
    assert snapshot(folder) == before


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
