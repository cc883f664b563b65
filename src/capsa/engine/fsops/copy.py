"""Docker's ``cp`` rules, independent of where the files are (container or host).

- SRC is a file: copied to DEST if DEST does not exist (its parent must), into DEST if
  DEST is a directory, over DEST if DEST is a file; ``DEST/`` missing is an error.
- SRC is a directory: DEST missing is created with SRC's contents; DEST a directory
  receives SRC itself, or only its contents when SRC ends with ``/.``; DEST a file is
  an error.
- Symlinks before SRC's last component are followed; the last one too with
  ``follow_link`` (the copy keeps SRC's name) or when SRC ends with ``/``. DEST is
  followed through symlinks entirely.
"""

from __future__ import annotations

import posixpath
import stat

from capsa.engine.fsops.view import Location, View
from capsa.errors import InvalidArgument, NotFound
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os


@record
class Source:
    loc: Location
    st: os.stat_result
    name: str  # the name the copy gets in a directory DEST
    contents: bool  # SRC ends with "/." (or is "/"): copy what is in it

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def top(self) -> str:
        """The archive name of SRC when it travels as a tar stream."""
        return "." if self.contents else self.name


@record
class Destination:
    loc: Location
    st: os.stat_result | None
    asserts_dir: bool  # DEST ends with "/" or "/."


def asserts_dir(path: str) -> bool:
    return path.endswith("/") or posixpath.basename(path) == "."


def resolve_source(view: View, path: str, follow_link: bool, missing: str) -> Source:
    """SRC inside ``view``; raise NotFound(``missing``) when it does not exist."""
    if not path:
        raise InvalidArgument("source path cannot be empty")
    dir_form = asserts_dir(path)
    loc = view.resolve(path, follow_last=follow_link or dir_form)
    st = view.lstat(loc)
    if st is None:
        raise NotFound(missing)
    if dir_form and not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{path}: not a directory")
    name = posixpath.basename(posixpath.normpath("/" + path.rstrip("/")).rstrip("/"))
    contents = stat.S_ISDIR(st.st_mode) and (path.endswith("/.") or path == "." or not name)
    return Source(loc, st, name, contents)


def resolve_destination(view: View, path: str) -> Destination:
    if not path:
        raise InvalidArgument("destination path cannot be empty")
    loc = view.resolve(path, follow_last=True)
    return Destination(loc, view.lstat(loc), asserts_dir(path))


def plan(src: Source, dst: Destination) -> tuple[str, str]:
    """(directory to extract into, archive name of SRC there) for Docker's rules."""
    dst_path = dst.loc.path
    head, base = posixpath.split(dst_path)
    if dst.st is not None and stat.S_ISDIR(dst.st.st_mode):
        return dst_path, "" if src.contents else src.name
    if dst.st is not None:
        if src.is_dir:
            raise InvalidArgument(f"cannot copy a directory to a file: {dst_path}")
        if dst.asserts_dir:
            raise InvalidArgument(f"destination {dst_path} is not a directory")
        return head, base
    if not src.is_dir and dst.asserts_dir:
        raise NotFound(f"destination directory {dst_path} does not exist")
    if not base:
        raise InvalidArgument(f"invalid destination {dst_path}")
    return head, base


def check_parent(view: View, dst: Destination, missing: str) -> None:
    """DEST may be missing, its parent directory may not."""
    if dst.st is not None:
        return
    parent = view.lstat(view.locate(posixpath.dirname(dst.loc.path)))
    if parent is None:
        raise NotFound(missing)
    if not stat.S_ISDIR(parent.st_mode):
        raise InvalidArgument(f"{posixpath.dirname(dst.loc.path)}: not a directory")
