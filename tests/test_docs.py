"""The repository's front matter: a short README whose set-up lines and zoo table stay true, CI that builds the
documentation site, and package tests that do not depend on the study scripts of studies/."""

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
README = ROOT / "README.md"
SETUP_LINES = [  # the README's first code block: .ci/run runs the second line's test command
    'pip install -e ".[train]" && mrq train Pendulum-v1 --preset small --steps 5000 --out runs/pendulum',
    'pip install -e ".[train,test]" && pytest',
]


def test_readme_is_a_short_front_page():
    """A front page, as the field's READMEs are (Stable-Baselines3 16 KB, CleanRL 15 KB, TD-MPC2 9 KB): the
    depth lives in docs/."""
    size = len(README.read_bytes())
    assert size <= 12 * 1024, f"README.md is {size:,} bytes, over 12 KB: move the detail into docs/"


def test_readme_opens_with_the_two_setup_lines():
    block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S)
    assert block is not None and block.group(1).splitlines()[:2] == SETUP_LINES


def test_ci_runs_the_readme_test_command_and_the_strict_docs_build():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[train,test]"' in ci and "\npytest\n" in ci
    assert "mkdocs build --strict" in ci


def test_readme_zoo_table_matches_the_manifest():
    """Every manifest entry has its row, with the score it was measured at (the docs' gallery is generated)."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    entries = json.loads((ROOT / "zoo" / "manifest.json").read_text())["entries"]
    assert len(rows) == len(entries)
    for entry in entries:
        row = next((r for r in rows if f"| `{entry['repo_id']}` |" in r), None)
        assert row is not None, f"README's zoo table has no row for {entry['repo_id']}"
        score = entry["score"]
        assert f"| {entry['steps']:,} | {score['mean']:.1f} ± {score['std']:.1f}" in row, row
        preset = entry["preset"] if entry["precision"] == "fp32" else f"{entry['preset']}, {entry['precision']}"
        assert f"| {preset} |" in row, f"the row says the preset, and the precision where not fp32: {row}"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (of the module, a class or a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_no_test_imports_a_study_script():
    """Studies are finished (or pending) measurements, not the package: a test of the package imports none of
    them, by module name or by path (docstrings may name a study as the source of a number)."""
    scripts = {p.stem for p in STUDIES.glob("*.py")}
    assert scripts, "studies/ has no scripts: update this test"
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in scripts | {"studies"} for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {names}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if "studies" in node.value:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} names studies/ in {node.value!r}")
    assert not offenders, "\n".join(offenders)
