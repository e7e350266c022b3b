"""Reproducing a score across machines (mrq_agents.machine, tests/helpers/scores.py): strict on the recording
machine's kind, a derived band elsewhere; checked on the numbers an Intel Xeon (AVX-512) measured for zoo entries
recorded on an AMD EPYC (AVX2)."""

import math

import pytest

from helpers.scores import CROSS_MACHINE_Z, cross_machine_tolerance, same_machine, score_disagreement
from mrq_agents.machine import describe, fingerprint

AMD = {
    "arch": "x86_64",
    "vendor": "AuthenticAMD",
    "vector_unit": "avx2",
    "device": "cpu",
    "backend": "torch 2.13.0",
    "mujoco": "3.3.0",
    "cpu": "AMD EPYC 7B13",
}
AMD_OTHER_MODEL = dict(AMD, cpu="AMD EPYC 7763")
XEON = dict(AMD, vendor="GenuineIntel", vector_unit="avx512", cpu="Intel Xeon Platinum 8481C")


def score(mean, std, machine, episodes=10):
    return {"mean": mean, "std": std, "episodes": episodes, "machine": machine}


def test_fingerprints():
    here = fingerprint("torch")
    assert same_machine(here, fingerprint("torch")) and not same_machine(here, fingerprint("onnx"))
    assert same_machine(AMD, AMD_OTHER_MODEL)  # the CPU's name is for people
    assert not same_machine(AMD, XEON) and not same_machine(AMD, None) and not same_machine(None, None)
    assert describe(AMD) == "x86_64 with AVX2 (AMD EPYC 7B13), torch 2.13.0, MuJoCo 3.3.0"


def test_tolerance_is_four_standard_errors_of_a_difference_of_means():
    # sqrt(50^2/10 + 30^2/10) = sqrt(340) = 18.439; 4 of them = 73.756; plus 1e-6 of the mean (0.008)
    band = cross_machine_tolerance(score(8000.0, 50.0, AMD), score(8010.0, 30.0, XEON))
    assert band == pytest.approx(4 * math.sqrt(340.0) + 0.008) and CROSS_MACHINE_Z == 4.0


@pytest.mark.parametrize(
    "recorded, measured",
    [
        (score(8305.897618960107, 50.424113269944264, AMD), score(8345.4, 50.4, XEON)),  # HalfCheetah: 39.5 < 90.2
        (score(963.0, 17.2, AMD), score(962.3, 17.2, XEON)),  # walker-walk: 0.7 < 30.8
        (score(1005.4, 14.012345, AMD), score(1005.4, 14.012399, XEON)),  # Hopper: std's 6th digit
    ],
)
def test_the_intel_numbers_pass_as_another_machine(recorded, measured):
    assert score_disagreement(recorded, measured) is None


def test_strict_on_the_recording_machine_kind():
    assert (
        score_disagreement(score(987.2122791272898, 0.86278449, AMD), score(987.2122781, 0.86278449, AMD_OTHER_MODEL))
        is None
    )  # 1e-9 apart
    problem = score_disagreement(score(8305.9, 50.4, AMD), score(8345.4, 50.4, AMD_OTHER_MODEL))
    assert "beyond 6 significant digits" in problem
    assert "std" in score_disagreement(score(1005.4, 14.0, AMD), score(1005.4, 14.1, AMD))


@pytest.mark.parametrize(
    "measured",
    [
        score(7000.0, 50.0, XEON),  # another agent
        score(8305.9, 50.4, XEON, 5),  # another protocol
        score(8305.9, 50.4, None, 5),
    ],
)
def test_what_no_machine_explains_fails(measured):
    assert score_disagreement(score(8305.9, 50.4, AMD), measured) is not None


def test_an_unrecorded_machine_gets_the_band():
    assert score_disagreement(score(8305.9, 50.4, None), score(8345.4, 50.4, AMD)) is None
    assert score_disagreement(score(8305.9, 50.4, None), score(8305.9 + 200, 50.4, AMD)) is not None
