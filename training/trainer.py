"""`mrq train`: the environment loop, evaluation cadence, run folder and resumable checkpoints.

Run folder (DIR):
    config.json              algorithm config, env id and preprocessing, spaces, run settings, package version
    metrics.csv              one row per evaluation; TensorBoard events and learning_curve.png beside it
    model.safetensors        latest online encoder/value/policy weights (written at every evaluation)
    checkpoint.safetensors   everything needed to resume (written atomically at episode ends, see below)

Checkpoints are taken at the first episode end after every `checkpoint_every` steps (and at the end), so
a resumed run starts a fresh episode exactly as the killed run did: episode k always resets with the
same seed, and every random generator is restored. By default the cadence is the evaluation cadence, skipped
while the time since the last checkpoint is under CHECKPOINT_COST_RATIO times what writing it took (so
checkpoints cost at most about 5% of the run however large the replay buffer grows). Ctrl-C and SIGTERM end the
current step, close the episode and write a checkpoint before the run stops.

One process writes a run folder at a time: the Trainer holds its lock (training/run_folder.py) from
construction to the end of `train()`.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from mrq_agents import __version__
from mrq_agents.config import MRQConfig, preset_config, train_command
from mrq_agents.envs import EnvConfig, EnvSpec, benchmark_defaults, make_env, resolve_env
from mrq_agents.errors import CheckpointError, ConfigError, MRQError
from mrq_agents.episodes import EVAL_STREAM, TRAIN_STREAM, episode_seed, run_episodes
from mrq_agents.fast import accelerate
from mrq_agents.files import CHECKPOINT_FILE, CONFIG_FILE, FORMAT_VERSION, MODEL_FILE
from mrq_agents.learner import MRQLearner, resolve_device, resolve_fast
from mrq_agents.precision import PRECISIONS, resolve_precision
from mrq_agents.replay import ReplayBuffer
from mrq_agents.serialization import (atomic_write_json, flatten_state, load_tensors, read_json, read_metadata,
                                      save_tensors, unflatten_state)
from mrq_agents.training import run_folder
from mrq_agents.training.logger import RunLogger

CHECKPOINT_COST_RATIO = 20  # default cadence: at least 20x the last checkpoint's write time between checkpoints
LOSS_COLUMNS = ("encoder_loss", "dynamics_loss", "reward_loss", "termination_loss", "value_loss",
                "policy_loss", "q_mean")


class TrainingDivergedError(MRQError):
    """Non-finite losses, rewards or observations."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped `train()` after it wrote a checkpoint at `step`."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


@dataclass(frozen=True)
class RunConfig:
    """Settings of one training run (not part of the algorithm)."""

    env_id: str
    steps: int
    seed: int = 0
    eval_every: int = 5_000
    eval_episodes: int = 10
    checkpoint_every: int | None = None  # None: the eval cadence, bounded by the write cost (module docstring)
    device: str = "auto"
    fast: bool | None = None  # the fast update path (mrq_agents.fast); None: on for CUDA, off for the CPU
    precision: str = "auto"  # fp32 or bf16 matrix products (mrq_agents.precision); config.json stores the resolved one
    env_kwargs: dict[str, Any] | None = None  # keyword arguments for gymnasium.make (--env-kwargs)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


def default_run_config(env_id: str, **overrides: Any) -> RunConfig:
    """The paper's steps and eval cadence for the env's benchmark (others: 100k steps, eval every 5k)."""
    steps, eval_every = benchmark_defaults(resolve_env(env_id, overrides.get("env_kwargs")))
    values = {"steps": steps, "eval_every": eval_every}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig(env_id=env_id, **values)


def build_trainer(env_id: str, out: str | Path, preset: str = "paper", overrides: Sequence[str] = (),
                  resume: bool = False, log: Callable[[str], None] = print, overwrite: bool = False,
                  **run_options: Any) -> Trainer:
    """The Trainer of `mrq train ENV --out OUT [--preset P] [--set ...] [--resume] [run options]`.

    The algorithm config is the preset, then `overrides` ("name=value"); run options left None take the
    benchmark's defaults. With `resume` and a saved run, the saved algorithm config and run settings are the
    base instead, and the options given here win (so `steps` may be raised).
    """
    out = Path(out)
    base_algo = preset_config(preset)
    if resume and (out / CONFIG_FILE).exists():
        saved = read_json(out / CONFIG_FILE, "run config")
        saved_run = {"precision": "fp32", **saved["run"]}  # runs from before --precision existed trained in fp32
        run_options = {**{k: v for k, v in saved_run.items() if k != "env_id"},
                       **{k: v for k, v in run_options.items() if v is not None}}
        base_algo = MRQConfig.from_dict(saved["algorithm"])
    run = default_run_config(env_id, **run_options)
    return Trainer(run, base_algo.with_overrides(list(overrides)), out, resume=resume, log=log, overwrite=overwrite)


def checkpoint_step(out: str | Path) -> int | None:
    """The env step of the run folder's checkpoint (None without one), read from its header only."""
    path = Path(out) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    meta = read_metadata(path, "checkpoint")
    if "step" in meta:
        return int(meta["step"])
    counters = dict(dict(meta["state"]["__dict__"])["counters"]["__dict__"])  # older checkpoints: the skeleton
    return int(counters["step"])


def run_config_json(run: RunConfig, algo: MRQConfig, env_config: EnvConfig, spec: EnvSpec,
                    device: torch.device) -> dict:
    """config.json of a run; its precision is the resolved one, so a resumed run keeps it on any machine."""
    run_dict = {**dataclasses.asdict(run), "precision": resolve_precision(run.precision, device)}
    return {
        "format_version": FORMAT_VERSION,
        "package": "mrq-agents",
        "package_version": __version__,
        "env": env_config.to_dict(),
        "spaces": spec.to_dict(),
        "algorithm": algo.to_dict(),
        "run": run_dict,
        "training": {"device": str(device), "torch": torch.__version__,
                     "fast_path": resolve_fast(run.fast, device), "precision": run_dict["precision"],
                     "command": train_command(run.env_id, run_dict, algo.to_dict())},
    }


HARDWARE_KEYS = ("device", "torch", "fast_path")  # where a run trained; a resume elsewhere starts a new segment


def resumed_training_info(saved: dict[str, Any], current: dict[str, Any], step: int) -> dict[str, Any]:
    """config.json's `training` for a run resumed at `step`: `current`, plus `segments` (where each part of the
    run trained, from which step) once it has trained on more than one device, torch or update path."""
    segments = saved.get("segments") or [{"from_step": 0, **{k: saved.get(k) for k in HARDWARE_KEYS}}]
    if any(segments[-1].get(k) != current.get(k) for k in HARDWARE_KEYS):
        segments = [*segments, {"from_step": int(step), **{k: current.get(k) for k in HARDWARE_KEYS}}]
    return {**current, "segments": segments} if len(segments) > 1 else dict(current)


def check_resumable(saved: dict, run: RunConfig, algo: MRQConfig, env_config: EnvConfig, out: Path) -> None:
    """Refuse to resume a run with another env, algorithm config, seed or eval protocol."""
    if saved.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{out / CONFIG_FILE} has format version {saved.get('format_version')}, this "
                              f"package reads version {FORMAT_VERSION}: resume it with the version that wrote it")
    saved_env = EnvConfig.from_dict(saved["env"])  # fills fields added since the run was written
    if saved_env != env_config:
        detail = (f"with env kwargs {saved_env.env_kwargs}, not {env_config.env_kwargs}"
                  if saved_env.env_id == env_config.env_id else f"on {saved_env.env_id!r}, not {env_config.env_id!r}")
        raise ConfigError(f"{out} was trained {detail}: resume with the same env or choose another --out")
    saved_algo = saved["algorithm"]
    changed = sorted(k for k, v in algo.to_dict().items() if saved_algo.get(k) != v)
    if changed:
        detail = ", ".join(f"{k}: {saved_algo.get(k)} -> {getattr(algo, k)}" for k in changed)
        raise ConfigError(f"cannot resume {out} with a different algorithm config ({detail}): "
                          "drop the --set overrides that differ or choose another --out")
    for name in ("seed", "eval_every", "eval_episodes"):
        if saved["run"][name] != getattr(run, name):
            raise ConfigError(f"cannot resume {out} with --{name.replace('_', '-')} {getattr(run, name)}: "
                              f"it was started with {saved['run'][name]}")


def network_tensors(learner: MRQLearner) -> dict[str, torch.Tensor]:
    """The online networks' weights, named by module (`encoder.*`, `value.*`, `policy.*`)."""
    return {k: v.detach() for k, v in learner.nets.state_dict().items()}


def write_model_folder(folder: str | Path, env_id: str, config: MRQConfig, seed: int = 0,
                       device: str = "cpu") -> tuple[MRQLearner, Any]:
    """A run-like folder (config.json + model.safetensors) of freshly initialised networks for `env_id`.

    For benchmarks and tests that need a loadable model without training one; returns (learner, its env).
    """
    env_config = resolve_env(env_id)
    env = make_env(env_config)
    spec = EnvSpec.from_env(env, env_config.frame_stack)
    torch.manual_seed(seed)
    learner = MRQLearner(spec, config, device)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = RunConfig(env_id=env_id, steps=1, seed=seed)
    atomic_write_json(folder / CONFIG_FILE, run_config_json(run, config, env_config, spec, learner.device))
    save_tensors(folder / MODEL_FILE, network_tensors(learner))
    return learner, env


class Trainer:
    """Owns one run: env, learner, replay, logger; `train()` runs it to `run.steps` env steps."""

    def __init__(self, run: RunConfig, algo: MRQConfig, out: str | Path, resume: bool = False,
                 log: Callable[[str], None] = print, transfer: Any = None, overwrite: bool = False):
        """`transfer` (a `finetune.Transfer`) starts the networks from a pretrained agent on a fresh run;
        `overwrite` deletes the run already in `out` (its own files only) and starts over."""
        self.run, self.algo, self.out, self.log = run, algo, Path(out), log
        self.env_config = resolve_env(run.env_id, run.env_kwargs)
        self.env = make_env(self.env_config, seed=run.seed)
        self.eval_env = make_env(self.env_config, seed=run.seed + 1)
        self.spec = EnvSpec.from_env(self.env, self.env_config.frame_stack)
        self.device = resolve_device(run.device)
        torch.manual_seed(run.seed)
        self.rng = np.random.default_rng(run.seed)
        self.saved_config = (read_json(self.out / CONFIG_FILE, "run config")
                             if resume and (self.out / CONFIG_FILE).exists() else {})
        self.provenance = self.saved_config.get("finetuned_from") or (transfer.provenance if transfer is not None else None)
        frozen = tuple((self.provenance or {}).get("frozen", ()))
        self.precision = resolve_precision(run.precision, self.device)
        self.fast = resolve_fast(run.fast, self.device)
        self.learner = MRQLearner(self.spec, algo, self.device, frozen=frozen, precision=self.precision)
        if self.fast:
            accelerate(self.learner)
        if transfer is not None and not resume:
            transfer.load_into(self.learner)
        self.buffer = ReplayBuffer(self.spec, algo.buffer_size, (algo.enc_horizon, algo.q_horizon),
                                   algo.prioritized, self.device)
        self.step = 0
        self.episode = 0
        self.last_episode_return = math.nan
        self.last_eval = (math.nan, math.nan)
        self.elapsed = 0.0  # wall time of previous sessions of this run
        self.metrics: dict[str, torch.Tensor] = {}
        self.next_checkpoint = run.checkpoint_every or run.eval_every
        self._checkpoint_cost = 0.0  # seconds the last checkpoint write took
        self._last_checkpoint = time.perf_counter()
        self._lock = None
        try:
            self._prepare_folder(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run folder (its lock); `train()` does this when it returns or raises."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---------------------------------------------------------------- run folder
    def _prepare_folder(self, resume: bool, overwrite: bool) -> None:
        config = run_config_json(self.run, self.algo, self.env_config, self.spec, self.device)
        if self.provenance is not None:
            config["finetuned_from"] = self.provenance
        checkpoint = self.out / CHECKPOINT_FILE
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other: continue the run or start it over")
        if resume and not checkpoint.exists() and not (self.out / CONFIG_FILE).exists():
            raise CheckpointError(f"nothing to resume in {self.out}: it holds no run; start it without --resume")
        run_folder.make_folder(self.out)
        self._lock = run_folder.lock(self.out)
        for leftover in run_folder.remove_leftovers(self.out):
            self.log(f"removed {leftover.name}, left by a write that was killed")
        if overwrite:
            run_folder.remove_run(self.out)
        if resume:
            if not checkpoint.exists():
                raise CheckpointError(f"nothing to resume in {self.out}: its run stopped before writing a "
                                      f"{CHECKPOINT_FILE}; start it over with --overwrite")
            saved = self.saved_config or read_json(self.out / CONFIG_FILE, "run config")  # missing: one-line error
            check_resumable(saved, self.run, self.algo, self.env_config, self.out)
            self._load_checkpoint(checkpoint)
            config["training"] = resumed_training_info(saved.get("training", {}), config["training"], self.step)
        elif checkpoint.exists():
            raise ConfigError(f"{self.out} already holds a run: continue it with --resume, start it over with "
                              "--overwrite, or choose another --out")
        elif (self.out / CONFIG_FILE).exists():
            raise ConfigError(f"{self.out} already holds a run that stopped before its first checkpoint: start it "
                              "over with --overwrite, or choose another --out")
        if not resume or self.step < self.run.steps:  # a resume with nothing to do leaves config.json as it is
            atomic_write_json(self.out / CONFIG_FILE, config)
        self.logger = RunLogger(self.out, title=f"MR.Q on {self.run.env_id}",
                                resume_step=self.step if resume else None)

    def _checkpoint_state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        counters = {"step": self.step, "episode": self.episode, "elapsed": self.elapsed + self._session_time(),
                    "last_episode_return": self.last_episode_return, "next_checkpoint": self.next_checkpoint,
                    "last_eval": list(self.last_eval)}
        return {"learner": self.learner.state_dict(), "buffer": self.buffer.state_dict(), "rng": rng,
                "counters": counters}

    def save_checkpoint(self) -> None:
        start = time.perf_counter()
        tensors, skeleton = flatten_state(self._checkpoint_state())
        save_tensors(self.out / CHECKPOINT_FILE, tensors,
                     {"format_version": FORMAT_VERSION, "env_id": self.run.env_id, "step": self.step,
                      "state": skeleton})
        self._last_checkpoint = time.perf_counter()
        self._checkpoint_cost = self._last_checkpoint - start

    def _load_checkpoint(self, path: Path) -> None:
        tensors, meta = load_tensors(path, device="cpu", what="checkpoint")
        if meta.get("format_version") != FORMAT_VERSION or "state" not in meta:
            raise CheckpointError(f"{path} is not a checkpoint of this package's format {FORMAT_VERSION}")
        state = unflatten_state(meta["state"], tensors)
        try:
            self.learner.load_state_dict(_to_device(state["learner"], self.device))
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"{path} does not fit this env/config ({str(err).splitlines()[0]}): "
                                  "resume with the settings it was trained with") from None
        self.buffer.load_state_dict(state["buffer"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.rng.bit_generator.state = state["rng"]["numpy"]
        counters = state["counters"]
        self.step, self.episode = counters["step"], counters["episode"]
        self.elapsed, self.last_episode_return = counters["elapsed"], counters["last_episode_return"]
        self.next_checkpoint, self.last_eval = counters["next_checkpoint"], tuple(counters["last_eval"])

    def save_model(self) -> None:
        save_tensors(self.out / MODEL_FILE, network_tensors(self.learner),
                     {"format_version": FORMAT_VERSION, "env_id": self.run.env_id, "step": self.step})

    # ---------------------------------------------------------------- loop
    def _session_time(self) -> float:
        return time.perf_counter() - self._session_start

    def train(self, progress: Any = None) -> dict[str, Any]:
        """Run to `run.steps` env steps. `progress(step, info)` is called after every step.

        Ctrl-C or SIGTERM (in the main thread) stops after the current step with a checkpoint and raises
        TrainingInterrupted; a second Ctrl-C stops at once, without one. The run folder is released on return.
        """
        self._session_start = time.perf_counter()
        try:
            if self.step >= self.run.steps:
                self.log(f"{self.out} already reached {self.step:,} of {self.run.steps:,} steps; nothing to do")
                self.logger.close()
                return self._summary()
            with _StopSignals() as stop:
                self._loop(progress, stop)
            if stop.signum is not None:
                raise TrainingInterrupted(stop.signum, self.step)
            return self._summary()
        finally:
            self.close()

    def _loop(self, progress: Any, stop: "_StopSignals") -> None:
        start_step = self.step
        obs = self._start_episode()
        episode_return = 0.0
        while self.step < self.run.steps and stop.signum is None:
            action = self._action(obs)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            if not math.isfinite(float(reward)) or (not self.spec.pixels and not np.isfinite(next_obs).all()):
                raise TrainingDivergedError(f"the env returned a non-finite reward or observation at step "
                                            f"{self.step}: check the environment")
            self.buffer.add(action, float(reward), terminated, truncated, next_obs)
            episode_return += float(reward)
            obs = next_obs
            if self.step >= self.algo.warmup_steps and self.buffer.can_sample():
                self.metrics = self.learner.update(self.buffer)
            self.step += 1
            if self.step % self.run.eval_every == 0 or self.step == self.run.steps:
                self._evaluate()
            if terminated or truncated:
                self.last_episode_return = episode_return
                self.logger.log_scalars(self.step, {"train/episode_return": episode_return})
                self.episode += 1
                episode_return = 0.0
                if self._checkpoint_due() and self.step < self.run.steps:
                    self._checkpoint_now()
                if self.step < self.run.steps:
                    obs = self._start_episode()
            if progress is not None:
                progress(self.step, self._progress_info(start_step))
        if self.buffer.in_episode:  # the budget or a stop signal ended an episode: close it, so the checkpoint
            self.buffer.end_episode()  # resumes with a fresh episode
            self.episode += 1
        self._checkpoint_now()
        self.logger.close()

    def _summary(self) -> dict[str, Any]:
        return {"step": self.step, "eval_return_mean": self.last_eval[0], "eval_return_std": self.last_eval[1],
                "wall_time": self.elapsed + self._session_time(), "out": str(self.out)}

    def _checkpoint_due(self) -> bool:
        if self.step < self.next_checkpoint:
            return False
        if self.run.checkpoint_every is not None:
            return True
        return time.perf_counter() - self._last_checkpoint >= CHECKPOINT_COST_RATIO * self._checkpoint_cost

    def _checkpoint_now(self) -> None:
        self.save_checkpoint()
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.run.checkpoint_every or self.run.eval_every

    def _start_episode(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.run.seed, TRAIN_STREAM, self.episode))
        self.buffer.start_episode(obs)
        return obs

    def _action(self, obs: np.ndarray) -> np.ndarray | int:
        if self.step < self.algo.warmup_steps:
            if self.spec.discrete:
                return int(self.rng.integers(self.spec.action_dim))
            return self.rng.uniform(-1.0, 1.0, self.spec.action_dim).astype(np.float32)
        return self.learner.act(obs, explore=True)

    def _evaluate(self) -> None:
        returns, _ = run_episodes(self.eval_env, lambda o: self.learner.act(o, explore=False),
                                  self.run.eval_episodes, self.run.seed, stream=EVAL_STREAM)
        self.last_eval = (float(returns.mean()), float(returns.std()))
        losses = {k: float(v) for k, v in self.metrics.items()}  # the only device->host reads of the loop
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDivergedError(f"training diverged at step {self.step}: {', '.join(bad)} became "
                                        "non-finite; check the env's rewards or lower the learning rates with --set")
        row = {"step": self.step, "wall_time": round(self.elapsed + self._session_time(), 3),
               "episodes": self.episode, "eval_return_mean": self.last_eval[0], "eval_return_std": self.last_eval[1],
               **{k: losses.get(k) for k in LOSS_COLUMNS}, "reward_scale": self.learner.reward_scale}
        self.logger.log_eval(row)
        self.save_model()
        self.log(f"step {self.step:>9,}/{self.run.steps:,} | eval return {self.last_eval[0]:10.2f} "
                 f"± {self.last_eval[1]:.2f} | episodes {self.episode} | "
                 f"elapsed {self.elapsed + self._session_time():.0f}s")

    def _progress_info(self, start_step: int) -> dict[str, Any]:
        rate = (self.step - start_step) / max(self._session_time(), 1e-9)
        return {"steps_per_s": rate, "episode_return": self.last_episode_return, "eval_return": self.last_eval[0]}


class _StopSignals:
    """Within `with`: the first SIGINT/SIGTERM is recorded in `signum` (the loop stops after its step and
    checkpoints); a second one raises KeyboardInterrupt at once. Outside the main thread it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _to_device(tree: Any, device: torch.device) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: _to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_to_device(v, device) for v in tree]
    return tree
