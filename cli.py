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

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="MR.Q: train, evaluate and share general-purpose model-free RL agents.")


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
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N steps. Default per benchmark: "
                                             "Atari 100k, others 5k."),
    eval_episodes: Optional[int] = typer.Option(None, help="Episodes per evaluation. [default: 10]"),
    checkpoint_every: Optional[int] = typer.Option(None, help="Write a resumable checkpoint at the first episode "
                                                   "end after every N steps. [default: max(50k, eval every)]"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override an algorithm hyperparameter, "
                                             "e.g. --set enc_hdim=128 (repeatable; names as in the paper)."),
    preset: str = typer.Option("paper", help="Named config before --set: 'paper' (the paper's defaults) or "
                               "'small' (128-wide networks, 1k warm-up: small envs learn on a CPU in minutes)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
) -> None:
    """Train MR.Q on ENV and write a run folder (config, metrics, curves, weights, checkpoint)."""
    from mrq_agents.config import MRQConfig, preset_config
    from mrq_agents.serialization import read_json
    from mrq_agents.training.trainer import CONFIG_FILE, Trainer, default_run_config

    overrides = {"steps": steps, "seed": seed, "device": device, "eval_every": eval_every,
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
    trainer = Trainer(run, algo, out, resume=resume, log=_console().print)
    typer.echo(f"MR.Q on {run.env_id} | {run.steps:,} steps | seed {run.seed} | device {trainer.device} | "
               f"obs {trainer.spec.obs_shape} | {'discrete' if trainer.spec.discrete else 'continuous'} "
               f"actions ({trainer.spec.action_dim}) | out {out}" + (f" | resumed at step {trainer.step:,}" if resume else ""))
    try:
        with _progress(run.steps, trainer.step) as update:
            summary = trainer.train(progress=update)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted at step {trainer.step:,}; continue with: mrq train {env} --out {out} --resume",
                   err=True)
        raise typer.Exit(130) from None
    typer.echo(f"done: {summary['step']:,} steps in {summary['wall_time']:.0f}s | last eval return "
               f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f} | {out}")


@app.command("eval")
@_friendly_errors
def evaluate(
    source: Path = typer.Argument(..., help="A run folder of `mrq train` (or an export folder)."),
    episodes: int = typer.Option(10, help="Episodes to play."),
    seed: int = typer.Option(0, help="Seed of the evaluation episodes."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Discrete actions: argmax(pre) instead of "
                                       "the paper's sample argmax(gumbel_softmax(pre)). No effect for continuous."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Evaluate saved weights with the paper's protocol (no exploration noise) and print mean ± std return."""
    from mrq_agents.policy import Policy
    from mrq_agents.training.evaluation import run_episodes

    policy = Policy.from_pretrained(source, device=device)
    env = policy.make_env(seed=seed)
    returns, lengths = run_episodes(env, lambda o: policy.act(o, deterministic=deterministic), episodes, seed,
                                    stream=1)
    result = {"env_id": policy.env_config.env_id, "episodes": episodes, "seed": seed,
              "deterministic": deterministic or not policy.spec.discrete, "mean": float(returns.mean()),
              "std": float(returns.std()), "returns": returns.tolist(), "lengths": lengths.tolist()}
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"{result['env_id']}: return {result['mean']:.2f} ± {result['std']:.2f} over {episodes} episodes "
                   f"(seed {seed}, {'deterministic' if result['deterministic'] else 'stochastic'} policy)")


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
