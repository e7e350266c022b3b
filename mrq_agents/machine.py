"""The machine an evaluation ran on: what decides its float32 rounding (`fingerprint`), and how it reads on a card.

An evaluation is deterministic on one machine: the same files, seed and software give the same returns, bit for
bit. Across machines it is not: float32 products round differently on other vector units (AVX2, AVX-512, ARM
NEON/SVE) and in other library versions, and a physics episode of hundreds of steps carries a difference in the
last bit of an action into a visibly different trajectory. Seen: HalfCheetah-v4's zoo agent scores 8305.9 on an
AMD EPYC (AVX2 or AVX-512 alike) and 8345.4 on an Intel Xeon (AVX-512, as a user reported it)
from the same files: the vendor counts
as well as the vector unit, since the math libraries choose their kernels by both.

So a recorded score is reproduced in two ways (`tests/test_zoo.py`, by `tests/helpers/scores.py`):
- on a machine like the one that recorded it (same `fingerprint` but for the CPU's name): to 6 significant digits;
- elsewhere: each episode may play out as another draw of the agent's returns, so the two means differ like the
  means of two independent samples. Their difference must lie within four standard errors,
  sqrt(std_a^2 / n_a + std_b^2 / n_b), which a correct agent exceeds with probability about 6e-5 (normal
  returns); a wrong file, weight or env misses by far more.
"""

from __future__ import annotations

import platform
from importlib import metadata

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


def describe(print_: dict[str, str] | None) -> str:
    """'x86_64 with AVX2 (AMD EPYC 7B13), torch 2.13.0, MuJoCo 3.3.0' for a card; 'an unrecorded machine' if None."""
    if not print_:
        return "an unrecorded machine"
    return (
        f"{print_['arch']} with {print_['vector_unit'].upper()} ({print_['cpu']}), {print_['backend']}, "
        f"MuJoCo {print_['mujoco']}"
    )
