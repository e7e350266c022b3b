"""Maintainer tool: bundle a training run into the zoo (zoo/<name>/ + a manifest entry).

    python tools/zoo_add.py RUN_DIR --name InvertedPendulum-v4 --repo-id mrq-agents/mrq-InvertedPendulum-v4
    python tools/zoo_add.py --onnx-only --name InvertedPendulum-v4     # (re)write zoo/<name>/actor.onnx only

Exports the run with `Policy.save_pretrained`, then evaluates the *shipped* folder (10 episodes, seed 0, no
exploration noise; discrete actions sampled as the paper does, continuous ones deterministic), records
replay.mp4 (one episode, seed 0) from it, and writes that score, the training command and every file's sha256 and
size in zoo/manifest.json (the package ships the manifest; `mrq zoo push` uploads the folder to the entry's repo).
tests/test_zoo.py re-runs the evaluation and checks it reproduces the manifest.

Paper-size weights are stored compactly (`save_pretrained(compact=True)`): float32 for what acting reads (the
state encoder and the policy), float16 for the rest (critics, the encoder's model layers; only fine-tuning reads
them), so the score is that of the float32 agent exactly and an entry is about a quarter smaller. `--fp32`
keeps everything float32. `--compact-only` rewrites an entry's shipped weights that way (and its actor.onnx,
config.json, card and manifest sha256s), leaving its score as measured; tests/test_zoo.py re-measures it.

`--remeasure` evaluates an entry's shipped files again on this machine, as above, and writes that score with the
machine's fingerprint (mrq_agents.machine) into results.json, the card and the manifest; `--record` with it also
records replay.mp4 again (after a change to how videos are drawn). The weights and their sha256 stay as they are.

`--onnx-only` exports actor.onnx from an entry's shipped weights and re-renders its model card (which lists
it, and updates the manifest's file records); the weights, their sha256, config.json and the measured score stay as
they are. That is how
the entries bundled before ONNX export got their actor.onnx. Deterministic: the same weights give the same file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mrq_agents import Policy, zoo
from mrq_agents.export import eval_command
from mrq_agents.files import sha256_file

ZOO = Path(__file__).resolve().parents[1] / "zoo"
EPISODES, SEED = 10, 0


def add_onnx(folder: Path) -> Path:
    """Write folder/actor.onnx from folder/model.safetensors and re-render README.md; the rest stays as it is."""
    from mrq_agents.actor_torch import write_actor_onnx
    from mrq_agents.export import write_card

    policy = Policy.from_pretrained(folder, backend="torch")
    sha = sha256_file(folder / "model.safetensors")
    path = write_actor_onnx(folder, policy.actor, sha, policy.env_config.env_id)
    results = json.loads((folder / "results.json").read_text())
    write_card(folder, policy.metadata, results, policy.metadata.get("repo_id"))
    return path


def evaluate_shipped(folder: Path, source: str) -> tuple[Policy, dict]:
    """The paper's protocol on the shipped files: no exploration noise; discrete actions sample
    argmax(gumbel_softmax(pre)), continuous ones are tanh(pre)."""
    shipped = Policy.from_pretrained(folder, threads=1)  # one observation at a time: 1 thread is fastest
    results = shipped.evaluate(episodes=EPISODES, seed=SEED, source=source)
    return shipped, results


def remeasure(name: str, record: bool) -> dict:
    """Evaluate zoo/<name> again here; rewrite results.json, the card and the manifest's score (weights untouched)."""
    from mrq_agents.export import write_card
    from mrq_agents.serialization import atomic_write_json

    folder = ZOO / name
    shipped, results = evaluate_shipped(folder, "tools/zoo_add.py --remeasure (evaluation of the shipped files)")
    if record:
        shipped.record(folder / "replay.mp4", episodes=1, seed=SEED)
    atomic_write_json(folder / "results.json", results)
    write_card(folder, shipped.metadata, results, shipped.metadata.get("repo_id"))
    manifest = json.loads((ZOO / "manifest.json").read_text())
    for entry in manifest["entries"]:
        if entry["folder"] == name:
            entry["score"] = score_record(results)
            entry.update(files_record(folder))
            updated = entry
    (ZOO / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return updated


def score_record(results: dict) -> dict:
    """The manifest's record of a score: what tests/test_zoo.py compares a new measurement with."""
    return {k: results[k] for k in ("mean", "std", "episodes", "seed", "deterministic", "machine")}


def files_record(folder: Path) -> dict:
    """The manifest's record of an entry's files (sha256 and size of each) and what `mrq zoo list` and
    `find_other_version` read from its config without the files: its preset, training precision and spaces."""
    from mrq_agents.config import preset_name

    config = json.loads((folder / "config.json").read_text())
    return {
        "preset": preset_name(config["algorithm"]),
        "precision": config.get("training", {}).get("precision") or "fp32",
        "spaces": config["spaces"],
        "files": zoo.file_records(folder),
    }


def with_entry(entries: list[dict], entry: dict) -> list[dict]:
    """The manifest's entries with `entry` in the place of the one with its repo id (a replaced agent keeps its
    place in `mrq zoo list` and the README), or last for a new one."""
    if not any(e["repo_id"] == entry["repo_id"] for e in entries):
        return [*entries, entry]
    return [entry if e["repo_id"] == entry["repo_id"] else e for e in entries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--name", required=True, help="folder name under zoo/")
    parser.add_argument("--repo-id")
    parser.add_argument("--onnx-only", action="store_true", help="only (re)write zoo/<name>/actor.onnx")
    parser.add_argument("--fp32", action="store_true", help="store every weight in float32 (default: compact)")
    parser.add_argument(
        "--compact-only",
        action="store_true",
        help="only rewrite zoo/<name>'s weights compactly (float16 for what acting does not read)",
    )
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="evaluate zoo/<name>'s shipped files again here and record that score and machine",
    )
    parser.add_argument("--record", action="store_true", help="with --remeasure: record replay.mp4 again")
    parser.add_argument(
        "--note",
        help="how the run was made, for the card's training row and the manifest (e.g. where it stopped and why)",
    )
    args = parser.parse_args()

    folder = ZOO / args.name
    if args.remeasure:
        print(json.dumps(remeasure(args.name, args.record), indent=2))
        return
    if args.onnx_only or args.compact_only:
        if args.onnx_only:
            print(add_onnx(folder))
        else:
            shipped = Policy.from_pretrained(folder, backend="torch")
            shipped.save_pretrained(folder, repo_id=shipped.metadata.get("repo_id"), compact=True)
        manifest = json.loads((ZOO / "manifest.json").read_text())
        for entry in manifest["entries"]:
            if entry["folder"] == args.name:
                entry.update(files_record(folder))
        (ZOO / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return
    if args.run_dir is None or args.repo_id is None:
        parser.error("RUN_DIR and --repo-id are required (unless --onnx-only or --compact-only)")
    source = Policy.from_pretrained(args.run_dir)
    if args.note:
        source.metadata.setdefault("training", {})["note"] = args.note
    source.save_pretrained(folder, repo_id=args.repo_id, compact=not args.fp32)
    shipped, results = evaluate_shipped(folder, "tools/zoo_add.py (evaluation of the shipped files)")
    shipped.record(folder / "replay.mp4", episodes=1, seed=SEED)
    shipped.save_pretrained(folder, results=results, repo_id=args.repo_id)  # card + results.json with that score
    meta = json.loads((folder / "config.json").read_text())
    steps = meta["training"]["steps"]
    entry = {
        "env_id": meta["env"]["env_id"],
        "repo_id": args.repo_id,
        "folder": args.name,
        "command": meta["training"]["command"],
        "steps": steps,
        "score": score_record(results),
        "eval_command": eval_command(args.repo_id, results),
        **({"note": args.note} if args.note else {}),
        **files_record(folder),
    }
    manifest = json.loads((ZOO / "manifest.json").read_text()) if (ZOO / "manifest.json").exists() else {"entries": []}
    manifest["entries"] = with_entry(manifest["entries"], entry)
    (ZOO / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
