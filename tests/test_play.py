"""`mrq play` (zoo agents, recording headless mp4s) and `mrq zoo list`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest
from typer.testing import CliRunner

from helpers.model_folders import make_model_folder
from mrq_agents import zoo
from mrq_agents.cli import app
from mrq_agents.errors import MissingDependencyError, UnsupportedEnvError
from mrq_agents.paper import paper_env_name

runner = CliRunner()


def check_video(path, steps):
    reader = imageio.get_reader(path)
    frames = reader.count_frames()
    height, width = reader.get_meta_data()["size"][::-1]
    reader.close()
    assert frames == steps + 1  # the reset frame and one per step
    return height, width


def episode_lines(output):
    return [line for line in output.splitlines() if line.startswith("episode ")]


def test_play_zoo_env_records_full_resolution_video(tmp_path):
    entry = zoo.entries()[0]
    result = runner.invoke(app, ["play", entry["env_id"], "--record", "--video-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (line,) = episode_lines(result.output)
    steps = int(line.split(", ")[1].split()[0])
    path = line.split(" -> ")[1]
    height, width = check_video(path, steps)
    assert min(height, width) > 84  # the env's own render, not the network input


def test_play_breakout_records_the_zoo_agent_from_a_clean_environment(tmp_path):
    """The package's first line, as a user types it: no display, no GL or Hub variables, the bundled agent."""
    env = {"PATH": str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "mrq_agents.cli", "play", "ALE/Breakout-v5", "--record"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = episode_lines(done.stdout)
    steps = int(line.split(", ")[1].split()[0])
    assert line.split(" -> ")[1] == "videos/ALE_Breakout-v5-seed0.mp4"
    assert check_video(tmp_path / "videos" / "ALE_Breakout-v5-seed0.mp4", steps) == (210, 160)
    reader = imageio.get_reader(tmp_path / "videos" / "ALE_Breakout-v5-seed0.mp4")
    first, last = reader.get_data(0), reader.get_data(steps)
    reader.close()
    assert (first != last).any()  # the game moved: bricks, ball, paddle or score changed


def test_play_atari_model_records_video(tmp_path):
    folder, _, _ = make_model_folder(tmp_path / "pong", "ALE/Pong-v5")
    result = runner.invoke(
        app, ["play", "ALE/Pong-v5", "--model", str(folder), "--record", "--video-dir", str(tmp_path / "videos")]
    )
    assert result.exit_code == 0, result.output
    (line,) = episode_lines(result.output)
    steps = int(line.split(", ")[1].split()[0])
    assert check_video(line.split(" -> ")[1], steps) == (210, 160)


def test_play_without_record_prints_returns(tmp_path):
    folder, _, _ = make_model_folder(tmp_path / "pendulum", "Pendulum-v1")
    result = runner.invoke(app, ["play", str(folder), "--episodes", "2"])
    assert result.exit_code == 0, result.output
    assert len(episode_lines(result.output)) == 2 and "200 steps" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["play", "ALE/Pong-v5"], "the zoo has no agent for 'ALE/Pong-v5' (zoo envs:"),
        (
            ["play", "HalfCheetah-v5"],
            "it has one for 'HalfCheetah-v4', another version of the same env with the same "
            "observation and action spaces: play it with `mrq play HalfCheetah-v4`",
        ),
        (["play", "CartPole-v1", "--model", "MODEL"], "was trained on 'Pendulum-v1', not 'CartPole-v1'"),
        (["play", "Nope-v9"], "'Nope-v9' is not a supported env id, a model folder, or a Hub repo id"),
        (["play", "org/not-there"], "not found on the Hub or in the local cache"),
        (["play", "dm_control/walker-runn-v0"], "unknown env id 'dm_control/walker-runn-v0'"),  # an env, not a repo
        (["play", "Dmc-walker-runn"], "Did you mean: `walker-run`?"),
        (["play", "ALE/Pongg-v5"], "Did you mean: `Pong`?"),
    ],
)
def test_play_errors_are_one_line(args, message, tmp_path, offline_hub):
    folder, _, _ = make_model_folder(tmp_path / "pendulum", "Pendulum-v1")
    result = runner.invoke(app, [str(folder) if a == "MODEL" else a for a in args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_zoo_list_shows_entries():
    result = runner.invoke(app, ["zoo", "list"])
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    for entry in zoo.entries():
        # One kind of name in the env column, the id `mrq play` takes; the paper's name beside it.
        line = rows[zoo.play_id(entry)]
        assert zoo.find_by_env(zoo.play_id(entry)) == entry
        assert line.split()[1] == (paper_env_name(entry["env_id"]) or "-")
        assert entry["repo_id"] in line and f"{entry['score']['mean']:.1f}" in line
        assert f"  {zoo.preset_text(entry)}  " in line
    assert "dm_control/walker-walk-v0" in rows and "Dmc-walker-walk" not in rows
    assert {zoo.preset(e) for e in zoo.entries()} >= {"small", "paper"}
    assert "  paper, bf16  " in rows["Walker2d-v4"]  # an entry trained in bf16 says so


@pytest.mark.parametrize(
    "env_id, expected",
    [
        ("Dmc-walker-walk", "dm_control/walker-walk-v0"),
        ("Gym-Hopper-v4", "Hopper-v4"),
        ("ALE/Breakout-v5", "ALE/Breakout-v5"),
        ("Dmc-visual-walker-walk", "Dmc-visual-walker-walk"),  # its Gymnasium id would be the proprioceptive task
    ],
)
def test_zoo_play_id(env_id, expected):
    assert zoo.play_id({"env_id": env_id}) == expected


def test_another_version_is_offered_only_with_the_same_spaces(monkeypatch):
    cheetah = zoo.find_by_env("HalfCheetah-v4")
    assert zoo.find_other_version("HalfCheetah-v5") == cheetah
    assert zoo.find_other_version("Ant-v5") is None  # no Ant entry at all
    # An entry for v4 whose manifest records other spaces (Hopper's 11-D observations, 3-D actions) is not offered.
    hopper = zoo.find_by_env("Hopper-v4")
    monkeypatch.setattr(zoo, "entries", lambda: [dict(cheetah, spaces=hopper["spaces"])])
    assert zoo.find_other_version("HalfCheetah-v5") is None


def test_a_missing_env_package_is_named_wherever_it_is_the_cause(monkeypatch, offline_hub):
    """Without ale-py an Atari id or agent says ale-py is missing (not "not on the Hub"); the zoo's other agents
    are still found and listed."""
    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` raises ImportError, as without the package
    for args in (["play", "ALE/Breakout-v5"], ["eval", "mrq-agents/mrq-breakout"], ["play", "mrq-agents/mrq-breakout"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        (line,) = result.stderr.strip().splitlines()
        assert "Atari envs need ale-py" in line and "pip install ale-py" in line and "Hub" not in line, line
    assert zoo.find_by_env("HalfCheetah-v4")["repo_id"] == "mrq-agents/mrq-HalfCheetah-v4"  # Breakout is listed first
    listing = runner.invoke(app, ["zoo", "list"])
    assert listing.exit_code == 0 and "ALE/Breakout-v5" in listing.stdout, listing.output


def test_zoo_pull_finds_an_entry_by_its_own_id_without_its_env_package_and_names_the_package_otherwise(monkeypatch):
    """Pulling files needs no env package: the entry's own id is found without building its env; another id of a
    family whose package is missing names that package rather than saying the zoo has no agent."""
    monkeypatch.setitem(sys.modules, "ale_py", None)
    assert [e["repo_id"] for e in zoo.select(["ALE/Breakout-v5"], False)] == ["mrq-agents/mrq-breakout"]
    for name in ("Atari-Breakout-v5", "ALE/Pong-v5"):
        with pytest.raises(MissingDependencyError, match="pip install ale-py"):
            zoo.select([name], False)
    with pytest.raises(UnsupportedEnvError, match="the zoo has no agent for 'nonsense'"):
        zoo.select(["nonsense"], False)


def run_in_terminal(args: list, cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run `mrq ARGS` with stdout and stderr on a pseudo-terminal, as from a user's shell: (exit code, all it drew)."""
    import pty
    import select
    import time

    from helpers.user_env import MRQ, user_env

    main, child = pty.openpty()
    env = user_env(TERM="xterm-256color", COLUMNS="200")
    proc = subprocess.Popen(
        MRQ + [str(a) for a in args], stdin=subprocess.DEVNULL, stdout=child, stderr=child, cwd=cwd, env=env
    )
    os.close(child)
    drawn, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 1.0)[0]:
                try:
                    chunk = os.read(main, 1 << 16)
                except OSError:  # EIO: the command ended and closed the terminal
                    break
                if not chunk:
                    break
                drawn += chunk
        text = drawn.decode(errors="replace")
        return proc.wait(timeout=60), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without colours and moves
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()


def test_long_acting_commands_show_progress_on_a_terminal_and_nothing_when_piped(tmp_path):
    folder, _, _ = make_model_folder(tmp_path / "model", "InvertedPendulum-v5")  # untrained: a few steps an episode
    cases = [
        (["eval", folder, "--episodes", 3], ["evaluating", "3/3 episodes", "steps, return"]),
        (["play", folder, "--record", "--video-dir", tmp_path / "videos"], ["recording episode", "steps, return"]),
        (
            ["export", folder, "--out", tmp_path / "export", "--episodes", 2, "--record"],
            ["evaluating", "2/2 episodes", "recording"],
        ),
    ]
    for args, shown in cases:
        code, drawn = run_in_terminal(args, tmp_path)
        assert code == 0, drawn
        for text in shown:
            assert text in drawn, (args, text, drawn)
        piped = runner.invoke(app, [str(a) for a in args])  # not a terminal: the command's own lines only
        assert piped.exit_code == 0 and piped.stderr == "", piped.output
        assert "evaluating" not in piped.stdout and "steps, return" not in piped.stdout, piped.stdout
