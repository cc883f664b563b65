"""How a command ends: an exception becomes one line on stderr and Docker's exit code,
output to a closed pipe dies of SIGPIPE, and the process leaves without teardown.

Shared by click's group (``capsa.cli.main``) and the listing commands' fast path
(``capsa.cli.fastpath``), so that a command ends the same way on both; no click here.
Call ``report`` from the ``except`` block that caught the exception (``--debug``
prints its traceback).
"""

from __future__ import annotations

import os
import sys

from capsa.cli.output import echo
from capsa.errors import CapsaError
from capsa.fastexit import exit_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

RUN_LIKE = ("run", "create", "exec", "start")


def report(e: Exception, command: str, debug: bool) -> int:
    """Print what the user sees of ``e``, which ``command`` (the top-level command's
    name) raised; the exit status."""
    if isinstance(e, CapsaError):
        return _fail(e, command, debug)
    if isinstance(e, UnicodeEncodeError):
        from capsa.errors import not_utf8

        return _fail(not_utf8(e), command, debug)
    if isinstance(e, BrokenPipeError):
        die_of_sigpipe()
    if debug:
        import traceback

        traceback.print_exc()
    if isinstance(e, OSError):  # a kernel refusal nobody translated: one line, no traceback
        where = f": {e.filename}" if e.filename else ""
        echo(f"Error: {(e.strerror or str(e)).lower()}{where}", err=True)
        return 125
    # a bug: say what, point at --debug, no traceback
    echo(
        f"Error: internal error: {type(e).__name__}: {e} (run with --debug for details)",
        err=True,
    )
    return 125


def _fail(e: CapsaError, command: str, debug: bool) -> int:
    from capsa.cli.errors import exit_code

    if debug:
        import traceback

        traceback.print_exc()
    echo(f"Error: {e}", err=True)
    return exit_code(e, run_like=command in RUN_LIKE)


def aborted() -> int:
    """Ctrl-C (or end of input) in a command, as click reports it: a blank line that
    closes the terminal's ``^C``, then ``Aborted!``."""
    sys.stderr.write("\n")
    sys.stderr.flush()
    echo("Aborted!", err=True)
    return 1


def die_of_sigpipe() -> NoReturn:
    """Output to a closed pipe (``logs -f | head``): die of SIGPIPE, quietly, as Docker's
    CLI does (141 in a shell). Python ignores SIGPIPE, so the write raised instead; a
    warm start's ``capsa`` process dies of the same signal (``capsa.cli.entry``)."""
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(128 + signal.SIGPIPE)  # not reached


def exit_fast(code: object) -> NoReturn:
    """Exit without the interpreter's teardown (collecting every module: ~8 ms, which a
    command as short as ``ps`` notices). Every command has closed what it opened by now;
    only the standard streams need a flush."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    try:
        if sys.stdout is not None:  # None: started with fd 1 closed
            sys.stdout.flush()  # what is left of the output: a closed pipe kills, as a write does
    except BrokenPipeError:
        die_of_sigpipe()
    except (OSError, ValueError):
        pass
    exit_now(status)
