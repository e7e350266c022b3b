"""mkdocs hook: lay the package's sources out as they are installed, for the API reference.

pyproject.toml maps the top-level `training/` and `zoo/` folders into `mrq_agents` ([tool.setuptools.package-dir]),
which an import resolves and griffe (mkdocstrings' reader) does not. Before the build, the Python files of each
mapped folder are copied to build/api-src/<package path> (build/ is ignored by git), and mkdocs.yml points
mkdocstrings there, so `::: mrq_agents.training.trainer` documents the module a user imports.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
API_SRC = ROOT / "build" / "api-src"  # mkdocs.yml: plugins.mkdocstrings.handlers.python.paths


def package_dirs() -> dict[str, Path]:
    """{'mrq_agents': ROOT/'mrq_agents', 'mrq_agents.training': ROOT/'training', ...} from pyproject.toml."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {package: ROOT / folder for package, folder in setuptools["package-dir"].items()}


def lay_out(dest: Path = API_SRC) -> None:
    """Copy every mapped folder's .py files (links followed, sub-packages included) to dest/<package path>."""
    shutil.rmtree(dest, ignore_errors=True)
    for package, folder in sorted(package_dirs().items()):  # parents before the packages mapped inside them
        target = dest.joinpath(*package.split("."))
        for source in folder.rglob("*.py"):
            relative = source.relative_to(folder)
            if "__pycache__" in relative.parts:
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / relative)


def on_startup(command: str, dirty: bool) -> None:
    lay_out()


def on_pre_build(config) -> None:
    lay_out()  # `mkdocs serve` rebuilds after an edit: copy again
