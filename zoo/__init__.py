"""The zoo: pretrained MR.Q agents, one Hub repo each; the package carries their index (installed as
`mrq_agents.zoo`).

`manifest.json` holds, for each entry, its env id, Hub repo id, the command that trained it, its measured score,
its preset and spaces, and the sha256 and size of every file of its export folder (the paper's reference comes
from `mrq_agents.paper`). The files themselves come from, in this order:

1. the entry's folder beside the manifest (`zoo/<entry>/` of a source checkout installed with `pip install -e .`);
2. huggingface_hub's cache (filled by an earlier download or by `mrq zoo pull`);
3. a download from the entry's Hub repo.

Wherever they came from, the files acting needs are checked against the manifest's sha256 before anything is
loaded; a file that does not match is removed from the cache and nothing loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from mrq_agents.errors import CheckpointError, MissingDependencyError, MRQError, UnsupportedEnvError, closest
from mrq_agents.files import MODEL_FILE, sha256_file
from mrq_agents.hub import DOWNLOAD_PATTERNS, download_files, is_offline, push_folder

ZOO_DIR = Path(__file__).parent
MANIFEST = ZOO_DIR / "manifest.json"
NAMESPACE = "mrq-agents/"  # the zoo's repo ids: mrq-agents/<name>
CHECKOUT, CACHE, HUB = "checkout", "cache", "hub"  # where an entry's files are (`location`)


def entries() -> list[dict[str, Any]]:
    """All zoo entries, in manifest order."""
    if not MANIFEST.exists():
        return []
    return json.loads(MANIFEST.read_text())["entries"]


def find_by_env(env_id: str) -> dict[str, Any] | None:
    """The entry trained on `env_id` (matching the id as given or its resolved Gymnasium id)."""
    from mrq_agents.envs import resolve_env

    wanted = resolve_env(env_id)
    for entry in entries():
        try:
            other = resolve_env(entry["env_id"])
        except MissingDependencyError:  # an entry of a family this install lacks is not the env asked for
            continue
        if (env_id == entry["env_id"] or wanted.gym_id == other.gym_id) and wanted.pixels == other.pixels:
            return entry
    return None


def find_other_version(env_id: str) -> dict[str, Any] | None:
    """An entry for another version of the same env ('HalfCheetah-v4' for 'HalfCheetah-v5') whose observation and
    action spaces equal that env's (None when there is none; building the env tells its spaces)."""
    import gymnasium as gym

    from mrq_agents.envs import EnvSpec, make_env, resolve_env

    wanted = resolve_env(env_id)
    namespace, name, version = gym.envs.registration.parse_env_id(wanted.gym_id)
    candidates = []
    for entry in entries():
        config = resolve_env(entry["env_id"])
        other = gym.envs.registration.parse_env_id(config.gym_id)
        if other[:2] == (namespace, name) and other[2] != version and config.pixels == wanted.pixels:
            candidates.append(entry)
    if not candidates:
        return None
    env = make_env(wanted)
    try:
        spec = EnvSpec.from_env(env, wanted.frame_stack).to_dict()
    finally:
        env.close()
    return next((entry for entry in candidates if entry["spaces"] == spec), None)


def play_id(entry: dict[str, Any]) -> str:
    """The id `mrq play` takes for the entry: its Gymnasium id ('dm_control/walker-walk-v0', 'HalfCheetah-v4'),
    or the entry's own id where the Gymnasium id names another observation kind (DMC from pixels)."""
    from mrq_agents.envs import resolve_env

    try:
        config = resolve_env(entry["env_id"])
    except MissingDependencyError:  # its family's package is missing: the entry's own id still names it
        return entry["env_id"]
    return config.gym_id if resolve_env(config.gym_id).pixels == config.pixels else entry["env_id"]


def find_by_repo(repo_id: str) -> dict[str, Any] | None:
    return next((e for e in entries() if e["repo_id"] == repo_id), None)


def check_known(repo_id: str) -> None:
    """A repo id in the zoo's namespace that names no entry (a typo) is a one-line error naming the nearest entry
    and `mrq zoo list`, rather than a trip to the Hub."""
    if not repo_id.startswith(NAMESPACE) or find_by_repo(repo_id) is not None:
        return
    names = {e["repo_id"][len(NAMESPACE) :]: e["repo_id"] for e in entries()}
    near = closest(repo_id[len(NAMESPACE) :], names)
    hint = f"did you mean {names[near]!r}? " if near else ""
    raise CheckpointError(f"{repo_id!r} is not in the zoo; {hint}`mrq zoo list` lists its agents")


def check_not_an_env(source: str) -> None:
    """An env id given where a model goes (`mrq eval dm_control/walker-walk-v0`) is a one-line error naming the zoo's
    agent for that env, or saying there is none, rather than a trip to the Hub. Reads ids only: no env package is
    imported."""
    from mrq_agents.envs import has_family_prefix, named_env

    def named(env_id: str) -> tuple[str, str, bool]:
        family, gym_id, pixels = named_env(env_id)
        return family.name, gym_id, pixels

    entry = next((e for e in entries() if named(e["env_id"]) == named(source)), None)
    if entry is not None:
        raise CheckpointError(
            f"{source!r} is an env id, not a model: the zoo's agent for it is {entry['repo_id']!r}; pass that, "
            "or a run or export folder"
        )
    if has_family_prefix(source):
        raise CheckpointError(
            f"{source!r} is an env id, not a model, and the zoo has no agent for it (`mrq zoo list`); train one with "
            f"`mrq train {source}`, then pass its run folder"
        )


def preset(entry: dict[str, Any]) -> str:
    """The training preset of an entry: 'paper', 'small' or 'custom'."""
    return entry["preset"]


def precision(entry: dict[str, Any]) -> str:
    """What the entry's updates computed in while it trained: 'fp32' or 'bf16'."""
    return entry["precision"]


def preset_text(entry: dict[str, Any]) -> str:
    """The preset, with the precision where it is not fp32: 'paper', 'paper, bf16' (`mrq zoo list`, the README)."""
    return preset(entry) if precision(entry) == "fp32" else f"{preset(entry)}, {precision(entry)}"


def select(names: list[str], everything: bool) -> list[dict[str, Any]]:
    """The entries that `mrq zoo pull/push ENV ... | --all` name: env ids (as `mrq play` takes them) or repo ids."""
    if everything:
        if names:
            raise MRQError("pass env ids or --all, not both")
        return entries()
    if not names:
        raise MRQError("name the zoo agents (env ids as `mrq zoo list` shows them), or pass --all")
    chosen = []
    for name in names:
        entry = find_by_repo(name) or _find_by_own_id(name) or _find_by_other_env_id(name)
        if entry is None:
            have = ", ".join(play_id(e) for e in entries())
            raise UnsupportedEnvError(f"the zoo has no agent for {name!r}; zoo envs: {have} (`mrq zoo list`)")
        if entry not in chosen:
            chosen.append(entry)
    return chosen


def _find_by_own_id(name: str) -> dict[str, Any] | None:
    """The entry whose own id or `mrq play` id is `name`: found without building the env, so pulling an agent needs
    no env package (another id is resolved, and a missing package is named)."""
    return next((e for e in entries() if name in (e["env_id"], play_id(e))), None)


def _find_by_other_env_id(name: str) -> dict[str, Any] | None:
    """The entry for another id of its env ('Gym-Hopper-v4'); None for a name that is no env id at all. A missing
    env package is not caught: it is named, not reported as "no agent"."""
    try:
        return find_by_env(name)
    except UnsupportedEnvError:
        return None


# ---------------------------------------------------------------- the files of an entry
def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """{file name: {"sha256", "bytes"}} for every file of an export folder: the manifest's record of an entry."""
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(Path(folder).iterdir())
        if p.is_file()
    }


def needed_files(entry: dict[str, Any]) -> list[str]:
    """The files of an entry that loading and acting read (what a download fetches; videos and curves stay put)."""
    return [name for name in entry["files"] if name in DOWNLOAD_PATTERNS]


def download_bytes(entry: dict[str, Any]) -> int:
    """The size of the files a download of the entry fetches."""
    return sum(entry["files"][name]["bytes"] for name in needed_files(entry))


def mismatches(entry: dict[str, Any], folder: Path, names: list[str] | None = None) -> list[str]:
    """The files among `names` (default: the needed ones) that are missing from `folder` or whose sha256 differs
    from the manifest's."""
    bad = []
    for name in needed_files(entry) if names is None else names:
        path = folder / name
        if not path.is_file() or sha256_file(path) != entry["files"][name]["sha256"]:
            bad.append(name)
    return bad


def checkout_folder(entry: dict[str, Any]) -> Path | None:
    """The entry's folder beside the manifest, when this install is a source checkout that has it."""
    folder = ZOO_DIR / entry["folder"]
    return folder if (folder / MODEL_FILE).is_file() else None


def cached_folder(entry: dict[str, Any], cache_dir: str | None = None) -> Path | None:
    """The Hub cache's snapshot of the entry's repo (main) when it holds every needed file, else None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    folders = set()
    for name in needed_files(entry):
        path = try_to_load_from_cache(entry["repo_id"], name, cache_dir=cache_dir)
        if not isinstance(path, str):
            return None
        folders.add(Path(path).parent)
    return folders.pop() if len(folders) == 1 else None


def location(entry: dict[str, Any], cache_dir: str | None = None) -> tuple[str, Path | None]:
    """(CHECKOUT, folder), (CACHE, folder) or (HUB, None): where `agent_folder` would take the entry's files from,
    checked against the manifest (reads files, never the network)."""
    folder = checkout_folder(entry)
    if folder is not None:
        return CHECKOUT, folder
    folder = cached_folder(entry, cache_dir)
    if folder is not None and not mismatches(entry, folder):
        return CACHE, folder
    return HUB, None


def agent_folder(entry: dict[str, Any], local_files_only: bool | None = None, cache_dir: str | None = None) -> Path:
    """The folder of a zoo agent's files, checked against the manifest: the checkout's, the Hub cache's, or a fresh
    download's (in that order). One-line CheckpointError when the files do not match or cannot be had."""
    folder = checkout_folder(entry)
    if folder is not None:
        bad = mismatches(entry, folder)
        if bad:
            raise CheckpointError(
                f"{folder / bad[0]} does not match the zoo manifest's sha256: the checkout's zoo files were "
                f"changed; restore them with `git checkout -- {ZOO_DIR.name}/{entry['folder']}`"
            )
        return folder
    folder = cached_folder(entry, cache_dir)
    if folder is not None and not _discard_mismatches(entry, folder):
        return folder
    if is_offline(local_files_only):
        raise CheckpointError(
            f"the zoo agent {entry['repo_id']} is not in the Hub cache and the Hub is offline (HF_HUB_OFFLINE=1 or "
            f"local_files_only): run `mrq zoo pull {play_id(entry)}` once online (on an offline machine, copy "
            "the Hub cache, HF_HOME, from a machine that pulled it)"
        )
    return pull(entry, cache_dir=cache_dir)


def pull(entry: dict[str, Any], cache_dir: str | None = None, on_bytes: Callable[[int], None] | None = None) -> Path:
    """Download the entry's needed files into the Hub cache (what is cached and intact is kept), check them against
    the manifest and return the snapshot folder. `on_bytes(n)` is called as bytes arrive."""
    folder = download_files(entry["repo_id"], needed_files(entry), cache_dir=cache_dir, on_bytes=on_bytes)
    bad = _discard_mismatches(entry, folder)
    if bad:
        raise CheckpointError(
            f"{bad[0]} of the zoo agent {entry['repo_id']}, as downloaded from the Hub, does not match the zoo "
            "manifest's sha256: nothing was loaded and the file was removed from the cache; upgrade mrq-agents "
            "(`pip install -U mrq-agents`) if the agent was updated, else report it"
        )
    return folder


def _discard_mismatches(entry: dict[str, Any], folder: Path) -> list[str]:
    """The needed files of a cache snapshot that do not match the manifest; those are deleted from the cache
    (the snapshot's link and the blob behind it), so that nothing keeps them as good."""
    bad = mismatches(entry, folder)
    for name in bad:
        path = folder / name
        blob = path.resolve()
        path.unlink(missing_ok=True)
        if blob != path:
            blob.unlink(missing_ok=True)
    return bad


def push(entry: dict[str, Any], token: str | None = None) -> str:
    """Upload the checkout's folder of an entry to its repo id (the files `mrq push` sends); refuses a folder
    whose files do not match the manifest. Returns the commit URL."""
    folder = checkout_folder(entry)
    if folder is None:
        raise CheckpointError(
            f"the zoo agent {entry['repo_id']} has no folder here ({ZOO_DIR / entry['folder']}): "
            "`mrq zoo push` runs in a source checkout of mrq-agents, where the zoo's entries are made"
        )
    on_disk = {p.name for p in folder.iterdir() if p.is_file()}
    bad = mismatches(entry, folder, list(entry["files"])) + sorted(on_disk - set(entry["files"]))
    if bad:
        raise CheckpointError(
            f"{folder / bad[0]} does not match the zoo manifest ({len(bad)} file(s) differ, are missing or are "
            "not listed): nothing was pushed; restore the folder or record it with tools/zoo_add.py"
        )
    return push_folder(folder, entry["repo_id"], commit_message=f"mrq zoo push: {entry['env_id']}", token=token)


def play_source(target: str, model: str | None = None) -> tuple[str, str | None]:
    """(model source, env id to check it against) for `mrq play TARGET [--model SOURCE]`: TARGET is a model
    source, or an env id whose zoo agent plays (an error names another version's agent or the zoo's envs)."""
    from mrq_agents.envs import has_family_prefix, resolve_env

    if model is not None:
        return model, target
    if Path(target).exists() or find_by_repo(target):
        return target, None
    try:
        resolve_env(target)
    except MissingDependencyError:  # an env id of a family whose package is missing: say so, not "not on the Hub"
        raise
    except MRQError:
        if has_family_prefix(target):  # 'dm_control/walker-runn-v0' is a mistyped env, not a Hub repo: say so
            raise
        if "/" not in target:
            raise UnsupportedEnvError(
                f"{target!r} is not a supported env id, a model folder, or a Hub repo id (org/name); "
                "see `mrq train --help` for env ids and `mrq zoo list` for pretrained agents"
            ) from None
        return target, None  # not an env id: a Hub repo id
    entry = find_by_env(target)
    if entry is None:
        other = find_other_version(target)
        if other is not None:
            raise UnsupportedEnvError(
                f"the zoo has no agent for {target!r}; it has one for {play_id(other)!r}, another "
                f"version of the same env with the same observation and action spaces: play it with "
                f"`mrq play {play_id(other)}`, or train one for {target!r} with `mrq train {target}`"
            )
        have = ", ".join(play_id(e) for e in entries()) or "none"
        raise UnsupportedEnvError(
            f"the zoo has no agent for {target!r} (zoo envs: {have}); pass one with --model SOURCE "
            "or train one with `mrq train`"
        )
    return entry["repo_id"], target
