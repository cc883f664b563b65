"""``-v``, ``--mount``, ``--tmpfs`` and ``--device`` -> records; ``cp``'s CONTAINER:PATH.

Parsing only: a ``-v`` bind source is made absolute here, and created (as Docker
creates a missing one) by the frontend that asked for it.
"""

from __future__ import annotations

import os

from capsa.engine.containers.types import DeviceSpec, MountSpec
from capsa.errors import InvalidArgument
from capsa.syntax.sizes import parse_bytes

_PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")


def parse_volume(text: str) -> MountSpec:
    """``-v [SRC:]DST[:OPTS]``: SRC absolute = bind, a name = volume, none = anonymous."""
    if not text:
        raise InvalidArgument("invalid empty volume spec")
    parts = text.split(":")
    if len(parts) > 1 and "" in parts:  # Docker's CLI wording
        raise InvalidArgument(f"invalid spec: {text}: empty section between colons")
    if len(parts) == 1:
        return MountSpec(type="volume", target=parts[0])
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{text}'")
    src, dst = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    if not dst.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{text}': mount path must be absolute"
        )
    kind = "bind" if src.startswith(("/", ".", "~")) else "volume"
    m = MountSpec(
        type=kind,
        target=dst,
        source=os.path.abspath(os.path.expanduser(src)) if kind == "bind" else src,
    )
    for opt in opts:
        if opt in ("ro", "readonly"):
            m.readonly = True
        elif opt == "rw":
            m.readonly = False
        elif opt in _PROPAGATIONS:
            m.propagation = opt
        elif opt == "nocopy":
            m.no_copy = True
        elif opt in ("z", "Z", "delegated", "cached", "consistent"):
            continue
        else:
            raise InvalidArgument(f"invalid volume specification: '{text}': unknown option {opt!r}")
    return m


def parse_mount(text: str) -> MountSpec:
    """``--mount type=bind,source=/a,target=/b,readonly`` (docker's CSV syntax)."""
    import csv

    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as e:  # a newline in a field: Go's csv reader refuses it too
        raise InvalidArgument(f'invalid argument "{text}" for "--mount" flag: {e}') from None
    values: dict[str, str] = {}
    for f in fields:
        key, eq, value = f.partition("=")
        values[key.strip().lower()] = value if eq else "true"
    kind = values.pop("type", "volume")
    target = values.pop("target", values.pop("destination", values.pop("dst", "")))
    if not target:
        raise InvalidArgument(f'invalid argument "{text}" for "--mount" flag: target is required')
    source = values.pop("source", values.pop("src", ""))
    m = MountSpec(type=kind, target=target, source=source)
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {kind!r}")
    if kind == "bind":
        if not source:
            raise InvalidArgument(
                'invalid mount config for type "bind": field Source must not be empty'
            )
        m.source = os.path.abspath(source)
    for key, value in values.items():
        _mount_option(m, key, value, text)
    return m


def _mount_option(m: MountSpec, key: str, value: str, text: str) -> None:
    """One ``key=value`` of ``--mount`` (``text``) set on ``m``."""
    if key in ("readonly", "ro"):
        m.readonly = value.lower() in ("true", "1", "")
    elif key == "bind-propagation":
        m.propagation = value
    elif key == "bind-recursive":
        m.bind_recursive = value not in ("disabled", "false")
    elif key == "volume-nocopy":
        m.no_copy = value.lower() in ("true", "1", "")
    elif key == "tmpfs-size":
        m.tmpfs_size = parse_bytes(value, "tmpfs size")
    elif key == "tmpfs-mode":
        m.tmpfs_mode = _tmpfs_mode(value, text)
    elif key not in ("consistency", "volume-driver", "volume-label", "volume-opt"):
        raise InvalidArgument(f"unexpected key '{key}' in '{text}'")


def _tmpfs_mode(value: str, text: str) -> int:
    """An octal file mode (``1777``) of a tmpfs."""
    if not value or not set(value) <= set("01234567") or int(value, 8) > 0o7777:
        raise InvalidArgument(f"invalid tmpfs mode {value!r} in {text!r}")
    return int(value, 8)


def parse_tmpfs(text: str) -> MountSpec:
    """``--tmpfs /run:size=64m,mode=1777,ro`` (other options are passed to the mount)."""
    target, _, opts = text.partition(":")
    m = MountSpec(type="tmpfs", target=target)
    for opt in filter(None, opts.split(",")):
        if opt.startswith("size="):
            m.tmpfs_size = parse_bytes(opt[5:], "tmpfs size")
        elif opt.startswith("mode="):
            m.tmpfs_mode = _tmpfs_mode(opt[5:], text)
        elif opt == "ro":
            m.readonly = True
        elif opt in ("rw",):
            continue
        else:
            m.options.append(opt)
    return m


def parse_device(text: str) -> DeviceSpec:
    """``--device HOST[:CONTAINER][:PERMISSIONS]`` (permissions of ``rwm``)."""
    parts = text.split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    if set(perms) - set("rwm"):
        raise InvalidArgument(f"invalid device mode: {perms}")
    return DeviceSpec(host=host, container=container, permissions=perms)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """``cp``'s ``CONTAINER:PATH`` -> (container, path); a local path -> ("", path)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or not container:
        return "", arg
    return container, path
