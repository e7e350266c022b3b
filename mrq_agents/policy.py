"""The lightweight inference `Policy`: load MR.Q weights (safetensors + JSON only), act, roll out, record, share.

    policy = Policy.from_pretrained("mrq-agents/mrq-InvertedPendulum-v4")   # zoo id, Hub id, export or run folder
    env = policy.make_env()
    action = policy.act(obs)

Two backends compute the actor behind the same API: torch (`mrq_agents.actor_torch`) and onnxruntime on the
export's `actor.onnx` (`mrq_agents.actor_onnx`, no torch imported). Batching, dtypes, shape checks and the
discrete policy's sampling happen here, once, for both.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

import gymnasium as gym
import numpy as np

from mrq_agents import export
from mrq_agents.config import MRQConfig
from mrq_agents.deps import has_torch, require_torch
from mrq_agents.envs import EnvConfig, EnvSpec, make_env, wrap_env
from mrq_agents.episodes import EVAL_STREAM, Progress, episode_seed, run_episodes
from mrq_agents.errors import CheckpointError, ConfigError, ObservationError, UnsupportedEnvError, one_line
from mrq_agents.files import CONFIG_FILE, MODEL_FILE, ONNX_FILE, RESULTS_FILE, sha256_file
from mrq_agents.files import FORMAT_VERSION as SUPPORTED_FORMAT
from mrq_agents.machine import fingerprint
from mrq_agents.model_folder import load_model_folder, read_model_config
from mrq_agents.serialization import atomic_write_json, read_json, staged_files

if TYPE_CHECKING:
    import torch

    from mrq_agents.actor_onnx import OnnxActor
    from mrq_agents.actor_torch import TorchActor

BACKENDS = ("auto", "torch", "onnx")


class Rollout(NamedTuple):
    """Per-episode returns and lengths of a rollout."""

    returns: np.ndarray
    lengths: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def resolve_backend(backend: str, folder: Path) -> str:
    """'torch' or 'onnx' for `backend` ('auto': torch when it is installed, else onnx)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "torch" if has_torch() else "onnx"
    if backend == "torch":
        require_torch(f"backend='torch' (loading {folder})")
    return backend


class Policy:
    """An MR.Q agent ready to act. Build it with `Policy.from_pretrained(source)`."""

    def __init__(
        self,
        actor: TorchActor | OnnxActor,
        spec: EnvSpec,
        env_config: EnvConfig,
        config: MRQConfig,
        metadata: dict[str, Any],
        folder: Path,
        device: torch.device | str = "cpu",
        source: str | Path | None = None,
        revision: str | None = None,
    ):
        self.actor, self.spec, self.env_config, self.config = actor, spec, env_config, config
        self.metadata, self.folder, self.device = metadata, folder, device
        self.source, self.revision = source if source is not None else folder, revision
        self._rng = np.random.default_rng()  # the stochastic discrete policy's Gumbel noise; seeded per rollout

    @property
    def backend(self) -> str:
        """'torch' or 'onnx': which one computes the actor."""
        return self.actor.backend

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        local_files_only: bool | None = None,
        cache_dir: str | None = None,
        backend: str = "auto",
        threads: int | None = None,
    ) -> "Policy":
        """Load from a local export folder, a run folder of `mrq train`, a zoo id, or a Hub repo id.

        Hub ids resolve through `huggingface_hub` (its cache, `revision`, `HF_HUB_OFFLINE`, `local_files_only`);
        zoo ids without a revision load the zoo's files, checked against the manifest shipped with this package
        (from a source checkout, the Hub cache, or a download). `backend`: 'torch' loads the encoder and policy
        weights strictly (missing, unexpected or mis-shaped tensors are an error); 'onnx' runs the
        export's actor.onnx with onnxruntime on the CPU and imports no torch; 'auto' (default) is torch when it
        is installed, else onnx. `threads`: CPU threads for the actor (onnx: this session's; torch: the process's,
        `torch.set_num_threads`); default: the backend's own choice.
        """
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
        folder = resolve_model_folder(source, revision, local_files_only, cache_dir)
        backend = resolve_backend(backend, folder)
        if backend == "onnx":
            from mrq_agents.actor_onnx import OnnxActor

            if str(device) not in ("cpu", "auto"):
                raise ConfigError(
                    f"backend='onnx' runs on the CPU, not device {str(device)!r}: use device='cpu', "
                    "or backend='torch' for a GPU"
                )
            meta, config, spec, env_config = read_model_config(folder)
            actor = OnnxActor(folder, spec, meta.get("weights_sha256"), threads=threads)
            return cls(actor, spec, env_config, config, meta, folder, "cpu", source=source, revision=revision)
        from mrq_agents.actor_torch import load_torch_actor
        from mrq_agents.device import resolve_device

        meta, config, spec, env_config, tensors = load_model_folder(folder)
        device = resolve_device(device)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        actor = load_torch_actor(folder, spec, config, tensors, device)
        return cls(actor, spec, env_config, config, meta, folder, device, source=source, revision=revision)

    # ---------------------------------------------------------------- acting
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation (obs_shape) or a batch (N, *obs_shape).

        Continuous: tanh(pre), in [-1, 1] (the env's preprocessing rescales to its bounds), float32.
        Discrete: `argmax(pre)` when deterministic, else the paper's `argmax(gumbel_softmax(pre))`; int64.
        """
        obs = np.asarray(obs)
        single = obs.shape == self.spec.obs_shape
        if not single and obs.shape[1:] != self.spec.obs_shape:
            raise ObservationError(
                f"observation shape {obs.shape} does not match this policy's "
                f"{self.spec.obs_shape} (or a batch of them): build the env with "
                "policy.make_env() or policy.wrap(env)"
            )
        if not self.spec.pixels and not np.isfinite(obs).all():
            raise ObservationError(
                "the observation holds NaN or infinite values: check the env (the policy's actions would be NaN)"
            )
        batch = obs[None] if single else obs
        # (N, *obs_shape): uint8 stacked frames or float32 vectors, what both backends' actors take
        batch = np.ascontiguousarray(batch, dtype=np.uint8 if self.spec.pixels else np.float32)
        action, logits = self.actor.compute(batch)
        if self.spec.discrete:
            # argmax(gumbel_softmax(pre, tau)) = argmax(pre + Gumbel noise): a sample from softmax(pre)
            out = action if deterministic else (logits + self._rng.gumbel(size=logits.shape)).argmax(1)
            out = out.astype(np.int64)
        else:
            out = action.astype(np.float32)
        return out[0] if single else out

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Stable-Baselines3's signature: `(actions, state)`; MR.Q is feed-forward, so state is passed through."""
        return self.act(observation, deterministic=deterministic), state

    # ---------------------------------------------------------------- environments
    def make_env(self, render_mode: str | None = None, seed: int | None = None, **kwargs: Any) -> gym.Env:
        """The env this policy was trained on, with exactly the training preprocessing (kwargs go to gym.make)."""
        return make_env(self.env_config, seed=seed, render_mode=render_mode, **kwargs)

    def wrap(self, env: gym.Env) -> gym.Env:
        """Apply the training preprocessing to an env you built yourself.

        The result must have the training env's spaces (observation shape and kind, action kind and size);
        anything else is an UnsupportedEnvError that says what differs.
        """
        where = f"{_env_name(env)} does not fit this policy (trained on {self.env_config.env_id!r})"
        try:
            wrapped = wrap_env(env, self.env_config)
            spec = EnvSpec.from_env(wrapped, self.env_config.frame_stack)
        except (UnsupportedEnvError, AssertionError, ValueError, TypeError, AttributeError) as err:
            raise UnsupportedEnvError(f"{where}: {one_line(err)}") from None
        differences = [f"{name} {got} instead of {want}" for name, got, want in _spec_differences(spec, self.spec)]
        if differences:
            raise UnsupportedEnvError(f"{where}: {'; '.join(differences)}; build it with policy.make_env()")
        return wrapped

    def rollout(
        self,
        episodes: int = 10,
        seed: int | None = None,
        env: gym.Env | None = None,
        deterministic: bool = False,
        progress: Progress | None = None,
    ) -> Rollout:
        """Play whole episodes as the paper evaluates them; returns per-episode returns and lengths (`.mean`, `.std`).

        Discrete actions are sampled from `softmax(pre)` as the paper does (seeded by `seed`); `deterministic=True`
        takes `argmax(pre)` instead. Continuous actions are `tanh(pre)` either way. `progress(episodes finished,
        steps, return so far)` is called after every step.
        """

        _check_episodes(episodes)

        env = env or self.make_env(seed=seed)
        seed = 0 if seed is None else seed
        with self._seeded_sampling(seed):
            returns, lengths = run_episodes(
                env, lambda o: self.act(o, deterministic), episodes, seed, stream=EVAL_STREAM, progress=progress
            )
        return Rollout(returns, lengths)

    def evaluate(
        self,
        episodes: int = 10,
        seed: int = 0,
        deterministic: bool = False,
        source: str = "Policy.evaluate",
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """The paper's protocol (no exploration noise; discrete actions sampled from `softmax(pre)`, unless
        `deterministic`) as a results.json record: mean, std, per-episode returns and lengths, episodes, seed,
        whether the policy was deterministic, date, and what produced it. `progress` as in `rollout`."""
        rollout = self.rollout(episodes=episodes, seed=seed, deterministic=deterministic, progress=progress)
        return {
            "env_id": self.env_config.env_id,
            "mean": rollout.mean,
            "std": rollout.std,
            "episodes": episodes,
            "seed": seed,
            "deterministic": deterministic or not self.spec.discrete,
            "returns": rollout.returns.tolist(),
            "lengths": rollout.lengths.tolist(),
            "date": export.today(),
            "source": source,
            "machine": fingerprint(self.backend, str(self.device)),
        }

    @contextlib.contextmanager
    def _seeded_sampling(self, seed: int) -> Iterator[None]:
        """Seed the stochastic discrete policy's sampling for one rollout (the same samples on both backends)."""
        unseeded, self._rng = self._rng, np.random.default_rng(seed)
        try:
            yield
        finally:
            self._rng = unseeded

    def record(
        self,
        path: str | Path,
        episodes: int = 1,
        seed: int | None = None,
        deterministic: bool = False,
        progress: Progress | None = None,
    ) -> Rollout:
        """Write an mp4 of `episodes` episodes rendered at the env's full resolution; returns their returns.

        Actions and `progress` as in `rollout` (the paper's sampled discrete action unless `deterministic`)."""
        from mrq_agents.video import record_episodes

        _check_episodes(episodes)
        seed = 0 if seed is None else seed
        env = self.make_env(render_mode="rgb_array", seed=seed)
        seeds = [episode_seed(seed, EVAL_STREAM, k) for k in range(episodes)]
        try:
            with self._seeded_sampling(seed):
                returns, lengths = record_episodes(
                    env, self.env_config, lambda o: self.act(o, deterministic), path, episodes, seeds, progress
                )
        finally:
            env.close()
        return Rollout(returns, lengths)

    # ---------------------------------------------------------------- sharing
    def save_pretrained(
        self,
        folder: str | Path,
        results: dict[str, Any] | None = None,
        repo_id: str | None = None,
        compact: bool = False,
    ) -> Path:
        """Write the export format (weights, actor.onnx, config, model card, results, video/curve when present).

        `results` (from an evaluation) default to the source's results.json, else the run's last evaluation.
        The torch backend writes the weights and exports actor.onnx from them; the onnx backend copies both
        files from the source (an export folder, which holds them). `compact` (torch backend) stores the weights
        acting does not read (critics, the encoder's model layers) as float16: about a third smaller, acting
        bit-identical; weights already stored so stay so.
        """
        folder = Path(folder)
        if compact and self.backend != "torch":
            raise ConfigError(
                "compact=True rewrites the weights, which needs the torch backend: load the policy with backend='torch'"
            )
        with staged_files(folder, last=CONFIG_FILE) as stage:  # a failure part-way leaves an earlier export whole
            self._write_export(stage, results, repo_id, compact)
        return folder

    def _write_export(self, folder: Path, results: dict[str, Any] | None, repo_id: str | None, compact: bool) -> None:
        """The files of `save_pretrained`, written into the empty folder `folder`."""
        meta = {k: v for k, v in self.metadata.items() if k not in ("training", "repo_id")}
        meta["training"] = export.training_info(self.folder, self.metadata)
        if repo_id:
            meta["repo_id"] = repo_id
        if results is None:
            source_results = self.folder / RESULTS_FILE
            results = (
                read_json(source_results, "results")
                if source_results.exists()
                else export.results_from_metrics(self.folder, self.metadata)
            )
        if self.backend == "torch":
            import torch

            from mrq_agents.actor_torch import compact_tensors, write_actor_onnx
            from mrq_agents.serialization import load_tensors, save_tensors

            tensors, _ = load_tensors(self.folder / MODEL_FILE, what="model weights")
            networks = {k: v for k, v in tensors.items() if k.split(".")[0] in ("encoder", "value", "policy")}
            if compact:
                networks = compact_tensors(networks)
            meta.pop("weights_storage", None)
            if any(v.dtype == torch.float16 for v in networks.values()):
                meta["weights_storage"] = "compact"  # float32 for acting, float16 for the rest
            save_tensors(
                folder / MODEL_FILE, networks, {"format_version": SUPPORTED_FORMAT, "env_id": self.env_config.env_id}
            )
            meta["weights_sha256"] = sha256_file(folder / MODEL_FILE)
            write_actor_onnx(folder, self.actor, meta["weights_sha256"], self.env_config.env_id)
        else:
            for name in (MODEL_FILE, ONNX_FILE):
                shutil.copyfile(self.folder / name, folder / name)
            meta["weights_sha256"] = sha256_file(folder / MODEL_FILE)
        atomic_write_json(folder / CONFIG_FILE, meta)
        if results is not None:
            atomic_write_json(folder / RESULTS_FILE, results)
        export.copy_run_files(self.folder, folder)
        export.write_card(folder, meta, results, repo_id or self.metadata.get("repo_id"))

    def push_to_hub(
        self,
        repo_id: str,
        private: bool = False,
        commit_message: str = "Upload MR.Q agent",
        token: str | None = None,
        compact: bool = False,
    ) -> str:
        """Upload the export format to the Hub repo `repo_id`; returns the URL of the commit or repo.

        `compact`: as in `save_pretrained`."""
        from mrq_agents.hub import push_folder

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, repo_id=repo_id, compact=compact)
            return push_folder(tmp, repo_id, private=private, commit_message=commit_message, token=token)


def _env_name(env: gym.Env) -> str:
    spec = getattr(env, "spec", None)
    return f"the env {spec.id!r}" if spec is not None else f"the env {type(env.unwrapped).__name__}"


def _spec_differences(got: EnvSpec, want: EnvSpec) -> list[tuple[str, Any, Any]]:
    """(what, got, wanted) for each way a preprocessed env's spec differs from the training env's."""

    def actions(spec: EnvSpec) -> str:
        return f"Discrete({spec.action_dim})" if spec.discrete else f"Box({spec.action_dim},)"

    checks = [
        ("observation shape", got.obs_shape, want.obs_shape),
        ("observations", "pixels" if got.pixels else "vectors", "pixels" if want.pixels else "vectors"),
        ("actions", actions(got), actions(want)),
    ]
    return [(name, g, w) for name, g, w in checks if g != w]


def _check_episodes(episodes: int) -> None:
    if not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"episodes must be a whole number >= 1, got {episodes!r}")


def resolve_model_folder(
    source: str | Path, revision: str | None = None, local_files_only: bool | None = None, cache_dir: str | None = None
) -> Path:
    """The local folder behind a model source: a local folder, a zoo agent (its files checked against the zoo's
    manifest: from a source checkout, the Hub cache or a download), or a Hub repo."""
    from mrq_agents import zoo
    from mrq_agents.hub import resolve_source

    if isinstance(source, Path) or Path(source).exists():
        folder = Path(source)
        if not folder.is_dir():
            raise CheckpointError(f"{folder} is not a folder: pass an export folder or a run folder of `mrq train`")
        return folder
    entry = zoo.find_by_repo(str(source))
    if entry is not None and revision is None:
        return zoo.agent_folder(entry, local_files_only=local_files_only, cache_dir=cache_dir)
    zoo.check_known(str(source))
    zoo.check_not_an_env(str(source))
    return resolve_source(str(source), revision=revision, local_files_only=local_files_only, cache_dir=cache_dir)
