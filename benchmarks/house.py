"""The shape of the house, as one JSON object: modules, their sizes, import loops, lazy imports.

Reads the source (no imports run), maps each top-level folder to its package the way
``pyproject.toml``'s package-dir does, and builds the graph of the project's own imports,
counting imports inside functions (those under ``if TYPE_CHECKING:`` are left out: they never
run). A loop is a strongly connected component of more than one module. A function-level import of
one of our modules that itself loads a heavy library when imported (torch, lancedb, ...) is counted
apart from the other function-level project imports: that laziness is for the heavy library.

    python benchmarks/house.py            # the figures
    python benchmarks/house.py --loops    # and each loop's modules
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# folder -> package, as in pyproject.toml's [tool.setuptools.package-dir]
FOLDERS = {
    "pinembed": "pinembed",
    "embedders": "pinembed.embedders",
    "ingestion": "pinembed.ingestion",
    "store": "pinembed.store",
    "cli": "pinembed.cli",
    "training": "pinembed.training",
    "serve": "pinembed.serve",
}
# third-party libraries heavy enough that importing them inside a function is right
HEAVY = {"torch", "torchvision", "open_clip", "transformers", "lancedb", "lance", "ray", "PIL",
         "pillow_heif", "decord", "av", "pyarrow", "numpy", "uvicorn", "starlette", "obstore",
         "torchcodec", "safetensors", "huggingface_hub", "pandas", "multipart", "rich", "faiss",
         "playwright", "boto3", "botocore"}
# of those, the ones slow to import (a tenth of a second to seconds: `pinembed --help` takes 0.17 s of
# CPU without them, 0.6 s with numpy and pyarrow alone): a module of ours that imports one at its top
# is heavy to import too, and importing it inside a function is laziness for that library
SLOW = {"torch", "torchvision", "open_clip", "transformers", "lancedb", "lance", "ray", "decord", "av",
        "torchcodec", "playwright", "pandas", "safetensors", "huggingface_hub", "numpy", "pyarrow", "PIL",
        "starlette", "uvicorn"}  # the web stack: `pinembed --help` must not load a server


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts]) if parts else package
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str]]:
    """(target module, where) for each import of the project's modules; where is top, function or typing."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, str]] = []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.body:
                    visit_one(sub, "typing")
                for sub in child.orelse:
                    visit_one(sub, where)
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and where == "top":
                here = "function"
            visit_one(child, here)

    def visit_one(child: ast.AST, where: str) -> None:
        if isinstance(child, ast.Import):
            for alias in child.names:
                out.append((alias.name, where))
        elif isinstance(child, ast.ImportFrom):
            mod = resolve(child)
            for alias in child.names:
                sub = f"{mod}.{alias.name}"
                out.append((sub if sub in known else mod, where))
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and where == "top":
            visit(child, "function")
        else:
            visit(child, where)

    visit(tree, "top")
    return out


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
                continue
            if nxt not in index:
                index[nxt] = low[nxt] = counter
                counter += 1
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(sorted(graph[nxt]))))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
    return comps


def _heavy(module: str, heavy_top: set[str]) -> bool:
    """Whether importing ``module`` loads a slow library: it, or a package above it (whose
    ``__init__`` runs first), imports one at its top."""
    parts = module.split(".")
    return any(".".join(parts[:i]) in heavy_top for i in range(1, len(parts) + 1))


def house() -> dict:
    """The figures of the house."""
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    top_own: dict[str, set[str]] = {m: set() for m in mods}
    heavy_top: set[str] = set()
    found_imports = {name: imports(name, path, known) for name, path in mods.items()}

    def own_module(target: str) -> str | None:
        hit = target
        while hit not in known and "." in hit:
            hit = hit.rpartition(".")[0]
        return hit if hit in known else None

    for name, found in found_imports.items():
        for target, where in found:
            hit = own_module(target)
            if hit is not None and where != "typing" and hit != name:
                graph[name].add(hit)
                if where == "top":
                    top_own[name].add(hit)
            if hit is None and where == "top" and target.split(".")[0] in SLOW:
                heavy_top.add(name)
    changed = True  # a module that imports a heavy one at its top is heavy to import too
    while changed:
        changed = False
        for name, deps in top_own.items():
            if name not in heavy_top and any(_heavy(d, heavy_top) for d in deps):
                heavy_top.add(name)
                changed = True
    lazy_own = lazy_wrapping = lazy_heavy = lazy_other = 0
    lazy_own_at: list[str] = []
    for name, found in found_imports.items():
        for target, where in found:
            if where != "function":
                continue
            hit = own_module(target)
            if hit is not None and _heavy(hit, heavy_top):
                lazy_wrapping += 1  # a module of ours that loads torch, lancedb... when imported
            elif hit is not None or target.startswith("pinembed"):
                lazy_own += 1
                lazy_own_at.append(name)
            elif target.split(".")[0] in HEAVY:
                lazy_heavy += 1
            else:
                lazy_other += 1
    sizes = {name: len(path.read_text().splitlines()) for name, path in mods.items()}
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
    found = loops(graph)
    return {
        "modules": len(mods),
        "lines": sum(sizes.values()),
        "largest": {name: lines for name, lines in largest},
        "over_400_lines": sorted(name for name, lines in sizes.items() if lines > 400),
        "import_loops": len(found),
        "modules_in_loops": sum(len(c) for c in found),
        "function_level_project_imports": lazy_own,
        "function_level_imports_of_heavy_project_modules": lazy_wrapping,
        "function_level_heavy_imports": lazy_heavy,
        "function_level_other_imports": lazy_other,
        "_loops": found,
        "_lazy_own_by_module": {m: lazy_own_at.count(m) for m in sorted(set(lazy_own_at))},
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", action="store_true", help="also list each loop and the lazy imports by module")
    args = parser.parse_args(argv)
    figures = house()
    if not args.loops:
        figures = {k: v for k, v in figures.items() if not k.startswith("_")}
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
