"""``--restart``, ``--health-on-failure``, ``--log-opt``, ``--ulimit``, ``--security-opt``.

The engine reads the restart policy and the log options it keeps in a container's spec
with these too (at create, in the monitor), and the ulimits when it makes the OCI
config: the monitor imports this module, which imports only ``capsa.errors`` and
``capsa.syntax.sizes`` until a function runs.
"""

from __future__ import annotations

from capsa.errors import InvalidArgument
from capsa.syntax.sizes import ram_in_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.logs import LogConfig
    from capsa.engine.containers.restart import RestartPolicy
    from capsa.engine.containers.types import ContainerSpec
    from capsa.oci.runtime_spec import Rlimit

ON_FAILURE_ACTIONS = ("none", "kill", "restart", "stop")


def parse_restart(text: str) -> RestartPolicy:
    """``--restart`` as docker reads it: ``no``, ``always``, ``on-failure[:N]``..."""
    from capsa.engine.containers.restart import NO, ON_FAILURE, POLICIES, RestartPolicy, validate

    name, colon, count = text.partition(":")
    if colon and not name:
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    name = name or NO
    if name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if colon and name != ON_FAILURE:
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    policy = RestartPolicy(name, _retry_count(count) if colon else 0)
    validate(policy)
    return policy


def _retry_count(text: str) -> int:
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidArgument(
            "invalid restart policy format: maximum retry count must be an integer"
        )
    return int(text)


def parse_on_failure(text: str) -> str:
    """``--health-on-failure``: what the monitor does when the container turns unhealthy."""
    if text not in ON_FAILURE_ACTIONS:
        raise InvalidArgument(f"invalid health on-failure action '{text}'")
    return text


def parse_log_opts(opts: dict[str, str]) -> LogConfig:
    """Docker's json-file ``--log-opt`` values (``max-size``, ``max-file``, ``compress``)."""
    from capsa.engine.containers.logs import LogConfig

    config = LogConfig()
    for key, value in opts.items():
        if key == "max-size":
            size = ram_in_bytes(value)
            if size is None:
                raise InvalidArgument(f"invalid max-size {value!r}: want a size like 10m")
            config.max_size = size
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(f"invalid max-file {value!r}: want an integer >= 1")
            config.max_file = int(value)
        elif key == "compress":
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid compress {value!r}: want true or false")
            config.compress = value.lower() in ("true", "1")
        else:
            raise InvalidArgument(f"unknown log opt {key!r} for json-file log driver")
    if config.compress and (config.max_file < 2 or config.max_size == 0):
        raise InvalidArgument("compress needs max-file of 2 or more and a max-size")
    return config


def parse_ulimit(text: str) -> Rlimit:
    """``--ulimit name=soft[:hard]`` (-1: unlimited), checked as Docker's go-units does."""
    from capsa.engine.containers.limits import ULIMITS
    from capsa.oci.runtime_spec import Rlimit

    name, eq, value = text.partition("=")
    if not eq:
        raise InvalidArgument(f"invalid ulimit argument: {text}")
    if name not in ULIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft_s, _, hard_s = value.partition(":")
    soft, hard = _ulimit_value(soft_s, text), _ulimit_value(hard_s or soft_s, text)
    if hard != -1 and (soft == -1 or soft > hard):  # -1: unlimited
        raise InvalidArgument(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return Rlimit(type=f"RLIMIT_{name.upper()}", soft=soft, hard=hard)


def _ulimit_value(text: str, item: str) -> int:
    from capsa.engine.containers.limits import rlimit

    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise InvalidArgument(f"invalid ulimit argument: {item}")
    value = int(text)
    if rlimit(value):
        raise InvalidArgument(f"invalid ulimit argument: {item}")
    return value


def apply_security_opts(opts: tuple[str, ...], spec: ContainerSpec) -> None:
    """``--security-opt no-new-privileges[=BOOL]``, ``seccomp=unconfined|FILE`` (the
    file's profile is read now), ``apparmor=``/``label=`` (ignored) set on ``spec``."""
    for opt in opts:
        key, _, value = opt.partition("=" if "=" in opt else ":")
        if key == "no-new-privileges":
            spec.no_new_privileges = value.lower() in ("", "true", "1")
        elif key == "seccomp":
            if value == "unconfined":
                spec.seccomp = "unconfined"
            else:
                try:
                    with open(value) as f:
                        spec.seccomp = f.read()
                except OSError as e:
                    raise InvalidArgument(
                        f"opening seccomp profile ({value}) failed: {(e.strerror or '').lower()}"
                    ) from None
        elif key in ("apparmor", "label"):
            continue
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
