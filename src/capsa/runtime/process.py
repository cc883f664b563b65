"""The last steps before the user's program: limits, identity, privileges, exec.

Shared by the container init and by ``exec``. ``prepare`` does everything that may
fail with a useful message while the parent still listens (rlimits, oom score, the
executable lookup, building the seccomp filter); ``finalize_and_exec`` only drops
privileges, loads the filter and calls execve.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
import sys

from capsa.errors import (
    CommandNotFound,
    CommandNotRunnable,
    InvalidArgument,
    os_reason,
)
from capsa.linux import capabilities as caps
from capsa.linux import signals as sig
from capsa.linux import syscalls as sc
from capsa.linux import trampoline
from capsa.oci.runtime_spec import Process, Seccomp
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record
class Prepared:
    executable: str
    args: list[str]
    env: dict[str, str]
    caps: Any
    seccomp: Any = None
    warnings: list[str] = field(default_factory=list)


def parse_env(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment entry {item!r}")
        out[key] = value if sep else ""
    return out


def apply_rlimits(process: Process) -> list[str]:
    warnings = []
    for rl in process.rlimits or []:
        name = rl.type.upper()
        res = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
        if res is None:
            raise InvalidArgument(f"unknown rlimit {rl.type}")
        soft, hard = _limit(rl.soft), _limit(rl.hard)
        if _rank(soft) > _rank(hard):
            raise InvalidArgument(f"invalid rlimit {name}: soft {rl.soft} > hard {rl.hard}")
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, PermissionError):
            # raising the hard limit needs CAP_SYS_RESOURCE (root here lacks it)
            cur_hard = resource.getrlimit(res)[1]
            clamped = _clamp(hard, cur_hard)
            resource.setrlimit(res, (_clamp(soft, clamped), clamped))
            warnings.append(f"{name} clamped to the host's hard limit {_show(cur_hard)}")
    return warnings


def _rank(value: int) -> float:
    return float("inf") if value == resource.RLIM_INFINITY else value


def _limit(value: int) -> int:
    return resource.RLIM_INFINITY if value < 0 or value >= 2**64 - 1 else value


def _clamp(value: int, ceiling: int) -> int:
    if ceiling == resource.RLIM_INFINITY:
        return value
    if value == resource.RLIM_INFINITY:
        return ceiling
    return min(value, ceiling)


def _show(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def apply_oom_score_adj(process: Process) -> list[str]:
    if process.oom_score_adj is None:
        return []
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process.oom_score_adj))
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM):
            raise
        return [f"oomScoreAdj {process.oom_score_adj} not allowed by the host; left unchanged"]
    return []


def find_executable(name: str, env: dict[str, str], cwd: str) -> str:
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd, name)
        _check_executable(path, name)
        return path
    for d in (env.get("PATH") or DEFAULT_PATH).split(":"):
        path = os.path.join(d or ".", name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return path
    raise CommandNotFound(f"executable file not found in $PATH: {name}")


def _check_executable(path: str, name: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CommandNotFound(f"no such file or directory: {name}") from None
    except OSError as e:
        raise CommandNotRunnable(f"cannot run {name}: {os_reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CommandNotRunnable(f"cannot run {name}: is a directory")
    if not st.st_mode & 0o111:
        raise CommandNotRunnable(f"cannot run {name}: permission denied")


def prepare_seccomp(seccomp: Seccomp | None, cache_dir: str | None = None) -> Any:
    """Build the filter in the runtime, before fork: libseccomp lives on the host's disk.

    Building Docker's default profile costs about 12 ms in libseccomp; with
    ``cache_dir`` the compiled BPF program is kept by the profile's hash and reused.
    """
    if seccomp is None:
        return None
    from capsa.linux import seccomp as seccomp_mod

    if cache_dir is None:
        return seccomp_mod.prepare(seccomp)
    import hashlib
    import json

    from capsa.oci.codec import to_dict

    key = hashlib.sha256(
        json.dumps([to_dict(seccomp), os.uname().machine], sort_keys=True).encode()
    ).hexdigest()
    path = os.path.join(cache_dir, "seccomp", f"{key}.bpf")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return seccomp_mod.PreparedFilter(raw[4:], int.from_bytes(raw[:4], "little"), ())
    except (OSError, ValueError):
        pass
    prepared = seccomp_mod.prepare(seccomp)
    from capsa.linux.atomicfile import write_atomic

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, prepared.flags.to_bytes(4, "little") + prepared.program, durable=False)
    return prepared


def prepare(process: Process, prepared_filter: Any) -> Prepared:
    """Everything that can fail with a clear message, done while still privileged."""
    if not process.args:
        raise InvalidArgument("process.args must not be empty")
    warnings = apply_rlimits(process)
    warnings += apply_oom_score_adj(process)
    env = parse_env(process.env)
    cwd = process.cwd or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise InvalidArgument(f"cannot enter working directory {cwd}: {os_reason(e)}") from None
    exe = find_executable(process.args[0], env, cwd)
    return Prepared(
        exe,
        list(process.args),
        env,
        caps.from_spec(process.capabilities),
        prepared_filter,
        warnings,
    )


def _set_identity(process: Process) -> None:
    user = process.user
    gids = list(user.additional_gids or [])
    try:
        os.setgroups(gids)
    except PermissionError:
        if gids:
            raise
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)


def _close_on_exec_from(first: int) -> None:
    """No fd of the runtime (or of whoever started it) leaks into the container."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def finalize_and_exec(
    process: Process,
    prep: Prepared,
    keep_fds: int = 0,
    report_fd: int = -1,
    message: bool = False,
) -> None:
    """Drop to the configured identity and privileges, then execve through the
    trampoline (``capsa.linux.trampoline``). Never returns. If the exec fails, the
    errno goes to ``report_fd`` as 4 bytes, and with ``message`` a line to stderr."""
    hop = _trampoline(prep.executable, report_fd, message)
    early_filter = prep.seccomp is not None and not process.no_new_privileges
    if early_filter:
        # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we have it
        prep.seccomp.load()
    caps.drop_bounding(prep.caps)
    caps.set_keepcaps(True)
    _set_identity(process)
    caps.set_keepcaps(False)
    caps.apply(prep.caps)
    if process.user.umask is not None:
        os.umask(process.user.umask)
    if process.cwd:
        os.chdir(process.cwd)
    if process.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    _close_on_exec_from(3 + keep_fds)
    for fd in range(3, 3 + keep_fds):
        os.set_inheritable(fd, True)
    sig.defaults()
    if prep.seccomp is not None and not early_filter:
        prep.seccomp.load()
    _execve(hop, prep, report_fd)


def _trampoline(executable: str, report_fd: int, message: bool) -> int:
    """The sealed memfd to exec through; -1 where there is none (the host's
    interpreter then stays reachable through /proc/<pid>/exe until the exec)."""
    prefix = b"exec " + os.fsencode(executable) + b": " if message else None
    try:
        return trampoline.sealed_memfd(trampoline.build(report_fd, prefix))
    except (trampoline.Unsupported, OSError):
        return -1


def _execve(hop: int, prep: Prepared, report_fd: int) -> None:
    if hop >= 0:
        if report_fd >= 0:
            os.set_inheritable(report_fd, True)  # the trampoline closes it on its exec
        try:
            os.execve(hop, [prep.executable, *prep.args], prep.env)
        except OSError as e:
            # memfds not executable here, or execveat refused by the container's
            # seccomp profile: exec directly; anything else is the program's fault
            if e.errno not in (errno.EACCES, errno.EPERM, errno.ENOSYS):
                _report(report_fd, e.errno)
                raise exec_error(prep.args[0], e) from None
        if report_fd >= 0:
            os.set_inheritable(report_fd, False)
    try:
        os.execve(prep.executable, prep.args, prep.env)
    except OSError as e:
        _report(report_fd, e.errno)
        raise exec_error(prep.args[0], e) from None


def exec_error(program: str, e: OSError) -> CommandNotFound | CommandNotRunnable:
    """``exec PROGRAM: reason``: not found (127) or cannot be run (126), as Docker says."""
    reason = os_reason(e)
    if e.errno == errno.ENOENT:
        return CommandNotFound(f"exec {program}: {reason}")
    return CommandNotRunnable(f"exec {program}: {reason}")


def _report(fd: int, err: int | None) -> None:
    if fd >= 0:
        try:
            os.write(fd, (err or errno.EINVAL).to_bytes(4, sys.byteorder))
        except OSError:
            pass
