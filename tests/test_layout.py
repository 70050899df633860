"""The package's rooms and which way imports may point (firmware/ARCHITECTURE.md, "Layout").

Read from the source with `ast`, so a function-local import counts as much as a top-level one:
no import circles between modules, and no room imports a room above it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "firmware" / "grooverack"

# lowest first: a module may import its own room and the rooms below it
LAYERS: list[set[str]] = [
    {"voices", "errors", "storage", "resources"},
    {"config"},
    {"boards", "drivers", "emulators", "engine", "model", "calibration", "state", "controls",
     "drums", "onsets"},
    {"runtime"},
    {"backends"},
    {"sim"},
    {"web"},
    {"commands"},
    {"cli", "__main__", "__init__"},
]
TRAINING = "training"  # beside the runtime: may import the runtime's lower rooms, never the reverse


def room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def level(name: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if name in rooms:
            return i
    if name == TRAINING:
        return LAYERS.index(next(r for r in LAYERS if "runtime" in r))  # as high as runtime
    raise AssertionError(f"room {name!r} is not in tests/test_layout.py LAYERS")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


@cache
def trees() -> tuple[tuple[Path, ast.Module], ...]:
    """Every source file of the package, parsed once for all the tests here."""
    return tuple((path, ast.parse(path.read_text(encoding="utf-8")))
                 for path in sorted(PKG.rglob("*.py")))


@cache
def imports() -> dict[str, frozenset[str]]:
    """module -> grooverack modules it imports (anywhere in the file, TYPE_CHECKING included)."""
    out: dict[str, frozenset[str]] = {}
    for path, tree in trees():
        name = module_name(path)
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "grooverack":
                    found |= {f"grooverack.{a.name}" if (PKG / f"{a.name}.py").exists()
                              or (PKG / a.name).is_dir() else "grooverack" for a in node.names}
                elif node.module.startswith("grooverack."):
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("grooverack.")}
        out[name] = frozenset(m for m in found if m != name)
    return out


def test_every_room_has_a_place():
    for module in imports():
        level(room(module))


def test_no_upward_imports():
    bad = []
    for module, targets in imports().items():
        here = room(module)
        for target in targets:
            there = room(target)
            if there == here:
                continue
            if here != TRAINING and there == TRAINING:
                bad.append(f"{module} -> {target} (the runtime never imports training)")
            elif level(there) > level(here):
                bad.append(f"{module} -> {target}")
    assert not bad, "imports pointing up:\n  " + "\n  ".join(sorted(bad))


def test_no_import_circles():
    graph = imports()
    modules = set(graph)

    def resolve(target: str) -> str | None:  # `from grooverack.x import y`: x, or the module x.y
        return target if target in modules else None

    edges = {m: {t for t in map(resolve, ts) if t} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    # a package's __init__ importing its own modules is not a circle
    cycles = [c for c in cycles if not all(x.startswith(c[0]) or c[0].startswith(x) for x in c)]
    assert not cycles, "import circles:\n  " + "\n  ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("room_name", ["engine", "model", "onsets", "controls"])
def test_engine_and_model_stay_pure(room_name):
    """The engine, the model runner and the onset detector import no back end, board, driver or
    sim code (the engine takes its typed controls from `controls.py`, pure itself)."""
    allowed = {"voices", "errors", "storage", "resources", "config", "engine", "model", "onsets"}
    if room_name == "engine":
        allowed.add("controls")
    bad = [f"{m} -> {t}" for m, ts in imports().items() if room(m) == room_name
           for t in ts if room(t) not in allowed]
    assert not bad, bad


WEB_STACK = ("starlette", "uvicorn", "websockets", "httpx")


def test_only_the_web_room_imports_the_web_stack():
    """Starlette and uvicorn (the `web` extra) stay out of the runtime core: only `web/` imports
    them at the top, `commands/web.py` inside its `run`."""
    bad = []
    for path, tree in trees():
        name = module_name(path)
        for node in ast.walk(tree):
            found = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if not any(f.split(".")[0] in WEB_STACK for f in found):
                continue
            top_level = node in tree.body
            if room(name) == "web" or (name == "grooverack.commands.web" and not top_level):
                continue
            bad.append(f"{name}: {', '.join(found)}")
    assert not bad, bad


def test_drums_stay_pure():
    """The drum voices are numpy and the voice names only: no I/O, no other room of ours."""
    bad = [f"{m} -> {t}" for m, ts in imports().items() if room(m) == "drums"
           for t in ts if room(t) not in {"voices", "drums"}]
    assert not bad, bad
    for path in (PKG / "drums").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        assert names <= {"__future__", "collections", "dataclasses", "math", "numpy",
                         "grooverack"}, f"{path.name}: {sorted(names)}"
