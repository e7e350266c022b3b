"""Do two MuJoCo / dm_control releases simulate the DMC tasks the same? Plays the same uniform random actions on
each task under each release and compares observations and returns.

Run it once per release, each in its own environment, then compare (no torch needed; a few seconds per task):

    python3 -m venv /tmp/oldmj && /tmp/oldmj/bin/pip install "dm_control==1.0.26" "mujoco==3.2.6"
    /tmp/oldmj/bin/python studies/physics_releases.py play /tmp/physics-old.json
    python studies/physics_releases.py play /tmp/physics-new.json          # this project's environment
    python studies/physics_releases.py compare /tmp/physics-old.json /tmp/physics-new.json

Same physics gives differences at float64 rounding (1e-14) that stay small on smooth tasks and grow only where
the dynamics are chaotic (contacts: walker); different physics differ from the first steps.
"""

from __future__ import annotations

import json
import sys

import numpy as np

TASKS = [("cheetah", "run"), ("walker", "walk"), ("cartpole", "swingup"), ("ball_in_cup", "catch"), ("reacher", "easy")]
EPISODES, STEPS = 5, 1000  # control steps: one DMC episode, 500 agent steps at action repeat 2
TRACED = (0, 1, 9, 99, 999)  # steps whose observation is compared


def play(path: str) -> None:
    import mujoco
    from dm_control import suite

    out: dict = {"mujoco": mujoco.__version__}
    for domain, task in TASKS:
        env = suite.load(domain, task, task_kwargs={"random": 0})
        spec = env.action_spec()
        returns, trace = [], []
        for episode in range(EPISODES):
            rng = np.random.default_rng(episode)
            env.reset()
            total = 0.0
            for t in range(STEPS):
                step = env.step(rng.uniform(spec.minimum, spec.maximum).astype(np.float32))
                total += step.reward
                if episode == 0 and t in TRACED:
                    trace.append(np.concatenate([v.ravel() for v in step.observation.values()]).tolist())
            returns.append(total)
        out[f"{domain}-{task}"] = {"returns": returns, "trace": trace}
    with open(path, "w") as f:
        json.dump(out, f)


def compare(first: str, second: str) -> None:
    with open(first) as f:
        a = json.load(f)
    with open(second) as f:
        b = json.load(f)
    print(f"MuJoCo {a['mujoco']} vs {b['mujoco']}, {EPISODES} episodes of uniform random actions per task\n")
    steps = ", ".join(str(t + 1) for t in TRACED)
    header = f"largest observation difference at steps {steps}"
    print(f"| task | returns ({a['mujoco']}) | returns ({b['mujoco']}) | {header} |")
    print("|---|---|---|---|")
    for name in a:
        if name == "mujoco":
            continue
        diffs = [np.max(np.abs(np.subtract(x, y))) for x, y in zip(a[name]["trace"], b[name]["trace"])]
        first_returns = " ".join(f"{r:.1f}" for r in a[name]["returns"])
        second_returns = " ".join(f"{r:.1f}" for r in b[name]["returns"])
        print(f"| {name} | {first_returns} | {second_returns} | {', '.join(f'{d:.0e}' for d in diffs)} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "play":
        play(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
