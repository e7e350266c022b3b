"""Plot and tabulate the paper-size fine-tune study made by docs/finetune_study.sh.

    python docs/plot_finetune_study.py ROOT walker "walker-walk -> walker-run" [CONDITION-sSEED=FOLDER ...]

Reads ROOT/<pair>-<condition>-s<seed>/metrics.csv for every condition present (and any run folder named on the
command line, e.g. `scratch-s0=~/mrq-runs/cheetah-run-s0`: the zoo's own run from scratch), writes
docs/finetune-<pair>-paper.png (mean over seeds at the steps all seeds evaluated, band = min..max; the paper's
runs from scratch as mean and interquartile range) and prints, per run, the pretrained agent's
zero-shot score (its evaluation before the first update), the lowest evaluation after updates begin, and every
evaluation; then a markdown table of the mean over seeds at a few steps.
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
    "random": "fine-tune, uniform random warm-up (the old default)",
    "policy": "fine-tune, warm-up with the pretrained policy (the default)",
    "policy-convert": "fine-tune, policy warm-up, critics converted",
    "convert": "fine-tune, random warm-up, critics converted",
    "policy-hold": "fine-tune, policy warm-up, policy held 2,500 updates",
    "policy-freeze": "fine-tune, policy warm-up, encoder frozen",
    "hold": "fine-tune, random warm-up, policy held 2,500 updates",
    "freeze": "fine-tune, random warm-up, encoder frozen",
    "short": "fine-tune, random warm-up of 1,000 steps",
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
}


def load_run(folder: Path) -> tuple[int, list[tuple[int, float]]]:
    """(warm-up steps, [(step, eval return)]) of one run folder."""
    warmup = json.loads((folder / "config.json").read_text())["algorithm"]["warmup_steps"]
    rows = list(csv.DictReader(open(folder / "metrics.csv")))
    return warmup, [(int(r["step"]), float(r["eval_return_mean"])) for r in rows]


def main() -> None:
    root, pair, title = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    named = dict(arg.split("=", 1) for arg in sys.argv[4:])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = {}
    for condition, label in LABELS.items():
        runs = {run.name.rsplit("-s", 1)[1]: run for run in sorted(root.glob(f"{pair}-{condition}-s*")) if run.is_dir()}
        runs.update(
            {
                key.rsplit("-s", 1)[1]: Path(f).expanduser()
                for key, f in named.items()
                if key.rsplit("-s", 1)[0] == condition
            }
        )
        if not runs:
            continue
        loaded = {seed: load_run(run) for seed, run in runs.items()}
        for seed, (warmup, evals) in loaded.items():
            returns = [v for _, v in evals]
            after = [v for s, v in evals if s > warmup]
            line = f"{condition:14s} s{seed}: " + " ".join(f"{v:.0f}" for v in returns)
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
    ax.set(xlabel="env steps", ylabel="eval return", title=title, xlim=(0, last + 500))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(__file__).with_name(f"finetune-{pair}-paper.png")
    fig.savefig(out, dpi=120)
    steps = sorted(set().union(*(s.tolist() for s, _ in curves.values())))
    marks = [m for m in (10000, 11000, 12000, 13000, 14000, 15000, 20000) if m in steps]
    print("| condition | " + " | ".join(f"{m:,}" for m in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    for condition, (s, v) in curves.items():
        cells = [f"{v[:, list(s).index(m)].mean():.0f}" if m in s else "" for m in marks]
        print(f"| {LABELS[condition]} | " + " | ".join(cells) + " |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
