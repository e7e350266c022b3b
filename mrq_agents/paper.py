"""The MR.Q paper's published results as a reference: read here, and only here.

`data/paper_scores.json` holds the authors' evaluation results for all 118 envs of MR.Q (Fujimoto et al.,
ICLR 2025, arXiv 2501.16142), taken from the results files the authors published with their code: per env
(the paper's names `Gym-<Env>-v4`, `Dmc-<domain>-<task>`, `Dmc-visual-<domain>-<task>`, `Atari-<Game>-v5`)
and per evaluation step, the mean, 25th and 75th percentile, min and max over 10 seeds of the evaluation
return (each the mean of 10 episodes). Steps are agent decisions, as `mrq train` counts them (a DMC step is
2 simulator steps, an Atari step 4 frames).

`placement(env, step, score)` is the one place that says whether a score falls below, inside or above the
paper's interquartile range at a step; model cards, `mrq zoo list`, `mrq eval` and `mrq report` all use it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from mrq_agents import envs

PAPER = "MR.Q (Fujimoto et al., ICLR 2025, arXiv 2501.16142)"
DMC_MAX = 1000.0  # DMC returns lie in [0, 1000]: normalised score = return / 1000
NO_REFERENCE = "no paper reference"


@functools.lru_cache(maxsize=None)
def _data(name: str) -> dict[str, Any]:
    return json.loads(resources.files("mrq_agents").joinpath("data", name).read_text())


def about() -> str:
    """The provenance line of the bundled reference data."""
    return _data("paper_scores.json")["about"]


def paper_env_name(env: Any) -> str | None:
    """The paper's name for an env id or `EnvConfig` (None when the paper has no such env).

    'HalfCheetah-v4', 'Gym-HalfCheetah-v4' -> 'Gym-HalfCheetah-v4'; 'dm_control/walker-walk-v0', 'Dmc-walker-walk'
    -> 'Dmc-walker-walk' (from pixels: 'Dmc-visual-walker-walk'); 'ALE/Pong-v5', 'Atari-Pong-v5' -> 'Atari-Pong-v5'.
    """
    names = _data("paper_scores.json")["envs"]
    if isinstance(env, str):
        family, gym_id, pixels = envs.named_env(env)
        name = family.paper_name(gym_id, pixels)
    else:  # an EnvConfig, or its dict from a config.json
        d = env if isinstance(env, dict) else env.to_dict()
        family = envs.FAMILIES.get(d["family"])
        name = None if family is None else family.paper_name(d["gym_id"], bool(d.get("pixels")))
    return name if name in names else None


@dataclass(frozen=True)
class PaperCurve:
    """The paper's curve for one env: arrays over its evaluation steps (increasing)."""

    name: str
    steps: np.ndarray  # (T,) agent decisions
    mean: np.ndarray  # (T,) mean over seeds
    p25: np.ndarray  # (T,) 25th percentile over seeds
    p75: np.ndarray  # (T,) 75th percentile over seeds
    low: np.ndarray  # (T,) min over seeds
    high: np.ndarray  # (T,) max over seeds
    seeds: np.ndarray  # (T,) seeds evaluated at that step

    def index_at(self, step: int) -> int | None:
        """Index of the nearest evaluated step at or below `step` (None when `step` precedes the first)."""
        i = int(np.searchsorted(self.steps, step, side="right")) - 1
        return i if i >= 0 else None


def curve(env: Any) -> PaperCurve | None:
    """The paper's curve for an env id, paper name or `EnvConfig`; None when the paper lacks the env."""
    name = paper_env_name(env)
    if name is None:
        return None
    points = sorted((int(s), v) for s, v in _data("paper_scores.json")["envs"][name].items())
    table = np.array([v for _, v in points], dtype=np.float64)  # (T, 6): mean, p25, p75, min, max, seeds
    return PaperCurve(
        name, np.array([s for s, _ in points], dtype=np.int64), *table[:, :5].T, table[:, 5].astype(np.int64)
    )


@dataclass(frozen=True)
class Placement:
    """Where a score falls against the paper's seeds at (the nearest evaluated step at or below) a step."""

    paper_name: str | None  # None: the paper has no such env
    step: int  # the step asked about
    paper_step: int | None = None  # the paper's evaluation step used (<= step)
    mean: float | None = None  # the paper's mean over seeds at paper_step
    p25: float | None = None
    p75: float | None = None
    score: float | None = None
    where: str | None = None  # "below", "inside" or "above" the paper's interquartile range; None: not placed
    next_paper_step: int | None = None  # set when only the untrained step 0 precedes `step` (then not placed)

    @property
    def has_reference(self) -> bool:
        return self.mean is not None

    def reference_text(self) -> str:
        """'946.2 (IQR 912.9-995.0) at 20,000 steps', or why there is none."""
        if self.paper_name is None:
            return NO_REFERENCE
        if not self.has_reference:
            return f"no paper evaluation at or before step {self.step:,}"
        text = f"{self.mean:g} (IQR {self.p25:g} to {self.p75:g}) at {self.paper_step:,} steps"
        if self.next_paper_step is not None:
            text += (
                f" (the untrained agents; the paper's next evaluation is at {self.next_paper_step:,}, so "
                f"a score at {self.step:,} is not placed)"
            )
        elif self.paper_step != self.step:
            text += f" (the paper's nearest evaluation at or below {self.step:,})"
        return text

    def text(self) -> str:
        """One line: where the score falls and the reference (e.g. "inside the paper's interquartile range: ...")."""
        if not self.has_reference:
            return self.reference_text()
        if self.where is None:
            return f"paper {self.reference_text()}"
        return f"{self.where} the paper's interquartile range: paper {self.reference_text()}"


def placement(env: Any, step: int | None, score: float | None = None) -> Placement:
    """Place `score` (a mean evaluation return after `step` agent decisions) against the paper's 10 seeds.

    Inside means p25 <= score <= p75 at the paper's nearest evaluation step at or below `step`; below and
    above are outside that interquartile range. Without a score, only the reference is filled in. A score
    after some training whose nearest paper evaluation is step 0 (Atari before 100k) is not placed: beating
    untrained agents says nothing about learning as the paper does.
    """
    ref = curve(env)
    name = ref.name if ref is not None else paper_env_name(env)
    step = int(step) if step is not None else 0
    if ref is None:
        return Placement(name, step, score=score)
    i = ref.index_at(step)
    if i is None:
        return Placement(name, step, score=score)
    mean, p25, p75 = float(ref.mean[i]), float(ref.p25[i]), float(ref.p75[i])
    where = None
    if ref.steps[i] == 0 < step and i + 1 < len(ref.steps):
        return Placement(name, step, 0, mean, p25, p75, score, None, int(ref.steps[i + 1]))
    if score is not None:
        where = "below" if score < p25 else "above" if score > p75 else "inside"
    return Placement(name, step, int(ref.steps[i]), mean, p25, p75, score, where)


def protocol_note(place: Placement, discrete: bool, deterministic: bool) -> str:
    """What to add where `place` compares a score with the paper: '' when it was measured the paper's way.

    The paper evaluates discrete actions by sampling `argmax(gumbel_softmax(pre))`; a score of `argmax(pre)`
    is another policy's, and says so on the line that compares it.
    """
    if place.has_reference and discrete and deterministic:
        return " (measured with argmax(pre); the paper samples discrete actions, so this is not its protocol)"
    return ""


# --------------------------------------------------------------------------------------------- normalisation


def benchmark(env: Any) -> str | None:
    """'gym', 'dmc', 'dmc-visual' or 'atari' for an env the paper has; None otherwise."""
    name = paper_env_name(env)
    if name is None:
        return None
    if name.startswith("Dmc-visual-"):
        return "dmc-visual"
    return name.split("-")[0].lower()


def normaliser(env: Any) -> tuple[float, float] | None:
    """(offset, scale) with normalised = (return - offset) / scale, or None where no constants are bundled.

    DMC: return / 1000. Atari: human-normalised, (return - random) / (human - random), with the standard
    Atari-57 human and random scores. Gym MuJoCo: none (the paper normalises by TD3's scores; not bundled).
    """
    kind = benchmark(env)
    if kind in ("dmc", "dmc-visual"):
        return 0.0, DMC_MAX
    if kind == "atari":
        game = paper_env_name(env).removeprefix("Atari-").removesuffix("-v5")
        ref = _data("atari_human_random.json")["games"].get(game)
        if ref is not None:
            return ref["random"], ref["human"] - ref["random"]
    return None


def normalise(env: Any, returns: Any) -> np.ndarray | None:
    """Normalised scores for `returns` of `env` (see `normaliser`); None when no constants are known."""
    norm = normaliser(env)
    if norm is None:
        return None
    return (np.asarray(returns, dtype=np.float64) - norm[0]) / norm[1]
