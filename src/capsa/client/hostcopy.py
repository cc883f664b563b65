"""``cp`` between this host and a container of a remote service: a tar stream each way.

The service archives a container path (``fs.archive``) or extracts a tar into a
container directory (``fs.extract``), as for ``cp ... -``; this side makes or unpacks
that tar on its own files with Docker's naming rules: into DEST when it is a
directory, else as DEST (the top entry renamed); ``SRC/.`` copies what is in SRC.

Unpacking here refuses entries that would land outside the destination (absolute
names, ``..``, a path through a symbolic link it made).
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile

from capsa.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.fsops.types import CopyOptions


def copy_from(fs: Any, container: str, src: str, dst: str, opts: CopyOptions | None) -> None:
    """``cp CONTAINER:SRC DST`` with DST on this host."""
    target = os.path.abspath(dst)
    with tempfile.TemporaryFile() as tmp:
        fs.archive(container, src, tmp, opts)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp, mode="r:") as tar:
            members = tar.getmembers()
            if not members:
                return
            top = members[0].name.split("/", 1)[0]
            top_is_dir = members[0].isdir()
            contents = src.endswith("/.") and top_is_dir
            if os.path.isdir(target) and not contents:
                into, rename = target, None
            elif os.path.exists(target) and not os.path.isdir(target):
                if top_is_dir:
                    raise InvalidArgument(f"cannot copy a directory to the file {dst}")
                into, rename = os.path.dirname(target), os.path.basename(target)
            else:
                parent = os.path.dirname(target)
                if not os.path.isdir(parent):
                    raise NotFound(f"destination directory of {dst} does not exist")
                into, rename = parent, os.path.basename(target)
            for member in members:
                member.name = _renamed(member.name, top, rename)
                if member.islnk():
                    member.linkname = _renamed(member.linkname, top, rename)
            _extract(tar, members, into)


def _renamed(name: str, top: str, new: str | None) -> str:
    if new is None:
        return name
    head, sep, rest = name.partition("/")
    return new + sep + rest if head == top else name


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], into: str) -> None:
    """Each entry, checked: a relative name without ``..``, no directory on its way that
    is a symbolic link (an earlier entry's), hard links to names inside; devices and
    fifos are skipped (a file copy has no use for them)."""
    for member in members:
        if member.isdev() or member.isfifo():
            continue
        _check_name(member.name)
        if member.islnk():
            _check_name(member.linkname)
        _check_ancestors(into, member.name)
        target = os.path.join(into, member.name)
        if not member.isdir() and os.path.islink(target):
            os.unlink(target)  # replaced, never written through
        tar.extract(member, into, set_attrs=True, numeric_owner=True)


def _check_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise InvalidArgument(f"refused an archive entry outside the destination: {name}")


def _check_ancestors(into: str, name: str) -> None:
    path = into
    for part in [p for p in name.split("/") if p not in ("", ".")][:-1]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise InvalidArgument(f"refused an archive entry through a symbolic link: {name}")


def copy_to(fs: Any, container: str, src: str, dst: str, opts: CopyOptions | None) -> None:
    """``cp SRC CONTAINER:DST`` with SRC on this host."""
    source = os.path.abspath(src)
    follow = bool(opts and opts.follow_link)
    try:
        st = os.stat(source) if follow else os.lstat(source)
    except OSError:
        raise NotFound(f"lstat {src}: no such file or directory") from None
    contents = src.endswith("/.") and stat.S_ISDIR(st.st_mode)
    try:
        dest = fs.stat_path(container, dst)
    except NotFound:
        dest = None
    if dest is not None and stat.S_ISDIR(dest.mode):
        into, name = dst, os.path.basename(source.rstrip("/")) or "."
    elif dest is not None and stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"cannot copy a directory to the file {container}:{dst}")
    else:
        into = os.path.dirname(dst.rstrip("/")) or "/"
        name = os.path.basename(dst.rstrip("/"))
        if contents:
            into, name = dst, "."
    if contents and dest is not None:
        name = "."
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w:") as tar:
            if contents:
                for entry in sorted(os.listdir(source)):
                    tar.add(os.path.join(source, entry), arcname=entry)
            else:
                real = os.path.realpath(source) if follow else source
                tar.add(real, arcname=name)
        tmp.seek(0)
        if contents and dest is None:
            _ensure_dir(fs, container, into, tmp, opts)
        fs.extract(container, into, tmp, opts)


def _ensure_dir(fs: Any, container: str, path: str, tmp: Any, opts: CopyOptions | None) -> None:
    """Make directory ``path`` in the container (``SRC/.`` into a new DEST)."""
    import io

    parent = os.path.dirname(path.rstrip("/")) or "/"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        info = tarfile.TarInfo(os.path.basename(path.rstrip("/")))
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    buf.seek(0)
    fs.extract(container, parent, buf, opts)
