"""`mrq train`: the environment loop, its evaluation and checkpoint cadence, and the run folder it writes.

Run folder (DIR):
    config.json              algorithm config, env id and preprocessing, spaces, run settings, package version
    metrics.csv              one row per evaluation; TensorBoard events and learning_curve.png beside it
    model.safetensors        online encoder/value/policy weights of the last evaluation (before the first one: of
                             the last checkpoint, so that a run stopped early still evaluates, plays and exports)
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

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from mrq_agents.config import MRQConfig, preset_config
from mrq_agents.device import resolve_device
from mrq_agents.envs import EnvSpec, make_env, resolve_env
from mrq_agents.episodes import EVAL_STREAM, TRAIN_STREAM, episode_seed, run_episodes
from mrq_agents.errors import CheckpointError, ConfigError, MRQError, os_error_message
from mrq_agents.fast import FastLearner, captures, resolve_fast
from mrq_agents.files import CHECKPOINT_FILE, CONFIG_FILE
from mrq_agents.learner import MRQLearner, build_networks
from mrq_agents.precision import resolve_precision
from mrq_agents.replay import ReplayBuffer
from mrq_agents.serialization import atomic_write_json, read_json
from mrq_agents.training import run_folder
from mrq_agents.training.checkpoint import read_checkpoint, to_device, write_checkpoint, write_model
from mrq_agents.training.logger import RunLogger
from mrq_agents.training.run_config import (
    RunConfig,
    check_resumable,
    default_run_config,
    resumed_training_info,
    run_config_json,
)
from mrq_agents.training.transfer import FinetuneSchedule, Transfer

CHECKPOINT_COST_RATIO = 20  # default cadence: at least 20x the last checkpoint's write time between checkpoints
LOSS_COLUMNS = (
    "encoder_loss",
    "dynamics_loss",
    "reward_loss",
    "termination_loss",
    "value_loss",
    "policy_loss",
    "q_mean",
)


class TrainingDivergedError(MRQError):
    """Non-finite losses, rewards or observations."""


class RunWriteError(MRQError):
    """A write into the run folder failed at `step` (a full disk, a file-size limit): the run stopped, and its last
    good checkpoint, of step `checkpoint_step` (None: it had none yet), is kept for `--resume`."""

    def __init__(self, error: OSError, step: int, checkpoint_step: int | None):
        kept = (
            f"the checkpoint of step {checkpoint_step:,} is kept"
            if checkpoint_step is not None
            else "no checkpoint was written yet"
        )
        super().__init__(f"{os_error_message(error)}; the run stopped at step {step:,}, {kept}")
        self.error, self.step, self.checkpoint_step = error, step, checkpoint_step


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped `train()` after it wrote a checkpoint at `step`."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


def build_trainer(
    env_id: str,
    out: str | Path,
    preset: str = "paper",
    overrides: Sequence[str] = (),
    resume: bool = False,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    **run_options: Any,
) -> Trainer:
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
        run_options = {
            **{k: v for k, v in saved_run.items() if k != "env_id"},
            **{k: v for k, v in run_options.items() if v is not None},
        }
        base_algo = MRQConfig.from_dict(saved["algorithm"])
    run = default_run_config(env_id, **run_options)
    return Trainer(run, base_algo.with_overrides(list(overrides)), out, resume=resume, log=log, overwrite=overwrite)


class Trainer:
    """Owns one run: env, learner, replay, logger; `train()` runs it to `run.steps` env steps."""

    def __init__(
        self,
        run: RunConfig,
        algo: MRQConfig,
        out: str | Path,
        resume: bool = False,
        log: Callable[[str], None] = print,
        transfer: Transfer | None = None,
        overwrite: bool = False,
    ):
        """`transfer` starts the networks from a pretrained agent on a fresh run (`mrq finetune`); a fine-tune,
        fresh or resumed, trains on its `FinetuneSchedule`. `overwrite` deletes the run already in `out` (its own
        files only) and starts over."""
        self.run, self.algo, self.out, self.log = run, algo, Path(out), log
        self.env_config = resolve_env(run.env_id, run.env_kwargs)
        self.env = make_env(self.env_config, seed=run.seed)
        self.eval_env = make_env(self.env_config, seed=run.seed + 1)
        self.spec = EnvSpec.from_env(self.env, self.env_config.frame_stack)
        self.device = resolve_device(run.device)
        torch.manual_seed(run.seed)
        self.rng = np.random.default_rng(run.seed)
        self.saved_config = (
            read_json(self.out / CONFIG_FILE, "run config") if resume and (self.out / CONFIG_FILE).exists() else {}
        )
        self.provenance = self.saved_config.get("finetuned_from") or (
            transfer.provenance if transfer is not None else None
        )
        self.schedule = FinetuneSchedule.of_run(run, self.provenance)
        self.precision = resolve_precision(run.precision, self.device)
        self.fast = resolve_fast(run.fast, self.device)
        nets = build_networks(self.spec, algo)
        if transfer is not None and not resume:
            transfer.load_into(nets)
        if self.schedule is not None:
            self.schedule.freeze(nets)
        learner_class = FastLearner if self.fast else MRQLearner
        self.learner = learner_class(self.spec, algo, self.device, self.precision, nets)
        self.buffer = ReplayBuffer(
            self.spec,
            algo.buffer_size,
            (algo.enc_horizon, algo.q_horizon),
            algo.prioritized,
            self.device,
            static_shapes=self.fast and captures(self.device),
        )
        self.step = 0
        self.episode = 0
        self.last_episode_return = math.nan
        self.last_eval = (math.nan, math.nan)
        self.elapsed = 0.0  # wall time of previous sessions of this run
        self.metrics: dict[str, torch.Tensor] = {}
        self.next_checkpoint = run.checkpoint_every or run.eval_every
        self._checkpoint_cost = 0.0  # seconds the last checkpoint write took
        self.checkpoint_step: int | None = None  # the step of the last checkpoint written or resumed from
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
                raise CheckpointError(
                    f"nothing to resume in {self.out}: its run stopped before writing a "
                    f"{CHECKPOINT_FILE}; start it over with --overwrite"
                )
            saved = self.saved_config or read_json(self.out / CONFIG_FILE, "run config")  # missing: one-line error
            check_resumable(saved, self.run, self.algo, self.env_config, self.out)
            self._load_checkpoint(checkpoint)
            config["training"] = resumed_training_info(saved.get("training", {}), config["training"], self.step)
        elif checkpoint.exists():
            raise ConfigError(
                f"{self.out} already holds a run: continue it with --resume, start it over with "
                "--overwrite, or choose another --out"
            )
        elif (self.out / CONFIG_FILE).exists():
            raise ConfigError(
                f"{self.out} already holds a run that stopped before its first checkpoint: start it "
                "over with --overwrite, or choose another --out"
            )
        if not resume or self.step < self.run.steps:  # a resume with nothing to do leaves config.json as it is
            atomic_write_json(self.out / CONFIG_FILE, config)
        self.logger = RunLogger(self.out, title=f"MR.Q on {self.run.env_id}", resume_step=self.step if resume else None)

    def _checkpoint_state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        counters = {
            "step": self.step,
            "episode": self.episode,
            "elapsed": self.elapsed + self._session_time(),
            "last_episode_return": self.last_episode_return,
            "next_checkpoint": self.next_checkpoint,
            "last_eval": list(self.last_eval),
        }
        return {
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": rng,
            "counters": counters,
        }

    def save_checkpoint(self) -> None:
        start = time.perf_counter()
        write_checkpoint(self.out, self._checkpoint_state(), self.run.env_id, self.step)
        self.checkpoint_step = self.step
        self._last_checkpoint = time.perf_counter()
        self._checkpoint_cost = self._last_checkpoint - start

    def _load_checkpoint(self, path: Path) -> None:
        state = read_checkpoint(path)
        try:
            self.learner.load_state_dict(to_device(state["learner"], self.device))
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(
                f"{path} does not fit this env/config ({str(err).splitlines()[0]}): "
                "resume with the settings it was trained with"
            ) from None
        self.buffer.load_state_dict(state["buffer"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.rng.bit_generator.state = state["rng"]["numpy"]
        counters = state["counters"]
        self.step, self.episode = counters["step"], counters["episode"]
        self.elapsed, self.last_episode_return = counters["elapsed"], counters["last_episode_return"]
        self.next_checkpoint, self.last_eval = counters["next_checkpoint"], tuple(counters["last_eval"])
        self.checkpoint_step = self.step

    def save_model(self) -> None:
        write_model(self.out, self.learner, self.run.env_id, self.step)

    # ---------------------------------------------------------------- loop
    def _session_time(self) -> float:
        return time.perf_counter() - self._session_start

    def train(self, progress: Any = None) -> dict[str, Any]:
        """Run to `run.steps` env steps. `progress(step, info)` is called after every step, and during an
        evaluation as it starts and after each episode, with `info["evaluating"]` = (episodes done, episodes).

        Ctrl-C or SIGTERM (in the main thread) stops after the current step with a checkpoint and raises
        TrainingInterrupted; a second Ctrl-C stops at once, without one. A write that fails (a full disk) raises
        RunWriteError; every file keeps its last whole version (atomic writes). The run folder is released on return.
        """
        self._session_start = time.perf_counter()
        try:
            if self.step >= self.run.steps:
                self.log(f"{self.out} already reached {self.step:,} of {self.run.steps:,} steps; nothing to do")
                self.logger.close()
                return self._summary()
            with _StopSignals() as stop:
                try:
                    self._loop(progress, stop)
                except OSError as err:  # writing the run folder failed: a full disk, a file-size limit
                    raise RunWriteError(err, self.step, self.checkpoint_step) from None
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
                raise TrainingDivergedError(
                    f"the env returned a non-finite reward or observation at step {self.step}: check the environment"
                )
            self.buffer.add(action, float(reward), terminated, truncated, next_obs)
            episode_return += float(reward)
            obs = next_obs
            if self.step >= self.algo.warmup_steps and self.buffer.can_sample():
                self.metrics = self._update()
            self.step += 1
            if self.step % self.run.eval_every == 0 or self.step == self.run.steps:
                self._evaluate(progress, start_step)
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
        return {
            "step": self.step,
            "eval_return_mean": self.last_eval[0],
            "eval_return_std": self.last_eval[1],
            "wall_time": self.elapsed + self._session_time(),
            "out": str(self.out),
        }

    def _checkpoint_due(self) -> bool:
        if self.step < self.next_checkpoint:
            return False
        if self.run.checkpoint_every is not None:
            return True
        return time.perf_counter() - self._last_checkpoint >= CHECKPOINT_COST_RATIO * self._checkpoint_cost

    def _checkpoint_now(self) -> None:
        if math.isnan(self.last_eval[0]):  # no evaluation has written the weights yet: a stopped run still plays
            self.save_model()
        self.save_checkpoint()
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.run.checkpoint_every or self.run.eval_every

    def _start_episode(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.run.seed, TRAIN_STREAM, self.episode))
        self.buffer.start_episode(obs)
        return obs

    def _update(self) -> dict[str, torch.Tensor]:
        if self.schedule is None:
            return self.learner.update(self.buffer)
        return self.schedule.update(self.learner, self.buffer)

    def _action(self, obs: np.ndarray) -> np.ndarray | int:
        if self.step < self.algo.warmup_steps and self.run.warmup_actions == "random":
            if self.spec.discrete:
                return int(self.rng.integers(self.spec.action_dim))
            return self.rng.uniform(-1.0, 1.0, self.spec.action_dim).astype(np.float32)
        return self.learner.act(obs, explore=True)

    def _evaluate(self, progress: Any = None, start_step: int = 0) -> None:
        shown = None
        if progress is not None:  # the evaluation's episodes done, in the training's progress, once per episode
            info, last = self._progress_info(start_step), [-1]

            def shown(done: int, steps: int, episode_return: float) -> None:
                if done != last[0]:
                    last[0] = done
                    progress(self.step, {**info, "evaluating": (done, self.run.eval_episodes)})

        returns, _ = run_episodes(
            self.eval_env,
            lambda o: self.learner.act(o, explore=False),
            self.run.eval_episodes,
            self.run.seed,
            stream=EVAL_STREAM,
            progress=shown,
        )
        self.last_eval = (float(returns.mean()), float(returns.std()))
        losses = {k: float(v) for k, v in self.metrics.items()}  # the only device->host reads of the loop
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDivergedError(
                f"training diverged at step {self.step}: {', '.join(bad)} became "
                "non-finite; check the env's rewards or lower the learning rates with --set"
            )
        row = {
            "step": self.step,
            "wall_time": round(self.elapsed + self._session_time(), 3),
            "episodes": self.episode,
            "eval_return_mean": self.last_eval[0],
            "eval_return_std": self.last_eval[1],
            **{k: losses.get(k) for k in LOSS_COLUMNS},
            "reward_scale": self.learner.reward_scale,
        }
        self.logger.log_eval(row)
        self.save_model()
        self.log(
            f"step {self.step:>9,}/{self.run.steps:,} | eval return {self.last_eval[0]:10.2f} "
            f"± {self.last_eval[1]:.2f} | episodes {self.episode} | "
            f"elapsed {self.elapsed + self._session_time():.0f}s"
        )

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
