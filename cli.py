"""The `mrq` command line (installed as `mrq_agents.cli`)."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from mrq_agents.errors import MRQError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="MR.Q: train, evaluate and share general-purpose model-free RL agents.")

BACKEND_HELP = ("auto, torch or onnx: which one computes the actor (onnx: onnxruntime on the export's actor.onnx, "
                "no torch). [default: auto = torch when it is installed, else onnx]")
FAST_HELP = ("The fast update path: fused optimizers, and on CUDA each update replayed from a captured CUDA graph; "
             "same math as --no-fast (benchmarks/README.md). [default: on for CUDA, off for the CPU]")


def _friendly_errors(command: Callable) -> Callable:
    """Bad input ends with one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MRQError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@_friendly_errors
def train(
    env: str = typer.Argument(..., help="Gymnasium id (Pendulum-v1, HalfCheetah-v4), dm_control/<domain>-<task>-v0, "
                              "ALE/<Game>-v5, or a paper alias (Gym-HalfCheetah-v4, Dmc-walker-walk, "
                              "Dmc-visual-walker-walk, Atari-Pong-v5)."),
    steps: Optional[int] = typer.Option(None, help="Total env steps (agent decisions). Default per benchmark: "
                                        "Gym MuJoCo 1M, DMC 500k, Atari 2.5M; any other env 100k."),
    seed: Optional[int] = typer.Option(None, help="Random seed. [default: 0]"),
    out: Optional[Path] = typer.Option(None, help="Run folder. [default: runs/<env>-seed<seed>]"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N. [default: auto]"),
    fast: Optional[bool] = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N steps. Default per benchmark: "
                                             "Atari 100k, others 5k."),
    eval_episodes: Optional[int] = typer.Option(None, help="Episodes per evaluation. [default: 10]"),
    checkpoint_every: Optional[int] = typer.Option(None, help="Write a resumable checkpoint at the first episode "
                                                   "end after every N steps. [default: max(50k, eval every)]"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override an algorithm hyperparameter, "
                                             "e.g. --set enc_hdim=128 (repeatable; names as in the paper)."),
    preset: str = typer.Option("paper", help="Named config before --set: 'paper' (the paper's defaults) or "
                               "'small' (128-wide networks, 1k warm-up: small envs learn on a CPU in minutes). With --resume the "
                               "run's saved config is used."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch. [default: torch's choice; 1 is "
                                          "often fastest for small networks]"),
) -> None:
    """Train MR.Q on ENV and write a run folder (config, metrics, curves, weights, checkpoint)."""
    from mrq_agents.deps import require_torch

    require_torch("`mrq train`")
    from mrq_agents.config import MRQConfig, preset_config
    from mrq_agents.serialization import read_json
    from mrq_agents.training.trainer import CONFIG_FILE, Trainer, default_run_config

    overrides = {"steps": steps, "seed": seed, "device": device, "fast": fast, "eval_every": eval_every,
                 "eval_episodes": eval_episodes, "checkpoint_every": checkpoint_every}
    base_algo = preset_config(preset)
    if out is None:
        out = Path("runs") / f"{env.replace('/', '_')}-seed{seed or 0}"
    if resume and (out / CONFIG_FILE).exists():
        saved = read_json(out / CONFIG_FILE, "run config")
        overrides = {**{k: v for k, v in saved["run"].items() if k != "env_id"},
                     **{k: v for k, v in overrides.items() if v is not None}}
        base_algo = MRQConfig.from_dict(saved["algorithm"])
    run = default_run_config(env, **overrides)
    algo = base_algo.with_overrides(set_ or [])
    _set_threads(threads)
    trainer = Trainer(run, algo, out, resume=resume, log=_console().print)
    _run(trainer, env, out)


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        if threads < 1:
            raise MRQError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def _run(trainer, env: str, out: Path) -> None:
    """Run a prepared Trainer with a progress bar; Ctrl-C says how to resume."""
    run = trainer.run
    typer.echo(f"MR.Q on {run.env_id} | {run.steps:,} steps | seed {run.seed} | device {trainer.device} "
               f"({'fast' if trainer.learner.fast else 'plain'} path) | "
               f"obs {trainer.spec.obs_shape} | {'discrete' if trainer.spec.discrete else 'continuous'} "
               f"actions ({trainer.spec.action_dim}) | out {out}"
               + (f" | resumed at step {trainer.step:,}" if trainer.step else ""))
    try:
        with _progress(run.steps, trainer.step) as update:
            summary = trainer.train(progress=update)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted at step {trainer.step:,}; continue with: mrq train {env} --out {out} --resume",
                   err=True)
        raise typer.Exit(130) from None
    typer.echo(f"done: {summary['step']:,} steps in {summary['wall_time']:.0f}s | last eval return "
               f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f} | {out}")


@app.command()
@_friendly_errors
def finetune(
    source: str = typer.Argument(..., help="A pretrained agent: export or run folder, zoo id or Hub repo id."),
    env: str = typer.Option(..., help="The env to fine-tune on (any id `mrq train` accepts)."),
    steps: int = typer.Option(..., help="Env steps of fine-tuning."),
    out: Path = typer.Option(..., help="Run folder to write (a normal, resumable run folder)."),
    seed: int = typer.Option(0, help="Random seed."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a hyperparameter of the source's config."),
    freeze: str = typer.Option("none", help="'encoder': keep the transferred encoder layers fixed; 'none'."),
    warmup_steps: Optional[int] = typer.Option(None, help="Random-action steps before updates. [default: the "
                                               "source config's warm-up; a tenth of it learned more slowly, see "
                                               "docs/finetune.md]"),
    revision: Optional[str] = typer.Option(None, help="Hub revision of SOURCE."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    fast: Optional[bool] = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N steps. [default: per benchmark]"),
    eval_episodes: Optional[int] = typer.Option(None, help="Episodes per evaluation. [default: 10]"),
    checkpoint_every: Optional[int] = typer.Option(None, help="Checkpoint cadence in steps. [default: max(50k, eval every)]"),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch. [default: torch's choice]"),
) -> None:
    """Fine-tune a pretrained MR.Q agent on another env (continue a killed one with `mrq train ENV --out DIR --resume`)."""
    from mrq_agents.deps import require_torch

    require_torch("`mrq finetune`")
    from mrq_agents.training.finetune import finetune as prepare

    _set_threads(threads)
    trainer = prepare(source, env, steps, out, seed=seed, overrides=set_ or [], freeze=freeze,
                      warmup_steps=warmup_steps, revision=revision, device=device, fast=fast, eval_every=eval_every,
                      eval_episodes=eval_episodes, checkpoint_every=checkpoint_every, log=_console().print)
    _run(trainer, env, out)


@app.command("config")
def show_config(
    preset: str = typer.Option("paper", help="'paper' or 'small'."),
) -> None:
    """Every algorithm hyperparameter with its default (names for --set) and meaning."""
    import dataclasses

    from mrq_agents.config import preset_config

    config = preset_config(preset)
    for f in dataclasses.fields(config):
        typer.echo(f"{f.name:<20} {str(getattr(config, f.name)):<10} {f.metadata['help']}")


@app.command("eval")
@_friendly_errors
def evaluate(
    source: str = typer.Argument(..., help="A run folder of `mrq train`, an export folder, a zoo id or a Hub repo id."),
    episodes: int = typer.Option(10, help="Episodes to play."),
    seed: int = typer.Option(0, help="Seed of the evaluation episodes."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Discrete actions: argmax(pre) instead of "
                                       "the paper's sample argmax(gumbel_softmax(pre)). No effect for continuous."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
) -> None:
    """Evaluate saved weights with the paper's protocol (no exploration noise) and print mean ± std return."""
    from mrq_agents.policy import Policy

    policy = Policy.from_pretrained(source, device=device, backend=backend)
    result = policy.evaluate(episodes=episodes, seed=seed, deterministic=deterministic, source="mrq eval")
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"{result['env_id']}: return {result['mean']:.2f} ± {result['std']:.2f} over {episodes} episodes "
                   f"(seed {seed}, {'deterministic' if result['deterministic'] else 'stochastic'} policy)")


@app.command("export")
@_friendly_errors
def export_(
    run_dir: Path = typer.Argument(..., help="A run folder of `mrq train` (or an export folder)."),
    out: Path = typer.Option(..., help="Export folder to write (one folder = one Hub repo)."),
    episodes: int = typer.Option(10, help="Evaluation episodes for results.json and the model card."),
    seed: int = typer.Option(0, help="Seed of the evaluation episodes."),
    record: bool = typer.Option(False, "--record", help="Also record one episode to replay.mp4."),
    deterministic: bool = typer.Option(True, "--deterministic/--stochastic", help="Discrete actions: argmax(pre), "
                                       "or the paper's sampled argmax(gumbel_softmax(pre))."),
    repo_id: Optional[str] = typer.Option(None, help="Hub repo id to name in the model card's usage snippets."),
) -> None:
    """Evaluate a run's weights and write the export folder: weights, actor.onnx, config, model card, results."""
    from mrq_agents.deps import require_torch
    from mrq_agents.policy import Policy

    require_torch("`mrq export` (it writes actor.onnx from the weights)")
    policy = Policy.from_pretrained(run_dir)
    results = policy.evaluate(episodes=episodes, seed=seed, deterministic=deterministic, source="mrq export")
    typer.echo(f"{results['env_id']}: return {results['mean']:.2f} ± {results['std']:.2f} over {episodes} episodes")
    out.mkdir(parents=True, exist_ok=True)
    if record:
        policy.record(out / "replay.mp4", episodes=1, seed=seed, deterministic=deterministic)
        typer.echo(f"recorded {out / 'replay.mp4'}")
    policy.save_pretrained(out, results=results, repo_id=repo_id)
    typer.echo(f"exported to {out}")


@app.command()
@_friendly_errors
def push(
    source: Path = typer.Argument(..., help="An export folder (from `mrq export`) or a run folder."),
    repo_id: str = typer.Option(..., help="Hub repo id, ORG/NAME."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private."),
    message: str = typer.Option("Upload MR.Q agent", help="Commit message."),
) -> None:
    """Upload an export folder, or a run folder (exported on the fly, scored by its last evaluation), to the Hub."""
    import tempfile

    from mrq_agents.hub import push_folder
    from mrq_agents.policy import Policy

    if (source / "README.md").exists() and (source / "results.json").exists():
        url = push_folder(source, repo_id, private=private, commit_message=message)
    else:
        policy = Policy.from_pretrained(source)
        with tempfile.TemporaryDirectory() as tmp:
            policy.save_pretrained(tmp, repo_id=repo_id)
            url = push_folder(tmp, repo_id, private=private, commit_message=message)
    typer.echo(f"pushed {source} to {url}")


@app.command()
@_friendly_errors
def play(
    target: str = typer.Argument(..., help="An env id (plays the zoo's agent for it) or a model source."),
    model: Optional[str] = typer.Option(None, help="Model source: export or run folder, zoo id or Hub repo id."),
    episodes: int = typer.Option(1, help="Episodes to play."),
    record: bool = typer.Option(False, "--record", help="Write an mp4 per episode (works headless)."),
    video_dir: Path = typer.Option(Path("videos"), help="Where --record writes its videos."),
    seed: int = typer.Option(0, help="Seed of the episodes."),
    deterministic: bool = typer.Option(True, "--deterministic/--stochastic", help="Discrete actions: argmax(pre), "
                                       "or the paper's sampled argmax(gumbel_softmax(pre))."),
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit) of the model."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
) -> None:
    """Play an agent: `mrq play InvertedPendulum-v4 --record`, `mrq play org/repo`, `mrq play ENV --model DIR`."""
    from mrq_agents.policy import Policy

    source, env_id = _play_source(target, model)
    policy = Policy.from_pretrained(source, revision=revision, device=device, backend=backend)
    if env_id is not None and policy.env_config.gym_id != _gym_id(env_id):
        raise MRQError(f"the model {source} was trained on {policy.env_config.env_id!r}, not {env_id!r}")
    name = policy.env_config.env_id.replace("/", "_")
    for k in range(episodes):
        episode_seed = seed + k
        if record:
            path = video_dir / f"{name}-seed{episode_seed}.mp4"
            result = policy.record(path, episodes=1, seed=episode_seed, deterministic=deterministic)
        else:
            result = policy.rollout(episodes=1, seed=episode_seed, deterministic=deterministic)
        line = f"episode {k + 1}: return {result.mean:.2f}, {int(result.lengths[0])} steps"
        typer.echo(line + (f" -> {path}" if record else ""))


def _gym_id(env_id: str) -> str:
    from mrq_agents.envs import resolve_env

    return resolve_env(env_id).gym_id


def _play_source(target: str, model: Optional[str]) -> tuple[str, Optional[str]]:
    """(model source, env id to check it against) for `mrq play TARGET [--model SOURCE]`."""
    from mrq_agents import zoo
    from mrq_agents.envs import resolve_env

    if model is not None:
        return model, target
    if Path(target).exists() or zoo.find_by_repo(target):
        return target, None
    try:
        resolve_env(target)
    except MRQError:
        if "/" not in target:
            raise MRQError(f"{target!r} is not a supported env id, a model folder, or a Hub repo id (org/name); "
                           "see `mrq train --help` for env ids and `mrq zoo list` for pretrained agents") from None
        return target, None  # not an env id: a Hub repo id
    entry = zoo.find_by_env(target)
    if entry is None:
        have = ", ".join(e["env_id"] for e in zoo.entries()) or "none"
        raise MRQError(f"the zoo has no agent for {target!r} (zoo envs: {have}); pass one with --model SOURCE "
                       "or train one with `mrq train`")
    return entry["repo_id"], target


zoo_app = typer.Typer(help="The zoo of pretrained agents bundled with mrq-agents.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def zoo_list() -> None:
    """The zoo's entries: env, steps, measured score and the paper's score at the same steps."""
    from mrq_agents import zoo

    rows = [("env", "repo id", "steps", "score (mean ± std, episodes)", "paper")]
    for e in zoo.entries():
        score = e["score"]
        paper = "-" if e.get("paper") is None else f"{e['paper']:g}"
        rows.append((e["env_id"], e["repo_id"], f"{e['steps']:,}",
                     f"{score['mean']:.1f} ± {score['std']:.1f} ({score['episodes']})", paper))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)


class _progress:
    """A rich progress bar with steps/s, the last episode return and the last evaluation."""

    def __init__(self, total: int, done: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=_console(),
                            disable=not sys.stdout.isatty())
        self.task = self.bar.add_task("train", total=total, completed=done, info="")

    def __enter__(self) -> Callable[[int, dict], None]:
        self.bar.__enter__()

        def update(step: int, info: dict) -> None:
            episode = info["episode_return"]
            evaluation = info["eval_return"]
            text = (f"{info['steps_per_s']:.1f} steps/s | ep return "
                    f"{'-' if math.isnan(episode) else f'{episode:.1f}'} | eval "
                    f"{'-' if math.isnan(evaluation) else f'{evaluation:.1f}'}")
            self.bar.update(self.task, completed=step, info=text)

        return update

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
