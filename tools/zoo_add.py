"""Maintainer tool: bundle a training run into the zoo (zoo/<name>/ + a manifest entry).

    python tools/zoo_add.py RUN_DIR --name InvertedPendulum-v4 --repo-id mrq-agents/mrq-InvertedPendulum-v4

Exports the run with `Policy.save_pretrained`, then evaluates the *shipped* folder (10 episodes, seed 0, no
exploration noise) and records that score, the training command and the weights' sha256 in
zoo/manifest.json. tests/test_zoo.py re-runs the evaluation and checks it reproduces the manifest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mrq_agents import Policy
from mrq_agents.export import sha256_file

ZOO = Path(__file__).resolve().parents[1] / "zoo"
EPISODES, SEED = 10, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True, help="folder name under zoo/")
    parser.add_argument("--repo-id", required=True)
    args = parser.parse_args()

    folder = ZOO / args.name
    Policy.from_pretrained(args.run_dir).save_pretrained(folder, repo_id=args.repo_id)
    shipped = Policy.from_pretrained(folder)
    results = shipped.evaluate(episodes=EPISODES, seed=SEED, deterministic=True,
                               source="tools/zoo_add.py (evaluation of the shipped files)")
    shipped.save_pretrained(folder, results=results, repo_id=args.repo_id)  # card + results.json with that score
    meta = json.loads((folder / "config.json").read_text())
    steps = meta["training"]["steps"]
    entry = {
        "env_id": meta["env"]["env_id"], "repo_id": args.repo_id, "folder": args.name,
        "command": meta["training"]["command"], "steps": steps,
        "score": {k: results[k] for k in ("mean", "std", "episodes", "seed", "deterministic")},
        "eval_command": f"mrq eval {args.repo_id} --episodes {EPISODES} --seed {SEED} --deterministic",
        "sha256": sha256_file(folder / "model.safetensors"),
        "bytes": sum(p.stat().st_size for p in folder.iterdir()),
    }
    manifest = json.loads((ZOO / "manifest.json").read_text()) if (ZOO / "manifest.json").exists() else {"entries": []}
    manifest["entries"] = [e for e in manifest["entries"] if e["repo_id"] != args.repo_id] + [entry]
    (ZOO / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
