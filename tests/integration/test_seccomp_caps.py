"""Capabilities and seccomp as the container init applies them (root, forked children).

Each test forks; the child changes only its own credentials, reports what
/proc/self/status (or an exec'd program) shows through a pipe, and exits.
"""

from __future__ import annotations

import os

import pytest
from tests.helpers.forked import ok, run_in_child

from capsa.errors import PermissionDenied
from capsa.linux import capabilities as caps
from capsa.linux import seccomp, syscalls
from capsa.oci.runtime_spec import Capabilities
from capsa.oci.seccomp_default import default_profile

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

CHOWN = 1 << caps.CAPABILITIES["CAP_CHOWN"]
NET_BIND = 1 << caps.CAPABILITIES["CAP_NET_BIND_SERVICE"]
UNPRIVILEGED = 1000


def own_status() -> str:
    with open("/proc/self/status") as f:
        return f.read()


def exec_output(argv: list[str]) -> str:
    """Run ``argv`` from the (already configured) child; return its stdout."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.execv(argv[0], argv)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} exited with {os.waitstatus_to_exitcode(status)}")
    return out


def become_unprivileged(sets: caps.CapSets) -> None:
    """The runtime's order: bounding, keepcaps, ids, keepcaps off, capset + ambient."""
    caps.drop_bounding(sets)
    caps.set_keepcaps(True)
    os.setgroups([])
    os.setgid(UNPRIVILEGED)
    os.setuid(UNPRIVILEGED)
    caps.set_keepcaps(False)
    caps.apply(sets)


def test_reduced_set_is_exact() -> None:
    sets = caps.CapSets(bounding=CHOWN, effective=CHOWN, permitted=CHOWN)

    def child() -> str:
        caps.drop_bounding(sets)
        caps.apply(sets)
        return own_status()

    seen = caps.parse_status(ok(*run_in_child(child)))
    assert seen == sets


def test_keepcaps_preserves_capabilities_across_setuid() -> None:
    spec = Capabilities(
        bounding=list(caps.DOCKER_DEFAULT_CAPS),
        effective=["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        permitted=["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        inheritable=["CAP_NET_BIND_SERVICE"],
        ambient=["CAP_NET_BIND_SERVICE"],
    )
    sets = caps.from_spec(spec)

    def child() -> str:
        become_unprivileged(sets)
        return f"{os.getuid()}\n{own_status()}"

    out = ok(*run_in_child(child))
    uid, _, status = out.partition("\n")
    assert uid == str(UNPRIVILEGED)
    assert caps.parse_status(status) == sets


def test_ambient_capabilities_survive_execve() -> None:
    both = CHOWN | NET_BIND
    sets = caps.CapSets(
        bounding=both, effective=both, permitted=both, inheritable=NET_BIND, ambient=NET_BIND
    )

    def child() -> str:
        become_unprivileged(sets)
        return exec_output(["/bin/cat", "/proc/self/status"])

    seen = caps.parse_status(ok(*run_in_child(child)))
    # a non-root execve keeps exactly the ambient set as permitted and effective
    assert (seen.effective, seen.permitted, seen.ambient) == (NET_BIND, NET_BIND, NET_BIND)
    assert seen.bounding == both


def test_setuid_without_keepcaps_loses_permitted_set() -> None:
    sets = caps.CapSets(bounding=CHOWN, effective=CHOWN, permitted=CHOWN)

    def child() -> str:
        os.setuid(UNPRIVILEGED)
        try:
            caps.apply(sets)
        except PermissionDenied as e:
            return str(e)
        return "applied"

    assert "set capabilities" in ok(*run_in_child(child))


def test_full_init_sequence_with_default_profile() -> None:
    """Build the filter first, drop privileges, no_new_privs, load last, exec."""
    sets = caps.from_spec(
        Capabilities(
            bounding=list(caps.DOCKER_DEFAULT_CAPS),
            effective=list(caps.DOCKER_DEFAULT_CAPS),
            permitted=list(caps.DOCKER_DEFAULT_CAPS),
        )
    )
    prepared = seccomp.prepare(default_profile())
    script = "ls / >/dev/null && id -u && grep -E '^(CapEff|Seccomp):' /proc/self/status"

    def child() -> str:
        become_unprivileged(sets)
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        prepared.load()
        return exec_output(["/bin/sh", "-c", script])

    lines = ok(*run_in_child(child)).split()
    assert lines[0] == str(UNPRIVILEGED)
    assert lines[1:] == ["CapEff:", "0000000000000000", "Seccomp:", "2"]


def test_load_before_dropping_caps_without_no_new_privs() -> None:
    """Without noNewPrivileges the runtime must load while it still has CAP_SYS_ADMIN."""
    prepared = seccomp.prepare(default_profile())

    def child() -> str:
        prepared.load()
        caps.apply(caps.CapSets(effective=CHOWN, permitted=CHOWN))
        return own_status()

    seen = caps.parse_status(ok(*run_in_child(child)))
    assert seen.effective == CHOWN
