"""`mrq sweep`: the spec, and tiny CartPole sweeps on an embedded local Ray (completion, kill -9 and resume,
a failing run beside good ones), with no Ray processes left behind; a run never trains beside another writer of
its folder. Sweeps on Ray clusters: test_sweep_cluster.py; --plan: test_sweep_plan.py."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.ray_cluster import assert_no_ray_left, ray_processes
from helpers.sweeps import TINY, eval_steps, write_spec
from mrq_agents.cli import app
from mrq_agents.sweep import RunSpec, SweepSpecError, load_spec, parse_spec
from mrq_agents.training.checkpoint import checkpoint_step

pytestmark = pytest.mark.slow

runner = CliRunner()

ISSUE_SPEC = """
[defaults]
steps = 100000
preset = "paper"
eval_every = 5000
[[runs]]
envs = ["Dmc-walker-walk", "Dmc-cheetah-run"]
seeds = [0, 1, 2]
[[runs]]
envs = ["CartPole-v1"]
seeds = [0]
steps = 20000
set = ["enc_hdim=128"]
"""


# --------------------------------------------------------------------------------------------- the spec


def test_the_issue_spec_expands_to_a_grid(tmp_path):
    runs = load_spec(write_spec(tmp_path / "s.toml", ISSUE_SPEC))
    assert [r.name for r in runs] == [
        "Dmc-walker-walk-seed0",
        "Dmc-walker-walk-seed1",
        "Dmc-walker-walk-seed2",
        "Dmc-cheetah-run-seed0",
        "Dmc-cheetah-run-seed1",
        "Dmc-cheetah-run-seed2",
        "CartPole-v1-seed0",
    ]
    assert runs[0] == RunSpec("Dmc-walker-walk", 0, steps=100_000, preset="paper", eval_every=5000)
    assert runs[-1] == RunSpec(
        "CartPole-v1", 0, steps=20_000, preset="paper", eval_every=5000, overrides=("enc_hdim=128",)
    )
    assert runs[-1].command(Path("out")) == (
        "mrq train CartPole-v1 --seed 0 --out out/CartPole-v1-seed0 --steps 20000 --eval-every 5000 --set enc_hdim=128"
    )
    assert RunSpec("dm_control/walker-walk-v0", 3).name == "dm_control_walker-walk-v0-seed3"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[defaults]\nstepz = 5\n[[runs]]\nenvs = ['CartPole-v1']\n", "[defaults]: unknown key 'stepz'"),
        (
            "[[runs]]\nenvs = ['CartPole-v1']\nsteps = 'many'\n",
            "[[runs]] #1: key 'steps' must be an integer, got 'many'",
        ),
        ("[[runs]]\nenvs = 'CartPole-v1'\n", "key 'envs' must be a non-empty list of env ids"),
        ("[[runs]]\nenvs = ['CartPole-v1']\nseeds = [0, -1]\n", "key 'seeds' must be a non-empty list of integers"),
        ("[[runs]]\nenv = 'CartPole-v1'\n", "unknown key 'env' (use 'envs = [...]')"),
        ("[[runs]]\nenvs = ['CartPole-v1']\nset = ['no_such=1']\n", "key 'set'"),
        ("[[runs]]\nenvs = ['CartPole-v1']\npreset = 'huge'\n", "key 'preset': unknown preset 'huge'"),
        ("[[runs]]\nenvs = ['CartPole-v1']\nprecision = 16\n", "key 'precision'"),
        ("[defaults]\nsteps = 5\n", "'runs' must be one or more [[runs]] tables"),
        (
            "[[runs]]\nenvs = ['CartPole-v1']\n[[runs]]\nenvs = ['CartPole-v1']\nsteps = 9\n",
            "[[runs]] #2: CartPole-v1 seed 0 is also in",
        ),
        ("[[runs]\nenvs = 1\n", "is not valid TOML"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_key(tmp_path, text, message):
    spec = write_spec(tmp_path / "bad.toml", text)
    with pytest.raises(SweepSpecError) as err:
        load_spec(spec)
    assert message in str(err.value) and "\n" not in str(err.value)
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_spec_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["sweep", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "cannot read the sweep spec" in result.output


def test_without_ray_sweep_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    spec = write_spec(tmp_path / "s.toml", ISSUE_SPEC)
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip() == 'error: mrq sweep needs Ray: pip install "mrq-agents[ray]"'


def test_importing_the_package_does_not_import_ray():
    code = (
        "import sys, mrq_agents, mrq_agents.cli, mrq_agents.sweep, mrq_agents.report, mrq_agents.paper; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parse_spec_defaults_apply_to_every_group():
    runs = parse_spec(
        {"defaults": {"steps": 7, "seeds": [4]}, "runs": [{"envs": ["A-v0"]}, {"envs": ["B-v0"], "steps": 9}]}
    )
    assert [(r.env, r.seed, r.steps) for r in runs] == [("A-v0", 4, 7), ("B-v0", 4, 9)]


# --------------------------------------------------------------------------------------------- on Ray


def test_sweep_of_two_runs_and_a_failing_one_then_report(tmp_path):
    before = ray_processes()
    spec = write_spec(
        tmp_path / "s.toml",
        TINY.format(steps=200, envs='["CartPole-v1"]') + '[[runs]]\nenvs = ["NoSuchEnv-v0"]\nseeds = [0]\n',
    )
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(out), "--max-concurrent", "2"])
    assert result.exit_code == 1, result.output  # one run failed
    for seed in (0, 1):
        folder = out / f"CartPole-v1-seed{seed}"
        assert eval_steps(folder) == [100, 200] and checkpoint_step(folder) == 200
        assert (folder / "model.safetensors").exists()
    state = json.loads((out / "sweep.json").read_text())["runs"]
    assert [state[f"CartPole-v1-seed{s}"]["status"] for s in (0, 1)] == ["done", "done"]
    failed = state["NoSuchEnv-v0-seed0"]
    assert failed["status"] == "failed" and failed["attempts"] == 1  # bad input: not retried
    assert "unknown env id 'NoSuchEnv-v0'" in failed["error"]
    line = next(ln for ln in result.output.splitlines() if ln.startswith("NoSuchEnv-v0-seed0"))
    assert "failed" in line and "error: unknown env id 'NoSuchEnv-v0'" in line
    assert "Traceback" not in result.output
    assert (out / "report" / "report.md").exists() and (out / "report" / "CartPole-v1.png").exists()
    assert (out / "report" / "overview.png").exists()
    assert "| 200 |" in (out / "report" / "report.md").read_text()
    # the run folders are ordinary: mrq eval reads them, and a relaunch skips the finished runs
    evaluated = runner.invoke(app, ["eval", str(out / "CartPole-v1-seed0"), "--episodes", "1"])
    assert evaluated.exit_code == 0 and "CartPole-v1: return" in evaluated.output
    assert "no paper reference" in evaluated.output
    good = write_spec(tmp_path / "good.toml", TINY.format(steps=200, envs='["CartPole-v1"]'))
    again = runner.invoke(app, ["sweep", str(good), "--out", str(out), "--no-report"])
    assert again.exit_code == 0 and again.output.count("done (skipped: finished)") == 2  # Ray not even started
    assert_no_ray_left(before, (os.getpgid(0),))


def test_a_killed_sweep_resumes_both_runs_without_duplicated_evaluations(tmp_path):
    before = ray_processes()
    steps = 600
    spec = write_spec(tmp_path / "s.toml", TINY.format(steps=steps, envs='["CartPole-v1"]'))
    out = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "mrq_agents.cli",
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--max-concurrent",
        "2",
        "--no-report",
    ]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folders = [out / "CartPole-v1-seed0", out / "CartPole-v1-seed1"]
    try:
        deadline = time.monotonic() + 240
        while not all((checkpoint_step(f) or 0) >= 100 for f in folders):
            assert driver.poll() is None and time.monotonic() < deadline, "the sweep never checkpointed"
            time.sleep(0.1)
        os.kill(driver.pid, signal.SIGKILL)  # kill -9 of the driver, mid-way
        driver.wait()
        # the raylet notices and takes the runs' workers down with it; nothing trains on after the driver
        deadline = time.monotonic() + 60
        # Wait for every run worker, orphaned or not yet: on a loaded machine one still ending (a SIGTERM'd run
        # writes a last checkpoint) under a dying parent was missed by waiting only for orphans (CI, 2026-11-26).
        while any(
            "raylet" in args or "_train_task" in args
            for pid, (ppid, pgid, args) in ray_processes().items()
            if pid not in before
        ):
            assert time.monotonic() < deadline, "Ray outlived its killed driver"
            time.sleep(0.5)
        killed_at = [checkpoint_step(f) for f in folders]
        rows_at_kill = [len(eval_steps(f)) for f in folders]
        time.sleep(3)
        assert [checkpoint_step(f) for f in folders] == killed_at  # no orphaned worker still training
        assert [len(eval_steps(f)) for f in folders] == rows_at_kill
        # both runs have a checkpoint; on a loaded machine one may already have finished before the other started
        assert all(s >= 100 for s in killed_at) and any(s < steps for s in killed_at), killed_at
    finally:
        if driver.poll() is None:
            driver.kill()
        try:  # Ray's helper agents stay in the killed driver's process group; end that group (ours) only
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    relaunch = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert relaunch.returncode == 0, relaunch.stdout + relaunch.stderr
    state = json.loads((out / "sweep.json").read_text())["runs"]
    for folder, step in zip(folders, killed_at):
        record = state[folder.name]
        assert record["status"] == "done"
        if step < steps:
            assert record["resumed_from"] == step  # continued from its checkpoint
        else:
            assert record["skipped"]  # finished before the kill: not trained again
        assert eval_steps(folder) == list(range(100, steps + 1, 100))  # every evaluation exactly once
        assert checkpoint_step(folder) == steps
    assert_no_ray_left(before, (os.getpgid(0), driver.pid))


def test_train_run_restarts_a_run_killed_before_its_first_checkpoint(tmp_path):
    from mrq_agents.sweep import run_status, train_run

    run = load_spec(write_spec(tmp_path / "s.toml", TINY.format(steps=100, envs='["CartPole-v1"]')))[0]
    folder = tmp_path / run.name
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # what a run killed before its first checkpoint leaves
    (folder / "metrics.csv").write_text("step\n")
    assert run_status(run, folder) == ("restart", 0)
    reports = []
    summary = train_run(run, tmp_path, threads=1, report=reports.append)
    assert summary["step"] == 100 and run_status(run, folder) == ("done", 100)
    assert eval_steps(folder) == [100] and reports[-1]["step"] == 100
    assert train_run(run, tmp_path)["step"] == 100  # finished: nothing more to do


HOLD_LOCK = """
import sys, time
from pathlib import Path
from mrq_agents.training.run_folder import lock
held = lock(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(float(sys.argv[2]))
Path(sys.argv[3]).write_text(repr(time.time()))  # then the process ends, and the OS drops the lock
"""


def test_a_run_waits_for_another_writer_of_its_folder_and_never_trains_beside_it(tmp_path):
    """A relaunched sweep may reach a run whose killed worker still writes its last checkpoint."""
    from mrq_agents.sweep import train_run
    from mrq_agents.training.run_folder import RunFolderBusyError

    run = load_spec(write_spec(tmp_path / "s.toml", TINY.format(steps=100, envs='["CartPole-v1"]')))[0]
    folder = tmp_path / run.name
    folder.mkdir()

    def holder(seconds: float) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(folder), str(seconds), str(tmp_path / "released")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "held"
        return proc

    dying = holder(2.0)
    reports = []
    summary = train_run(run, tmp_path, threads=1, report=lambda info: reports.append((time.time(), info)))
    dying.wait()
    assert summary["step"] == 100 and eval_steps(folder) == [100]
    assert reports[0][0] >= float((tmp_path / "released").read_text())  # it began only once the other let go
    assert reports[0][1] == {"step": 0, "started_from": 0}
    stuck = holder(60.0)
    try:
        with pytest.raises(RunFolderBusyError) as err:
            train_run(run, tmp_path, busy_wait_s=1.0)
        assert f"is in use by another mrq process (PID {stuck.pid})" in str(err.value)
    finally:
        stuck.kill()
        stuck.wait()
