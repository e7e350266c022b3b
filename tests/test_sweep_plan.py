"""`mrq sweep SPEC --plan`: docs/sweep/paper.toml is the paper's whole grid, the plan prints what it costs from
the figures of benchmarks/README.md (checked here against the README) without Ray, torch or training, and says
where no figure was measured."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.sweeps import write_spec
from mrq_agents import paper
from mrq_agents.cli import app
from mrq_agents.plan import RATES, REPLAY_BYTES, run_cost
from mrq_agents.sweep import load_spec

ROOT = Path(__file__).resolve().parents[1]
PAPER_TOML = ROOT / "docs" / "sweep" / "paper.toml"
runner = CliRunner()


def test_paper_toml_is_the_papers_whole_grid():
    runs = load_spec(PAPER_TOML)
    envs = {r.env for r in runs}
    assert envs == set(paper._data("paper_scores.json")["envs"]) and len(envs) == 118
    assert len(runs) == 118 * 10
    for run in runs:
        curve = paper.curve(run.env)  # the paper's evaluations of this env: its budget and cadence
        assert run.steps == curve.steps[-1] and run.eval_every == curve.steps[1] - curve.steps[0], run
        assert run.eval_episodes == 10 and run.preset == "paper" and run.overrides == ()
    assert sorted({r.seed for r in runs}) == list(range(10))


def test_the_plan_of_the_paper_grid_needs_no_ray_nor_torch_and_trains_nothing(tmp_path):
    code = (
        "import sys; from typer.testing import CliRunner; from mrq_agents.cli import app; "
        f"r = CliRunner().invoke(app, ['sweep', {str(PAPER_TOML)!r}, '--plan']); print(r.output); "
        "assert r.exit_code == 0; assert not {'ray', 'torch'} & set(sys.modules), 'ray or torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert f"plan for {PAPER_TOML}: 1,180 runs of 118 envs; nothing is trained" in output
    assert "  Atari-Pong-v5" in output and "seeds 0-9  2,500,000 steps, eval every 100,000 (10 episodes)" in output
    assert list(tmp_path.iterdir()) == []  # nothing written
    rows = table_rows(output)
    hours = {
        family: {device: runs * steps / RATES[device, kind].value / 3600 for device in ("cpu", "gpu")}
        for family, runs, steps, kind in (("gym", 50, 1_000_000, "vector"), ("atari", 570, 2_500_000, "pixels"))
    }
    assert rows["gym"][1:5] == ["5", "50", "1,000,000", "~0.12 GB *"]  # Humanoid's observations are larger
    assert rows["gym"][5:] == [
        f"{hours['gym']['cpu']:,.0f} [1]",
        f"{hours['gym']['gpu']:.1f} [2]",
        "HalfCheetah-v4 (1 of 5 envs)",
    ]
    assert rows["atari"][1:5] == ["57", "570", "2,500,000", "7.0 GB"]  # Atari: about 7 GB at 1M stored steps
    assert rows["atari"][5:] == [
        f"{hours['atari']['cpu']:,.0f} [3]",
        f"{hours['atari']['gpu']:,.0f} [4]",
        "ALE/Pong-v5 (1 of 57 envs)",
    ]
    assert rows["dmc"][-1] == "none: HalfCheetah-v4's rates" and rows["dmc-visual"][-1] == "none: ALE/Pong-v5's rates"
    assert rows["dmc-visual"][4] == "10.5 GB"
    assert "[1] 9.05 env-steps/s: HalfCheetah-v4, 2-core Intel Xeon, torch 2.13.0+cpu, plain path" in output
    assert "[4] 104.9 env-steps/s: ALE/Pong-v5, one NVIDIA H200" in output
    assert "benchmarks/README.md has rates for HalfCheetah-v4 and ALE/Pong-v5 only; every other env's hours" in output


def table_rows(output: str) -> dict[str, list[str]]:
    """The plan's table: first cell -> cells (cells are two or more spaces apart)."""
    rows = [re.split(r" {2,}", line.strip()) for line in output.splitlines()]
    start = next(i for i, row in enumerate(rows) if row[0] == "benchmark")
    return {row[0]: row for row in rows[start + 1 : rows.index([""], start)]}


@pytest.mark.parametrize("measured", [*RATES.values(), *REPLAY_BYTES.values()], ids=lambda m: f"{m.env} {m.value:g}")
def test_every_figure_of_the_plan_is_in_benchmarks_readme(measured):
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    heading = f"## {measured.section}\n"
    assert heading in readme
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    if measured in RATES.values():  # a row of the section's throughput table: env, path, the rate
        path = "plain" if "plain path" in measured.detail else "fast"
        assert any(
            measured.env in row and f"| {path} " in row and f" {measured.value:g} " in row
            for row in section.splitlines()
            if row.startswith("|")
        ), measured
        machine = "Xeon" if "Xeon" in measured.detail else "H200"
        assert machine in section
    else:  # "... about 7 KiB for its 84x84 frame (7 GB at 1M) ..."
        assert f"{measured.env}" in section and f"{measured.value * 1e6 / 1e9:g} GB at 1M" in section, measured


def test_the_plan_says_where_no_rate_applies(tmp_path):
    spec = write_spec(
        tmp_path / "s.toml",
        '[[runs]]\nenvs = ["Gym-Hopper-v4"]\n'  # no steps: the benchmark's 1M
        '[[runs]]\nenvs = ["CartPole-v1"]\nseeds = [0, 1]\nsteps = 1000\npreset = "small"\n'
        '[[runs]]\nenvs = ["Pendulum-v1"]\nsteps = 2000\n',
    )
    runs = load_spec(spec)
    assert run_cost(runs[0]).steps == 1_000_000 and run_cost(runs[1]).hours is None
    result = runner.invoke(app, ["sweep", str(spec), "--plan"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    cpu, gpu = (RATES[device, "vector"].value * 3600 for device in ("cpu", "gpu"))  # steps an hour
    assert rows["gym"][3:] == [
        "1,000,000",
        "~0.12 GB *",
        f"{1e6 / cpu:.1f} [1]",
        f"{1e6 / gpu:.1f} [2]",
        "none: HalfCheetah-v4's rates",
    ]
    assert rows["other (vector)"][-1] == "none: HalfCheetah-v4's rates"  # Pendulum: an estimate, and says so
    assert rows["other (vector), own config"][5:] == ["no rate [3]", "no rate [3]", "-"]  # CartPole's small preset
    assert "[3] benchmarks/README.md measured the paper's config only; these runs set a preset" in result.output
    assert rows["total"][3:] == [
        f"{1.002e6 / cpu:.1f} + 2 runs without a rate",  # Hopper and Pendulum
        f"{1.002e6 / gpu:.1f} + 2 runs without a rate",
    ]


def test_without_plan_the_sweep_folder_is_required(tmp_path):
    spec = write_spec(tmp_path / "s.toml", '[[runs]]\nenvs = ["CartPole-v1"]\n')
    result = runner.invoke(app, ["sweep", str(spec)])
    assert result.exit_code == 2 and result.output.strip().startswith("error: --out DIR is missing")
