"""Training precision: fp32 (the reference) or bf16 matrix products, chosen once per learner.

bf16 runs the matrix products and convolutions of every network forward (and so their backward) in bfloat16
through `torch.autocast`; master weights, optimizer state, gradients, losses (two-hot cross-entropy, MSE,
Huber), LayerNorm statistics, TD targets and priorities stay float32. `MRQLearner` enters `compute_context`
around its network forwards and casts their outputs to float32 before any loss: on fp32 that context does
nothing and the casts are no-ops, so the fp32 path runs exactly the code it ran before precision existed.

bf16 only pays where the hardware multiplies bf16 natively: AMX or AVX512-BF16 on the CPU, bf16 tensor cores
(compute capability 8.0 and newer) on CUDA. Elsewhere it is emulated and slower than fp32 (on an AVX2-only
CPU a 1280x512x512 product runs about 100x slower), so asking for it there is refused. `auto` is fp32 until
the learning-equivalence study of docs/precision.md has cleared bf16 on that hardware (AUTO_BF16).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ContextManager

import torch

from mrq_agents.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")

# Where `auto` picks bf16: only where docs/precision.md shows that learning is unchanged. The study has not yet
# run on hardware with fast bf16, so auto stays fp32 on every device type for now.
AUTO_BF16 = {"cpu": False, "cuda": False}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def fast_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` multiplies bf16 natively, and what it has (for messages and benchmark tables)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        return major >= 8, f"{name} (compute capability {major}.{minor})"
    try:  # torch's own probes of the CPU (private, so guarded), then the kernel's flags
        amx, avx512_bf16 = torch.cpu._is_amx_tile_supported(), torch.cpu._is_avx512_bf16_supported()
    except AttributeError:
        flags = _cpu_flags()
        amx, avx512_bf16 = "amx_bf16" in flags, "avx512_bf16" in flags
    units = [name for name, present in (("AMX", amx), ("AVX512-BF16", avx512_bf16)) if present]
    return bool(units), ("CPU with " + " and ".join(units)) if units else "CPU without AMX or AVX512-BF16"


def resolve_precision(requested: str, device: torch.device) -> str:
    """'auto' -> fp32 or bf16 for `device` (AUTO_BF16); 'bf16' where it would be emulated is a one-line error."""
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    fast, hardware = fast_bf16(device)
    if requested == "auto":
        return "bf16" if fast and AUTO_BF16.get(device.type, False) else "fp32"
    if requested == "bf16" and not fast:
        raise ConfigError(
            f"--precision bf16 needs native bf16 units, and this is a {hardware}: bf16 would be "
            "emulated and run many times slower than fp32; use --precision fp32 (or auto)"
        )
    return requested


def compute_context(precision: str, device: torch.device) -> ContextManager:
    """A fresh context for network forwards: autocast to bf16, or nothing for fp32. No weight-cast cache, so
    the same code can be captured in a CUDA graph."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ConfigError(f"the learner takes a resolved precision (fp32 or bf16), got {precision!r}")
