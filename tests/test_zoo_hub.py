"""Where a zoo agent's files come from: the checkout's zoo/<entry>/, huggingface_hub's cache, or a download from the
entry's Hub repo (the loopback Hub here), each checked against the manifest's sha256; `mrq zoo pull/push/list`.

huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, when imported, so the scenarios that talk to the Hub run
`mrq` in a fresh process. An install without the entries' folders (a wheel) is played by pointing the zoo at an
empty folder (tests/helpers/zoo_hub.py); tests/test_wheel.py does the same with the built wheel itself.
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.hub_server import HubServer, client_env
from helpers.user_env import MRQ
from helpers.zoo_hub import CHECKOUT_ZOO, entry, mrq_without_entry_folders, serve
from mrq_agents import Policy, zoo
from mrq_agents.cli import app

TOKEN = "hf_zoo_test_token"
PENDULUM = "InvertedPendulum-v4"  # the smallest entries: 1 MB each
CARTPOLE = "dm_control/cartpole-balance-v0"
PLAYED = "episode 1: return 1000.00, 1000 steps"
runner = CliRunner()


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout


def listed(env: dict, zoo_dir) -> dict[str, dict]:
    out = ok(mrq_without_entry_folders(["zoo", "list", "--json"], env, zoo_dir))
    return {row["env"]: row for row in json.loads(out)}


def test_manifest_records_every_file_of_every_checkout_entry():
    """The manifest (what the wheel carries) names each entry's files with their sha256 and size, and the checkout
    holds exactly the entries it lists."""
    entries = zoo.entries()
    assert len(entries) >= 2
    for e in entries:
        assert zoo.file_records(CHECKOUT_ZOO / e["folder"]) == e["files"], e["folder"]
        config = json.loads((CHECKOUT_ZOO / e["folder"] / "config.json").read_text())
        assert zoo.precision(e) == (config["training"].get("precision") or "fp32"), e["folder"]
        assert set(zoo.needed_files(e)) >= {"config.json", "model.safetensors", "actor.onnx", "results.json"}
        assert zoo.location(e) == (zoo.CHECKOUT, CHECKOUT_ZOO / e["folder"])
    assert {e["folder"] for e in entries} == {
        p.name for p in CHECKOUT_ZOO.iterdir() if p.is_dir() and p.name != "__pycache__"
    }


def test_a_changed_checkout_file_is_refused(tmp_path, monkeypatch, offline_hub):
    e = entry(PENDULUM)
    shutil.copytree(CHECKOUT_ZOO / e["folder"], tmp_path / e["folder"])
    config = tmp_path / e["folder"] / "config.json"
    config.write_text(config.read_text().replace('"frame_stack": 1', '"frame_stack": 2', 1))
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    with pytest.raises(Exception, match=r"config.json does not match the zoo manifest's sha256.*git checkout"):
        Policy.from_pretrained(e["repo_id"])


def test_an_install_without_entry_folders_downloads_checks_caches_and_plays_offline(tmp_path):
    e = entry(PENDULUM)
    with HubServer(token=TOKEN) as hub:
        serve(hub, [e])
        env = client_env(tmp_path / "hf", TOKEN, HF_ENDPOINT=hub.url)
        before = listed(env, tmp_path / "zoo")[PENDULUM]
        assert before["files"] == "hub" and before["path"] is None and before["bytes"] == zoo.download_bytes(e)
        assert PLAYED in ok(mrq_without_entry_folders(["play", PENDULUM], env, tmp_path / "zoo"))
        after = listed(env, tmp_path / "zoo")[PENDULUM]
    assert after["files"] == "cache" and after["path"].startswith(str(tmp_path / "hf"))
    cached = sorted(p.name for p in Path(after["path"]).iterdir())
    assert cached == sorted(zoo.needed_files(e))  # what acting and fine-tuning read; no video or curve
    # The Hub is gone and HF_HUB_OFFLINE=1: the cache plays, as the checkout would.
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    assert PLAYED in ok(mrq_without_entry_folders(["play", PENDULUM], offline, tmp_path / "zoo"))


def test_a_tampered_file_on_the_hub_loads_nothing_and_is_not_kept(tmp_path):
    e = entry(PENDULUM)
    weights = bytearray((CHECKOUT_ZOO / e["folder"] / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    with HubServer(token=TOKEN) as hub:
        serve(hub, [e])
        hub.commit(e["repo_id"], {"model.safetensors": bytes(weights)})
        env = client_env(tmp_path / "hf", TOKEN, HF_ENDPOINT=hub.url)
        line = one_line_error(mrq_without_entry_folders(["play", PENDULUM], env, tmp_path / "zoo"))
    assert "model.safetensors of the zoo agent mrq-agents/mrq-InvertedPendulum-v4" in line
    assert "does not match the zoo manifest's sha256: nothing was loaded" in line
    tampered = hashlib.sha256(weights).hexdigest()
    kept = [
        p
        for p in (tmp_path / "hf").rglob("*")
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == tampered
    ]
    assert kept == []
    assert not list((tmp_path / "hf").rglob("snapshots/*/model.safetensors"))
    # Offline afterwards: the cache holds no agent, which is said in one line.
    line = one_line_error(
        mrq_without_entry_folders(["play", PENDULUM], {**env, "HF_HUB_OFFLINE": "1"}, tmp_path / "zoo")
    )
    assert "is not in the Hub cache" in line


def test_offline_with_neither_folder_nor_cache_names_the_repo_and_the_fix(tmp_path):
    env = client_env(tmp_path / "hf", TOKEN, HF_HUB_OFFLINE="1")
    line = one_line_error(mrq_without_entry_folders(["play", PENDULUM], env, tmp_path / "zoo"))
    assert "the zoo agent mrq-agents/mrq-InvertedPendulum-v4 is not in the Hub cache and the Hub is offline" in line
    assert "`mrq zoo pull InvertedPendulum-v4`" in line


def test_zoo_pull_fills_the_cache_once(tmp_path):
    entries = [entry(PENDULUM), entry(CARTPOLE)]
    with HubServer(token=TOKEN) as hub:
        serve(hub, entries)
        env = client_env(tmp_path / "hf", TOKEN, HF_ENDPOINT=hub.url)
        out = ok(mrq_without_entry_folders(["zoo", "pull", PENDULUM, CARTPOLE], env, tmp_path / "zoo"))
        again = ok(mrq_without_entry_folders(["zoo", "pull", entries[0]["repo_id"]], env, tmp_path / "zoo"))
    for e in entries:
        size = f"{zoo.download_bytes(e) / 1e6:.1f} MB"
        assert f"{zoo.play_id(e)}: pulled {e['repo_id']} ({size}, checked) into {tmp_path / 'hf'}" in out
    assert again.strip() == f"{PENDULUM}: {entries[0]['repo_id']} is in the Hub cache already (1.0 MB)"
    rows = listed({**env, "HF_HUB_OFFLINE": "1"}, tmp_path / "zoo")
    assert rows[PENDULUM]["files"] == rows[CARTPOLE]["files"] == "cache"
    assert rows["HalfCheetah-v4"]["files"] == "hub"


@pytest.mark.parametrize(
    "args, message",
    [
        (["zoo", "pull"], "name the zoo agents (env ids as `mrq zoo list` shows them), or pass --all"),
        (["zoo", "pull", "--all", PENDULUM], "pass env ids or --all, not both"),
        (["zoo", "pull", "Pendulum-v1"], "the zoo has no agent for 'Pendulum-v1'; zoo envs: InvertedPendulum-v4"),
        (["zoo", "push", "nope/nope"], "the zoo has no agent for 'nope/nope'"),
        (["zoo", "pull", PENDULUM], "`mrq zoo pull` downloads from the Hub, but HF_HUB_OFFLINE=1 is set"),
    ],
)
def test_zoo_pull_and_push_errors_are_one_line(args, message, offline_hub):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line


def test_zoo_push_uploads_the_checkout_entry_and_refuses_a_changed_one(tmp_path):
    e = entry(PENDULUM)
    with HubServer(token=TOKEN) as hub:
        env = client_env(tmp_path / "hf", TOKEN, HF_ENDPOINT=hub.url)
        out = ok(subprocess.run([*MRQ, "zoo", "push", PENDULUM], env=env, capture_output=True, text=True, timeout=120))
        repo = hub.repos[e["repo_id"]]
        pushed = repo.commits[repo.main]
        assert out.startswith(f"{PENDULUM}: pushed {len(e['files'])} files to {e['repo_id']} (")
        assert set(pushed) - {".gitattributes"} == set(e["files"])
        for name, record in e["files"].items():
            assert hashlib.sha256(pushed[name]).hexdigest() == record["sha256"], name
        # A checkout whose entry differs from the manifest pushes nothing.
        shutil.copytree(CHECKOUT_ZOO / e["folder"], tmp_path / "zoo" / e["folder"])
        (tmp_path / "zoo" / e["folder"] / "results.json").write_text("{}")
        head = repo.main
        line = one_line_error(mrq_without_entry_folders(["zoo", "push", PENDULUM], env, tmp_path / "zoo"))
        assert "results.json does not match the zoo manifest" in line and "nothing was pushed" in line
        assert repo.main == head
    # Without the entry's folder (an install from the wheel) there is nothing to push.
    line = one_line_error(mrq_without_entry_folders(["zoo", "push", PENDULUM], env, tmp_path / "empty"))
    assert "`mrq zoo push` runs in a source checkout of mrq-agents" in line


def test_export_takes_a_zoo_id_and_says_where_its_files_are(tmp_path, offline_hub):
    e = entry(PENDULUM)
    args = ["export", e["repo_id"], "--out", str(tmp_path / "export"), "--episodes", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{e['repo_id']}: files in {CHECKOUT_ZOO / e['folder']}" in result.stdout
    assert Policy.from_pretrained(tmp_path / "export").env_config.env_id == e["env_id"]
