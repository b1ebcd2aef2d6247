"""The package follows the pipeline: a stage imports only from the stages before it (``e3hier/__init__.py``)."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

#: The stages in pipeline order; ``workflow`` and ``plan`` may import any stage before them.
STAGES = (
    "structures",
    "dft",
    "data",
    "network.fused",
    "network",
    "training",
    "analysis",
    "predict",
    "workflow",
    "plan",
)


def stage(module: str) -> int:
    """A module's place in ``STAGES`` (its longest matching stage); -1 for the package's shared modules
    (``e3hier.io``, ``e3hier.run_record``, ``e3hier.script_imports``), which come before every stage."""
    name = module.removeprefix("e3hier").lstrip(".")
    matches = [k for k, s in enumerate(STAGES) if name == s or name.startswith(s + ".")]
    return max(matches, key=lambda k: len(STAGES[k])) if matches else -1


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every e3hier module that ``path`` (module ``name``) imports, in functions too;
    ``from a import b`` names ``a.b`` (it may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, module) for line, module in found if module.split(".")[0] == "e3hier"]


def back_imports(root: Path) -> list[str]:
    """Every import of the package under ``root`` (the folder holding ``e3hier/``) that goes back up the pipeline."""
    problems = []
    for path in sorted((root / "e3hier").rglob("*.py")):
        name = module_name(path, root)
        for line, module in imported(path, name):
            if stage(module) > stage(name):
                problems.append(f"{path.relative_to(root)}:{line}: {name} ({STAGES[stage(name)]}) imports {module}")
    return problems


def test_imports_only_go_down_the_pipeline():
    assert back_imports(ROOT) == []


def test_every_module_is_in_a_stage_or_shared():
    shared = {"e3hier", "e3hier.config", "e3hier.io", "e3hier.run_record", "e3hier.script_imports"}
    package = ROOT / "e3hier"
    outside = [module_name(p, ROOT) for p in package.rglob("*.py") if stage(module_name(p, ROOT)) < 0]
    assert set(outside) <= shared


@pytest.mark.parametrize(
    "module, source",
    [
        ("data/layout.py", "from e3hier.training.grid import GridPoint\n"),  # data → training
        ("network/fused/layers.py", "def f():\n    from e3hier.network import model\n"),  # fused → network
        ("io.py", "import e3hier.structures.xyz\n"),  # a shared module → a stage
        ("dft/fit.py", "from ..data import metric\n"),  # relative
    ],
)
def test_a_back_import_is_found(tmp_path, module, source):
    path = tmp_path / "e3hier" / module
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert len(back_imports(tmp_path)) == 1
