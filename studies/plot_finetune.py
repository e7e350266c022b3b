"""Plot and tabulate fine-tune vs from-scratch runs made by studies/finetune_runs.sh.

    python studies/plot_finetune.py OUT_ROOT pendulum "InvertedPendulum-v4 -> InvertedDoublePendulum-v4"

Reads OUT_ROOT/<pair>-{scratch,finetune,finetune1000}-s<seed>/metrics.csv, writes docs/finetune-<pair>.png
(mean over seeds, band = min..max) and prints a markdown table of the mean ± std over seeds at a few steps and the
area under the curve (mean eval return over all evaluations).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs"  # the page that shows the figures

LABELS = {
    "scratch": "from scratch (warm-up 1,000)",
    "finetune": "fine-tune, warm-up 100",
    "finetune1000": "fine-tune, warm-up 1,000 (default)",
}


def load(root: Path, pair: str, condition: str) -> tuple[np.ndarray, np.ndarray]:
    runs = sorted(root.glob(f"{pair}-{condition}-s*"))
    curves = []
    for run in runs:
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        curves.append([(int(r["step"]), float(r["eval_return_mean"])) for r in rows])
    length = min(len(c) for c in curves)
    steps = np.array([s for s, _ in curves[0][:length]])
    return steps, np.array([[v for _, v in c[:length]] for c in curves])  # (seeds, evals)


def main() -> None:
    root, pair, title = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    table = {}
    for condition, colour in (("scratch", "tab:grey"), ("finetune", "tab:orange"), ("finetune1000", "tab:blue")):
        if not any(root.glob(f"{pair}-{condition}-s*")):
            continue
        steps, returns = load(root, pair, condition)
        ax.plot(steps, returns.mean(0), color=colour, label=f"{LABELS[condition]} ({returns.shape[0]} seeds)")
        ax.fill_between(steps, returns.min(0), returns.max(0), color=colour, alpha=0.15)
        table[LABELS[condition]] = (steps, returns)
    ax.set(xlabel="env steps", ylabel="eval return", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = DOCS / f"finetune-{pair}.png"
    fig.savefig(out, dpi=120)
    steps = table[LABELS["scratch"]][0]
    marks = sorted({steps[len(steps) // 5], steps[len(steps) // 2], steps[-1]})
    print("| condition | " + " | ".join(f"{m:,} steps" for m in marks) + " | mean over all evals |")
    print("|---|" + "---:|" * (len(marks) + 1))
    for condition, (s, r) in table.items():
        cells = [f"{r[:, list(s).index(m)].mean():.0f} ± {r[:, list(s).index(m)].std():.0f}" for m in marks]
        print(f"| {condition} | " + " | ".join(cells) + f" | {r.mean(1).mean():.0f} ± {r.mean(1).std():.0f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
