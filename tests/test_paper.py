"""The paper's reference data: env-name mapping, placement against the paper's seeds, normalisation."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from mrq_agents import envs, paper
from mrq_agents.cli import app
from mrq_agents.envs import resolve_env


@pytest.mark.parametrize(
    "env_id, name",
    [
        ("HalfCheetah-v4", "Gym-HalfCheetah-v4"),
        ("Gym-HalfCheetah-v4", "Gym-HalfCheetah-v4"),
        ("Dmc-walker-walk", "Dmc-walker-walk"),
        ("dm_control/walker-walk-v0", "Dmc-walker-walk"),
        ("Dmc-visual-walker-walk", "Dmc-visual-walker-walk"),
        ("ALE/Pong-v5", "Atari-Pong-v5"),
        ("Atari-Pong-v5", "Atari-Pong-v5"),
        ("CartPole-v1", None),
        ("InvertedPendulum-v4", None),
        ("HalfCheetah-v5", None),
    ],
)
def test_paper_env_names(env_id, name):
    assert paper.paper_env_name(env_id) == name
    assert paper.paper_env_name(resolve_env(env_id)) == name  # the same from the resolved EnvConfig


def test_paper_names_come_from_each_family_record_without_its_env_package(monkeypatch):
    for package in ("dm_control", "ale_py", "shimmy"):
        monkeypatch.setitem(sys.modules, package, None)  # as if not installed: importing it fails
    named = [(f.name, gym_id, pixels) for f, gym_id, pixels in map(envs.named_env, ("Dmc-visual-a-b", "ALE/X-v5"))]
    assert named == [("dmc", "dm_control/a-b-v0", True), ("atari", "ALE/X-v5", True)]
    named = [(f.name, gym_id, pixels) for f, gym_id, pixels in map(envs.named_env, ("dm_control/a-b-v0", "Gym-X-v1"))]
    assert named == [("dmc", "dm_control/a-b-v0", False), ("gym", "X-v1", False)]
    assert envs.named_env("X-v1")[0].name == "gym" and envs.named_env("Dmc-")[1:] == ("Dmc-", False)  # no task: gym
    assert [envs.has_family_prefix(i) for i in ("Gym-X-v1", "ALE/X-v5", "X-v1", "org/X", "Dmc-")] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert paper.paper_env_name("dm_control/walker-walk-v0") == "Dmc-walker-walk"
    assert paper.paper_env_name("ALE/Pong-v5") == "Atari-Pong-v5"
    pixels = {"family": "dmc", "gym_id": "dm_control/walker-walk-v0", "pixels": True}
    assert paper.paper_env_name(pixels) == "Dmc-visual-walker-walk"
    assert paper.paper_env_name({"family": "gym", "gym_id": "Walker2d-v4", "pixels": True}) is None  # no such row
    assert paper.paper_env_name({"family": "no-such-family", "gym_id": "Walker2d-v4"}) is None
    assert paper.paper_env_name("Dmc-no-such-task") is None and paper.paper_env_name("Gym-NoSuchEnv-v4") is None


def test_bundled_data_covers_118_envs_with_provenance():
    data = json.loads((paper.resources.files("mrq_agents") / "data" / "paper_scores.json").read_text())
    assert len(data["envs"]) == 118 and "2501.16142" in paper.about()
    ref = paper.curve("Dmc-cartpole-balance")
    assert ref.steps[0] == 0 and ref.steps[-1] == 500_000 and np.all(np.diff(ref.steps) > 0)
    assert np.all(ref.p25 <= ref.p75) and np.all(ref.low <= ref.p25) and np.all(ref.seeds == 10)


def test_placement_at_an_evaluated_step():
    # Dmc-cartpole-balance at 20k: mean 944.4, p25 912.9, p75 995.0 (the authors' results)
    for score, where in [(900.0, "below"), (912.9, "inside"), (950.0, "inside"), (995.0, "inside"), (996.0, "above")]:
        place = paper.placement("Dmc-cartpole-balance", 20_000, score)
        assert (place.paper_step, place.mean, place.p25, place.p75) == (20_000, 944.4, 912.9, 995.0)
        assert place.where == where
    assert paper.placement("Dmc-cartpole-balance", 20_000, 950.0).text() == (
        "inside the paper's interquartile range: paper 944.4 (IQR 912.9 to 995) at 20,000 steps"
    )


def test_placement_uses_the_nearest_evaluated_step_at_or_below():
    place = paper.placement("dm_control/cartpole-balance-v0", 24_999, 950.0)
    assert place.paper_step == 20_000 and place.where == "inside"
    assert "nearest evaluation at or below 24,999" in place.reference_text()
    pong = paper.placement("ALE/Pong-v5", 150_000, 0.0)  # Atari is evaluated every 100k
    assert pong.paper_step == 100_000 and pong.where == "above"  # IQR -11.7 to -6.3


def test_a_trained_score_is_not_placed_against_the_untrained_step_0():
    # Atari-Breakout-v5: 0 -> 1.7 (IQR 1.1 to 2.4), next evaluation 100k; Gym evaluates every 5k from 0.
    place = paper.placement("ALE/Breakout-v5", 40_000, 3.0)
    assert (place.paper_step, place.mean, place.where, place.next_paper_step) == (0, 1.7, None, 100_000)
    assert place.text() == (
        "paper 1.7 (IQR 1.1 to 2.4) at 0 steps (the untrained agents; the paper's next "
        "evaluation is at 100,000, so a score at 40,000 is not placed)"
    )
    assert paper.placement("ALE/Breakout-v5", 0, 3.0).where == "above"  # step 0 against step 0 is placed
    assert paper.placement("ALE/Breakout-v5", 100_000, 3.0).where == "below"  # IQR 9.6 to 11.3
    assert paper.placement("HalfCheetah-v4", 4_999, 0.0).where is None


def test_placement_without_a_reference():
    place = paper.placement("CartPole-v1", 10_000, 500.0)
    assert not place.has_reference and place.where is None and place.text() == "no paper reference"
    before = paper.placement("Dmc-cartpole-balance", -1, 1.0)
    assert before.where is None and "no paper evaluation" in before.text()


def test_normalisation_per_benchmark():
    assert paper.normalise("Dmc-walker-walk", [500.0, 1000.0]).tolist() == [0.5, 1.0]
    assert paper.normalise("Dmc-visual-walker-walk", [250.0]).tolist() == [0.25]
    # Pong: random -20.7, human 14.6
    assert paper.normalise("ALE/Pong-v5", [-20.7, 14.6]) == pytest.approx([0.0, 1.0])
    assert paper.normalise("HalfCheetah-v4", [1000.0]) is None  # TD3 constants not bundled
    assert paper.normalise("CartPole-v1", [1.0]) is None
    assert [
        paper.benchmark(e)
        for e in ("HalfCheetah-v4", "Dmc-walker-walk", "Dmc-visual-walker-walk", "ALE/Pong-v5", "CartPole-v1")
    ] == ["gym", "dmc", "dmc-visual", "atari", None]


def test_every_atari_game_of_the_paper_has_normalisation_constants():
    data = json.loads((paper.resources.files("mrq_agents") / "data" / "paper_scores.json").read_text())
    for name in data["envs"]:
        if name.startswith("Atari-"):
            assert paper.normaliser(name) is not None, name


def test_zoo_list_places_entries_against_the_paper():
    result = CliRunner().invoke(app, ["zoo", "list"])
    assert result.exit_code == 0
    # cartpole-balance at 50k: paper mean 992.8, IQR 994.3 to 999; the zoo agent scores 987.2
    assert "992.8 (994.3 to 999)" in result.output and "below" in result.output
    assert "no paper reference" in result.output  # InvertedPendulum-v4
    # Breakout at 40k: the paper has only its untrained agents (step 0) before 100k (mean 10.8, IQR 9.6 to 11.3)
    breakout = next(line for line in result.output.splitlines() if line.startswith("ALE/Breakout-v5"))
    assert "at 0 (untrained); next 10.8 (9.6" in breakout and "at 100,000" in breakout
    assert "  not placed  " in breakout  # the placement column, before where the files are


def test_model_card_and_eval_place_a_dmc_agent_against_the_paper(tmp_path):
    import csv

    from helpers.model_folders import make_model_folder
    from mrq_agents import Policy

    folder, _, _ = make_model_folder(tmp_path / "run", "Dmc-cartpole-balance")
    with open(folder / "metrics.csv", "w", newline="") as f:  # as if trained for 20k steps
        csv.writer(f).writerows(
            [["step", "wall_time", "eval_return_mean", "eval_return_std"], [20_000, 60.0, 1.0, 0.0]]
        )
    policy = Policy.from_pretrained(folder)
    results = {"mean": 950.0, "std": 1.0, "episodes": 10, "seed": 0, "deterministic": True, "date": "2026-01-01"}
    policy.save_pretrained(tmp_path / "export", results=results)
    card = (tmp_path / "export" / "README.md").read_text()
    assert "| 944.4 (IQR 912.9 to 995) at 20,000 steps |" in card
    assert "**inside** the paper's interquartile range at this step" in card
    result = CliRunner().invoke(app, ["eval", str(folder), "--episodes", "1"])
    assert result.exit_code == 0, result.output
    assert (
        "vs paper: below the paper's interquartile range: paper 944.4 (IQR 912.9 to 995) at 20,000 steps "
        "(this agent: 20,000 steps)"
    ) in result.output
    as_json = CliRunner().invoke(app, ["eval", str(folder), "--episodes", "1", "--json"])
    assert json.loads(as_json.output)["paper"]["where"] == "below"  # an untrained network
