"""The machine an evaluation ran on, and how far the same files may score elsewhere.

An evaluation is deterministic on one machine: the same files, seed and software give the same returns, bit for
bit. Across machines it is not: float32 products round differently on other vector units (AVX2, AVX-512, ARM
NEON/SVE) and in other library versions, and a physics episode of hundreds of steps carries a difference in the
last bit of an action into a visibly different trajectory. Seen: HalfCheetah-v4's zoo agent scores 8305.9 on an
AMD EPYC (AVX2 or AVX-512 alike) and 8345.4 on an Intel Xeon (AVX-512, as a user reported it)
from the same files: the vendor counts
as well as the vector unit, since the math libraries choose their kernels by both.

So a recorded score is reproduced in two ways (`tests/test_zoo.py`):
- on a machine like the one that recorded it (same `fingerprint`): to 6 significant digits;
- elsewhere: each episode may play out as another draw of the agent's returns, so the two means differ like the
  means of two independent samples. Their difference must lie within `CROSS_MACHINE_Z` standard errors,
  sqrt(std_a^2 / n_a + std_b^2 / n_b), which a correct agent exceeds with probability about 6e-5 (normal
  returns); a wrong file, weight or env misses by far more.
"""

from __future__ import annotations

import math
import platform
from importlib import metadata
from typing import Any

CROSS_MACHINE_Z = 4.0  # standard errors of the difference of two means allowed between machines
SAME_MACHINE_REL = 1e-6  # 6 significant digits on a machine with the same fingerprint
DESCRIPTION_ONLY = ("cpu",)  # recorded for people; not part of what decides the rounding


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _vector_unit() -> str:
    """The widest vector instructions this CPU offers ('avx512', 'avx2', 'sve', 'neon', ...; Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return "unknown"
    for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("sve", "sve"), ("asimd", "neon"), ("sse2", "sse2")):
        if flag in flags:
            return name
    return "unknown"


def _cpuinfo(*keys: str) -> str | None:
    """The first /proc/cpuinfo value under one of `keys` (None where there is no such file or key)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in keys:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def fingerprint(backend: str, device: str = "cpu") -> dict[str, str]:
    """What decides an evaluation's float32 rounding here: CPU architecture and vector unit, the device and backend
    that act ('torch' or 'onnx') and the versions of it and of the simulators; plus the CPU's name, for people."""
    return {
        "arch": platform.machine(),
        "vendor": _cpuinfo("vendor_id", "CPU implementer") or "unknown",
        "vector_unit": _vector_unit(),
        "device": _device_name(device),
        "backend": f"torch {_version('torch')}" if backend == "torch" else f"onnxruntime {_version('onnxruntime')}",
        "gymnasium": _version("gymnasium"),
        "mujoco": _version("mujoco"),
        "dm_control": _version("dm_control"),
        "ale_py": _version("ale-py"),
        "numpy": _version("numpy"),
        "cpu": _cpuinfo("model name", "Model", "Hardware") or platform.processor() or "unknown",
    }


def _device_name(device: str) -> str:
    if not str(device).startswith("cuda"):
        return "cpu"
    import torch

    return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"


def same_machine(a: dict[str, str] | None, b: dict[str, str] | None) -> bool:
    """Whether two fingerprints round alike (their CPU names may differ); an unknown one never does."""
    if not a or not b:
        return False
    keys = (set(a) | set(b)) - set(DESCRIPTION_ONLY)
    return all(a.get(k) == b.get(k) for k in keys)


def describe(print_: dict[str, str] | None) -> str:
    """'x86_64 with AVX2 (AMD EPYC 7B13), torch 2.13.0, MuJoCo 3.3.0' for a card; 'an unrecorded machine' if None."""
    if not print_:
        return "an unrecorded machine"
    return (
        f"{print_['arch']} with {print_['vector_unit'].upper()} ({print_['cpu']}), {print_['backend']}, "
        f"MuJoCo {print_['mujoco']}"
    )


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
