"""What each fine-tune warm-up puts in the replay, against the scale the pretrained critics were trained in.

    python studies/finetune_warmup_rewards.py mrq-agents/mrq-walker Dmc-walker-run
    python studies/finetune_warmup_rewards.py mrq-agents/mrq-HalfCheetah-v4 Dmc-cheetah-run

MR.Q divides its value targets by the replay's mean |reward| (the reward scale), so critics trained on the source
task output values in units of the source's last reward scale (the last row of its metrics.csv). This prints that
scale, then the mean |reward| of 10,000 warm-up steps on the new env (seed 0) acting uniformly at random (the
paper's warm-up) and acting with the pretrained policy plus the training exploration noise (`--warmup-actions
policy`), and the mean return of the episodes each warm-up finished. One CPU thread, about a minute.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import torch

from mrq_agents.envs import EnvSpec, make_env, resolve_env
from mrq_agents.learner import MRQLearner, build_networks
from mrq_agents.policy import resolve_model_folder
from mrq_agents.training.finetune import load_pretrained
from mrq_agents.training.transfer import plan_transfer

STEPS = 10_000


def main() -> None:
    source, env_id = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    folder = resolve_model_folder(source)
    pretrained = load_pretrained(folder, source)
    last = list(csv.DictReader(open(f"{folder}/metrics.csv")))[-1]
    scale = float(last["reward_scale"])
    print(f"{source} -> {env_id}: the source's reward scale at its step {last['step']}: {scale:.4f}")
    env_config = resolve_env(env_id)
    env = make_env(env_config, seed=0)
    spec = EnvSpec.from_env(env, env_config.frame_stack)
    torch.manual_seed(0)
    nets = build_networks(spec, pretrained.config)
    plan_transfer(pretrained.tensors, spec, pretrained.config, "none", pretrained.provenance).load_into(nets)
    learner = MRQLearner(spec, pretrained.config, "cpu", nets=nets)
    rng = np.random.default_rng(0)
    for warmup in ("random", "policy"):
        obs, _ = env.reset(seed=0)
        rewards, returns, episode_return, episode = [], [], 0.0, 0
        for _ in range(STEPS):
            if warmup == "random":
                action = rng.uniform(-1.0, 1.0, spec.action_dim).astype(np.float32)
            else:
                action = learner.act(obs, explore=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(abs(float(reward)))
            episode_return += float(reward)
            if terminated or truncated:
                returns.append(episode_return)
                episode_return, episode = 0.0, episode + 1
                obs, _ = env.reset(seed=episode)
        print(
            f"  warm-up {warmup:6s}: mean |reward| {np.mean(rewards):.4f} over {STEPS:,} steps; "
            f"mean return of its {len(returns)} episodes {np.mean(returns):.1f}"
        )


if __name__ == "__main__":
    main()
