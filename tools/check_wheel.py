"""Maintainer tool (run by .ci/run): a built wheel carries the zoo's index, not its agents.

    python tools/check_wheel.py dist/mrq_agents-0.1.0-py3-none-any.whl

Prints one line per problem and exits 1 when the wheel is over 5 MB or holds a .safetensors, .onnx or .mp4 file
(the zoo's agents live on the Hub; PyPI refuses files over 100 MB). Prints the wheel's size otherwise.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

LIMIT_BYTES = 5_000_000
AGENT_FILES = (".safetensors", ".onnx", ".mp4")


def problems(wheel: Path) -> list[str]:
    """What is wrong with the wheel at `wheel` (empty when nothing is)."""
    found = []
    size = wheel.stat().st_size
    if size > LIMIT_BYTES:
        found.append(f"{wheel.name} is {size / 1e6:.1f} MB, over the {LIMIT_BYTES / 1e6:g} MB limit")
    with zipfile.ZipFile(wheel) as archive:
        found += [f"{wheel.name} holds {name}" for name in archive.namelist() if name.endswith(AGENT_FILES)]
    return found


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: python tools/check_wheel.py WHEEL [WHEEL ...]")
        return 2
    failed = False
    for path in map(Path, paths):
        found = problems(path)
        for line in found:
            print(f"error: {line}")
        if not found:
            print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, no agent files")
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
