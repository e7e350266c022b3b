"""The built wheel, installed (not editable) in a fresh environment without torch, as a user gets it from PyPI: it
carries the zoo's index, not its agents, and a zoo agent is downloaded from its Hub repo (the loopback Hub here),
checked against the manifest, cached, and played; offline it plays from the cache. The environment: the
`torch_free_python` fixture (tests/conftest.py), which `.ci/run` builds from the wheel it checks.
"""

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from helpers.hub_server import HubServer, client_env
from helpers.zoo_hub import CHECKOUT_ZOO, entry, serve
from mrq_agents import zoo

pytestmark = pytest.mark.slow

ENV_ID = "InvertedPendulum-v4"  # the smallest entry (1 MB)
PLAYED = "episode 1: return 1000.00, 1000 steps"


@pytest.fixture(scope="module")
def mrq(torch_free_python) -> Path:
    return torch_free_python.parent / "mrq"


def run(command: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_the_installed_wheel_holds_the_manifest_and_no_agent(torch_free_python, tmp_path):
    code = (
        "import json, mrq_agents, mrq_agents.zoo as z; "
        "print(json.dumps([mrq_agents.__file__, str(z.ZOO_DIR), sorted(p.name for p in z.ZOO_DIR.iterdir())]))"
    )
    result = run([torch_free_python, "-c", code], dict(os.environ), tmp_path)
    package, zoo_dir, files = json.loads(result.stdout)
    assert "site-packages" in package and not package.startswith(str(CHECKOUT_ZOO.parent))
    assert set(files) - {"__pycache__"} == {"__init__.py", "manifest.json"}
    assert json.loads((Path(zoo_dir) / "manifest.json").read_text()) == json.loads(zoo.MANIFEST.read_text())
    installed = Path(package).parent
    agent_files = [p for p in installed.rglob("*") if p.suffix in (".safetensors", ".onnx", ".mp4")]
    assert agent_files == []


def test_play_record_downloads_checks_and_plays_then_plays_offline_from_the_cache(mrq, tmp_path):
    with HubServer() as hub:
        serve(hub, [entry(ENV_ID)])
        env = client_env(tmp_path / "hf", "hf_unused", HF_ENDPOINT=hub.url)
        online = run([mrq, "play", ENV_ID, "--record", "--video-dir", tmp_path / "videos"], env, tmp_path)
    assert online.returncode == 0, online.stderr[-3000:]
    assert PLAYED in online.stdout and (tmp_path / "videos" / f"{ENV_ID}-seed0.mp4").stat().st_size > 10_000
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    again = run([mrq, "play", ENV_ID, "--record", "--video-dir", tmp_path / "again"], offline, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert PLAYED in again.stdout and (tmp_path / "again" / f"{ENV_ID}-seed0.mp4").stat().st_size > 10_000
    (row,) = [
        r for r in json.loads(run([mrq, "zoo", "list", "--json"], offline, tmp_path).stdout) if r["env"] == ENV_ID
    ]
    assert row["files"] == "cache" and row["path"].startswith(str(tmp_path / "hf"))


def test_a_tampered_weights_file_on_the_hub_gives_one_line_and_loads_nothing(mrq, tmp_path):
    e = entry(ENV_ID)
    weights = bytearray((CHECKOUT_ZOO / e["folder"] / "model.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    with HubServer() as hub:
        serve(hub, [e])
        hub.commit(e["repo_id"], {"model.safetensors": bytes(weights)})
        env = client_env(tmp_path / "hf", "hf_unused", HF_ENDPOINT=hub.url)
        line = one_line_error(run([mrq, "play", ENV_ID, "--record", "--video-dir", tmp_path], env, tmp_path))
    assert "model.safetensors of the zoo agent" in line and "does not match the zoo manifest's sha256" in line
    assert not list(tmp_path.glob("*.mp4"))
    tampered = hashlib.sha256(weights).hexdigest()
    assert tampered not in {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "hf").rglob("*") if p.is_file()
    }


def test_no_hub_and_no_cache_gives_one_line(mrq, tmp_path):
    env = client_env(tmp_path / "hf", "hf_unused", HF_HUB_OFFLINE="1")
    line = one_line_error(run([mrq, "play", ENV_ID], env, tmp_path))
    assert "mrq-agents/mrq-InvertedPendulum-v4 is not in the Hub cache" in line and "mrq zoo pull" in line


def test_a_download_killed_half_way_leaves_nothing_that_loads_and_the_next_call_completes_it(mrq, tmp_path):
    e = entry(ENV_ID)
    with HubServer() as hub:
        serve(hub, [e])
        env = client_env(tmp_path / "hf", "hf_unused", HF_ENDPOINT=hub.url)
        stalled = hub.stall("model.safetensors", after=e["files"]["model.safetensors"]["bytes"] // 2)
        pull = subprocess.Popen([str(mrq), "zoo", "pull", ENV_ID], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
        try:
            assert stalled.wait(timeout=240), "the download never reached the stall"
        finally:
            pull.send_signal(signal.SIGKILL)
            pull.wait(timeout=60)
        hub.release()
        assert list((tmp_path / "hf").rglob("*.incomplete"))  # half a file, which nothing loads
        line = one_line_error(run([mrq, "play", ENV_ID], {**env, "HF_HUB_OFFLINE": "1"}, tmp_path))
        assert "is not in the Hub cache" in line
        resumed = run([mrq, "play", ENV_ID], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert PLAYED in resumed.stdout
    # huggingface_hub 2.x names a partial file per process (<etag>.<id>.incomplete), so the next call downloads the
    # file again rather than resuming the killed one's; the killed one's part stays beside it, never loaded.
    (weights,) = (tmp_path / "hf").rglob("snapshots/*/model.safetensors")
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == e["files"]["model.safetensors"]["sha256"]
