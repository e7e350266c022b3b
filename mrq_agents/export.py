"""The export format (one folder = one Hub repo) and its model card.

config.json        format version, algorithm config, env and preprocessing, spaces, training info, package version
model.safetensors  encoder, value and policy weights named by module (no optimizer or replay state); float32,
                   or in a compact export float16 for what acting does not read (`save_pretrained(compact=True)`)
README.md          model card rendered from MODEL_CARD.md, with Hub metadata (model-index, tags)
actor.onnx         the state encoder and the policy as one ONNX graph, observation -> action (torch-free acting);
                   its tensors are external data in model.safetensors (`actor_torch.share_weights`)
results.json       mean, std, per-episode returns, episodes, seed, deterministic or not, date
replay.mp4         a recorded episode, when recorded; learning_curve.png and metrics.csv from the run
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import string
from pathlib import Path
from typing import Any

from mrq_agents.config import changed_fields, train_command
from mrq_agents.envs import EnvConfig
from mrq_agents.envs import describe as describe_env
from mrq_agents.episodes import episodes_text
from mrq_agents.files import (
    CARD_FILE,
    COPIED_FILES,
    CURVE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    VIDEO_FILE,
)
from mrq_agents.machine import describe
from mrq_agents.model_folder import metrics_rows
from mrq_agents.paper import placement, protocol_note
from mrq_agents.serialization import atomic_write, atomic_write_bytes, read_metadata

CARD_TEMPLATE = Path(__file__).with_name("MODEL_CARD.md")


def training_info(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Steps trained, wall time, device and command of the run behind `folder` (kept if already exported)."""
    info = dict(meta.get("training", {}))
    rows = metrics_rows(folder)
    if rows:
        info["steps"] = int(float(rows[-1]["step"]))
        info["wall_time_s"] = float(rows[-1]["wall_time"])
    elif "run" in meta and (folder / MODEL_FILE).is_file():  # a run stopped before its first evaluation
        step = read_metadata(folder / MODEL_FILE, "model weights").get("step")
        if step is not None:
            info["steps"] = int(step)
    if "run" in meta:
        info.setdefault("seed", meta["run"]["seed"])
        info.setdefault("command", train_command(meta["env"]["env_id"], meta["run"], meta["algorithm"]))
    return info


def results_from_metrics(folder: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The run's last training-time evaluation as a results record (None when it has none)."""
    rows = metrics_rows(folder)
    if not rows or "run" not in meta:
        return None
    last = rows[-1]
    return {
        "mean": float(last["eval_return_mean"]),
        "std": float(last["eval_return_std"]),
        "episodes": int(meta["run"]["eval_episodes"]),
        "seed": int(meta["run"]["seed"]),
        "deterministic": not meta["spaces"]["discrete"],
        "step": int(float(last["step"])),
        "source": "evaluation during training",
        "date": _mtime_date(folder / METRICS_FILE),
    }


def _mtime_date(path: Path) -> str:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).date().isoformat()


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def render_card(
    meta: dict[str, Any], results: dict[str, Any] | None, repo_id: str | None, has_video: bool, has_curve: bool
) -> str:
    """The model card: Hub metadata (YAML front matter) + MODEL_CARD.md filled in."""
    from huggingface_hub import EvalResult, ModelCardData

    env = EnvConfig.from_dict(meta["env"])
    training = meta.get("training", {})
    steps = training.get("steps")
    place = placement(env, steps, results["mean"] if results else None)
    score = f"{results['mean']:.2f} +/- {results['std']:.2f}" if results else "not evaluated"
    repo = repo_id or meta.get("repo_id") or "<org>/<name>"
    eval_results = None
    if results:
        eval_results = [
            EvalResult(
                task_type="reinforcement-learning",
                task_name="Reinforcement Learning",
                dataset_type=env.env_id,
                dataset_name=env.env_id,
                metric_type="mean_reward",
                metric_name="mean_reward",
                metric_value=score,
            )
        ]
    data = ModelCardData(
        library_name="mrq-agents",
        license="mit",
        model_name=f"MR.Q-{env.env_id}",
        eval_results=eval_results,
        tags=[env.env_id, "reinforcement-learning", "deep-reinforcement-learning", "mrq", env.family],
    )
    deterministic = results.get("deterministic", True) if results else True
    wall = training.get("wall_time_s")
    values = {
        "env_id": env.env_id,
        "repo_id": repo,
        "score": score,
        "episodes": episodes_text(results["episodes"] if results else 0),
        "eval_seed": results["seed"] if results else "-",
        "policy_mode": "deterministic" if deterministic else "stochastic (the paper's sampled argmax)",
        "eval_date": results.get("date", "-") if results else "-",
        "eval_machine": _eval_machine(results),
        "steps": f"{steps:,}" if steps else "unknown",
        "wall_time": f"{wall / 60:.1f} min" if wall else "unknown wall time",
        "device": f"{_where_trained(training)}, {training.get('precision', 'fp32')} precision",
        "training_note": f" ({training['note']})" if training.get("note") else "",
        "paper_score": place.reference_text() if steps else "no reference: unknown step count",
        "placement": (f"**{place.where}** the paper's interquartile range at this step" if place.where else "-")
        + protocol_note(place, meta["spaces"]["discrete"], deterministic),
        "video": "![replay](replay.mp4)" if has_video else "",
        "curve": (
            "## Learning curve\n\n![learning curve](learning_curve.png)\n\n`metrics.csv` holds every "
            "evaluation of the run."
        )
        if has_curve
        else "",
        "train_command": training.get("command", "unknown"),
        "config_note": _config_note(meta["algorithm"]),
        "preprocessing": describe_env(env),
        "storage_note": (
            " `model.safetensors` stores the state encoder and the policy (all that acting reads) in "
            "float32 and the rest (the critics, the encoder's state-action and model layers, which "
            "only fine-tuning reads) in float16, to keep the file small. Acting is exactly the float32 "
            "agent's. Loading makes the rest float32 again, but their values stay rounded to float16: "
            "fine-tuning starts from rounded critics."
            if meta.get("weights_storage") == "compact"
            else ""
        ),
        "eval_command": eval_command(repo, results),
    }
    body = string.Template(CARD_TEMPLATE.read_text()).safe_substitute(values)
    body = re.sub(r"\n{3,}", "\n\n", body)  # empty sections (no video, no curve) leave no gaps
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def write_card(folder: Path, meta: dict[str, Any], results: dict[str, Any] | None, repo_id: str | None) -> None:
    """folder/README.md: the model card of the export in `folder` (linking its video and curve when it has them)."""
    card = render_card(
        meta, results, repo_id, has_video=(folder / VIDEO_FILE).exists(), has_curve=(folder / CURVE_FILE).exists()
    )
    atomic_write_bytes(folder / CARD_FILE, card.encode("utf-8"))


def _eval_machine(results: dict[str, Any] | None) -> str:
    if not results:
        return "-"
    if not results.get("machine") and results.get("source") == "evaluation during training":
        return "the training machine"
    return describe(results.get("machine"))


def _where_trained(training: dict[str, Any]) -> str:
    """'cpu', or for a run resumed elsewhere 'cuda (torch 2.11.0, fast path) to step 42,502, then cpu (...)'."""
    segments = training.get("segments")
    if not segments:
        return training.get("device", "unknown device")
    parts = []
    for i, seg in enumerate(segments):
        path = "fast path" if seg.get("fast_path") else "plain path"
        part = f"{seg.get('device')} (torch {seg.get('torch')}, {path})"
        parts.append(part + (f" to step {segments[i + 1]['from_step']:,}" if i + 1 < len(segments) else ""))
    return ", then ".join(parts)


def _config_note(algorithm: dict[str, Any]) -> str:
    changed = [f"`{k}={v}`" for k, v in changed_fields(algorithm).items()]
    if not changed:
        return "The algorithm config is the paper's, unchanged."
    return "The algorithm config is the paper's except " + ", ".join(changed) + "."


def eval_command(repo: str, results: dict[str, Any] | None) -> str:
    """The `mrq eval` command that reproduces `results` for `repo` (its episodes, seed and policy mode)."""
    if not results:
        return f"mrq eval {repo}"
    if results.get("source") == "evaluation during training":
        return f"# the last evaluation during training (step {results.get('step')}); to re-evaluate:\nmrq eval {repo}"
    flag = " --deterministic" if results.get("deterministic") else ""
    return f"mrq eval {repo} --episodes {results['episodes']} --seed {results['seed']}{flag}"


def copy_run_files(source: Path, target: Path) -> None:
    """Copy the video, learning curve and metrics that exist in `source` into the export folder `target`."""
    for name in COPIED_FILES:
        src = source / name
        if src.exists() and src.resolve() != (target / name).resolve():
            atomic_write(target / name, lambda tmp: shutil.copyfile(src, tmp))
