"""The learning-equivalence study of docs/precision.md: bf16 against fp32, same envs, same seeds.

    python studies/precision_study.py run --out ~/mrq-runs/precision      # train the grid (resumes; skips done runs)
    python studies/precision_study.py report --out ~/mrq-runs/precision --docs docs/precision-study

`run` trains every (env, seed, precision) of GRID with `mrq train` in a subprocess, one after another (or
`--jobs N` at once, each with `--threads` cores), in DIR/<env>/<precision>-seed<seed>. A run that finished is
skipped, one that was stopped continues with `--resume`. bf16 needs native bf16 units (AMX or AVX512-BF16, or a
bf16 GPU): where it would be emulated `mrq train` refuses it and so does this tool.

`report` reads the runs' metrics.csv and writes, per env, the mean curve and min-max band of each precision
(`<env>.png`) and `table.md`: final return and area under the curve (mean eval return over all evaluations),
mean +- std over seeds, and the bf16 - fp32 difference with a 95% bootstrap interval over seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

# (env, steps, eval_every, extra mrq train arguments): continuous and discrete actions, one pixel env, one env
# at the paper's full network size (512-wide; HalfCheetah 3.86M parameters).
GRID = [
    ("Pendulum-v1", 15_000, 1_000, ["--preset", "small"]),
    ("CartPole-v1", 20_000, 1_000, ["--preset", "small"]),
    ("Dmc-visual-cartpole-balance", 20_000, 2_000, ["--preset", "small"]),
    ("HalfCheetah-v4", 50_000, 5_000, ["--preset", "paper"]),
]
SEEDS = (0, 1, 2)
PRECISIONS = ("fp32", "bf16")


def run_dir(out: Path, env: str, precision: str, seed: int) -> Path:
    return out / env.replace("/", "_") / f"{precision}-seed{seed}"


def finished(folder: Path, steps: int) -> bool:
    rows = read_rows(folder)
    return bool(rows) and rows[-1][0] >= steps


def read_rows(folder: Path) -> list[tuple[int, float]]:
    """(step, eval return mean) of each evaluation in a run's metrics.csv."""
    path = folder / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [(int(float(r["step"])), float(r["eval_return_mean"])) for r in csv.DictReader(f)]


def train_command(
    env: str, steps: int, eval_every: int, extra: list[str], precision: str, seed: int, folder: Path, threads: int
) -> list[str]:
    mrq = Path(sys.executable).with_name("mrq")
    command = [
        str(mrq) if mrq.exists() else "mrq",
        "train",
        env,
        "--steps",
        str(steps),
        "--seed",
        str(seed),
        "--eval-every",
        str(eval_every),
        "--checkpoint-every",
        str(eval_every),
        "--precision",
        precision,
        "--threads",
        str(threads),
        "--out",
        str(folder),
        *extra,
    ]
    return command + (["--resume"] if (folder / "checkpoint.safetensors").exists() else [])


def run(out: Path, jobs: int, threads: int) -> None:
    pending = []
    for env, steps, eval_every, extra in GRID:
        for seed in SEEDS:
            for precision in PRECISIONS:
                folder = run_dir(out, env, precision, seed)
                if finished(folder, steps):
                    print(f"done already: {folder}")
                    continue
                pending.append((folder, train_command(env, steps, eval_every, extra, precision, seed, folder, threads)))
    running: list[tuple[Path, subprocess.Popen]] = []
    failures = []
    while pending or running:
        while pending and len(running) < jobs:
            folder, command = pending.pop(0)
            folder.parent.mkdir(parents=True, exist_ok=True)
            print(" ".join(command), flush=True)
            log = open(folder.parent / f"{folder.name}.log", "a")
            running.append((folder, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
        folder, process = running.pop(0)
        if process.wait() != 0:
            failures.append(folder)
            print(f"failed ({process.returncode}): {folder} (see {folder.name}.log)", flush=True)
    if failures:
        raise SystemExit(f"{len(failures)} run(s) failed")


def bootstrap_interval(differences: np.ndarray, rng: np.random.Generator, draws: int = 10_000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `differences`."""
    means = rng.choice(differences, size=(draws, len(differences)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def report(out: Path, docs: Path) -> None:
    from matplotlib.figure import Figure

    docs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["| env | steps | precision | seeds | final return | area under curve |", "|---|---|---|---|---|---|"]
    diffs = ["| env | bf16 - fp32, final (95% CI) | bf16 - fp32, area (95% CI) |", "|---|---|---|"]
    for env, steps, _, extra in GRID:
        curves = {p: [read_rows(run_dir(out, env, p, s)) for s in SEEDS] for p in PRECISIONS}
        curves = {p: [c for c in cs if c and c[-1][0] >= steps] for p, cs in curves.items()}
        if not all(curves.values()):
            lines.append(f"| {env} | {steps:,} | - | 0 | not run yet | |")
            continue
        figure = Figure(figsize=(5, 3.2))
        axes = figure.subplots()
        summary = {}
        for precision, runs in curves.items():
            length = min(len(c) for c in runs)
            x = np.array([s for s, _ in runs[0][:length]])
            y = np.array([[r for _, r in c[:length]] for c in runs])  # (seeds, evaluations)
            axes.plot(x, y.mean(0), label=f"{precision} ({len(runs)} seeds)")
            axes.fill_between(x, y.min(0), y.max(0), alpha=0.2)
            final, area = y[:, -1], y.mean(1)
            summary[precision] = (final, area)
            lines.append(
                f"| {env} | {steps:,} | {precision} | {len(runs)} | {final.mean():.1f} +- {final.std():.1f} "
                f"| {area.mean():.1f} +- {area.std():.1f} |"
            )
        axes.set(title=f"{env} ({' '.join(extra)})", xlabel="env steps", ylabel="eval return")
        axes.legend()
        figure.tight_layout()
        figure.savefig(docs / f"{env.replace('/', '_')}.png", dpi=110)
        paired = min(len(summary["fp32"][0]), len(summary["bf16"][0]))
        cells = []
        for index in (0, 1):
            difference = summary["bf16"][index][:paired] - summary["fp32"][index][:paired]
            low, high = bootstrap_interval(difference, rng)
            cells.append(f"{difference.mean():+.1f} ({low:+.1f} to {high:+.1f})")
        diffs.append(f"| {env} | {cells[0]} | {cells[1]} |")
    text = "\n".join(lines + [""] + diffs) + "\n"
    (docs / "table.md").write_text(text)
    print(text)
    print(json.dumps({"figures": sorted(str(p) for p in docs.glob("*.png"))}))
    mkdocs = Path(__file__).resolve().parents[1] / "mkdocs.yml"
    page = "precision-study/table.md"
    if docs.resolve() == (mkdocs.parent / "docs" / "precision-study").resolve() and page not in mkdocs.read_text():
        print(f"note: add `- Precision study: {page}` under Performance in mkdocs.yml (`mkdocs build --strict` fails)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--out", type=Path, required=True, help="folder of the study's runs")
    parser.add_argument("--docs", type=Path, default=Path("docs/precision-study"), help="where report writes")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = parser.parse_args()
    if args.action == "run":
        run(args.out, max(1, args.jobs), max(1, args.threads))
    else:
        report(args.out, args.docs)


if __name__ == "__main__":
    main()
