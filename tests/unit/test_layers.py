"""Imports point down only: an AST walk over every module of src/capsa."""

from __future__ import annotations

import ast
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
    "launcher": 0,  # imports nothing of capsa: writes the scripts, adds site
    "linux": 1,
    "oci": 1,
    "cgroups": 1,
    "runtime": 2,
    "store": 2,
    "engine": 3,
    "api": 4,
    "cli": 4,
    "client": 4,
    "compose": 4,
    "build": 4,
    "vm": 3,
}
# pairs on the same rank that must stay apart
FORBIDDEN = {("runtime", "store"), ("store", "runtime")}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
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
