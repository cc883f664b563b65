"""OCI lifecycle hooks: run each with the container state on stdin."""

from __future__ import annotations

from capsa import fastjson
from capsa.errors import FailedPrecondition, os_reason
from capsa.oci.runtime_spec import Hook, Hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def hooks_for(hooks: Hooks | None, phase: str) -> list[Hook]:
    if hooks is None:
        return []
    attr = {
        "prestart": "prestart",
        "createRuntime": "create_runtime",
        "createContainer": "create_container",
        "startContainer": "start_container",
        "poststart": "poststart",
        "poststop": "poststop",
    }[phase]
    return list(getattr(hooks, attr) or [])


def run_hooks(hooks: Hooks | None, phase: str, state: dict[str, Any]) -> None:
    """Run every hook of ``phase`` in order; the first failure raises."""
    todo = hooks_for(hooks, phase)
    if not todo:
        return
    import subprocess

    payload = fastjson.dumps(state).encode()
    for hook in todo:
        args = hook.args or [hook.path]
        env = dict(e.split("=", 1) for e in hook.env or [] if "=" in e)
        try:
            proc = subprocess.run(
                args,
                executable=hook.path,
                input=payload,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=hook.timeout if hook.timeout and hook.timeout > 0 else None,
            )
        except subprocess.TimeoutExpired:
            raise FailedPrecondition(
                f"{phase} hook {hook.path} timed out after {hook.timeout}s"
            ) from None
        except OSError as e:
            raise FailedPrecondition(f"{phase} hook {hook.path}: {os_reason(e)}") from None
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            tail = f": {detail[-1]}" if detail else ""
            raise FailedPrecondition(
                f"{phase} hook {hook.path} exited with status {proc.returncode}{tail}"
            )
