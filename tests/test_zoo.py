"""The zoo in a source checkout: every entry loads offline by its repo id from zoo/<entry>/ and reproduces its
manifest score from those files (tests/test_zoo_hub.py: where else the files come from)."""

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.scores import score_disagreement
from mrq_agents import Policy, zoo
from mrq_agents.cli import app
from mrq_agents.machine import fingerprint

ENTRIES = zoo.entries()


def test_paper_size_entries_are_stored_compactly():
    """float32 for what acting reads, float16 for the rest (tools/zoo_add.py), so each score is the float32 agent's."""
    from safetensors import safe_open

    from mrq_agents.actor_torch import is_acting_tensor

    for entry in ENTRIES:
        if zoo.preset(entry) != "paper":
            continue
        with safe_open(str(zoo.checkout_folder(entry) / "model.safetensors"), "pt") as f:
            dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
        assert {k for k, d in dtypes.items() if d == "F16"} == {k for k in dtypes if not is_acting_tensor(k)}, entry[
            "folder"
        ]
        assert {d for k, d in dtypes.items() if is_acting_tensor(k)} == {"F32"}, entry["folder"]


def test_zoo_add_puts_a_replacing_entry_in_the_place_of_the_one_it_replaces():
    path = Path(__file__).resolve().parents[1] / "tools" / "zoo_add.py"
    spec = importlib.util.spec_from_file_location("zoo_add", path)
    zoo_add = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo_add)
    old = [{"repo_id": "a", "steps": 1}, {"repo_id": "b", "steps": 1}, {"repo_id": "c", "steps": 1}]
    assert zoo_add.with_entry(old, {"repo_id": "b", "steps": 2}) == [old[0], {"repo_id": "b", "steps": 2}, old[2]]
    assert zoo_add.with_entry(old, {"repo_id": "d", "steps": 1}) == [*old, {"repo_id": "d", "steps": 1}]


def test_breakout_is_in_the_zoo_and_evaluated_as_the_paper_does():
    entry = zoo.find_by_env("ALE/Breakout-v5")
    assert entry is not None and entry["repo_id"] == "mrq-agents/mrq-breakout"
    assert entry["score"]["deterministic"] is False and "--deterministic" not in entry["eval_command"]
    assert "sampled argmax" in (zoo.checkout_folder(entry) / "README.md").read_text()


def _mrq_eval(args):
    result = CliRunner().invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stderr may hold a note (the paper's v4 envs)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["env_id"] for e in ENTRIES])
def test_entry_reproduces_its_score_from_the_shipped_files(entry, offline_hub):
    """The exact files (sha256), then the score: to 6 significant digits on the kind of machine that recorded it,
    elsewhere within what another CPU's float32 rounding explains (mrq_agents.machine)."""
    folder = zoo.agent_folder(entry)
    assert folder == zoo.checkout_folder(entry) and zoo.mismatches(entry, folder, list(entry["files"])) == []
    assert zoo.find_by_env(entry["env_id"])["repo_id"] == entry["repo_id"]
    measured = _mrq_eval(entry["eval_command"].split()[1:])  # mrq eval <repo id> --episodes N --seed S ...
    problem = score_disagreement(entry["score"], measured)
    assert problem is None, f"{entry['repo_id']}: {problem}"
    card = (folder / "README.md").read_text()
    assert f"{entry['score']['mean']:.2f} +/- {entry['score']['std']:.2f}" in card


def test_the_same_machine_gives_the_same_score_twice(offline_hub):
    """What holds bit for bit on any machine: two evaluations of the same files here (a 1,000-step physics episode)."""
    args = ["eval", zoo.find_by_env("HalfCheetah-v4")["repo_id"], "--episodes", "2", "--seed", "3"]
    first, again = _mrq_eval(args), _mrq_eval(args)
    assert first["returns"] == again["returns"] and first["machine"] == again["machine"] == fingerprint("torch")


def test_policy_from_zoo_repo_id_is_offline(offline_hub):
    policy = Policy.from_pretrained(ENTRIES[0]["repo_id"])
    assert policy.env_config.env_id == ENTRIES[0]["env_id"]


def test_walker_is_reachable_by_its_dm_control_id_and_short_repo_id(offline_hub):
    entry = zoo.find_by_env("dm_control/walker-walk-v0")
    assert entry is not None and entry["repo_id"] == "mrq-agents/mrq-walker"
    policy = Policy.from_pretrained("mrq-agents/mrq-walker")
    assert policy.env_config.gym_id == "dm_control/walker-walk-v0" and zoo.preset(entry) == "paper"


@pytest.mark.parametrize(
    "args, hint",
    [
        (["eval", "mrq-agents/mrq-HalfCheeta-v4"], "did you mean 'mrq-agents/mrq-HalfCheetah-v4'? `mrq zoo list`"),
        (["play", "mrq-agents/mrq-HalfCheeta-v4"], "did you mean 'mrq-agents/mrq-HalfCheetah-v4'? `mrq zoo list`"),
        (["eval", "mrq-agents/breakout"], "did you mean 'mrq-agents/mrq-breakout'?"),
        (["eval", "mrq-agents/nothing-like-these"], "is not in the zoo; `mrq zoo list` lists its agents"),
    ],
)
def test_a_mistyped_zoo_id_names_the_nearest_entry(args, hint, monkeypatch):
    """As `--set` does for field names (one home: `errors.closest`), and without asking the Hub."""
    import mrq_agents.hub as hub

    monkeypatch.setattr(hub, "_download", lambda *a: pytest.fail("a zoo id went to the Hub"))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: '{args[1]}' is not in the zoo") and hint in line, line
    with pytest.raises(Exception, match="is not in the zoo"):
        Policy.from_pretrained(args[1])


@pytest.mark.parametrize(
    "source, says",
    [
        ("dm_control/walker-walk-v0", "the zoo's agent for it is 'mrq-agents/mrq-walker'; pass that"),
        ("Gym-Hopper-v4", "the zoo's agent for it is 'mrq-agents/mrq-Hopper-v4'; pass that"),
        ("ALE/Pong-v5", "the zoo has no agent for it (`mrq zoo list`); train one with `mrq train ALE/Pong-v5`"),
    ],
)
def test_an_env_id_where_a_model_goes_names_its_zoo_agent(source, says, monkeypatch):
    """`mrq eval ENV` (which takes a model, where `mrq play ENV` takes an env): one line, without asking the Hub
    and without importing the env's package."""
    import sys

    import mrq_agents.hub as hub

    monkeypatch.setattr(hub, "_download", lambda *a: pytest.fail("an env id went to the Hub"))
    for package in ("dm_control", "ale_py", "shimmy"):
        monkeypatch.setitem(sys.modules, package, None)  # reading ids needs none of them
    result = CliRunner().invoke(app, ["eval", source])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {source!r} is an env id, not a model") and says in line, line
    with pytest.raises(Exception, match="is an env id, not a model"):
        Policy.from_pretrained(source)
