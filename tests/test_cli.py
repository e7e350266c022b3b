"""End-to-end tests of the `mrq` command line: `mrq train` on one env of each family, `mrq eval`, resuming a
killed run, refusals and bad input. Tiny networks everywhere so the whole file runs in a few minutes on CPU."""

import csv
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mrq_agents
from helpers.tiny import TINY_SETTINGS
from mrq_agents.cli import app
from mrq_agents.serialization import load_tensors, unflatten_state

TINY = TINY_SETTINGS
LOSS_COLUMNS = "encoder_loss dynamics_loss reward_loss termination_loss value_loss policy_loss q_mean".split()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MRQ = (
    [str(Path(sys.executable).with_name("mrq"))]
    if Path(sys.executable).with_name("mrq").exists()
    else [sys.executable, "-m", "mrq_agents.cli"]
)
# One intra-op thread: tiny networks gain nothing from more, and on a shared 2-core machine a second busy
# thread makes every small op spin (a 32x32 layer_norm goes from ~10 us to ~5 ms).
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# One short run per env family: updates start after `warmup`, evaluations every `eval_every` and at the end.
SMOKE = {
    "pendulum": dict(env="Pendulum-v1", steps=600, warmup=200, eval_every=200, obs_shape=[3], discrete=False),
    "dmc": dict(
        env="dm_control/cartpole-balance-v0", steps=600, warmup=200, eval_every=300, obs_shape=[5], discrete=False
    ),
    # 500-step episodes rendered at ~25 frames/s: a short run, and the final evaluation (one whole episode).
    "dmc-pixels": dict(
        env="Dmc-visual-cartpole-balance", steps=150, warmup=100, eval_every=1000, obs_shape=[9, 84, 84], discrete=False
    ),
    "atari": dict(env="ALE/Pong-v5", steps=300, warmup=150, eval_every=150, obs_shape=[4, 84, 84], discrete=True),
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------ helpers


def sets(*extra: str) -> list[str]:
    return [arg for item in (*TINY, *extra) for arg in ("--set", item)]


def invoke(args: list[str]):
    return CliRunner().invoke(app, [str(a) for a in args])


def describe(result) -> str:
    import traceback

    tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    return f"exit code {result.exit_code}\n--- output\n{result.output}\n--- exception\n{tb}"


def assert_ok(result) -> None:
    assert result.exit_code == 0, describe(result)


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr starting with 'error:', no traceback; returns the line."""
    assert result.exit_code == 2, describe(result)
    assert isinstance(result.exception, SystemExit), describe(result)  # not an escaped exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def train_args(name: str, out: Path, *extra: str) -> list[str]:
    s = SMOKE[name]
    return [
        "train",
        s["env"],
        "--out",
        out,
        "--steps",
        s["steps"],
        "--eval-every",
        s["eval_every"],
        "--eval-episodes",
        "1",
        "--device",
        "cpu",
        *sets(f"warmup_steps={s['warmup']}"),
        *extra,
    ]


def read_rows(run: Path) -> list[dict]:
    """metrics.csv as dicts; numbers parsed, empty cells None; incomplete rows (a killed writer) skipped."""

    def parse(text):
        if text == "":
            return None
        try:
            return int(text)
        except ValueError:
            return float(text)

    path = run / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [
            {k: parse(v) for k, v in r.items()} for r in csv.DictReader(f) if None not in r.values() and None not in r
        ]


def checkpoint_counters(run: Path) -> dict:
    tensors, meta = load_tensors(run / "checkpoint.safetensors")
    return unflatten_state(meta["state"], tensors)["counters"]


def tb_steps(run: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder.exists() else {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(name) -> (run folder, CliRunner result) of SMOKE[name], trained once per module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            out = tmp_path_factory.mktemp(name.replace("-", "_")) / "run"
            cache[name] = (out, invoke(train_args(name, out)))
        return cache[name]

    return get


@pytest.fixture
def finished_run(trained, tmp_path):
    """A private copy of the finished Pendulum run (tests may break it)."""
    src, result = trained("pendulum")
    assert_ok(result)
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------ smoke runs


@pytest.mark.parametrize("name", list(SMOKE))
def test_train_smoke(trained, name):
    s = SMOKE[name]
    out, result = trained(name)
    assert_ok(result)
    assert f"done: {s['steps']:,} steps" in result.stdout

    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == 1
    assert config["package_version"] == mrq_agents.__version__
    assert config["env"]["env_id"] == s["env"]
    assert config["spaces"]["obs_shape"] == s["obs_shape"]
    assert config["spaces"]["discrete"] is s["discrete"]
    assert config["spaces"]["pixels"] is (len(s["obs_shape"]) == 3)
    assert config["algorithm"]["enc_hdim"] == 32 and config["algorithm"]["batch_size"] == 32
    assert config["algorithm"]["warmup_steps"] == s["warmup"]
    assert config["run"]["env_id"] == s["env"]
    assert config["run"]["fast"] is None and config["training"]["fast_path"] is False  # auto: plain on the CPU
    assert (config["run"]["steps"], config["run"]["eval_every"], config["run"]["eval_episodes"]) == (
        s["steps"],
        s["eval_every"],
        1,
    )

    for name_ in ("model.safetensors", "checkpoint.safetensors", "learning_curve.png"):
        assert (out / name_).is_file() and (out / name_).stat().st_size > 0, name_
    assert (out / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert glob.glob(str(out / "events.out.tfevents.*"))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    expected_steps = sorted(set(range(s["eval_every"], s["steps"] + 1, s["eval_every"])) | {s["steps"]})
    rows = read_rows(out)
    assert [r["step"] for r in rows] == expected_steps  # one row per evaluation
    assert tb_steps(out, "eval/return_mean") == expected_steps
    walls = [r["wall_time"] for r in rows]
    assert walls == sorted(walls)
    for r in rows:
        assert math.isfinite(r["eval_return_mean"]) and r["eval_return_std"] == 0.0  # one eval episode
    assert load_tensors(out / "model.safetensors")[1]["step"] == s["steps"]
    assert checkpoint_counters(out)["step"] == s["steps"]

    for r in rows:
        if r["step"] <= s["warmup"]:  # no update yet
            assert all(r[k] is None for k in LOSS_COLUMNS), r
        else:  # every loss column is filled once updates run
            empty = [k for k in LOSS_COLUMNS if r[k] is None]
            assert not empty, f"step {r['step']}: empty loss columns {empty}"
            assert all(math.isfinite(r[k]) for k in LOSS_COLUMNS), r


# ------------------------------------------------------------------------------------------------ mrq eval


def eval_json(run: Path, *extra: str) -> dict:
    result = invoke(["eval", run, "--json", *extra])
    assert_ok(result)
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", ["pendulum", "atari"])
def test_eval_json_is_reproducible(trained, name):
    run, result = trained(name)
    assert_ok(result)
    # The outcome may depend on --seed only: torch's global generator is seeded randomly in every new
    # process, so two `mrq eval` processes start from different global states; simulate that in-process.
    torch.manual_seed(0)
    first = eval_json(run, "--episodes", "2", "--seed", "0")
    torch.manual_seed(1)
    again = eval_json(run, "--episodes", "2", "--seed", "0")
    assert first == again
    assert first["env_id"] == SMOKE[name]["env"]
    assert first["episodes"] == 2 and first["seed"] == 0
    assert len(first["returns"]) == 2 and len(first["lengths"]) == 2
    assert first["mean"] == pytest.approx(np.mean(first["returns"]))
    assert first["std"] == pytest.approx(np.std(first["returns"]))


def test_eval_matches_training_evaluation(trained):
    run, result = trained("pendulum")
    assert_ok(result)
    out = eval_json(run, "--episodes", "2")
    assert out["deterministic"] is True  # continuous actions: always tanh(pre)
    assert out["lengths"] == [200, 200]
    # model.safetensors holds the weights of the last evaluation, and `mrq eval` replays the same eval episodes
    assert out["returns"][0] == pytest.approx(read_rows(run)[-1]["eval_return_mean"], rel=1e-6)
    other = eval_json(run, "--episodes", "2", "--seed", "1")
    assert other["seed"] == 1 and other["returns"] != out["returns"]

    text = invoke(["eval", run, "--episodes", "1"])
    assert_ok(text)
    assert text.stdout.startswith("Pendulum-v1: return ") and len(text.stdout.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ resume


def test_resume_after_sigkill(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "Pendulum-v1",
        "--out",
        str(out),
        "--steps",
        "2000",
        "--eval-every",
        "200",
        "--checkpoint-every",
        "400",
        "--eval-episodes",
        "1",
        "--device",
        "cpu",
        *sets("warmup_steps=200"),
    ]
    log_path = tmp_path / "killed.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(MRQ + args, stdout=log, stderr=subprocess.STDOUT, env=SUBPROCESS_ENV)
    try:
        deadline = time.monotonic() + 180
        while True:  # kill once a checkpoint exists and evaluations were logged after it
            assert proc.poll() is None, f"the run ended before it was killed:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, log_path.read_text()
            if (out / "checkpoint.safetensors").exists():
                ckpt = checkpoint_counters(out)["step"]
                if any(r["step"] > ckpt for r in read_rows(out)):
                    break
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    ckpt = checkpoint_counters(out)["step"]
    before = read_rows(out)
    killed_after = {r["step"]: r for r in before if r["step"] > ckpt}
    assert ckpt in (400, 800, 1200, 1600) and killed_after, (ckpt, before)

    # --set values may be repeated as long as they agree with the saved config
    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume", *sets("warmup_steps=200")])
    assert_ok(result)
    assert f"resumed at step {ckpt:,}" in result.stdout
    assert "done: 2,000 steps" in result.stdout

    rows = read_rows(out)
    assert [r["step"] for r in rows] == list(range(200, 2001, 200))  # no repeats, no gaps
    walls = [r["wall_time"] for r in rows]
    assert walls == sorted(walls), walls
    assert rows[: len(before) - len(killed_after)] == [r for r in before if r["step"] <= ckpt]  # kept as they were
    # the resumed run replays exactly what the killed run had done after its checkpoint
    for r in rows:
        if r["step"] in killed_after:
            for key in ("episodes", "eval_return_mean", *LOSS_COLUMNS, "reward_scale"):
                expected = killed_after[r["step"]][key]
                assert r[key] == (None if expected is None else pytest.approx(expected, rel=1e-6)), (r["step"], key)
    assert checkpoint_counters(out)["step"] == 2000
    assert load_tensors(out / "model.safetensors")[1]["step"] == 2000
    assert tb_steps(out, "eval/return_mean") == list(range(200, 2001, 200))
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["steps"] == 2000 and config["algorithm"]["warmup_steps"] == 200


def test_resume_finished_run_reuses_saved_config(finished_run):
    before = read_rows(finished_run)
    # neither the --set values nor the run settings need repeating: they come from config.json
    result = invoke(["train", "Pendulum-v1", "--out", finished_run, "--resume"])
    assert_ok(result)
    assert "nothing to do" in result.stdout
    assert read_rows(finished_run) == before

    # a larger --steps continues the run, still without repeating --set
    result = invoke(["train", "Pendulum-v1", "--out", finished_run, "--resume", "--steps", "800"])
    assert_ok(result)
    assert "resumed at step 600" in result.stdout and "done: 800 steps" in result.stdout
    rows = read_rows(finished_run)
    assert rows[:3] == before and [r["step"] for r in rows] == [200, 400, 600, 800]
    assert rows[-1]["value_loss"] is not None
    config = json.loads((finished_run / "config.json").read_text())
    assert config["run"]["steps"] == 800
    assert config["algorithm"]["enc_hdim"] == 32 and config["algorithm"]["warmup_steps"] == 200


def test_resume_on_other_hardware_records_where_each_part_trained(finished_run, tmp_path):
    import torch

    config = json.loads((finished_run / "config.json").read_text())  # as if the first 600 steps ran on a GPU
    config["training"].update(device="cuda", torch="2.11.0+cu130", fast_path=True)
    (finished_run / "config.json").write_text(json.dumps(config))
    assert_ok(invoke(["train", "Pendulum-v1", "--out", finished_run, "--resume", "--steps", "800"]))
    training = json.loads((finished_run / "config.json").read_text())["training"]
    assert training["device"] == "cpu" and training["segments"] == [
        {"from_step": 0, "device": "cuda", "torch": "2.11.0+cu130", "fast_path": True},
        {"from_step": 600, "device": "cpu", "torch": torch.__version__, "fast_path": False},
    ]
    assert_ok(invoke(["train", "Pendulum-v1", "--out", finished_run, "--resume", "--steps", "1000"]))
    assert json.loads((finished_run / "config.json").read_text())["training"]["segments"] == training["segments"]
    assert_ok(invoke(["export", str(finished_run), "--out", str(tmp_path / "export"), "--episodes", "1"]))
    card = (tmp_path / "export" / "README.md").read_text()
    assert (
        f"on cuda (torch 2.11.0+cu130, fast path) to step 600, then cpu (torch {torch.__version__}, plain path), "
        "fp32 precision"
    ) in card


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["train", "MountainCarContinuous-v0", "--resume"], ["Pendulum-v1", "MountainCarContinuous-v0"]),
        (["train", "Pendulum-v1", "--resume", "--set", "enc_hdim=64"], ["enc_hdim"]),
        (["train", "Pendulum-v1", "--resume", *sets("warmup_steps=200", "batch_size=64")], ["batch_size"]),
        (["train", "Pendulum-v1", "--resume", "--seed", "1"], ["--seed"]),
        (["train", "Pendulum-v1", "--resume", "--eval-episodes", "3"], ["--eval-episodes"]),
        (["train", "Pendulum-v1"], ["already holds a run", "--resume"]),
        (["train", "Pendulum-v1", *sets("warmup_steps=200")], ["already holds a run"]),
    ],
    ids=[
        "other-env",
        "other-set",
        "other-set-among-same",
        "other-seed",
        "other-eval-episodes",
        "new-run-into-run",
        "new-run-into-run-same-settings",
    ],
)
def test_resume_refusals(finished_run, extra, fragments):
    before = snapshot(finished_run)
    result = invoke([*extra, "--out", finished_run, "--device", "cpu"])
    assert_one_line_error(result, *fragments)
    assert snapshot(finished_run) == before  # the refused command wrote nothing


def test_resume_without_checkpoint(finished_run, tmp_path):
    (finished_run / "checkpoint.safetensors").unlink()
    before = snapshot(finished_run)
    assert_one_line_error(invoke(["train", "Pendulum-v1", "--out", finished_run, "--resume"]), "nothing to resume")
    assert snapshot(finished_run) == before

    empty = tmp_path / "empty"
    assert_one_line_error(invoke(["train", "Pendulum-v1", "--out", empty, "--resume", *sets()]), "nothing to resume")
    assert not empty.exists() or not any(empty.iterdir())


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("env_id", ["NoSuchEnv-v0", "dm_control/cartpole-nosuchtask-v0", "ALE/NoSuchGame-v5"])
def test_unknown_env(tmp_path, env_id):
    assert_one_line_error(invoke(["train", env_id, "--out", tmp_path / "run", "--steps", "10"]), env_id)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "assignment, fragments",
    [
        ("nosuchfield=1", ["'nosuchfield'"]),
        ("enc_hdm=64", ["'enc_hdm'", "did you mean 'enc_hdim'"]),
        ("enc_hdim=abc", ["enc_hdim expects an integer", "'abc'"]),
        ("enc_hdim", ["name=value"]),
        ("enc_hdim=0", ["enc_hdim", ">= 1"]),
        ("enc_lr=-1", ["enc_lr", "> 0"]),
        ("enc_lr=nan", ["enc_lr", "finite"]),
        ("value_wd=inf", ["value_wd", "finite"]),
        ("exploration_noise=-0.1", ["exploration_noise", ">= 0"]),
    ],
)
def test_bad_set(tmp_path, assignment, fragments):
    line = assert_one_line_error(
        invoke(["train", "Pendulum-v1", "--out", tmp_path / "run", "--steps", "10", "--set", assignment]), *fragments
    )
    if assignment.startswith("nosuchfield"):  # no close name: the hint lists the known ones instead
        assert "did you mean" in line or ("known fields" in line and "enc_hdim" in line), line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", [["--steps", "0"], ["--eval-every", "0"], ["--eval-episodes", "0"]])
def test_bad_run_settings(tmp_path, option):
    assert_one_line_error(invoke(["train", "Pendulum-v1", "--out", tmp_path / "run", *option]), option[0])
    assert not (tmp_path / "run").exists()


def _corrupt_model(run: Path) -> None:
    (run / "model.safetensors").write_bytes(b"\x00garbage, not safetensors\xff" * 40)


def _future_format(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["format_version"] = 99
    (run / "config.json").write_text(json.dumps(config))


def _broken_json(run: Path) -> None:
    (run / "config.json").write_text('{"format_version": 1, "env": ')


def _other_config(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["algorithm"]["enc_hdim"] = 64
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (_corrupt_model, ["model.safetensors", "corrupt"]),
        (_future_format, ["format version 99"]),
        (_broken_json, ["config.json", "not valid JSON"]),
        (_other_config, ["does not fit"]),
    ],
    ids=["corrupt-model", "format-99", "broken-config", "config-mismatch"],
)
def test_eval_bad_folder(finished_run, damage, fragments):
    damage(finished_run)
    assert_one_line_error(invoke(["eval", finished_run, "--episodes", "1"]), *fragments)


@pytest.mark.parametrize("episodes", ["-1", "0"])
@pytest.mark.parametrize("command", ["eval", "play", "export"])
def test_episodes_below_one(finished_run, tmp_path, command, episodes):
    extra = ["--out", tmp_path / "export"] if command == "export" else []
    assert_one_line_error(
        invoke([command, finished_run, "--episodes", episodes, *extra]), f"--episodes must be >= 1, got {episodes}"
    )
    assert not (tmp_path / "export").exists()


def test_config_unknown_preset():
    assert_one_line_error(invoke(["config", "--preset", "tiny"]), "unknown preset 'tiny'", "paper", "small")


def test_eval_missing_folder(tmp_path):
    assert_one_line_error(invoke(["eval", tmp_path / "nope", "--episodes", "1"]), str(tmp_path / "nope"))


@pytest.mark.parametrize("case", ["eval-missing", "eval-corrupt", "train-unknown-env"])
def test_console_script_errors(finished_run, tmp_path, case):
    """The installed `mrq` script: one line on stderr, exit code 2, no traceback anywhere."""
    if case == "eval-missing":
        args = ["eval", str(tmp_path / "nope")]
    elif case == "eval-corrupt":
        _corrupt_model(finished_run)
        args = ["eval", str(finished_run), "--episodes", "1"]
    else:
        args = ["train", "NoSuchEnv-v0", "--out", str(tmp_path / "x")]
    proc = subprocess.run(MRQ + args, capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=120)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_fast_flag_trains_and_is_kept_on_resume(trained, tmp_path):
    """--fast on the CPU (fused optimizers; the CUDA graphs need a GPU) runs the same math as the plain path."""
    out = tmp_path / "fast"
    result = invoke(train_args("pendulum", out, "--fast"))
    assert_ok(result)
    assert "(fast path, fp32)" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["fast"] is True and config["training"]["fast_path"] is True
    fast_rows, plain_rows = read_rows(out), read_rows(trained("pendulum")[0])
    assert [r["step"] for r in fast_rows] == [r["step"] for r in plain_rows]
    # Same seed, same math: the first evaluation after updates start agrees with the plain run's closely.
    first = [(f, p) for f, p in zip(fast_rows, plain_rows) if f["value_loss"] is not None][0]
    for key in ("value_loss", "encoder_loss", "q_mean"):
        assert first[0][key] == pytest.approx(first[1][key], rel=1e-3, abs=1e-4), key
    result = invoke(["train", "Pendulum-v1", "--out", out, "--resume", "--steps", "800"])
    assert_ok(result)
    assert "(fast path, fp32)" in result.stdout


# ------------------------------------------------------------------------------------------------ determinism


def test_same_seed_same_metrics(trained, tmp_path):
    first, result = trained("pendulum")
    assert_ok(result)
    second = tmp_path / "again"
    assert_ok(invoke(train_args("pendulum", second)))
    a, b = read_rows(first), read_rows(second)
    columns = ["step", "episodes", "eval_return_mean", *LOSS_COLUMNS, "reward_scale"]
    assert [[r[c] for c in columns] for r in a] == [[r[c] for c in columns] for r in b]
    assert any(r["value_loss"] is not None for r in a)  # updates did run

    other = tmp_path / "seed1"
    assert_ok(invoke(train_args("pendulum", other, "--seed", "1")))
    assert [r["eval_return_mean"] for r in read_rows(other)] != [r["eval_return_mean"] for r in a]


def test_training_shows_how_far_each_evaluation_is(tmp_path):
    """The progress bar does not stand still through an evaluation: it hears of each evaluation episode."""
    from mrq_agents.training.trainer import build_trainer

    overrides = [*TINY, "warmup_steps=1000"]  # no updates: only the loop's calls are tested
    trainer = build_trainer(
        "Pendulum-v1",
        tmp_path / "run",
        "paper",
        overrides,
        log=lambda line: None,
        steps=400,
        eval_every=200,
        eval_episodes=2,
        device="cpu",
    )
    seen = []
    trainer.train(progress=lambda step, info: seen.append((step, info.get("evaluating"))))
    evaluating = [(step, shown) for step, shown in seen if shown is not None]
    assert evaluating == [(200, (0, 2)), (200, (1, 2)), (200, (2, 2)), (400, (0, 2)), (400, (1, 2)), (400, (2, 2))]
    assert len(seen) == 400 + len(evaluating)  # and once after every step
