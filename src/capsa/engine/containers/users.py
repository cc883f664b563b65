"""``--user`` and ``--group-add`` resolved against the container's /etc/passwd and
/etc/group, read inside its root (a symlinked /etc/passwd cannot point at the host's)."""

from __future__ import annotations

import os

from capsa.errors import InvalidArgument
from capsa.linux import safepath


def _read_in_root(rootfs: str, path: str) -> list[list[str]]:
    root_fd = safepath.open_root(rootfs)
    try:
        fd = safepath.open_in_root(root_fd, path, os.O_RDONLY)
    except Exception:
        return []
    finally:
        os.close(root_fd)
    with os.fdopen(fd, "r", errors="replace") as f:
        return [
            line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")
        ]


def resolve(rootfs: str, user: str, group_add: list[str]) -> tuple[int, int, list[int]]:
    """(uid, gid, additional gids) for docker's ``name|uid[:group|gid]``."""
    name, _, group = (user or "0").partition(":")
    passwd = _read_in_root(rootfs, "/etc/passwd")
    groups = _read_in_root(rootfs, "/etc/group")
    uid, gid, username = _user(name, passwd)
    if group:
        gid = _group(group, groups)
    extra = []
    if username:
        extra = [
            int(g[2])
            for g in groups
            if len(g) > 3 and username in g[3].split(",") and g[2].isdigit()
        ]
    extra += [_group(g, groups) for g in group_add]
    return uid, gid, sorted(set(extra) - {gid}) if extra else []


def _user(name: str, passwd: list[list[str]]) -> tuple[int, int, str]:
    for entry in passwd:
        if len(entry) >= 4 and (entry[0] == name or entry[2] == name):
            try:
                return int(entry[2]), int(entry[3]), entry[0]
            except ValueError:
                continue
    if name.isdigit():
        return int(name), 0, ""
    raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")


def _group(name: str, groups: list[list[str]]) -> int:
    for entry in groups:
        if len(entry) >= 3 and (entry[0] == name or entry[2] == name) and entry[2].isdigit():
            return int(entry[2])
    if name.isdigit():
        return int(name)
    raise InvalidArgument(f"unable to find group {name}: no matching entries in group file")


def home(rootfs: str, user: str) -> str:
    """The user's home directory from the container's /etc/passwd ("/" if none, as Docker)."""
    name = (user or "0").partition(":")[0]
    for entry in _read_in_root(rootfs, "/etc/passwd"):
        if len(entry) >= 6 and (entry[0] == name or entry[2] == name):
            return entry[5] or "/"
    return "/root" if name in ("0", "root") else "/"
