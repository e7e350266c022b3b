"""`mrq report`: synthetic run folders placed against the paper, figures and tables, and the statistics."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mrq_agents import report
from mrq_agents.cli import app
from mrq_agents.envs import resolve_env

runner = CliRunner()


def fake_run(folder, env_id, seed, curve, precision=None):
    """A run folder as `mrq train` writes it, as far as the report reads it: config.json and metrics.csv."""
    folder.mkdir(parents=True)
    config = {
        "env": resolve_env(env_id).to_dict(),
        "run": {"seed": seed, "env_id": env_id},
        "algorithm": {"enc_hdim": 128},
        **({"training": {"precision": precision}} if precision else {}),
    }
    (folder / "config.json").write_text(json.dumps(config))
    with open(folder / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "wall_time", "eval_return_mean", "eval_return_std"])
        for step, value in curve:
            w.writerow([step, 1.0, value, 0.0])
    return folder


def test_report_places_synthetic_runs_inside_and_below_the_paper(tmp_path):
    # Dmc-cartpole-balance, paper at 15k: mean 826.3, IQR 726.3-936.7; at 20k: 944.4, IQR 912.9-995.0
    sweep = tmp_path / "sweep"
    for seed, (a, b) in enumerate([(800.0, 950.0), (820.0, 960.0), (840.0, 970.0)]):
        fake_run(sweep / f"inside-{seed}", "Dmc-cartpole-balance", seed, [(15_000, a), (20_000, b)])
    low = fake_run(tmp_path / "low", "dm_control/cartpole-swingup-v0", 0, [(15_000, 100.0), (22_000, 150.0)], "bf16")
    fake_run(tmp_path / "cartpole", "CartPole-v1", 0, [(1_000, 200.0), (2_000, 500.0)])
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(sweep), str(low), str(tmp_path / "cartpole"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for png in ("Dmc-cartpole-balance.png", "Dmc-cartpole-swingup.png", "CartPole-v1.png", "overview.png"):
        assert (out / png).stat().st_size > 10_000
    data = json.loads((out / "report.json").read_text())
    balance = data["envs"]["Dmc-cartpole-balance"]
    assert [(r["step"], r["where"]) for r in balance["rows"]] == [(15_000, "inside"), (20_000, "inside")]
    assert balance["rows"][1]["mean"] == pytest.approx(960.0) and balance["rows"][1]["seeds"] == 3
    assert balance["rows"][1]["paper_mean"] == 944.4
    assert [s["where"] for s in balance["seeds"]] == ["inside"] * 3
    swingup = data["envs"]["Dmc-cartpole-swingup"]["rows"]
    assert [(r["step"], r["paper_step"], r["where"]) for r in swingup] == [
        (15_000, 15_000, "below"),
        (22_000, 20_000, "below"),
    ]
    assert data["envs"]["CartPole-v1"]["rows"][0]["where"] is None
    md = (out / "report.md").read_text()
    assert "| 20,000 | 960.0 ± 8.2 (3) | 944.4 (912.9 to 995) | inside |" in md
    assert "at 20,000 | below |" in md  # the swingup run's 22k evaluation against the paper's 20k
    assert "CartPole-v1 (no paper reference)" in md
    assert f"1 run(s): seed 0 (`{low}`, bf16)." in md and f"seed 0 (`{sweep / 'inside-0'}`)" in md  # fp32: unsaid
    dmc = data["aggregate"]["benchmarks"]["dmc"]
    assert dmc["envs"] == ["Dmc-cartpole-balance", "Dmc-cartpole-swingup"] and dmc["runs"] == 4
    iqm, low_ci, high_ci = dmc["iqm"]
    assert iqm == pytest.approx(np.mean([0.95, 0.96])) and low_ci <= iqm <= high_ci  # middle two of 4 scores


def test_a_100k_run_evaluated_every_5k_is_tabled_whole_and_a_longer_one_says_it_is_thinned(tmp_path):
    whole = fake_run(tmp_path / "whole", "Dmc-cartpole-balance", 0, [(5_000 * k, 900.0) for k in range(1, 21)])
    long = fake_run(tmp_path / "long", "Dmc-cartpole-swingup", 0, [(5_000 * k, 800.0) for k in range(1, 41)])
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(whole), str(long), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text())
    assert [r["step"] for r in data["envs"]["Dmc-cartpole-balance"]["rows"]] == [5_000 * k for k in range(1, 21)]
    thinned = [r["step"] for r in data["envs"]["Dmc-cartpole-swingup"]["rows"]]
    assert len(thinned) == 20 and thinned[0] == 5_000 and thinned[-1] == 200_000
    md = (out / "report.md").read_text()
    assert md.count("Shown: 20 of the 40 evaluation steps, evenly spread") == 1  # the long run only


def test_report_without_runs_is_one_line(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no run folders with evaluations" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_iqm_is_the_mean_of_the_middle_half():
    assert report.iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert report.iqm(np.array([[0.0, 100.0], [1.0, 2.0]])) == pytest.approx(1.5)  # all scores pooled
    assert report.iqm(np.array([5.0])) == 5.0


def test_stratified_bootstrap_resamples_within_tasks():
    same = [np.full(5, 0.3), np.full(3, 0.7)]  # no spread within a task: every resample is identical
    point, low, high = report.stratified_bootstrap_ci(same, lambda x: float(np.mean(x)), reps=200)
    assert point == low == high == pytest.approx((5 * 0.3 + 3 * 0.7) / 8)
    rng = np.random.default_rng(0)
    tasks = [rng.normal(0.5, 0.1, 10), rng.normal(0.8, 0.1, 10)]
    point, low, high = report.stratified_bootstrap_ci(tasks, lambda x: float(np.mean(x)), reps=2000)
    # the CI of a mean of 20 scores with sd ~0.1 within tasks: about +/- 1.96 * 0.1 / sqrt(20)
    assert low < point < high and 0.06 < high - low < 0.12
    assert report.stratified_bootstrap_ci(tasks, reps=100, seed=1) == report.stratified_bootstrap_ci(
        tasks, reps=100, seed=1
    )


def test_runs_of_one_env_with_different_configs_are_separate_groups(tmp_path):
    a = fake_run(tmp_path / "a", "CartPole-v1", 0, [(100, 10.0)])
    b = fake_run(tmp_path / "b", "CartPole-v1", 1, [(100, 20.0)])
    config = json.loads((b / "config.json").read_text())
    config["algorithm"] = {"enc_hdim": 64}
    (b / "config.json").write_text(json.dumps(config))
    groups = report.group_by_env(report.find_runs([a, b]))
    assert sorted(groups) == ["CartPole-v1 [enc_hdim=128]", "CartPole-v1 [enc_hdim=64]"]
    same = report.group_by_env(report.find_runs([a, fake_run(tmp_path / "c", "CartPole-v1", 2, [(100, 1.0)])]))
    assert list(same) == ["CartPole-v1"] and len(same["CartPole-v1"]) == 2


def test_an_export_folder_named_explicitly_is_reported_but_not_found_twice_in_a_search(tmp_path):
    # An export (zoo entry, Hub download) keeps the run's config.json and metrics.csv, plus results.json.
    run = fake_run(tmp_path / "sweep" / "run", "Dmc-cartpole-balance", 0, [(15_000, 800.0)])
    export = fake_run(tmp_path / "sweep" / "run" / "export", "Dmc-cartpole-balance", 0, [(15_000, 800.0)])
    (export / "results.json").write_text("{}")
    assert [r.folder for r in report.find_runs([export])] == [export]
    assert [r.folder for r in report.find_runs([tmp_path / "sweep"])] == [run]
