"""The cgroup-v2 guest sees the checkout and its venv where the host has them, even
below the /tmp and /run the guest mounts afresh (a clone in /tmp must run its tests)."""

from __future__ import annotations

from tests.helpers.cg2vm import _guest_init


def _lines(script: str) -> list[str]:
    return script.splitlines()


def test_a_checkout_below_tmp_is_bound_back_after_the_guest_tmpfs() -> None:
    lines = _lines(_guest_init(["/tmp/capsa-clone-x/capsa", "/work/main"]))
    tmpfs = lines.index("mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp")
    save = lines.index("mkdir -p /capsa-host; mount --bind / /capsa-host")
    bind = (
        "mkdir -p /tmp/capsa-clone-x/capsa; "
        "mount --bind /capsa-host/tmp/capsa-clone-x/capsa /tmp/capsa-clone-x/capsa"
    )
    assert save < tmpfs < lines.index(bind)
    assert not [line for line in lines if "/work/main" in line]  # not hidden: left alone


def test_nothing_is_bound_when_nothing_is_hidden() -> None:
    assert "capsa-host" not in _guest_init(["/work/main", "/opt/venv"])
