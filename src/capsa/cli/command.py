"""The command, run in this process: cold, or forked from a monitor host (warm start).

``ps``, ``images`` and ``volume ls`` take the fast path (``capsa.cli.fastpath``: no
click), every other command line goes through click (``capsa.cli.main``). A monitor
host imports this module and calls ``warm`` before it forks commands
(``capsa.engine.monitor.warm``); a host that imports less leaves the listings cheap all the same.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``sys.argv`` here and exit with its status."""
    from capsa.cli import fastpath

    status = fastpath.run(sys.argv)
    if status is None:
        from capsa.launcher import with_site

        with_site()  # click and the rest of the environment's packages
        from capsa.cli.main import main as click_main

        click_main()  # exits
    from capsa.cli.failure import exit_fast

    exit_fast(status)


def warm() -> None:
    """Import what commands use (click's commands and the engine), for the host's forks."""
    from capsa.cli import main as click_main

    click_main.warm()
