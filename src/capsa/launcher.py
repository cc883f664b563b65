"""capsa's commands without ``site``: a launcher script for ``capsa`` and ``capsa-runtime``.

``pip install`` writes console scripts that start the interpreter with ``site``, which
reads the virtual environment's ``.pth`` files (and Debian's ``sitecustomize``): about 2
ms of a cold ``capsa ps`` that takes 20, and of a ``capsa-runtime run`` benchmarked
against runc. ``scripts/setup.sh`` replaces both scripts with this launcher: ``python
-S``, capsa's directory put on ``sys.path`` by hand, then the command's entry point.
``capsa-runtime`` needs nothing but the standard library; the ``capsa`` commands that
need the environment's packages (click for all but the fast listings,
``capsa.cli.fastpath``) add them first (``with_site``). Running ``pip install -e .``
again brings pip's scripts back: slower, same behaviour.

Usage: ``python -m capsa.launcher PATH MODULE:FUNCTION`` writes the launcher to PATH (for
the interpreter running this, and the capsa it imports).
"""

from __future__ import annotations

import os
import sys

MAX_SHEBANG = 127  # bytes the kernel reads of a ``#!`` line (BINPRM_BUF_SIZE - 1)

TEMPLATE = """#!{python} -S
# capsa's launcher (python -m capsa.launcher): starts without site, see that module
import sys
sys.path.append({package_dir!r})
from {module} import {function}
sys.exit({function}())
"""
CAPSA = "capsa.cli.entry:main"


def with_site() -> None:
    """Add the environment's packages (``site``) if the launcher left them out."""
    if sys.flags.no_site and not _added:
        import site  # with -S, importing it does nothing by itself

        site.main()
        _added.append(True)


_added: list[bool] = []


def render(python: str, package_dir: str, entry: str = CAPSA) -> str | None:
    """The launcher's text for ``entry`` (``module:function``), or None if ``python``
    is too long for a ``#!`` line."""
    module, _, function = entry.partition(":")
    if not (module and function.isidentifier()):
        raise ValueError(f"entry point {entry!r} is not module:function")
    text = TEMPLATE.format(python=python, package_dir=package_dir, module=module, function=function)
    if len(text.split("\n", 1)[0].encode()) > MAX_SHEBANG:
        return None
    return text


def install(path: str, entry: str = CAPSA) -> bool:
    """Write the launcher of ``entry`` to ``path`` (atomically, executable); False if it
    cannot be (a ``#!`` line too long: pip's script, which handles that, stays)."""
    import capsa

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(capsa.__file__)))
    text = render(sys.executable, package_dir, entry)
    if text is None:
        return False
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return True


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m capsa.launcher PATH MODULE:FUNCTION")
    sys.exit(0 if install(sys.argv[1], sys.argv[2]) else 1)
