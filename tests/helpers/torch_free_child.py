"""Run by tests/test_torch_free.py with the Python of an environment without torch (the base install).

argv[1]: a JSON list of {"source", "obs", "out"}. For each: load with the ONNX backend, play one episode, act on the
observations in `obs` (.npy) and save the actions to `out` (.npy). Prints one JSON line with what it saw.
"""

import importlib.util
import json
import sys

import numpy as np

assert importlib.util.find_spec("torch") is None, "this environment has torch: it must be the base install"

import gymnasium as gym  # noqa: E402

import mrq_agents.cli  # noqa: E402,F401  (the whole torch-free import chain)
import mrq_agents.hub  # noqa: E402,F401
from mrq_agents import Policy  # noqa: E402

report = []
for case in json.loads(sys.argv[1]):
    policy = Policy.from_pretrained(case["source"])  # backend="auto": onnx without torch
    rollout = policy.rollout(episodes=1, seed=0)
    obs = np.load(case["obs"])
    np.save(case["out"], policy.act(obs))
    single, _ = policy.predict(obs[0])
    evaluation = policy.evaluate(episodes=1, seed=1)
    report.append(
        {
            "source": case["source"],
            "backend": policy.backend,
            "return": rollout.mean,
            "length": int(rollout.lengths[0]),
            "single": np.asarray(single).tolist(),
            "evaluate_episodes": evaluation["episodes"],
        }
    )
wrapped = Policy.from_pretrained(json.loads(sys.argv[1])[0]["source"])
env = wrapped.wrap(gym.make(wrapped.env_config.gym_id))
obs, _ = env.reset(seed=0)
env.step(wrapped.act(obs))
print(json.dumps({"cases": report, "torch_imported": "torch" in sys.modules}))
