"""Error kinds -> Docker's exit codes, translated once, here."""

from __future__ import annotations

from capsa import errors

# `docker run`/`create`/`exec` style commands: the engine failed (125), the command
# could not be invoked (126) or was not found (127). Other commands exit 1.
RUN_CODES: dict[type[errors.CapsaError], int] = {
    errors.CommandNotFound: 127,
    errors.CommandNotRunnable: 126,
}


def exit_code(err: errors.CapsaError, run_like: bool = False) -> int:
    if not run_like:
        return 1
    for kind, code in RUN_CODES.items():
        if isinstance(err, kind):
            return code
    return 125
