"""`mrq report`: learning curves of runs drawn over the paper's band, per-env tables, an aggregate with CIs.

Input: run folders of `mrq train` / `mrq sweep` (config.json + metrics.csv), or folders holding them (a
sweep folder), or export folders named explicitly (a zoo entry, a model downloaded from the Hub: they keep the
run's metrics.csv). Runs are grouped by env (aliases of one env fall together); each env gets
`<env>.png` (mean over seeds, min-max spread and every seed, over the paper's mean and 25-75th percentile
band) and a table of this project's and the paper's scores at matching steps; `overview.png` puts every
env side by side; `report.md` and `report.json` hold the tables and the aggregate.

Aggregate: each run's score at the last evaluation step its env's runs share, normalised per benchmark
(`paper.normalise`), then the interquartile mean (IQM) and mean over all runs and envs, with 95%
stratified-bootstrap confidence intervals (runs resampled within each env, as in Agarwal et al., NeurIPS
2021; implemented with numpy because `rliable` does not import with current pandas).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mrq_agents import paper
from mrq_agents.errors import MRQError
from mrq_agents.files import CONFIG_FILE, METRICS_FILE

MAX_TABLE_ROWS = 20  # a 100k run evaluated every 5k fits whole; longer runs are thinned, and say so
BOOTSTRAP_REPS = 2000


class ReportError(MRQError):
    """No runs found, or a run folder that cannot be read."""


@dataclass
class RunData:
    """One run folder's evaluation curve."""

    folder: Path
    env_id: str
    env: dict[str, Any]  # the EnvConfig dict of config.json
    seed: int
    steps: np.ndarray  # (T,) evaluation steps
    returns: np.ndarray  # (T,) mean evaluation return at each step
    algorithm: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"  # what its updates computed in (config.json's training.precision)


# --------------------------------------------------------------------------------------------- statistics


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (25% cut from each end, as scipy's trim_mean)."""
    flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def stratified_bootstrap_ci(
    per_task: Sequence[np.ndarray],
    statistic: Any = iqm,
    reps: int = BOOTSTRAP_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high): percentile CI of `statistic` over all scores, resampling runs within each task."""
    tasks = [np.asarray(t, dtype=np.float64).ravel() for t in per_task if len(t)]
    if not tasks:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    point = statistic(np.concatenate(tasks))
    stats = np.empty(reps)
    for k in range(reps):
        stats[k] = statistic(np.concatenate([t[rng.integers(0, t.size, t.size)] for t in tasks]))
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(point), float(low), float(high)


# --------------------------------------------------------------------------------------------- reading runs


def find_runs(paths: Sequence[str | Path]) -> list[RunData]:
    """Every run folder in `paths` (each a run folder or a folder of them, searched recursively)."""
    folders: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ReportError(f"{p} does not exist: pass run, sweep or export folders")
        if _has_curve(p):  # named explicitly: a run folder or an export folder (a zoo entry, a Hub download)
            candidates = [p]
        else:  # searched: run folders only, so a run and its export are not counted twice
            candidates = sorted(c.parent for c in p.rglob(METRICS_FILE) if _is_run_folder(c.parent))
        folders += [c for c in candidates if c not in folders]
    runs = [r for r in (read_run(f) for f in folders) if r is not None]
    if not runs:
        raise ReportError(
            f"no run folders with evaluations (config.json + metrics.csv) in {', '.join(map(str, paths))}"
        )
    return runs


def _has_curve(p: Path) -> bool:
    return (p / CONFIG_FILE).is_file() and (p / METRICS_FILE).is_file()


def _is_run_folder(p: Path) -> bool:
    # export folders copy metrics.csv too; their results.json tells them apart
    return _has_curve(p) and not (p / "results.json").exists()


def read_run(folder: Path) -> RunData | None:
    """A run's evaluation curve (None when it has no evaluation yet)."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        env, seed = config["env"], int(config["run"]["seed"])
        with open(folder / METRICS_FILE, newline="") as f:
            rows = [
                (int(float(r["step"])), float(r["eval_return_mean"]))
                for r in csv.DictReader(f)
                if r.get("step") and r.get("eval_return_mean")
            ]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReportError(f"{folder} is not a readable run folder ({type(err).__name__}: {err})") from None
    if not rows:
        return None
    rows.sort()
    return RunData(
        folder,
        env["env_id"],
        env,
        seed,
        np.array([s for s, _ in rows]),
        np.array([v for _, v in rows]),
        config.get("algorithm", {}),
        (config.get("training") or {}).get("precision") or "fp32",
    )


def group_by_env(runs: list[RunData]) -> dict[str, list[RunData]]:
    """{label: runs} per env and algorithm config.

    Runs of one env under different aliases share a label (the paper's name when it has one); where one env
    was run with several configs (a hyperparameter study), each config is its own group, labelled by what it
    changes from the paper's defaults.
    """
    by_env: dict[str, dict[str, list[RunData]]] = {}
    for run in runs:
        label = paper.paper_env_name(run.env) or run.env_id
        by_env.setdefault(label, {}).setdefault(json.dumps(run.algorithm, sort_keys=True), []).append(run)
    groups = {}
    for label, configs in by_env.items():
        for members in configs.values():
            name = label if len(configs) == 1 else f"{label} [{_config_text(members[0].algorithm, short=True)}]"
            groups[name] = sorted(members, key=lambda r: (r.seed, str(r.folder)))
    return dict(sorted(groups.items()))


# --------------------------------------------------------------------------------------------- curves


@dataclass
class EnvCurve:
    """Runs of one env on the evaluation steps they all share."""

    label: str
    runs: list[RunData]
    steps: np.ndarray  # (T,) steps every run evaluated
    returns: np.ndarray  # (N, T) one row per run

    @property
    def mean(self) -> np.ndarray:
        return self.returns.mean(0)

    @property
    def final(self) -> np.ndarray:
        """(N,) each run's return at the last shared step."""
        return self.returns[:, -1]


def env_curve(label: str, runs: list[RunData]) -> EnvCurve:
    shared = runs[0].steps
    for run in runs[1:]:
        shared = np.intersect1d(shared, run.steps)
    if shared.size == 0:  # no common step: compare each run's evaluations up to the shortest
        shared = runs[int(np.argmin([r.steps[-1] for r in runs]))].steps
        table = np.stack([np.interp(shared, r.steps, r.returns) for r in runs])
    else:
        table = np.stack([r.returns[np.searchsorted(r.steps, shared)] for r in runs])
    return EnvCurve(label, runs, shared, table)


def _table_steps(steps: np.ndarray) -> np.ndarray:
    """At most MAX_TABLE_ROWS evenly spread steps, always with the last."""
    if steps.size <= MAX_TABLE_ROWS:
        return steps
    idx = np.unique(np.linspace(0, steps.size - 1, MAX_TABLE_ROWS).round().astype(int))
    return steps[idx]


def env_table(curve: EnvCurve) -> tuple[list[str], list[dict[str, Any]]]:
    """Markdown lines and JSON rows: per matching step, our mean ± std over seeds and the paper's mean (IQR)."""
    rows, lines = (
        [],
        ["| step | this project: mean ± std (seeds) | paper: mean (IQR) | ours vs paper |", "|---:|---|---|---|"],
    )
    for step in _table_steps(curve.steps):
        values = curve.returns[:, int(np.searchsorted(curve.steps, step))]
        place = paper.placement(curve.runs[0].env, int(step), float(values.mean()))
        ref = (
            "-"
            if not place.has_reference
            else (
                f"{place.mean:g} ({place.p25:g} to {place.p75:g})"
                + ("" if place.paper_step == step else f" at {place.paper_step:,}")
            )
        )
        lines.append(
            f"| {int(step):,} | {values.mean():.1f} ± {values.std():.1f} ({values.size}) | {ref} | "
            f"{place.where or '-'} |"
        )
        rows.append(
            {
                "step": int(step),
                "mean": float(values.mean()),
                "std": float(values.std()),
                "seeds": int(values.size),
                "paper_step": place.paper_step,
                "paper_mean": place.mean,
                "paper_p25": place.p25,
                "paper_p75": place.p75,
                "where": place.where,
            }
        )
    if len(rows) < curve.steps.size:
        lines += [
            "",
            f"Shown: {len(rows)} of the {curve.steps.size} evaluation steps, evenly spread; the figure and each run's "
            "metrics.csv have all.",
        ]
    return lines, rows


def seed_placements(curve: EnvCurve) -> list[dict[str, Any]]:
    """Each run at the last shared step, placed against the paper."""
    step = int(curve.steps[-1])
    return [
        {
            "seed": run.seed,
            "folder": str(run.folder),
            "step": step,
            "return": float(score),
            "where": paper.placement(run.env, step, float(score)).where,
        }
        for run, score in zip(curve.runs, curve.final)
    ]


# --------------------------------------------------------------------------------------------- figures


def _draw_env(ax: Any, curve: EnvCurve, legend: bool = True) -> None:
    ref = paper.curve(curve.runs[0].env)
    last = max(int(r.steps[-1]) for r in curve.runs)
    if ref is not None:
        keep = np.arange(ref.steps.size) <= max(1, int(np.searchsorted(ref.steps, last)))  # through the first >= last
        ax.fill_between(
            ref.steps[keep],
            ref.p25[keep],
            ref.p75[keep],
            color="tab:gray",
            alpha=0.3,
            label="paper: 25-75th percentile (10 seeds)",
        )
        ax.plot(ref.steps[keep], ref.mean[keep], color="tab:gray", ls="--", label="paper: mean")
    for k, run in enumerate(curve.runs):
        ax.plot(
            run.steps,
            run.returns,
            color="tab:blue",
            alpha=0.3,
            lw=0.8,
            label="this project: each seed" if k == 0 else None,
        )
    if len(curve.runs) > 1:
        ax.fill_between(
            curve.steps,
            curve.returns.min(0),
            curve.returns.max(0),
            color="tab:blue",
            alpha=0.15,
            label="this project: min-max over seeds",
        )
    ax.plot(
        curve.steps,
        curve.mean,
        color="tab:blue",
        lw=2,
        marker="." if curve.steps.size < 30 else None,
        label=f"this project: mean of {len(curve.runs)} seed{'s' if len(curve.runs) > 1 else ''}",
    )
    ax.set(
        xlabel="environment steps (agent decisions)",
        ylabel="evaluation return",
        title=curve.label + ("" if ref is not None else " (no paper reference)"),
    )
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="best")


def _save(fig: Any, path: Path) -> None:
    from mrq_agents.serialization import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def env_figure(curve: EnvCurve, path: Path) -> None:
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot alone

    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    _draw_env(fig.add_subplot(), curve)
    fig.tight_layout()
    _save(fig, path)


def overview_figure(curves: list[EnvCurve], path: Path) -> None:
    from matplotlib.figure import Figure

    cols = min(3, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), dpi=90)
    for k, curve in enumerate(curves):
        _draw_env(fig.add_subplot(rows, cols, k + 1), curve, legend=k == 0)
    fig.tight_layout()
    _save(fig, path)


def file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".png"


# --------------------------------------------------------------------------------------------- aggregate


def aggregate(curves: list[EnvCurve]) -> dict[str, Any]:
    """Normalised final scores per benchmark: IQM and mean with 95% stratified-bootstrap CIs."""
    by_benchmark: dict[str, list[tuple[EnvCurve, np.ndarray]]] = {}
    missing = []
    for curve in curves:
        env = curve.runs[0].env
        normalised = paper.normalise(env, curve.final)
        if normalised is None:
            missing.append(
                {
                    "env": curve.label,
                    "why": "no paper reference"
                    if paper.benchmark(env) is None
                    else "Gym MuJoCo: the paper normalises by TD3's scores, which are not bundled",
                }
            )
            continue
        by_benchmark.setdefault(paper.benchmark(env), []).append((curve, normalised))
    result: dict[str, Any] = {"benchmarks": {}, "missing": missing}
    for bench, items in sorted(by_benchmark.items()):
        per_task = [scores for _, scores in items]
        paper_means = []
        for curve, _ in items:
            place = paper.placement(curve.runs[0].env, int(curve.steps[-1]))
            if place.has_reference:
                paper_means.append(float(paper.normalise(curve.runs[0].env, [place.mean])[0]))
        result["benchmarks"][bench] = {
            "envs": [c.label for c, _ in items],
            "runs": int(sum(s.size for s in per_task)),
            "steps": {c.label: int(c.steps[-1]) for c, _ in items},
            "iqm": stratified_bootstrap_ci(per_task, iqm),
            "mean": stratified_bootstrap_ci(per_task, lambda x: float(np.mean(x))),
            "paper_mean": float(np.mean(paper_means)) if paper_means else None,
        }
    return result


# --------------------------------------------------------------------------------------------- the report


def write_report(paths: Sequence[str | Path], out: str | Path, title: str = "MR.Q runs against the paper") -> Path:
    """Write report.md, report.json, one PNG per env and overview.png into `out`; returns report.md's path."""
    from mrq_agents.serialization import atomic_write_bytes, atomic_write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curves = [env_curve(label, runs) for label, runs in group_by_env(find_runs(paths)).items()]
    md = [
        f"# {title}",
        "",
        f"Reference: {paper.PAPER}, the authors' published results: 10 seeds per env, each evaluation the mean "
        "of 10 episodes. Shaded grey: the paper's 25th-75th percentile over its seeds, dashed: its mean. Steps "
        "are agent decisions as `mrq train` counts them. Where the paper did not evaluate at one of our steps, "
        "the paper's nearest evaluation at or below it is used (marked 'at N'). 'ours vs paper' places the mean "
        "over our seeds below, inside or above the paper's interquartile range.",
        "",
        "![overview](overview.png)",
        "",
    ]
    data: dict[str, Any] = {"envs": {}}
    for curve in curves:
        png = file_name(curve.label)
        env_figure(curve, out / png)
        lines, rows = env_table(curve)
        seeds = seed_placements(curve)
        algo = curve.runs[0].algorithm
        md += [
            f"## {curve.label}",
            "",
            f"{len(curve.runs)} run(s): "
            + ", ".join(f"seed {r.seed} (`{r.folder}`{_precision_text(r)})" for r in curve.runs)
            + f". Config: {_config_text(algo)}.",
            "",
            f"![{curve.label}]({png})",
            "",
            *lines,
            "",
            f"At step {int(curve.steps[-1]):,}, each seed against the paper: "
            + ", ".join(f"seed {s['seed']} {s['return']:.1f} ({s['where'] or 'no reference'})" for s in seeds)
            + ".",
            "",
        ]
        data["envs"][curve.label] = {"rows": rows, "seeds": seeds, "png": png}
    overview_figure(curves, out / "overview.png")
    agg = aggregate(curves)
    data["aggregate"] = agg
    md += [
        "## Aggregate",
        "",
        "Each run's return at the last evaluation step all runs of its env share, normalised per benchmark "
        "(DMC: return / 1000; Atari: "
        "human-normalised, (return - random) / (human - random)); interquartile mean (IQM) and mean over all "
        "runs of the benchmark's envs, with 95% stratified-bootstrap confidence intervals "
        f"({BOOTSTRAP_REPS} resamples of the runs within each env). 'paper mean' is the paper's mean over its "
        "seeds at the same steps, normalised alike (the paper's per-seed scores are not published, so its IQM "
        "cannot be computed).",
        "",
    ]
    if agg["benchmarks"]:
        md += ["| benchmark | envs | runs | IQM [95% CI] | mean [95% CI] | paper mean |", "|---|---|---:|---|---|---|"]
        for bench, b in agg["benchmarks"].items():
            paper_mean = "-" if b["paper_mean"] is None else f"{b['paper_mean']:.3f}"
            md.append(
                f"| {bench} | {', '.join(b['envs'])} | {b['runs']} | {_ci(b['iqm'])} | {_ci(b['mean'])} | "
                f"{paper_mean} |"
            )
    else:
        md.append("No env with known normalisation constants.")
    if agg["missing"]:
        md += ["", "Not in the aggregate: " + "; ".join(f"{m['env']} ({m['why']})" for m in agg["missing"]) + "."]
    atomic_write_bytes(out / "report.md", ("\n".join(md) + "\n").encode("utf-8"))
    atomic_write_json(out / "report.json", data)
    return out / "report.md"


def _ci(t: tuple[float, float, float]) -> str:
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def _precision_text(run: RunData) -> str:
    """', bf16' for a run trained in another precision than fp32; '' for fp32."""
    return "" if run.precision == "fp32" else f", {run.precision}"


def _config_text(algorithm: dict[str, Any], short: bool = False) -> str:
    from mrq_agents.config import changed_fields

    changed = [f"{k}={v}" for k, v in sorted(changed_fields(algorithm).items())]
    if short:
        return " ".join(changed) or "paper config"
    return "the paper's" if not changed else "the paper's except `" + "`, `".join(changed) + "`"
