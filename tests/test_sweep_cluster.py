"""`mrq sweep` on Ray clusters that these tests start on the loopback (tests/helpers/ray_cluster.py): attaching with the
cluster's token and refusing a wrong or missing one in one line, a killed driver relaunched, two nodes and a lost
one, then a lost cluster, the embedded default kept to 127.0.0.1 and to this process; a bad address or a dead
cluster is one line. Every Ray process started here listens on, and talks to, 127.0.0.1 only, and none is left
behind."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.ray_cluster import (
    assert_no_ray_left,
    free_port,
    group_pids,
    head,
    kill_group,
    kill_node,
    off_loopback,
    ray_processes,
    sockets,
    spawn,
    two_nodes,
)
from helpers.sweeps import TINY, eval_steps, write_spec
from mrq_agents.cli import app
from mrq_agents.training.checkpoint import checkpoint_step

pytestmark = pytest.mark.slow

runner = CliRunner()
FAST_REFUSAL = {"RAY_gcs_server_port_wait_time_s": "2"}  # Ray retries a refused driver for 20 s by default


def sweep_command(spec: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "mrq_agents.cli", "sweep", str(spec), "--out", str(out), "--address", address]


def sweep_records(out: Path) -> dict:
    try:
        return json.loads((out / "sweep.json").read_text())["runs"]
    except (OSError, json.JSONDecodeError):  # not written yet
        return {}


def wait_for(condition, timeout: float, what: str, driver: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert driver is None or driver.poll() is None, driver.stdout.read() if driver.stdout else "driver ended"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One `ray start --head` node (1 CPU) with token authentication, shared by this module's attach tests."""
    before = ray_processes()
    with head(tmp_path_factory.mktemp("head"), cpus=1) as c:
        yield c
    assert_no_ray_left(before, (c.pgid,))


# --------------------------------------------------------------------------------------------- one line


@pytest.mark.parametrize(
    "address, message",
    [
        ("nohost", "--address 'nohost' is not HOST:PORT"),
        ("ray://10.0.0.1:10001", "Ray Client addresses (ray://...) are not supported"),
        (
            "127.0.0.1:{dead}",
            "no Ray cluster answers at 127.0.0.1:{dead} (Connection refused): start one there with "
            "`ray start --head --port {dead}`",
        ),
        ("RAY_ADDRESS=127.0.0.1:{dead}", "no Ray cluster answers at 127.0.0.1:{dead}"),
    ],
)
def test_a_bad_address_or_a_dead_cluster_is_one_line(tmp_path, monkeypatch, address, message):
    dead = free_port()  # nothing listens there
    address, message = address.format(dead=dead), message.format(dead=dead)
    spec = write_spec(tmp_path / "s.toml", TINY.format(steps=100, envs='["CartPole-v1"]'))
    args = ["sweep", str(spec), "--out", str(tmp_path / "out")]
    if address.startswith("RAY_ADDRESS="):
        monkeypatch.setenv("RAY_ADDRESS", address.removeprefix("RAY_ADDRESS="))
    else:
        args += ["--address", address]
    started = time.monotonic()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output and time.monotonic() - started < 15


def test_a_wrong_or_missing_token_is_one_line(cluster, tmp_path):
    spec = write_spec(tmp_path / "s.toml", TINY.format(steps=100, envs='["CartPole-v1"]'))
    refused = f"error: the Ray cluster at {cluster.address} refused this driver (token authentication): "
    for token, fix in (
        (
            "0" * 64,
            "the token from RAY_AUTH_TOKEN is not the cluster's: use the one `ray "
            "get-auth-token` prints on the head node",
        ),
        (
            "",
            "this machine has no Ray token: put the cluster's (`ray get-auth-token` on the head "
            "node) in RAY_AUTH_TOKEN or ~/.ray/auth_token",
        ),
    ):
        result = subprocess.run(
            sweep_command(spec, tmp_path / "out", cluster.address),
            capture_output=True,
            text=True,
            timeout=120,
            env=cluster.env(token=token, **FAST_REFUSAL),
        )
        assert result.returncode == 2 and result.stderr == refused + fix + "\n", result.stderr
        assert "Traceback" not in result.stdout


# --------------------------------------------------------------------------------------------- attached


def test_attached_with_the_users_token_a_killed_driver_is_relaunched(cluster, tmp_path):
    """With the token in ~/.ray/auth_token (which Ray 2.60 does not send to an address it is given), on the 1-CPU
    head: seed 0 finishes, seed 1 checkpoints, the driver is killed (kill -9) and relaunched at
    once: seed 0 is skipped, seed 1 resumes from its checkpoint, every evaluation is in its metrics once."""
    steps = 200
    spec = write_spec(tmp_path / "s.toml", TINY.format(steps=steps, envs='["CartPole-v1"]'))
    out = tmp_path / "sweep"
    folders = [out / "CartPole-v1-seed0", out / "CartPole-v1-seed1"]
    driver = spawn(sweep_command(spec, out, cluster.address), cluster.env(), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: any(checkpoint_step(f) for f in folders), 120, "a first checkpoint", driver)
        pids = group_pids(cluster.pgid) | group_pids(driver.pid)  # the head's processes, its workers, the driver
        assert any(s[1] == "LISTEN" for s in sockets(pids)) and off_loopback(pids) == []
        wait_for(
            lambda: checkpoint_step(folders[0]) == steps and (checkpoint_step(folders[1]) or 0) >= 100,
            120,
            "seed 0 to finish and seed 1 to checkpoint",
            driver,
        )
    finally:
        kill_group(driver.pid)  # kill -9 of the driver mid-sweep; the cluster lives on
    killed_at = checkpoint_step(folders[1])  # a worker ending under SIGTERM may still add one: resume from it
    relaunch = subprocess.run(
        sweep_command(spec, out, cluster.address), env=cluster.env(), capture_output=True, text=True, timeout=300
    )
    assert relaunch.returncode == 0, relaunch.stdout + relaunch.stderr
    records = sweep_records(out)
    assert records["CartPole-v1-seed0"]["skipped"] and records["CartPole-v1-seed0"]["attempts"] == 0
    seed1 = records["CartPole-v1-seed1"]
    assert seed1["status"] == "done"
    assert seed1["skipped"] or killed_at <= seed1["resumed_from"] < steps  # from its checkpoint, not from step 0
    for folder in folders:
        assert eval_steps(folder) == [100, 200] and checkpoint_step(folder) == steps
    assert relaunch.stdout.count("report: ") == 1 and (out / "report" / "report.md").exists()


# --------------------------------------------------------------------------------------------- two nodes


def test_two_nodes_lose_one_then_the_whole_cluster(tmp_path):
    """A head and a worker node of 1 CPU each: the two runs train one on each; the worker node is killed (its
    raylet and every process it started) while its run trains; the run is retried on the head and resumes from
    its checkpoint; every evaluation is written once; the sweep says what happened. Then a sweep loses the whole
    cluster: one line, and the run keeps its checkpoint."""
    before = ray_processes()
    steps = 300
    spec = write_spec(tmp_path / "s.toml", TINY.format(steps=steps, envs='["CartPole-v1"]'))
    out = tmp_path / "sweep"
    with two_nodes(tmp_path / "cluster", cpus=1) as c:
        worker = c.worker["node_id"][:8]
        driver = spawn(sweep_command(spec, out, c.address), c.env(), stderr=subprocess.STDOUT)
        try:

            def nodes() -> dict[str, str]:
                return {name: r["node"] for name, r in sweep_records(out).items() if r["node"]}

            wait_for(lambda: len(nodes()) == 2, 120, "both runs to start", driver)
            assert len(set(nodes().values())) == 2, nodes()  # one run on each node
            victim = next(name for name, node in nodes().items() if node.endswith(worker))
            wait_for(lambda: (checkpoint_step(out / victim) or 0) >= 100, 120, "a checkpoint on the worker", driver)
            pids = group_pids(c.pgid) | group_pids(driver.pid)
            assert off_loopback(pids) == []
            killed_at = checkpoint_step(out / victim)
            kill_node(c.worker["raylet"])
            output, _ = driver.communicate(timeout=300)
        finally:
            kill_group(driver.pid)
        assert driver.returncode == 0, output
        long_spec = write_spec(tmp_path / "long.toml", TINY.format(steps=100_000, envs='["CartPole-v1"]'))
        last = subprocess.Popen(
            sweep_command(long_spec, tmp_path / "lost", c.address),
            env=c.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            wait_for(lambda: checkpoint_step(tmp_path / "lost" / "CartPole-v1-seed0"), 120, "a checkpoint", last)
            kill_group(c.pgid)  # the whole cluster, head included
            _, errors = last.communicate(timeout=120)
        finally:
            kill_group(last.pid)
    assert last.returncode == 2 and "Traceback" not in errors, errors
    assert re.fullmatch(
        rf"error: lost the Ray cluster at {c.address} mid-sweep \(\w+\): the run folders keep "
        r"their checkpoints; relaunch the same command once it is back",
        errors.splitlines()[-1],
    )
    assert_no_ray_left(before, (c.pgid, driver.pid, last.pid))
    record = sweep_records(out)[victim]
    assert record["status"] == "done" and record["attempts"] == 2
    lost, resumed = record["events"]
    assert lost.startswith(f"attempt 1 on 127.0.0.1/{worker}: its node was lost (NodeDiedError)")
    assert killed_at <= record["resumed_from"] < steps  # from its last checkpoint, not from step 0
    assert resumed.startswith("attempt 2 on 127.0.0.1/") and worker not in resumed  # on the surviving node
    assert resumed.endswith(f"resumed from its checkpoint at step {record['resumed_from']:,}")
    assert f"{victim}: {lost}; {resumed}" in output  # the summary says it too
    for name in ("CartPole-v1-seed0", "CartPole-v1-seed1"):  # both land in the sweep folder, each row once
        assert eval_steps(out / name) == [100, 200, 300] and checkpoint_step(out / name) == steps
    assert output.count("report: ") == 1 and (out / "report" / "report.md").exists()


# --------------------------------------------------------------------------------------------- embedded


def test_the_embedded_ray_keeps_to_the_loopback_and_lets_no_one_else_in(tmp_path, monkeypatch):
    """`mrq sweep` without --address: every Ray server on 127.0.0.1 only, a token of this process's own (nothing
    written to ~/.ray), and a driver without it refused."""
    from mrq_agents.ray_sweep import connected

    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = ray_processes()
    spec = write_spec(tmp_path / "s.toml", TINY.format(steps=100, envs='["CartPole-v1"]'))
    with connected(None, 1) as ray:
        pids = {os.getpid(), *(pid for pid in ray_processes() if pid not in before)}
        assert any(s[1] == "LISTEN" for s in sockets(pids)) and off_loopback(pids) == []
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:")
        outsider = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        outsider.update(HOME=str(tmp_path / "outsider"), **FAST_REFUSAL)
        result = subprocess.run(
            sweep_command(spec, tmp_path / "out", address), capture_output=True, text=True, timeout=120, env=outsider
        )
        assert result.returncode == 2 and "refused this driver (token authentication)" in result.stderr
    assert not (tmp_path / "home" / ".ray").exists()
    assert "RAY_AUTH_TOKEN" not in os.environ and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ
    assert_no_ray_left(before, (os.getpgid(0),))
