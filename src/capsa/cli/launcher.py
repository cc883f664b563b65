"""The ``capsa`` command's launcher: Python without ``site``, capsa on the path.

``pip install`` writes a console script that starts the interpreter with ``site``, which
reads the virtual environment's ``.pth`` files (and Debian's ``sitecustomize``): about 2
ms of a cold ``capsa ps`` that takes 20. ``scripts/setup.sh`` replaces that script with
this launcher: ``python -S``, capsa's directory put on ``sys.path`` by hand, then
``capsa.cli.entry.main``. The commands that need the environment's packages (click for
all but the fast listings, ``capsa.cli.fastpath``) add them first (``with_site``).
Running ``pip install -e .`` again brings pip's script back: slower, same behaviour.

Usage: ``python -m capsa.cli.launcher PATH`` writes the launcher to PATH (for the
interpreter running this, and the capsa it imports).
"""

from __future__ import annotations

import os
import sys

MAX_SHEBANG = 127  # bytes the kernel reads of a ``#!`` line (BINPRM_BUF_SIZE - 1)

TEMPLATE = """#!{python} -S
# capsa's command (python -m capsa.cli.launcher): starts without site, see that module
import sys
sys.path.append({package_dir!r})
from capsa.cli.entry import main
sys.exit(main())
"""


def with_site() -> None:
    """Add the environment's packages (``site``) if the launcher left them out."""
    if sys.flags.no_site and not _added:
        import site  # with -S, importing it does nothing by itself

        site.main()
        _added.append(True)


_added: list[bool] = []


def render(python: str, package_dir: str) -> str | None:
    """The launcher's text, or None if ``python`` is too long for a ``#!`` line."""
    text = TEMPLATE.format(python=python, package_dir=package_dir)
    if len(text.split("\n", 1)[0].encode()) > MAX_SHEBANG:
        return None
    return text


def install(path: str) -> bool:
    """Write the launcher to ``path`` (atomically, executable); False if it cannot be
    (a ``#!`` line too long: pip's script, which handles that, stays)."""
    import capsa

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(capsa.__file__)))
    text = render(sys.executable, package_dir)
    if text is None:
        return False
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m capsa.cli.launcher PATH")
    sys.exit(0 if install(sys.argv[1]) else 1)
