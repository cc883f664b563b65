"""capsa-runtime's start-up budget: its run path imports none of the heavy stdlib
modules it was freed from (each costs milliseconds of a run benchmarked against runc)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "argparse",
    "collections",
    "contextlib",
    "ctypes",
    "dataclasses",
    "enum",
    "functools",
    "inspect",
    "json",
    "re",
    "signal",
    "socket",
    "subprocess",
    "typing",
)
RUN_PATH = (
    "capsa.runtime.cli",
    "capsa.runtime.commands",
    "capsa.runtime.init",
    "capsa.runtime.exec",
    "capsa.runtime.foreground",
    "capsa.cgroups.v1",
    "capsa.cgroups.v2",
    "capsa.cgroups.planning",
    "capsa.cgroups.devices",
    "capsa.cgroups.devices_bpf",
    "capsa.linux.clone",
)


def test_the_run_path_imports_no_heavy_module() -> None:
    code = (
        f"import sys\nfor m in {RUN_PATH!r}: __import__(m)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    # -I -S: no site hooks (a .pth may import anything); capsa from this test's path
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n{code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == []
