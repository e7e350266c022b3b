"""What an agent learned, one sha256 per tensor: a digest to compare two installs of this package bit for bit.

`learner_digest` hashes every parameter of the online and target networks, every optimizer's state and
hyperparameters, the replay priorities and their running maximum, the reward scales and the update counter.
Run as a script, it trains short fixed-seed runs with the `Trainer` that `mrq train` and `mrq finetune` use
(tiny networks, one CPU thread) and prints the digest of each as JSON:

    python tests/helpers/learning_digest.py > branch.json                  # this checkout's interpreter
    /path/to/main/venv/bin/python tests/helpers/learning_digest.py > main.json   # another install, same file
    diff main.json branch.json && echo "bit for bit"

Cases: a continuous (Pendulum-v1), a discrete (CartPole-v1) and a pixel env (ALE/Pong-v5), each on the plain and
the fast path, about 300 updates each; and fine-tunes of a Pendulum-v1 agent (critics converted to the new reward
scale, encoder frozen, policy and encoder held at first) on CartPole-v1 (some layers new) and on Pendulum-v1
(the whole encoder frozen), on both paths. `--cases` picks some (names as printed), `--list` lists them.
Float results depend on the machine: compare two installs on the same one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

WIDTHS = ["zs_dim=32", "zsa_dim=32", "za_dim=16", "enc_hdim=32", "value_hdim=32", "policy_hdim=32"]  # tiny networks
CADENCE = ["batch_size=16", "buffer_size=5000", "target_update_freq=100", "warmup_steps=200"]  # a sync every 100
WARMUP, UPDATES = 200, 300
RUNS = {"continuous": "Pendulum-v1", "discrete": "CartPole-v1", "pixels": "ALE/Pong-v5"}
FINETUNES = {  # the source is a Pendulum-v1 agent
    "finetune-new-layers": dict(env_id="CartPole-v1", hold_policy=40, hold_encoder=150),
    "finetune-frozen-encoder": dict(env_id="Pendulum-v1", hold_policy=40),
}
CASES = [f"{name}-{path}" for name in [*RUNS, *FINETUNES] for path in ("plain", "fast")]


def _hash(tensor: torch.Tensor) -> str:
    tensor = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tensor.dtype} {tuple(tensor.shape)} ".encode())
    digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:32]


def learner_digest(learner: Any, buffer: Any, metrics: dict[str, torch.Tensor] | None = None) -> dict[str, str]:
    """name -> sha256 prefix of every tensor and number that training changes: networks, targets, optimizers
    (state per parameter, in order, and each group's hyperparameters), priorities, reward scales, update count."""
    out = {}
    for prefix, module in (("nets", learner.nets), ("target", learner.target)):
        for name, tensor in module.state_dict().items():
            out[f"{prefix}.{name}"] = _hash(tensor)
    for opt_name in ("encoder_opt", "value_opt", "policy_opt"):
        optimizer = getattr(learner, opt_name)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for i, param in enumerate(params):
            for key, value in sorted(optimizer.state.get(param, {}).items()):
                out[f"{opt_name}.state.{i}.{key}"] = _hash(torch.as_tensor(value))
        for i, group in enumerate(optimizer.param_groups):
            settings = {k: v for k, v in group.items() if k != "params"}
            out[f"{opt_name}.group.{i}"] = f"{len(group['params'])} params {json.dumps(settings, sort_keys=True)}"
    out["buffer.priority"] = _hash(buffer.priority)
    out["buffer.max_priority"] = _hash(buffer.max_priority)
    out["reward_scale"] = repr(float(learner.reward_scale))
    out["target_reward_scale"] = repr(float(learner.target_reward_scale))
    out["num_updates"] = str(learner.num_updates)
    for name, value in sorted((metrics or {}).items()):
        out[f"metrics.{name}"] = _hash(value)
    return out


def _load_pretrained():
    try:
        from mrq_agents.training.finetune import load_pretrained
    except ImportError:  # installs from before issue 40 load it in the inference layer
        from mrq_agents.policy import load_pretrained
    return load_pretrained


def run_case(case: str, folder: Path) -> dict[str, str]:
    """Train `case` ('continuous-plain', 'finetune-new-layers-fast', ...) in `folder`; its digest."""
    from mrq_agents.training.trainer import build_trainer

    name, path = case.rsplit("-", 1)
    options = dict(seed=0, device="cpu", fast=path == "fast", precision="fp32", eval_episodes=1)
    quiet = dict(log=lambda *_: None)
    torch.set_num_threads(1)  # the thread count changes how some kernels split their sums
    steps = WARMUP + UPDATES
    if name in RUNS:
        trainer = build_trainer(
            RUNS[name], folder / "run", "paper", WIDTHS + CADENCE, steps=steps, eval_every=steps, **options, **quiet
        )
    else:
        from helpers.model_folders import make_model_folder
        from mrq_agents.training.finetune import finetune

        source, _, _ = make_model_folder(folder / "source", "Pendulum-v1")
        (source / "metrics.csv").write_text("step,eval_return_mean,reward_scale\n5,-1.0,2.5\n")
        settings = {**FINETUNES[name]}
        env_id = settings.pop("env_id")
        trainer = finetune(  # the source's networks (helpers.model_folders.TINY), this cadence
            _load_pretrained()(source),
            env_id,
            steps,
            folder / "finetune",
            overrides=CADENCE,
            freeze="encoder",
            critic_units="convert",
            eval_every=steps,
            **settings,
            **options,
            **quiet,
        )
    trainer.train()
    return learner_digest(trainer.learner, trainer.buffer, trainer.metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES, metavar="CASE")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(CASES))
        return
    import mrq_agents

    print(f"mrq_agents from {Path(mrq_agents.__file__).parent}, torch {torch.__version__}", file=sys.stderr)
    digests = {}
    for case in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            digests[case] = run_case(case, Path(tmp))
        print(f"{case}: {digests[case]['num_updates']} updates", file=sys.stderr)
    print(json.dumps(digests, indent=1, sort_keys=True))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `helpers`
    main()
