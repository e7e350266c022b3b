"""Test helpers for the zoo on the Hub: put entries' files on the loopback Hub as `mrq zoo push` does, and run `mrq`
as an install that has the zoo's manifest but not its entries' folders (a wheel) does."""

import subprocess
import sys
from pathlib import Path

from mrq_agents import zoo
from mrq_agents.hub import UPLOAD_PATTERNS

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_ZOO = ROOT / "zoo"

# argv[1]: the folder that stands in for the installed zoo package's folder (no entry folders in it);
# argv[2:]: the `mrq` command line.
WHEEL_LIKE_MRQ = """
import sys
from pathlib import Path
from mrq_agents import zoo
zoo.ZOO_DIR = Path(sys.argv[1])
from mrq_agents.cli import main
sys.argv = ["mrq", *sys.argv[2:]]
main()
"""


def serve(hub, entries: list[dict]) -> None:
    """Commit each entry's checkout files (those `mrq zoo push` uploads) to its repo on `hub`."""
    for entry in entries:
        folder = CHECKOUT_ZOO / entry["folder"]
        hub.commit(entry["repo_id"], {p.name: p.read_bytes() for p in folder.iterdir() if p.name in UPLOAD_PATTERNS})


def mrq_without_entry_folders(args: list[str], env: dict, zoo_dir: Path, timeout: float = 300):
    """`mrq ARGS` in a fresh process whose zoo holds no entry folders (`zoo_dir` stands in for the package's)."""
    zoo_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", WHEEL_LIKE_MRQ, str(zoo_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def entry(env_id: str) -> dict:
    found = zoo.find_by_env(env_id)
    assert found is not None, env_id
    return found
