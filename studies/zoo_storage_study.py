"""The zoo storage study: what storing the zoo's weights in float16 or bfloat16 would change.

    python studies/zoo_storage_study.py            # every paper-size entry of the bundled zoo

Rounds each entry's actor (state encoder + policy) to float16 and to bfloat16 and back, replays the entry's own
evaluation (10 episodes, seed 0, the manifest's policy mode) and compares the returns with the float32 weights.
The zoo ships float32 while these differ (docs/zoo.md, "How the zoo is stored").
"""

from __future__ import annotations

import torch

from mrq_agents import Policy, zoo


def rounded(repo_id: str, dtype: torch.dtype) -> Policy:
    policy = Policy.from_pretrained(repo_id, backend="torch", threads=1)
    with torch.no_grad():
        for tensor in [*policy.actor.parameters(), *policy.actor.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).float())
    return policy


def main() -> None:
    for entry in zoo.entries():
        if zoo.preset(entry) != "paper":
            continue
        deterministic, score = entry["score"]["deterministic"], entry["score"]
        reference = Policy.from_pretrained(entry["repo_id"], backend="torch", threads=1).rollout(
            episodes=score["episodes"], seed=score["seed"], deterministic=deterministic
        )
        for dtype in (torch.float16, torch.bfloat16):
            result = rounded(entry["repo_id"], dtype).rollout(
                episodes=score["episodes"], seed=score["seed"], deterministic=deterministic
            )
            same = bool((result.returns == reference.returns).all() and (result.lengths == reference.lengths).all())
            print(
                f"{entry['env_id']:<18} {str(dtype).removeprefix('torch.'):<9} mean {result.mean:10.2f} "
                f"(float32 {reference.mean:.2f})  identical episodes: {str(same):<5}  largest return change "
                f"{abs(result.returns - reference.returns).max():.3g}",
                flush=True,
            )


if __name__ == "__main__":
    main()
