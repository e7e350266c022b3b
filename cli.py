"""The `mrq` command line (installed as `mrq_agents.cli`): each command parses its options, calls the library, prints.

Modules that pull in torch, gymnasium or the training and policy layers are imported inside the commands that use
them, so `mrq --help` starts in a tenth of a second and the base install (no torch) plays and evaluates.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from typer.core import TyperCommand

from mrq_agents import display, zoo
from mrq_agents.config import CRITIC_UNITS, FREEZE_CHOICES, WARMUP_ACTIONS, preset_config, presets_help
from mrq_agents.deps import require_torch
from mrq_agents.errors import MRQError, Note, os_error_message
from mrq_agents.files import CHECKPOINT_FILE, METRICS_FILE


class PlainUsage(TyperCommand):
    """A command whose usage line names its arguments plainly, `mrq train [OPTIONS] ENV`, where typer writes
    required ones in braces (`{ENV}`)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]


HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}  # the commands' subcommands inherit them
app = typer.Typer(
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    rich_markup_mode=None,
    help="MR.Q: train, evaluate and share general-purpose model-free RL agents.",
)

PRECISION_HELP = (
    "auto, fp32 or bf16: bf16 runs the updates' matrix products and convolutions in bfloat16 "
    "(float32 weights, optimizer, losses and targets); it needs AMX/AVX512-BF16 or a bf16 GPU. "
    "auto is fp32 until docs/precision.md clears bf16. [default: auto; with --resume the run's own]"
)
TRAIN_THREADS_HELP = (
    "CPU threads for torch. [default: 1 for small vector networks (widest layer <= 256) and on "
    "a GPU, else the idle CPUs up to 4; see benchmarks/README.md]"
)
ACT_THREADS_HELP = "CPU threads for torch. [default: 1, fastest for acting on one observation at a time]"
BACKEND_HELP = (
    "auto, torch or onnx: which one computes the actor (onnx: onnxruntime on the export's actor.onnx, "
    "no torch). [default: auto = torch when it is installed, else onnx]"
)
STOCHASTIC_OPTION = typer.Option(
    False,
    "--deterministic/--stochastic",
    help="Discrete actions: argmax(pre), or the paper's sampled argmax(gumbel_softmax(pre)) (the default, as in "
    "`mrq eval` and training's evaluations). No effect for continuous.",
)
ENV_HELP = (  # examples only: the forms accepted are mrq_agents.envs.SUPPORTED_IDS (importing it costs gymnasium)
    "An env id, e.g. Pendulum-v1, Dmc-walker-walk, ALE/Pong-v5, or module:EnvId for a custom env; an id it does "
    "not accept lists every form it does."
)
FAST_HELP = (
    "The fast update path: fused optimizers, and on CUDA each update replayed from a captured CUDA graph; "
    "same math as --no-fast (benchmarks/README.md). [default: on for CUDA, off for the CPU]"
)


def _print_version(value: bool) -> None:
    if value:
        from mrq_agents import __version__

        typer.echo(f"mrq-agents {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """MR.Q: train, evaluate and share general-purpose model-free RL agents."""
    warnings.showwarning = _show_warning


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's notes as one `note:` line on stderr; other warnings as Python shows them."""
    if issubclass(category, Note):
        typer.echo(f"note: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _friendly_errors(command: Callable) -> Callable:
    """Bad input ends with one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MRQError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except OSError as err:  # a full disk, a read-only or missing folder: the machine's state, not a bug
            typer.echo(f"error: {os_error_message(err)}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command(cls=PlainUsage)
@_friendly_errors
def train(
    env: str = typer.Argument(..., metavar="ENV", help=ENV_HELP),
    steps: Optional[int] = typer.Option(
        None,
        help="Total env steps (agent decisions). [default: the paper's budget for the env's benchmark, set by its "
        "family in mrq_agents/envs/; the run's first line says it]",
    ),
    seed: Optional[int] = typer.Option(None, help="Random seed. [default: 0]"),
    out: Optional[Path] = typer.Option(None, help="Run folder. [default: runs/<env>-seed<seed>]"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N. [default: auto]"),
    fast: Optional[bool] = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    precision: Optional[str] = typer.Option(None, help=PRECISION_HELP),
    eval_every: Optional[int] = typer.Option(
        None, help="Evaluate every N steps. [default: the paper's cadence for the env's benchmark (mrq_agents/envs/)]"
    ),
    eval_episodes: Optional[int] = typer.Option(None, help="Episodes per evaluation. [default: 10]"),
    checkpoint_every: Optional[int] = typer.Option(
        None,
        help="Write a resumable checkpoint at the first episode "
        "end after every N steps. [default: the eval cadence, skipped "
        "while writing would take over 5% of the time; Ctrl-C and "
        "SIGTERM always write one]",
    ),
    set_: Optional[List[str]] = typer.Option(
        None,
        "--set",
        help="Override an algorithm hyperparameter, e.g. --set enc_hdim=128 (repeatable; names as in the paper).",
    ),
    preset: str = typer.Option(
        "paper",
        help=f"Named config before --set, {presets_help()}. With --resume the run's saved config is used.",
    ),
    env_kwargs: Optional[str] = typer.Option(
        None,
        help="Keyword arguments for gymnasium.make as a JSON object, "
        "e.g. '{\"size\": 7}' (saved with the run; eval and play reuse them).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Delete the run in --out (its run files only) and start over."
    ),
    threads: Optional[int] = typer.Option(None, help=TRAIN_THREADS_HELP),
) -> None:
    """Train MR.Q on ENV and write a run folder (config, metrics, curves, weights, checkpoint)."""

    require_torch("`mrq train`")
    from mrq_agents.training.trainer import build_trainer

    if out is None:
        out = Path("runs") / f"{env.replace('/', '_')}-seed{seed or 0}"
    _check_threads(threads)
    run_options = _run_options(locals(), env_kwargs=_json_object("--env-kwargs", env_kwargs))
    log = display.console().print
    trainer = build_trainer(env, out, preset, set_ or [], resume, log, overwrite, steps=steps, **run_options)
    _set_threads(threads if threads is not None else _training_threads(trainer))
    _run(trainer, env, out)


RUN_OPTIONS = ("seed", "device", "fast", "precision", "eval_every", "eval_episodes", "checkpoint_every")


def _run_options(options: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The RunConfig options among a command's parameters (`locals()`), with `more`; None takes the default."""
    return {**{name: options[name] for name in RUN_OPTIONS}, **more}


def _at_least_one(option: str, value: int) -> None:
    if value < 1:
        raise MRQError(f"{option} must be >= 1, got {value}")


def _json_object(option: str, text: Optional[str]) -> Optional[dict]:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise MRQError(f"{option} is not valid JSON ({err.msg}): pass an object, e.g. '{{\"size\": 7}}'") from None
    if not isinstance(value, dict):
        raise MRQError(f"{option} must be a JSON object of keyword arguments, e.g. '{{\"size\": 7}}', got {text}")
    return value


def _acting_threads() -> int:
    from mrq_agents.threads import ACTING_THREADS

    return ACTING_THREADS


def _training_threads(trainer) -> int:
    from mrq_agents.threads import choose_threads

    return choose_threads(trainer.algo, trainer.spec, str(trainer.device))


def _check_threads(threads: Optional[int]) -> None:
    if threads is not None:
        _at_least_one("--threads", threads)


def _set_threads(threads: int) -> None:
    import torch

    _at_least_one("--threads", threads)
    torch.set_num_threads(threads)


def _run(trainer, env: str, out: Path) -> None:
    """Run a prepared Trainer with a progress bar; Ctrl-C says how to resume."""
    import torch

    from mrq_agents.training.trainer import RunWriteError, TrainingInterrupted

    run = trainer.run
    typer.echo(
        f"MR.Q on {run.env_id} | {run.steps:,} steps | seed {run.seed} | device {trainer.device} "
        f"({'fast' if trainer.fast else 'plain'} path, {trainer.precision}) | threads {torch.get_num_threads()} | "
        f"obs {trainer.spec.obs_shape} | {'discrete' if trainer.spec.discrete else 'continuous'} "
        f"actions ({trainer.spec.action_dim}) | out {out}"
        + (f" | resumed at step {trainer.step:,}" if trainer.step else "")
    )
    try:
        with display.progress(run.steps, trainer.step) as update:
            summary = trainer.train(progress=update)
    except KeyboardInterrupt as stop:
        _interrupted(stop if isinstance(stop, TrainingInterrupted) else None, env, out)
    except RunWriteError as failed:  # a full disk: one line, with the command that works once there is room
        then = _resume(env, out) if failed.checkpoint_step is not None else _start_over(env, out)
        typer.echo(f"error: {failed}: once fixed, {then}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"done: {summary['step']:,} steps in {summary['wall_time']:.0f}s | last eval return "
        f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f} | {out}"
    )


def _interrupted(stop, env: str, out: Path) -> None:
    """After Ctrl-C or SIGTERM: say where the run stands and the command that works from there; exit 128 + signal.

    `stop` is the trainer's TrainingInterrupted (it wrote a checkpoint), or None for a second Ctrl-C.
    """
    import signal

    signum = stop.signum if stop is not None else signal.SIGINT
    if stop is not None:
        typer.echo(f"\nstopped at step {stop.step:,} with a checkpoint; {_resume(env, out)}", err=True)
    elif (out / CHECKPOINT_FILE).exists():
        typer.echo(f"\nstopped at once; from the last checkpoint, {_resume(env, out)}", err=True)
    else:
        typer.echo(f"\nstopped before the first checkpoint; {_start_over(env, out)}", err=True)
    raise typer.Exit(128 + signum)


def _resume(env: str, out: Path) -> str:
    return f"continue with: mrq train {env} --out {out} --resume"


def _start_over(env: str, out: Path) -> str:
    return f"start over with: mrq train {env} --out {out} --overwrite"


@app.command(cls=PlainUsage)
@_friendly_errors
def finetune(
    source: str = typer.Argument(
        ..., metavar="SOURCE", help="A pretrained agent: export or run folder, zoo id or Hub repo id."
    ),
    env: str = typer.Option(..., help="The env to fine-tune on (any id `mrq train` accepts)."),
    steps: int = typer.Option(..., help="Env steps of fine-tuning."),
    out: Path = typer.Option(..., help="Run folder to write (a normal, resumable run folder)."),
    seed: int = typer.Option(0, help="Random seed."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a hyperparameter of the source's config."),
    freeze: str = typer.Option(
        "none", help=f"One of: {', '.join(FREEZE_CHOICES)}. 'encoder' keeps the transferred encoder layers fixed."
    ),
    warmup_steps: Optional[int] = typer.Option(
        None,
        help="Steps before the first update, acting as --warmup-actions says. [default: the source config's "
        "warm-up; a tenth of it learned more slowly, see docs/finetune.md]",
    ),
    warmup_actions: str = typer.Option(
        "policy",
        help=f"One of: {', '.join(WARMUP_ACTIONS)}. The warm-up's actions: 'policy' the pretrained policy with the "
        "training exploration noise, 'random' uniform (as the paper and `mrq train`; at the paper's size it lost most "
        "of the agent's skill in the first updates, docs/finetune.md).",
    ),
    hold_policy: int = typer.Option(
        0,
        help="Updates that train the encoder and critics before the policy's first update (0: from the first).",
    ),
    hold_encoder: int = typer.Option(
        0,
        help="Updates that train the critics and policy before the encoder's first update (0: from the first).",
    ),
    encoder_lr_scale: float = typer.Option(
        0.1,
        help="Multiplies the source config's encoder learning rate (enc_lr): a tenth by default, so that the "
        "embedding the pretrained policy reads moves slowly (docs/finetune.md); 1 keeps the source's rate, "
        "`--set enc_lr=X` sets it.",
    ),
    critic_units: str = typer.Option(
        "keep",
        help=f"One of: {', '.join(CRITIC_UNITS)}. 'convert' rescales the transferred critics from the source's "
        "reward scale (its metrics.csv) to the new env's at the first update (docs/finetune.md).",
    ),
    revision: Optional[str] = typer.Option(None, help="Hub revision of SOURCE."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    fast: Optional[bool] = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    precision: str = typer.Option(
        "auto", help=PRECISION_HELP.replace("; with --resume the run's own", ""), show_default=False
    ),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N steps. [default: per benchmark]"),
    eval_episodes: Optional[int] = typer.Option(None, help="Episodes per evaluation. [default: 10]"),
    checkpoint_every: Optional[int] = typer.Option(
        None, help="Checkpoint cadence in steps. [default: the eval cadence, bounded by the write cost]"
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Delete the run in --out (its run files only) and start over."
    ),
    threads: Optional[int] = typer.Option(None, help=TRAIN_THREADS_HELP),
) -> None:
    """Fine-tune a pretrained MR.Q agent on another env (continue a killed one: `mrq train ENV --out DIR --resume`)."""

    require_torch("`mrq finetune`")
    from mrq_agents.policy import resolve_model_folder
    from mrq_agents.training.finetune import finetune as prepare
    from mrq_agents.training.finetune import load_pretrained

    _check_threads(threads)
    run_options = _run_options(
        locals(), warmup_actions=warmup_actions, hold_policy=hold_policy, hold_encoder=hold_encoder
    )
    log = display.console().print
    trainer = prepare(
        load_pretrained(resolve_model_folder(source, revision), source, revision),
        env,
        steps,
        out,
        set_ or [],
        freeze,
        warmup_steps,
        overwrite,
        log,
        critic_units,
        encoder_lr_scale=encoder_lr_scale,
        **run_options,
    )
    _set_threads(threads if threads is not None else _training_threads(trainer))
    _run(trainer, env, out)


@app.command("config", cls=PlainUsage)
@_friendly_errors
def show_config(
    preset: str = typer.Option("paper", help=f"The preset, {presets_help()}."),
) -> None:
    """Every algorithm hyperparameter with its default (names for --set) and meaning."""
    import dataclasses

    config = preset_config(preset)
    for f in dataclasses.fields(config):
        typer.echo(f"{f.name:<20} {str(getattr(config, f.name)):<10} {f.metadata['help']}")


@app.command("eval", cls=PlainUsage)
@_friendly_errors
def evaluate(
    source: str = typer.Argument(
        ..., metavar="SOURCE", help="A run folder of `mrq train`, an export folder, a zoo id or a Hub repo id."
    ),
    episodes: int = typer.Option(10, help="Episodes to play."),
    seed: int = typer.Option(0, help="Seed of the evaluation episodes."),
    deterministic: bool = typer.Option(
        False,
        "--deterministic",
        help="Discrete actions: argmax(pre) instead of "
        "the paper's sample argmax(gumbel_softmax(pre)). No effect for continuous.",
    ),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    threads: Optional[int] = typer.Option(None, help=ACT_THREADS_HELP),
    backend: str = typer.Option("auto", help=BACKEND_HELP, show_default=False),
) -> None:
    """Evaluate saved weights with the paper's protocol (no exploration noise) and print mean ± std return."""
    from mrq_agents.episodes import episodes_text
    from mrq_agents.paper import protocol_note
    from mrq_agents.policy import Policy

    _at_least_one("--episodes", episodes)
    _check_threads(threads)
    policy = Policy.from_pretrained(
        source, device=device, backend=backend, threads=threads if threads is not None else _acting_threads()
    )
    with display.episode_progress(episodes, "evaluating") as update:
        result = policy.evaluate(
            episodes=episodes, seed=seed, deterministic=deterministic, source="mrq eval", progress=update
        )
    place = _paper_placement(policy, result["mean"])
    if as_json:
        typer.echo(json.dumps({**result, "paper": dataclasses.asdict(place)}))
    else:
        typer.echo(
            f"{result['env_id']}: return {result['mean']:.2f} ± {result['std']:.2f} over {episodes_text(episodes)} "
            f"(seed {seed}, {'deterministic' if result['deterministic'] else 'stochastic'} policy) | vs paper: "
            f"{place.text()}"
            + (f" (this agent: {place.step:,} steps)" if place.step else "")
            + protocol_note(place, policy.spec.discrete, result["deterministic"])
        )


def _paper_placement(policy, score: float):
    """Where `score` falls against the paper at the number of steps the policy was trained for."""
    from mrq_agents.export import training_info
    from mrq_agents.paper import placement

    steps = training_info(policy.folder, policy.metadata).get("steps")
    return placement(policy.env_config, steps, score)


@app.command("export", cls=PlainUsage)
@_friendly_errors
def export_(
    source: str = typer.Argument(
        ...,
        metavar="SOURCE",
        help="A run folder of `mrq train`, an export folder, a zoo id or a Hub repo id (exported again).",
    ),
    out: Path = typer.Option(..., help="Export folder to write (one folder = one Hub repo)."),
    episodes: int = typer.Option(10, help="Evaluation episodes for results.json and the model card."),
    seed: int = typer.Option(0, help="Seed of the evaluation episodes."),
    record: bool = typer.Option(False, "--record", help="Also record one episode to replay.mp4."),
    deterministic: bool = STOCHASTIC_OPTION,
    repo_id: Optional[str] = typer.Option(None, help="Hub repo id to name in the model card's usage snippets."),
    compact: bool = typer.Option(
        False,
        "--compact",
        help="Store the weights acting does not read (critics, the "
        "encoder's model layers) as float16: a third smaller, acting unchanged; fine-tuning "
        "starts from the rounded critics.",
    ),
    threads: Optional[int] = typer.Option(None, help=ACT_THREADS_HELP),
) -> None:
    """Evaluate a run's weights and write the export folder: weights, actor.onnx, config, model card, results."""
    from mrq_agents.episodes import episodes_text
    from mrq_agents.paper import protocol_note
    from mrq_agents.policy import Policy

    require_torch("`mrq export` (it writes actor.onnx from the weights)")
    _at_least_one("--episodes", episodes)
    _set_threads(threads if threads is not None else _acting_threads())
    policy = Policy.from_pretrained(source)
    if not Path(source).exists():  # a zoo or Hub id: say where its files are
        typer.echo(f"{source}: files in {policy.folder}")
    with display.episode_progress(episodes, "evaluating") as update:
        results = policy.evaluate(
            episodes=episodes, seed=seed, deterministic=deterministic, source="mrq export", progress=update
        )
    place = _paper_placement(policy, results["mean"])
    typer.echo(
        f"{results['env_id']}: return {results['mean']:.2f} ± {results['std']:.2f} over {episodes_text(episodes)}"
        f" | vs paper: {place.text()}{protocol_note(place, policy.spec.discrete, results['deterministic'])}"
    )
    out.mkdir(parents=True, exist_ok=True)
    if record:
        with display.episode_progress(1, "recording") as update:
            policy.record(out / "replay.mp4", episodes=1, seed=seed, deterministic=deterministic, progress=update)
        typer.echo(f"recorded {out / 'replay.mp4'}")
    policy.save_pretrained(out, results=results, repo_id=repo_id, compact=compact)
    typer.echo(f"exported to {out}")


@app.command(cls=PlainUsage)
@_friendly_errors
def push(
    source: Path = typer.Argument(..., metavar="SOURCE", help="An export folder (from `mrq export`) or a run folder."),
    repo_id: str = typer.Option(..., help="Hub repo id, ORG/NAME."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private."),
    message: str = typer.Option("Upload MR.Q agent", help="Commit message."),
    compact: bool = typer.Option(
        False,
        "--compact",
        help="For a run folder: export it as `mrq export --compact` does (an export folder is uploaded as it is).",
    ),
) -> None:
    """Upload an export folder, or a run folder (exported on the fly, scored by its last evaluation), to the Hub."""
    from mrq_agents.hub import is_export_folder, push_folder
    from mrq_agents.policy import Policy

    if is_export_folder(source):
        url = push_folder(source, repo_id, private=private, commit_message=message)
    else:
        url = Policy.from_pretrained(source).push_to_hub(
            repo_id, private=private, commit_message=message, compact=compact
        )
    typer.echo(f"pushed {source} to {url}")


@app.command(cls=PlainUsage)
@_friendly_errors
def play(
    target: str = typer.Argument(
        ..., metavar="TARGET", help="An env id (plays the zoo's agent for it) or a model source."
    ),
    model: Optional[str] = typer.Option(None, help="Model source: export or run folder, zoo id or Hub repo id."),
    episodes: int = typer.Option(1, help="Episodes to play."),
    record: bool = typer.Option(False, "--record", help="Write an mp4 per episode (works headless)."),
    video_dir: Path = typer.Option(Path("videos"), help="Where --record writes its videos."),
    seed: int = typer.Option(0, help="Seed of the episodes."),
    deterministic: bool = STOCHASTIC_OPTION,
    revision: Optional[str] = typer.Option(None, help="Hub revision (branch, tag or commit) of the model."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, help=ACT_THREADS_HELP),
    backend: str = typer.Option("auto", help=BACKEND_HELP, show_default=False),
) -> None:
    """Play an agent: `mrq play InvertedPendulum-v4 --record`, `mrq play org/repo`, `mrq play ENV --model DIR`."""
    from mrq_agents.policy import Policy

    _at_least_one("--episodes", episodes)
    _check_threads(threads)
    source, env_id = zoo.play_source(target, model)
    policy = Policy.from_pretrained(
        source,
        revision=revision,
        device=device,
        backend=backend,
        threads=threads if threads is not None else _acting_threads(),
    )
    if env_id is not None and policy.env_config.gym_id != _gym_id(env_id):
        raise MRQError(f"the model {source} was trained on {policy.env_config.env_id!r}, not {env_id!r}")
    name = policy.env_config.env_id.replace("/", "_")
    for k in range(episodes):
        episode_seed = seed + k
        what = f"{'recording' if record else 'playing'} episode" + (f" {k + 1}/{episodes}" if episodes > 1 else "")
        with display.episode_progress(1, what) as update:
            if record:
                path = video_dir / f"{name}-seed{episode_seed}.mp4"
                result = policy.record(
                    path, episodes=1, seed=episode_seed, deterministic=deterministic, progress=update
                )
            else:
                result = policy.rollout(episodes=1, seed=episode_seed, deterministic=deterministic, progress=update)
        line = f"episode {k + 1}: return {result.mean:.2f}, {int(result.lengths[0])} steps"
        typer.echo(line + (f" -> {path}" if record else ""))


def _gym_id(env_id: str) -> str:
    from mrq_agents.envs import resolve_env

    return resolve_env(env_id).gym_id


zoo_app = typer.Typer(
    help="The zoo of pretrained agents: the package carries their index; their files come from a source checkout, "
    "the Hub cache, or their Hub repos.",
    no_args_is_help=True,
)
app.add_typer(zoo_app, name="zoo")
ZOO_ENVS = typer.Argument(
    None, metavar="ENV", help="Zoo env ids as `mrq zoo list` shows them (or the agents' repo ids)."
)
ZOO_ALL = typer.Option(False, "--all", help="Every agent of the zoo.")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@zoo_app.command("list", cls=PlainUsage)
@_friendly_errors
def zoo_list(
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON, for scripts."),
) -> None:
    """The zoo's entries: env, steps, measured score, the paper's mean (IQR) at the same steps, and where the agent's
    files are (the checkout, the Hub cache, or a download of the size shown)."""
    from mrq_agents.paper import paper_env_name, placement

    records, rows = [], []
    for e in zoo.entries():
        score = e["score"]
        place = placement(e["env_id"], e["steps"], score["mean"])
        paper = (
            f"{place.mean:g} ({place.p25:g} to {place.p75:g})"
            + ("" if place.paper_step == e["steps"] else f" at {place.paper_step:,}")
            if place.has_reference
            else place.reference_text()
        )
        where = place.where or "-"
        if place.next_paper_step is not None:  # only the untrained step 0 precedes the entry: name the next one
            after = placement(e["env_id"], place.next_paper_step)
            paper += f" (untrained); next {after.mean:g} ({after.p25:g} to {after.p75:g}) at {after.paper_step:,}"
            where = "not placed"
        files, folder = zoo.location(e)
        size = zoo.download_bytes(e)
        records.append(
            {
                "env": zoo.play_id(e),
                "env_id": e["env_id"],
                "paper_name": paper_env_name(e["env_id"]),
                "repo_id": e["repo_id"],
                "preset": zoo.preset(e),
                "precision": zoo.precision(e),
                "steps": e["steps"],
                "score": score,
                "paper": {
                    "step": place.paper_step if place.has_reference else None,
                    "mean": place.mean if place.has_reference else None,
                    "p25": place.p25 if place.has_reference else None,
                    "p75": place.p75 if place.has_reference else None,
                },
                "vs_paper": None if where == "-" else where,
                "files": files,
                "path": None if folder is None else str(folder),
                "bytes": size,
            }
        )
        policy = "" if score.get("deterministic", True) else ", sampled"
        rows.append(
            (
                zoo.play_id(e),
                paper_env_name(e["env_id"]) or "-",
                e["repo_id"],
                zoo.preset_text(e),
                f"{e['steps']:,}",
                f"{score['mean']:.1f} ± {score['std']:.1f} ({score['episodes']}{policy})",
                paper,
                where,
                f"{files} ({_megabytes(size)})" if files != zoo.HUB else f"download ({_megabytes(size)})",
            )
        )
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    header = (
        "env (mrq play ENV)",
        "paper's name",
        "repo id",
        "preset",
        "steps",
        "score (mean ± std, episodes)",
        "paper mean (IQR) at those steps",
        "vs paper",
        "files",
    )
    display.print_table([header, *rows])


@zoo_app.command("pull", cls=PlainUsage)
@_friendly_errors
def zoo_pull(names: Optional[List[str]] = ZOO_ENVS, everything: bool = ZOO_ALL) -> None:
    """Download zoo agents into the Hub cache ahead of time (for a machine that will be offline, or every node of
    a cluster); files already cached and intact are kept. HF_HOME / HF_HUB_CACHE choose the cache."""
    from mrq_agents.hub import is_offline

    chosen = zoo.select(names or [], everything)
    if is_offline():
        raise MRQError("`mrq zoo pull` downloads from the Hub, but HF_HUB_OFFLINE=1 is set: unset it and retry")
    for entry in chosen:
        size = _megabytes(zoo.download_bytes(entry))
        if zoo.location(entry)[0] == zoo.CACHE:
            typer.echo(f"{zoo.play_id(entry)}: {entry['repo_id']} is in the Hub cache already ({size})")
            continue
        with display.download_progress(f"{entry['repo_id']} ({size})", zoo.download_bytes(entry)) as advance:
            folder = zoo.pull(entry, on_bytes=advance)
        typer.echo(f"{zoo.play_id(entry)}: pulled {entry['repo_id']} ({size}, checked) into {folder}")


@zoo_app.command("push", cls=PlainUsage)
@_friendly_errors
def zoo_push(names: Optional[List[str]] = ZOO_ENVS, everything: bool = ZOO_ALL) -> None:
    """Upload the checkout's zoo entries to their Hub repos (card, weights, actor.onnx, video, curve, metrics, the
    files `mrq push` sends); an entry whose files do not match the manifest is refused. Needs a token that may
    write to the repos (HF_TOKEN or `hf auth login`)."""
    for entry in zoo.select(names or [], everything):
        url = zoo.push(entry)
        typer.echo(f"{zoo.play_id(entry)}: pushed {len(entry['files'])} files to {entry['repo_id']} ({url})")


@app.command(cls=PlainUsage)
@_friendly_errors
def sweep(
    spec: Path = typer.Argument(
        ...,
        metavar="SPEC",
        help="A TOML spec: [defaults] and [[runs]] groups of envs x seeds (keys are "
        "`mrq train`'s options with underscores; `set` lists --set overrides).",
    ),
    out: Optional[Path] = typer.Option(
        None,
        help="Sweep folder: one run folder per env and seed, sweep.json, "
        "report/ (on a cluster: storage every node mounts at this path).",
    ),
    address: Optional[str] = typer.Option(
        None,
        help="Ray cluster to attach to, HOST:PORT of its head (also "
        "RAY_ADDRESS); its token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
        "or ~/.ray/auth_token. [default: an embedded local Ray on 127.0.0.1]",
    ),
    max_concurrent: Optional[int] = typer.Option(
        None, help="Runs training at once. [default: as many as the CPUs/GPUs allow]"
    ),
    cpus_per_run: float = typer.Option(1.0, help="CPUs reserved per run (also its torch threads)."),
    gpus_per_run: float = typer.Option(0.0, help="GPUs per run; a fraction (0.25) lets runs share a GPU."),
    retries: int = typer.Option(
        2,
        help="Tries again a run that crashed or lost its node, up to this many times, "
        "from its last checkpoint (bad input is not retried).",
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the report to OUT/report at the end."),
    plan: bool = typer.Option(
        False,
        "--plan",
        help="Print the runs the spec expands to and what they cost (device-"
        "hours at the rates measured in benchmarks/README.md, replay memory per run); train "
        "nothing (no Ray, no --out needed).",
    ),
) -> None:
    """Train many runs on Ray; relaunch the same command to resume (finished runs are skipped)."""
    from mrq_agents.sweep import load_spec

    runs = load_spec(spec)
    if plan:
        from mrq_agents.plan import plan_text

        typer.echo(plan_text(runs, spec))
        return
    if out is None:
        raise MRQError(
            "--out DIR is missing: the sweep folder, one run folder per env and seed (or --plan to see "
            "what the spec costs)"
        )
    from mrq_agents.ray_sweep import import_ray, run_sweep

    import_ray()  # without Ray: one line saying how to install it
    typer.echo(f"sweep of {len(runs)} run(s) into {out}: " + ", ".join(r.name for r in runs))
    show = display.SweepProgress()
    try:
        with show:
            records = run_sweep(
                runs,
                out,
                address=address,
                max_concurrent=max_concurrent,
                cpus_per_run=cpus_per_run,
                gpus_per_run=gpus_per_run,
                retries=retries,
                show=show,
            )
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; relaunch the same command to resume: mrq sweep {spec} --out {out}", err=True)
        raise typer.Exit(130) from None
    _sweep_summary(records)
    if report and any(r["status"] == "done" for r in records):
        from mrq_agents.report import write_report

        path = write_report(
            [out / r["name"] for r in records if (out / r["name"] / METRICS_FILE).exists()],
            out / "report",
            title=f"Sweep {spec.name} against the paper",
        )
        typer.echo(f"report: {path}")
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        typer.echo(f"{len(failed)} run(s) failed; fix them and relaunch the same command to retry", err=True)
        raise typer.Exit(1)


def _sweep_summary(records: list[dict]) -> None:
    from mrq_agents.paper import placement

    rows = [("run", "status", "step", "last eval", "vs paper", "folder / error")]
    for r in records:
        evaluated = not math.isnan(r["eval_return"])
        place = placement(r["env"], r["step"], r["eval_return"] if evaluated else None)
        status = (
            r["status"]
            + (" (skipped: finished)" if r["skipped"] else "")
            + (f" after {r['attempts']} tries" if r["attempts"] > 1 else "")
        )
        rows.append(
            (
                r["name"],
                status,
                f"{r['step']:,}",
                f"{r['eval_return']:.1f}" if evaluated else "-",
                place.where or ("no paper reference" if place.paper_name is None else "-"),
                f"error: {r['error']}" if r["status"] == "failed" else r["folder"],
            )
        )
    display.print_table(rows)
    for r in records:  # what happened to runs that did not go through in one attempt (lost nodes, crashes)
        if r["events"]:
            typer.echo(f"{r['name']}: " + "; ".join(r["events"]))


@app.command("report", cls=PlainUsage)
@_friendly_errors
def report_(
    sources: List[Path] = typer.Argument(
        ...,
        metavar="SOURCES",
        help="Run folders, sweep folders (searched for run folders) and/or export folders (zoo entries, Hub "
        "downloads).",
    ),
    out: Path = typer.Option(..., help="Folder for report.md, report.json, one PNG per env and overview.png."),
) -> None:
    """Learning curves over the paper's band, per-env tables against the paper, and a normalised aggregate."""
    from mrq_agents.report import write_report

    path = write_report(sources, out)
    typer.echo(f"report: {path} (figures beside it)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
