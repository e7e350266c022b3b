"""Self-checks of the study scripts on synthetic data: `pytest studies/`. The package's suite (tests/) never imports
a study; these keep a study's report honest before it is next run."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def load_study(name: str) -> ModuleType:
    """studies/<name>.py (a script, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_precision_study_report_tables_and_figures(tmp_path):
    """Synthetic runs where bf16 scores exactly 10 more than fp32 at every evaluation of every seed."""
    study = load_study("precision_study")
    env, steps, eval_every, _ = study.GRID[0]
    for seed in study.SEEDS:
        for precision, offset in (("fp32", 0.0), ("bf16", 10.0)):
            folder = study.run_dir(tmp_path / "runs", env, precision, seed)
            folder.mkdir(parents=True)
            rows = ["step,eval_return_mean"] + [
                f"{s},{s / steps * 100 + seed + offset}" for s in range(eval_every, steps + 1, eval_every)
            ]
            (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    assert study.finished(study.run_dir(tmp_path / "runs", env, "fp32", 0), steps)
    study.report(tmp_path / "runs", tmp_path / "docs")
    table = (tmp_path / "docs" / "table.md").read_text()
    assert f"| {env} | +10.0 (+10.0 to +10.0) | +10.0 (+10.0 to +10.0) |" in table
    assert f"| {env} | {steps:,} | fp32 | 3 | 101.0 +- 0.8 |" in table  # final 100 + seeds 0,1,2
    assert "not run yet" in table  # the other envs of the grid
    assert (tmp_path / "docs" / f"{env}.png").read_bytes()[:4] == b"\x89PNG"


def test_physics_releases_tool_plays_the_same_twice_and_reports_a_difference(tmp_path, monkeypatch, capsys):
    """physics_releases.py (docs/reproduction.md): the same release twice differs by exactly 0; an
    observation moved by 1e-3 shows as 1e-03 at that step only."""
    tool = load_study("physics_releases")
    monkeypatch.setattr(tool, "TASKS", [("cartpole", "swingup")])
    monkeypatch.setattr(tool, "EPISODES", 2)
    monkeypatch.setattr(tool, "STEPS", 10)
    monkeypatch.setattr(tool, "TRACED", (0, 1, 9))
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    tool.play(str(first))
    tool.play(str(second))
    data = json.loads(second.read_text())
    assert len(data["cartpole-swingup"]["returns"]) == 2 and len(data["cartpole-swingup"]["trace"]) == 3
    assert data == json.loads(first.read_text())
    tool.compare(str(first), str(second))
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| cartpole-swingup |") and row.endswith("| 0e+00, 0e+00, 0e+00 |")
    data["cartpole-swingup"]["trace"][1][0] += 1e-3
    second.write_text(json.dumps(data))
    tool.compare(str(first), str(second))
    assert capsys.readouterr().out.splitlines()[-1].endswith("| 0e+00, 1e-03, 0e+00 |")
