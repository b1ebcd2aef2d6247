"""The package modules a workflow script runs: its imports, and theirs, found in the source.

A rule lists them as inputs (``code_inputs`` in ``rules/common.smk``), so editing a module reruns exactly
the jobs whose code changed; Snakemake itself only tracks the script file.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path


def code_files(script, package: str = "e3hier", root=None) -> list[str]:
    """The modules of ``package`` a workflow script runs: its imports, and theirs, found in the source
    (sorted absolute paths). A rule lists them as inputs, so editing a module reruns exactly the jobs
    whose code changed (Snakemake itself only tracks the script file).

    Parameters
    ----------
    script : path
        A workflow script, in ``scripts/`` beside the package, or any Python file.
    package : str, optional
        The package whose modules count.
    root : path, optional
        The folder that holds the package; by default the script's folder's parent (``scripts/`` sits
        beside the package).
    """
    script = Path(script).resolve()
    root = script.parent.parent if root is None else Path(root).resolve()
    found: set[Path] = set()
    pending = [script]
    while pending:
        for name in imported_modules(pending.pop(), package):
            for module in module_files(root, name):
                if module not in found:
                    found.add(module)
                    pending.append(module)
    return sorted(map(str, found))


def module_files(root: Path, name: str) -> list[Path]:
    """The files under ``root`` that importing the dotted ``name`` runs: the ``__init__.py`` of each
    package on the way (Python runs them first), then the module itself (``a/b.py`` or ``a/b/__init__.py``);
    an ``__init__.py`` of nothing but a docstring does not count (``runs_code``).

    Parameters
    ----------
    root : Path
        The folder that holds the package.
    name : str
        A dotted name as ``imported_modules`` gives it; one that is not a module (``a.b.function``) gives
        only the packages on its way.
    """
    parts = name.split(".")
    files = [root.joinpath(*parts[:k], "__init__.py") for k in range(1, len(parts))]
    files += [root.joinpath(*parts[:-1], parts[-1] + ".py"), root.joinpath(*parts, "__init__.py")]
    return [path for path in files if path.is_file() and (path.name != "__init__.py" or runs_code(path))]


@functools.cache
def runs_code(path: Path) -> bool:
    """Whether ``path`` holds more than its docstring. A package's ``__init__.py`` that only describes the
    package (``e3hier/__init__.py``, one per stage) runs nothing, so it is no code input: editing its prose
    reruns no job.

    Parameters
    ----------
    path : Path
        A Python file.
    """
    body = ast.parse(path.read_text()).body
    return not all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


@functools.cache
def imported_modules(path: Path, package: str) -> tuple[str, ...]:
    """Dotted names ``path`` imports from ``package`` (``from a.b import c`` gives a.b and a.b.c).

    Parameters
    ----------
    path : Path
        A Python file.
    package : str
        The package whose imports count.
    """
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == package]
    return tuple(names)
