"""Real learning: MR.Q (small preset) swings Pendulum-v1 up on a CPU within a couple of minutes."""

import csv
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_pendulum_learns(tmp_path):
    out = tmp_path / "pendulum"
    cmd = [
        sys.executable,
        "-m",
        "mrq_agents.cli",
        "train",
        "Pendulum-v1",
        "--preset",
        "small",
        "--steps",
        "3000",
        "--eval-every",
        "1000",
        "--eval-episodes",
        "5",
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    returns = [float(r["eval_return_mean"]) for r in rows]
    assert [int(r["step"]) for r in rows] == [1000, 2000, 3000]
    # At the end of the 1,000-step warm-up the policy is untrained: a random-like swing costs about -1,200
    # to -1,500. A policy that swings the pendulum up and holds it scores above -400 (solved is about -150).
    assert returns[0] < -900, returns
    assert returns[-1] > -400, returns
