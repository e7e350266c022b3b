"""Whether a measured score reproduces a recorded one, on the same kind of machine or another (the rule
`mrq_agents.machine`'s docstring explains); tests/test_zoo.py applies it to every zoo entry."""

from __future__ import annotations

import math
from typing import Any

from mrq_agents.machine import DESCRIPTION_ONLY, describe

CROSS_MACHINE_Z = 4.0  # standard errors of the difference of two means allowed between machines
SAME_MACHINE_REL = 1e-6  # 6 significant digits on a machine with the same fingerprint


def same_machine(a: dict[str, str] | None, b: dict[str, str] | None) -> bool:
    """Whether two fingerprints round alike (their CPU names may differ); an unknown one never does."""
    if not a or not b:
        return False
    keys = (set(a) | set(b)) - set(DESCRIPTION_ONLY)
    return all(a.get(k) == b.get(k) for k in keys)


def cross_machine_tolerance(recorded: dict[str, Any], measured: dict[str, Any]) -> float:
    """The largest |difference of means| expected between machines (see the module docstring)."""
    standard_error = math.sqrt(
        recorded["std"] ** 2 / recorded["episodes"] + measured["std"] ** 2 / measured["episodes"]
    )
    return CROSS_MACHINE_Z * standard_error + SAME_MACHINE_REL * abs(recorded["mean"])


def score_disagreement(recorded: dict[str, Any], measured: dict[str, Any]) -> str | None:
    """None when `measured` reproduces `recorded` (dicts with mean, std, episodes, machine); else why not.

    Same fingerprint: mean and std to 6 significant digits. Another machine: the same number of episodes and a
    mean within `cross_machine_tolerance` (the std is not compared: one episode that plays out differently moves
    it far more than the mean).
    """
    if recorded["episodes"] != measured["episodes"]:
        return f"{measured['episodes']} episodes measured, {recorded['episodes']} recorded"
    if same_machine(recorded.get("machine"), measured.get("machine")):
        for key in ("mean", "std"):
            if not math.isclose(measured[key], recorded[key], rel_tol=SAME_MACHINE_REL, abs_tol=SAME_MACHINE_REL):
                return (
                    f"{key} {measured[key]!r} differs from the recorded {recorded[key]!r} beyond 6 significant "
                    f"digits on the machine kind that recorded it ({describe(recorded.get('machine'))})"
                )
        return None
    tolerance = cross_machine_tolerance(recorded, measured)
    if abs(measured["mean"] - recorded["mean"]) > tolerance:
        return (
            f"mean {measured['mean']:.4f} is {abs(measured['mean'] - recorded['mean']):.4f} from the recorded "
            f"{recorded['mean']:.4f}, beyond the {tolerance:.4f} that another machine's rounding explains "
            f"({CROSS_MACHINE_Z:g} standard errors)"
        )
    return None
