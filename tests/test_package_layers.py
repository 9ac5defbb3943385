"""The package's layering, read from its source: the store's layout belongs to ``project/``
alone, the review package has no import circle, and no module imports the package face."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_sam2_track

PACKAGE = Path(napari_sam2_track.__file__).parent
#: Substrings of the project's layout paths (tables, undo snapshots, segment parts).
LAYOUT_PATHS = ("objects/", "undo/", "segment_parts")


def modules(under: str = "") -> dict[str, ast.Module]:
    """``{path relative to the package: parsed module}`` of every module below ``under``."""
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p))
            for p in sorted((PACKAGE / under).rglob("*.py"))}


def docstrings(tree: ast.Module) -> set[int]:
    """``id()`` of the docstring constants of a module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def imported(node: ast.ImportFrom, path: str) -> str:
    """The absolute dotted module an ``ImportFrom`` in the module at ``path`` names."""
    if not node.level:
        return node.module or ""
    parts = ["napari_sam2_track", *Path(path).with_suffix("").parts]
    base = parts[: len(parts) - node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def test_only_the_project_package_knows_the_store_layout():
    problems = []
    for path, tree in modules().items():
        if path.startswith("project/"):
            continue
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if any(p in node.value for p in LAYOUT_PATHS):
                    problems.append(f"{path}:{node.lineno}: layout path in {node.value!r}")
            elif isinstance(node, ast.ImportFrom):
                module = imported(node, path)
                if module == "napari_sam2_track.project._chunks":
                    problems.append(f"{path}:{node.lineno}: imports project._chunks")
                if module.startswith("napari_sam2_track.project.") and any(
                        a.name.startswith("_") for a in node.names):
                    problems.append(f"{path}:{node.lineno}: imports a private name of {module}")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name == "store":
                    problems.append(f"{path}:{node.lineno}: store.{node.attr}")
    assert problems == []


def test_the_review_package_has_no_import_circle():
    graph: dict[str, set[str]] = {}
    for path, tree in modules("review").items():
        name = "napari_sam2_track." + path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        graph[name] = set()
        for node in ast.walk(tree):  # imports inside functions count too
            if isinstance(node, ast.ImportFrom):
                module = imported(node, path)
                graph[name] |= {module, *(f"{module}.{a.name}" for a in node.names)}
    review = set(graph)
    edges = {m: {d for d in deps if d in review and d != m and not d.endswith("review")}
             for m, deps in graph.items() if not m.endswith("review")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [m for m in sorted(edges) if reaches(m, m, {m})] == []


def test_no_module_imports_the_version_from_the_package_face():
    from napari_sam2_track._version import __version__

    assert napari_sam2_track.__version__ == __version__
    for path, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and imported(node, path) == "napari_sam2_track":
                assert "__version__" not in {a.name for a in node.names}, path
