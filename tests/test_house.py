"""The shape of the house, checked from the source (benchmarks/house.py reads it without running it):
no import loops counting imports inside functions, no module far over 400 lines, no import of our own
modules inside a function unless that module loads a heavy library, and docs/design.md's tree naming
every module."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 420  # "about 400"


def _house():
    spec = importlib.util.spec_from_file_location("house", REPO / "benchmarks" / "house.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_loops_and_no_lazy_imports_of_our_own_light_modules():
    figures = _house().house()
    assert figures["_loops"] == [], figures["_loops"]
    assert figures["function_level_project_imports"] == 0, figures["_lazy_own_by_module"]


def test_no_module_is_far_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _house().modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def _tree_paths(text: str) -> set[str]:
    """The file paths of the tree under "## The house": folders end in "/", two spaces a level."""
    block = text.split("## The house", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    folders: list[str] = []
    paths = set()
    for line in block.splitlines():
        m = re.match(r"( *)([\w.]+/?)", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        del folders[depth:]
        if m.group(2).endswith("/"):
            folders.append(m.group(2))
        else:
            paths.add("".join(folders) + m.group(2))
    return paths


def test_the_design_documents_tree_names_every_module_and_no_other():
    shown = _tree_paths((REPO / "docs" / "design.md").read_text())
    files = {str(p.relative_to(REPO)) for folder in _house().FOLDERS for p in (REPO / folder).rglob("*.py")
             if "__pycache__" not in p.parts and p.name != "__init__.py"}
    assert sorted(files - shown) == [], "modules missing from docs/design.md's tree"
    assert sorted(p for p in shown - files if p.endswith(".py")) == [], "the tree names modules that are gone"
