"""The zoo: pretrained MR.Q agents bundled with the package (installed as `mrq_agents.zoo`).

`manifest.json` maps each env id to its Hub repo id, the command that trained it, its measured score and
the sha256 of its weights (the paper's reference comes from `mrq_agents.paper`); the entry's export folder lies
beside it, so `mrq play <env>` and `Policy.from_pretrained(<zoo repo id>)` work offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mrq_agents.errors import CheckpointError, MissingDependencyError, MRQError, UnsupportedEnvError, closest

ZOO_DIR = Path(__file__).parent
MANIFEST = ZOO_DIR / "manifest.json"
NAMESPACE = "mrq-agents/"  # the zoo's repo ids: mrq-agents/<name>


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
    for entry in candidates:
        config = ZOO_DIR / entry["folder"] / "config.json"
        if config.exists() and json.loads(config.read_text())["spaces"] == spec:
            return entry
    return None


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


def preset(entry: dict[str, Any]) -> str:
    """The training preset of an entry ('paper', 'small' or 'custom'), read from its bundled config.json."""
    from mrq_agents.config import preset_name

    config = ZOO_DIR / entry["folder"] / "config.json"
    if not config.exists():
        return "unknown"
    return preset_name(json.loads(config.read_text())["algorithm"])


def bundled_folder(entry: dict[str, Any]) -> Path:
    """The entry's bundled export folder, after checking its weights against the manifest's sha256."""
    from mrq_agents.files import sha256_file

    folder = ZOO_DIR / entry["folder"]
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise CheckpointError(
            f"the zoo entry {entry['repo_id']} is not bundled in this install ({folder} is "
            "missing): reinstall mrq-agents"
        )
    if sha256_file(weights) != entry["sha256"]:
        raise CheckpointError(
            f"{weights} does not match the zoo manifest's sha256: the install is corrupt, reinstall mrq-agents"
        )
    return folder


def play_source(target: str, model: str | None = None) -> tuple[str, str | None]:
    """(model source, env id to check it against) for `mrq play TARGET [--model SOURCE]`: TARGET is a model
    source, or an env id whose zoo agent plays (an error names another version's agent or the zoo's envs)."""
    from mrq_agents.envs import resolve_env

    if model is not None:
        return model, target
    if Path(target).exists() or find_by_repo(target):
        return target, None
    try:
        resolve_env(target)
    except MissingDependencyError:  # an env id of a family whose package is missing: say so, not "not on the Hub"
        raise
    except MRQError:
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
