"""Keep, plot and tabulate the evaluations of the paper-size fine-tune study made by studies/finetune_study.sh.

    python studies/plot_finetune_study.py collect ROOT [CONDITION-sSEED=FOLDER ...]
    python studies/plot_finetune_study.py plot walker "walker-walk -> walker-run"

`collect` copies the evaluations of every run folder ROOT/<pair>-<condition>-s<seed> (and of any run folder named
on the command line for a pair's target env, e.g. `scratch-s0=~/mrq-runs/cheetah-run-s0`: the zoo's own run from
scratch) into studies/finetune_study.csv, replacing that run's earlier rows; run folders live outside the checkout
and can be lost with a machine, the CSV is what the page's tables and curves are drawn from. `plot` writes
docs/finetune-<pair>-paper.png (mean over seeds at the steps all seeds evaluated, band = min..max; the paper's
runs from scratch as mean and interquartile range) and prints, per run, the pretrained agent's zero-shot score (its
evaluation before the first update), the lowest evaluation after updates begin, and every evaluation; then a
markdown table of the mean over seeds at a few steps.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from mrq_agents.paper import curve

TARGET_ENVS = {"walker": "Dmc-walker-run", "cheetah": "Dmc-cheetah-run"}

LABELS = {
    "scratch": "from scratch",
    "random": "fine-tune, uniform random warm-up (the first default)",
    "policy": "fine-tune, warm-up with the pretrained policy",
    "policy-convert": "fine-tune, policy warm-up, critics converted",
    "convert": "fine-tune, random warm-up, critics converted",
    "policy-hold": "fine-tune, policy warm-up, policy held 2,500 updates",
    "policy-freeze": "fine-tune, policy warm-up, encoder frozen",
    "hold": "fine-tune, random warm-up, policy held 2,500 updates",
    "freeze": "fine-tune, random warm-up, encoder frozen",
    "short": "fine-tune, random warm-up of 1,000 steps",
    "policy-hold-encoder": "fine-tune, policy warm-up, encoder held 2,500 updates",
    "policy-slow-encoder": "fine-tune, policy warm-up, encoder at a tenth of its rate (the default)",
}
COLOURS = {
    "scratch": "tab:grey",
    "random": "tab:orange",
    "policy": "tab:blue",
    "policy-convert": "tab:red",
    "convert": "tab:olive",
    "policy-hold": "tab:cyan",
    "policy-freeze": "tab:pink",
    "hold": "tab:green",
    "freeze": "tab:purple",
    "short": "tab:brown",
    "policy-hold-encoder": "darkgreen",
    "policy-slow-encoder": "tab:purple",
}


STUDY_CSV = Path(__file__).with_name("finetune_study.csv")
DOCS = Path(__file__).resolve().parents[1] / "docs"  # the page that shows the figures
FIELDS = ("pair", "condition", "seed", "step", "warmup_steps", "eval_return_mean", "source")


def run_rows(pair: str, condition: str, seed: str, folder: Path) -> list[dict[str, str]]:
    """The study's rows of one run folder: its evaluations, with the warm-up length that ends its zero-shot part."""
    warmup = json.loads((folder / "config.json").read_text())["algorithm"]["warmup_steps"]
    with open(folder / "metrics.csv") as f:
        evals = [(int(r["step"]), float(r["eval_return_mean"])) for r in csv.DictReader(f)]
    return [
        dict(
            pair=pair,
            condition=condition,
            seed=seed,
            step=str(step),
            warmup_steps=str(warmup),
            eval_return_mean=f"{value:.2f}",
            source="run folder",
        )
        for step, value in evals
    ]


def study_steps(folder: Path) -> int:
    """The env steps a run folder was started for (the study's runs stop at 12k or 15k)."""
    return int(json.loads((folder / "config.json").read_text())["run"]["steps"])


def read_study() -> list[dict[str, str]]:
    with open(STUDY_CSV) as f:
        return list(csv.DictReader(f))


def collect(root: Path, named: dict[str, str]) -> None:
    runs = {}
    for folder in sorted(root.glob("*-s*")):
        pair, rest = folder.name.split("-", 1)
        if folder.is_dir() and pair in TARGET_ENVS and (folder / "metrics.csv").exists():
            runs[(pair, *rest.rsplit("-s", 1))] = folder
    for key, folder in named.items():
        condition, seed = key.rsplit("-s", 1)
        folder = Path(folder).expanduser()
        env_id = json.loads((folder / "config.json").read_text())["run"]["env_id"]
        for pair in (p for p, target in TARGET_ENVS.items() if target == env_id):
            runs[(pair, condition, seed)] = folder
    rows = [r for r in read_study() if (r["pair"], r["condition"], r["seed"]) not in runs]
    for (pair, condition, seed), folder in runs.items():
        found = run_rows(pair, condition, seed, folder)
        if condition != "scratch" and int(found[-1]["step"]) < study_steps(folder):
            print(f"{pair} {condition} s{seed}: unfinished (last evaluation {found[-1]['step']}), not copied")
            rows += [r for r in read_study() if (r["pair"], r["condition"], r["seed"]) == (pair, condition, seed)]
            continue
        rows += found
        print(f"{pair} {condition} s{seed}: {folder}")
    rows.sort(key=lambda r: (r["pair"], list(LABELS).index(r["condition"]), int(r["seed"]), int(r["step"])))
    with open(STUDY_CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {STUDY_CSV}: {len(rows)} evaluations")


def plot(pair: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = [r for r in read_study() if r["pair"] == pair]
    fig, ax = plt.subplots(figsize=(8, 6))
    curves = {}
    for condition, label in LABELS.items():
        loaded: dict[str, tuple[int, list[tuple[int, float]]]] = {}
        for r in (r for r in study if r["condition"] == condition):
            warmup, evals = loaded.setdefault(r["seed"], (int(r["warmup_steps"]), []))
            evals.append((int(r["step"]), float(r["eval_return_mean"])))
        if not loaded:
            continue
        for seed, (warmup, evals) in loaded.items():
            returns = [v for _, v in evals]
            after = [v for s, v in evals if s > warmup]
            line = f"{condition:20s} s{seed}: " + " ".join(f"{v:.0f}" for v in returns)
            if condition != "scratch":
                line += f" | zero-shot {returns[0]:.1f}, lowest after updates {min(after):.1f}" if after else ""
            print(line)
        common = sorted(set.intersection(*({s for s, _ in evals} for _, evals in loaded.values())))
        steps = np.array(common)
        values = np.array([[dict(evals)[s] for s in common] for _, evals in loaded.values()])
        curves[condition] = (steps, values)
        seeds = f"{len(loaded)} seed" + ("s" if len(loaded) > 1 else "")
        ax.plot(steps, values.mean(0), color=COLOURS[condition], label=f"{label} ({seeds})")
        ax.fill_between(steps, values.min(0), values.max(0), color=COLOURS[condition], alpha=0.15)
    paper = curve(TARGET_ENVS[pair])
    last = max(s[-1] for c, (s, _) in curves.items() if c != "scratch")  # the fine-tunes' span sets the x range
    shown = paper.steps <= last
    ax.plot(paper.steps[shown], paper.mean[shown], "k--", lw=1, label="the paper, from scratch (10 seeds, mean, IQR)")
    ax.fill_between(paper.steps[shown], paper.p25[shown], paper.p75[shown], color="k", alpha=0.08)
    first = min(int(r["warmup_steps"]) for r in study) - 1000  # from the last warm-up evaluation before updates
    ax.set(xlabel="env steps", ylabel="eval return", title=title, xlim=(first, last + 200))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = DOCS / f"finetune-{pair}-paper.png"
    fig.savefig(out, dpi=120)
    steps = sorted(set().union(*(s.tolist() for s, _ in curves.values())))
    marks = [m for m in (10000, 11000, 12000, 13000, 14000, 15000, 20000) if m in steps]
    print("| condition | " + " | ".join(f"{m:,}" for m in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    for condition, (s, v) in curves.items():
        cells = [f"{v[:, list(s).index(m)].mean():.0f}" if m in s else "" for m in marks]
        print(f"| {LABELS[condition]} | " + " | ".join(cells) + " |")
    print(f"wrote {out}")


def main() -> None:
    if sys.argv[1:2] == ["collect"]:
        collect(Path(sys.argv[2]).expanduser(), dict(arg.split("=", 1) for arg in sys.argv[3:]))
    elif sys.argv[1:2] == ["plot"]:
        plot(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
