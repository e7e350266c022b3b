"""The import contract: imports run one way, from the command line down to the shared basics.

basics <- environments <- algorithm <- speed <- around a run <- training <- policy, export, hub <- sweep, report <- cli.
The algorithm's own layer holds MR.Q and nothing else: it may import the environments' spec and the basics, never
the fast path, video, the reference data or the training loop. Read from the source (every `import` and
`from ... import`, module level or inside functions), so a lazy import cannot hide an edge. docs/architecture.md
draws the same layers.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [  # lowest first; a module may import its own layer and the ones below
    ("basics", {"errors", "files", "deps", "device", "serialization"}),
    ("environments", {"envs", "rendering"}),
    ("algorithm", {"config", "functional", "networks", "replay", "learner", "precision"}),
    ("speed", {"fast", "threads"}),  # wraps the algorithm from outside; the learner does not know it
    ("around a run", {"episodes", "video", "machine", "paper", "model_folder"}),
    ("training", {"training"}),
    ("inference and sharing", {"policy", "export", "hub", "actor_torch", "actor_onnx", "zoo"}),
    ("many runs", {"sweep", "ray_sweep", "plan", "report"}),
    ("command line", {"cli", "display"}),
]


def module_files() -> dict[str, Path]:
    """Package module name (without `mrq_agents.`) -> its source file, as installed (training/ and zoo/ mapped)."""
    files = {}
    for folder, prefix in (("mrq_agents", ""), ("training", "training."), ("zoo", "zoo.")):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_symlink():  # mrq_agents/cli.py -> ../cli.py
                continue
            name = prefix + ".".join(path.relative_to(ROOT / folder).with_suffix("").parts)
            files[name.removesuffix(".__init__").removesuffix("__init__")] = path
    files["cli"] = ROOT / "cli.py"
    files.pop("", None)  # mrq_agents/__init__.py: the public face, re-exporting Policy
    return files


def imports_of(path: Path) -> set[str]:
    """The package modules `path` imports (names without `mrq_agents.`); `from package import module` counts as
    importing the module."""
    modules = set(module_files())
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [
                f"{node.module}.{a.name}"
                if f"{node.module}.{a.name}".removeprefix("mrq_agents.") in modules
                else node.module
                for a in node.names
            ]
        else:
            continue
        found |= {n.removeprefix("mrq_agents.") for n in names if n.startswith("mrq_agents.")}
    return found - {"__version__"}


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"mrq_agents.{module} is in no layer: add it to LAYERS in tests/test_architecture.py")


@pytest.mark.parametrize("module", sorted(module_files()))
def test_imports_run_one_way(module):
    own = layer_of(module)
    for imported in sorted(imports_of(module_files()[module])):
        assert layer_of(imported) <= own, (
            f"mrq_agents.{module} ({LAYERS[own][0]}) imports mrq_agents.{imported} ({LAYERS[layer_of(imported)][0]}), "
            "a layer above it"
        )


def test_every_module_has_a_layer():
    for module in module_files():
        layer_of(module)


def test_no_import_cycles():
    graph = {m: {i for i in imports_of(p) if i in module_files()} for m, p in module_files().items()}
    done, path = set(), []

    def visit(module):
        assert module not in path, "import cycle: " + " -> ".join(path[path.index(module) :] + [module])
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


@pytest.mark.parametrize("module", sorted(m for m in module_files() if layer_of(m) == layer_of("policy")))
def test_inference_imports_neither_training_nor_the_learner(module):
    """Acting and sharing need the networks, never the update: no training module, learner, replay or fast path."""
    updates = {"training", "learner", "replay", "fast"}
    assert not {i for i in imports_of(module_files()[module]) if i.split(".")[0] in updates}


def test_inference_loads_no_training_code():
    """What `from mrq_agents import Policy` loads to act: no training modules (and so no trainer, replay, logger)."""
    code = (
        "import sys, mrq_agents; from mrq_agents import Policy; "
        "print(sorted(m for m in sys.modules if m.startswith('mrq_agents.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
