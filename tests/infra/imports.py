"""What a deployable's entry modules import, followed through the project's own packages."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import REPO_ROOT

SOURCE = REPO_ROOT / "src"
TOOLS = REPO_ROOT / "tools"


@dataclass
class ImportClosure:
    """The project modules reached (with their files) and the third-party packages named."""

    modules: dict[str, Path] = field(default_factory=dict)
    third_party: set[str] = field(default_factory=set)


def imports_of(path: Path) -> set[str]:
    """Every absolute import in a module, those deferred into functions included.

    Handlers import some modules where they are used (to keep the cold start short): those run
    on Lambda just the same, so they must be deployed too. Relative imports are resolved.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(_root_of(path)).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _root_of(path: Path) -> Path:
    return SOURCE if path.is_relative_to(SOURCE) else TOOLS


def project_file(name: str) -> Path | None:
    """The source file of a project module (``None``: a name inside a module, not a module)."""
    for root in (SOURCE, TOOLS):
        base = root.joinpath(*name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


PROJECT_PACKAGES = frozenset({"callflow", "callflow_functions", "callflow_bridge", "callflow_dev"})


def closure(entry_modules: tuple[str, ...]) -> ImportClosure:
    """Everything the entry modules import, transitively through project modules (and their
    parent packages, which Python imports first)."""
    found = ImportClosure()
    pending = list(entry_modules)
    while pending:
        name = pending.pop()
        top = name.split(".")[0]
        if top in PROJECT_PACKAGES:
            source = project_file(name)
            if source is None or name in found.modules:
                continue
            found.modules[name] = source
            pending.extend(imports_of(source))
            parent = name.rpartition(".")[0]
            if parent:
                pending.append(parent)
        elif top and top not in sys.stdlib_module_names and top != "__future__":
            found.third_party.add(top)
    return found
