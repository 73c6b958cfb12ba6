"""The service's layout (issue 14): no import loop, no importlib indirection, routes that never import the
app, and no function over 80 lines. Read from the source with ``ast``: every import statement counts,
those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
SERVICE = SRC / "lookalike" / "service"
MAX_LINES = 80


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def service_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SERVICE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        out |= {n for n in names if n in known}
    return out


def test_the_service_has_no_import_loop():
    mods = service_modules()
    graph = {m: imported(p, set(mods)) - {m} for m, p in mods.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    loops = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert loops == [], loops


def test_routes_state_and_requests_never_import_the_app():
    mods = service_modules()
    for name, path in mods.items():
        if name.startswith(("lookalike.service.routes", "lookalike.service.state", "lookalike.service.requests")):
            assert "lookalike.service.app" not in imported(path, set(mods)), name


def test_no_importlib_indirection_in_the_service():
    for path in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute | ast.Name):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                assert name not in ("import_module", "__import__"), f"{path}:{node.lineno}"


def test_no_function_of_a_front_end_is_over_80_lines():
    """The front ends (the service and every CLI module) only parse, call one library function and show."""
    long = []
    for path in [*SERVICE.rglob("*.py"), *(SRC / "lookalike" / "cli").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
