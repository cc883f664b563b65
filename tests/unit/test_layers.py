"""Imports point down only: an AST walk over every module of src/capsa.

Imports are ``import``/``from`` statements and also modules named by string, as
``importlib.import_module`` and ``__import__`` take them (a string constant that is a
capsa module's dotted name counts as an import of it). Frontends go through the engine:
they import nothing of the kernel seam, the runtime or the store, and never reach into
the engine's context (``.ctx``); they read Docker's string syntaxes with ``capsa.syntax``,
never with a parser of the engine's."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "capsa"

# rank of each top-level package: a module may import only equal or lower ranks
RANK = {
    "errors": 0,
    "record": 0,
    "cleanup": 0,
    "progress": 0,
    "config": 0,
    "fastjson": 0,
    "enums": 0,
    "signames": 0,
    "fastexit": 0,
    "ptyio": 0,
    "launcher": 0,  # imports nothing of capsa: writes the scripts, adds site
    "linux": 1,
    "oci": 1,
    "cgroups": 1,
    "runtime": 2,
    "store": 2,
    "engine": 3,
    "syntax": 3,  # Docker's string syntaxes: engine types below, frontends above
    "api": 4,
    "cli": 4,
    "client": 4,
    "compose": 4,
    "build": 4,
    "vm": 3,
}
FRONTENDS = ("api", "cli", "client", "compose", "build")
BELOW_ENGINE = ("linux", "cgroups", "runtime", "store")
# pairs that must stay apart although their ranks allow it
FORBIDDEN = {("runtime", "store"), ("store", "runtime")} | {
    (frontend, lower) for frontend in FRONTENDS for lower in BELOW_ENGINE
}
MODULE_NAME = re.compile(r"capsa(\.[a-z_][a-z0-9_]*)+")


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    return _imports_of(ast.parse(path.read_text(), str(path)))


def _imports_of(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif (  # a name for importlib.import_module or __import__
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_NAME.fullmatch(node.value)
        ):
            out.append(node.value)
    return [m for m in out if m == "capsa" or m.startswith("capsa.")]


def test_imports_point_down() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        own = _package(".".join(rel.parts))
        if own in ("__init__", "py", ""):
            continue
        own = own.removesuffix(".py")
        for target in _imports(path):
            other = _package(target)
            if not other or other == own or other not in RANK or own not in RANK:
                continue
            if RANK[other] > RANK[own] or (own, other) in FORBIDDEN:
                problems.append(f"{rel}: imports {target}")
    assert not problems, "imports that point up:\n" + "\n".join(problems)


def test_every_package_is_ranked() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert (packages | modules) - set(RANK) == set()


def test_the_import_walk_sees_modules_named_by_string() -> None:
    tree = ast.parse(
        "import importlib\n"
        "importlib.import_module('capsa.runtime.exec')\n"
        "__import__('capsa.linux.mount')\n"
        "NAMES = ('capsa.store.content',)\n"
        "print('capsa is a word, not a module.')\n"
    )
    assert _imports_of(tree) == ["capsa.runtime.exec", "capsa.linux.mount", "capsa.store.content"]


def _frontend_nodes() -> Iterator[tuple[Path, ast.AST]]:
    """(file, node) for every AST node of the frontends' modules."""
    for frontend in FRONTENDS:
        for path in sorted((SRC / frontend).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                yield path.relative_to(SRC.parent), node


def test_frontends_do_not_reach_into_the_engine() -> None:
    """No ``engine.ctx``/``service.ctx``: the engine's context is its own business."""
    problems = [
        f"{path}:{node.lineno}"
        for path, node in _frontend_nodes()
        if isinstance(node, ast.Attribute) and node.attr in ("ctx", "_ctx")
    ]
    assert not problems, "frontends using the engine's context:\n" + "\n".join(problems)


def test_frontends_take_their_parsers_from_syntax() -> None:
    """A ``parse_*`` a frontend imports comes from ``capsa.syntax``, not from the engine."""
    problems = [
        f"{path}:{node.lineno}"
        for path, node in _frontend_nodes()
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("capsa.engine")
        and any(alias.name.startswith("parse") for alias in node.names)
    ]
    assert not problems, "frontends importing the engine's parsers:\n" + "\n".join(problems)


def test_modules_named_by_string_exist() -> None:
    """A module named in a string (monitors started with ``-m``, warm-up lists, lazy
    imports by name) must exist: a rename that misses one fails here, not at run time."""
    known = {
        ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in SRC.rglob("*.py")
    }
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and MODULE_NAME.fullmatch(node.value)
                and node.value not in known
            ):
                missing.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.value}")
    assert not missing, "strings naming no module:\n" + "\n".join(missing)
