"""The repository's front matter: the package's tests do not depend on the study scripts of studies/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"


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
