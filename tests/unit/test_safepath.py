"""capsa.linux.safepath: container paths resolve inside the root, never on the host.

Every fd-based test runs twice: through openat2(RESOLVE_IN_ROOT) and through the
fallback walk (openat2 made to fail with ENOSYS, as on kernels before 5.6).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from capsa.errors import AlreadyExists, CapsaError, InvalidArgument, NotFound, PermissionDenied
from capsa.linux import syscalls
from capsa.linux.safepath import (
    create_file,
    mkdir_all,
    open_in_root,
    open_root,
    proc_fd_path,
    secure_join,
)


def _openat2_works() -> bool:
    try:
        os.close(syscalls.openat2(os.open("/", os.O_PATH), ".", os.O_PATH))
    except OSError:
        return False
    return True


@contextmanager
def _resolution(mode: str) -> Iterator[None]:
    """Force the openat2 path (skipping if the kernel lacks it) or the fallback walk."""
    if mode == "openat2":
        if not _openat2_works():
            pytest.skip("openat2 unavailable")
        yield
        return
    enosys = OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    with mock.patch.object(syscalls, "openat2", side_effect=enosys):
        yield


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    with _resolution(request.param):
        yield request.param


@pytest.fixture
def root(tmp_path: Path) -> str:
    path = tmp_path / "root"
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "marker").write_text("inside")
    return os.path.realpath(path)


@pytest.fixture
def root_fd(root: str) -> Iterator[int]:
    fd = open_root(root)
    yield fd
    os.close(fd)


def where(fd: int) -> str:
    """Where an fd really is on the host; closes it."""
    try:
        assert not os.get_inheritable(fd)
        return os.path.realpath(proc_fd_path(fd))
    finally:
        os.close(fd)


def under(root: str, path: str) -> bool:
    return path == root or path.startswith(root + "/")


# secure_join


def test_secure_join_reroots_absolute_symlink(root: str) -> None:
    os.symlink("/etc", f"{root}/link")
    assert secure_join(root, "link/passwd") == f"{root}/etc/passwd"
    assert secure_join(root, "/link/marker") == f"{root}/etc/marker"


def test_secure_join_clamps_relative_symlink(root: str) -> None:
    os.makedirs(f"{root}/d/e")
    os.symlink("../../../..", f"{root}/d/e/a")
    assert secure_join(root, "d/e/a") == root
    assert secure_join(root, "d/e/a/etc/passwd") == f"{root}/etc/passwd"


def test_secure_join_follows_chains(root: str) -> None:
    os.makedirs(f"{root}/x/target")
    os.symlink("l2", f"{root}/l1")
    os.symlink("/x/l3", f"{root}/l2")
    os.symlink("../../../x/target", f"{root}/x/l3")
    assert secure_join(root, "l1/f") == f"{root}/x/target/f"


@pytest.mark.parametrize("links", [{"x": "x"}, {"x": "y", "y": "/x"}, {"x": "./x/.."}])
def test_secure_join_loop_is_invalid(root: str, links: dict[str, str]) -> None:
    for name, target in links.items():
        os.symlink(target, f"{root}/{name}")
    with pytest.raises(InvalidArgument, match="x/f: too many levels of symbolic links"):
        secure_join(root, "x/f")


@pytest.mark.parametrize(
    ("unsafe", "expected"),
    [
        ("", ""),
        ("/", ""),
        ("..", ""),
        ("../../etc/passwd", "/etc/passwd"),
        ("/etc/../../../../etc", "/etc"),
        ("missing/../etc", "/etc"),
        ("a/b/c", "/a/b/c"),
        ("./etc//marker/", "/etc/marker"),
        ("etc/marker/under/file", "/etc/marker/under/file"),
    ],
)
def test_secure_join_lexical(root: str, unsafe: str, expected: str) -> None:
    assert secure_join(root, unsafe) == root + expected


def test_secure_join_dangling_absolute_symlink(root: str) -> None:
    os.symlink("/x/y", f"{root}/d")
    assert secure_join(root, "d/z") == f"{root}/x/y/z"


def test_secure_join_with_host_root() -> None:
    assert secure_join("/", "../etc") == "/etc"
    assert secure_join("/", "") == "/"


def test_nul_byte_is_invalid(root: str, root_fd: int) -> None:
    for call in (
        lambda: secure_join(root, "a\0/../../etc"),
        lambda: open_in_root(root_fd, "a\0b", os.O_RDONLY),
        lambda: mkdir_all(root_fd, "a\0b"),
        lambda: create_file(root_fd, "a\0b"),
    ):
        with pytest.raises(InvalidArgument, match="nul byte"):
            call()


# open_root / proc_fd_path


def test_open_root(root: str, tmp_path: Path) -> None:
    fd = open_root(root)
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH
    assert where(fd) == root
    with pytest.raises(NotFound, match="nope"):
        open_root(str(tmp_path / "nope"))
    with pytest.raises(InvalidArgument):
        open_root(f"{root}/etc/marker")


def test_proc_fd_path() -> None:
    assert proc_fd_path(7) == "/proc/self/fd/7"


# open_in_root


def test_open_reroots_absolute_symlink(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("/etc", f"{root}/link")
    fd = open_in_root(root_fd, "link/marker", os.O_RDONLY)
    with os.fdopen(fd) as f:
        assert f.read() == "inside"
    assert os.path.exists("/etc/passwd")
    with pytest.raises(NotFound, match="link/passwd"):
        open_in_root(root_fd, "link/passwd", os.O_RDONLY)


def test_open_clamps_relative_symlink(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("../../../..", f"{root}/a")
    assert where(open_in_root(root_fd, "a", os.O_PATH)) == root
    assert where(open_in_root(root_fd, "a/etc/marker", os.O_PATH)) == f"{root}/etc/marker"


def test_open_follows_chains(root: str, root_fd: int, resolver: str) -> None:
    os.mkdir(f"{root}/l3")
    os.symlink("l2/", f"{root}/l1")
    os.symlink("/l3/..//l4", f"{root}/l2")
    os.symlink("../../../etc", f"{root}/l4")
    assert where(open_in_root(root_fd, "/l1/marker", os.O_PATH)) == f"{root}/etc/marker"


def test_open_loop_is_invalid(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("y", f"{root}/x")
    os.symlink("/x", f"{root}/y")
    with pytest.raises(InvalidArgument, match="x/f"):
        open_in_root(root_fd, "x/f", os.O_RDONLY)


@pytest.mark.parametrize("path", ["", "/", ".", "..", "../../..", "etc/../..", "/etc/.."])
def test_open_dotdot_clamped_at_root(root: str, root_fd: int, resolver: str, path: str) -> None:
    assert where(open_in_root(root_fd, path, os.O_PATH)) == root
    assert where(open_in_root(root_fd, f"{path}/etc/marker", os.O_PATH)) == f"{root}/etc/marker"


def test_open_creates_through_dangling_symlink(
    root: str, root_fd: int, resolver: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(f"{outside}/file", f"{root}/etc/link")
    os.makedirs(f"{root}{outside}")
    fd = open_in_root(root_fd, "etc/link", os.O_WRONLY | os.O_CREAT, 0o600)
    assert where(fd) == f"{root}{outside}/file"
    assert os.listdir(outside) == []


def test_open_missing_parent_is_not_found(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("/nope/deeper", f"{root}/link")
    with pytest.raises(NotFound, match="link/file"):
        open_in_root(root_fd, "link/file", os.O_WRONLY | os.O_CREAT)
    assert not os.path.exists(f"{root}/nope")


def test_open_nofollow_gives_the_link(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("/etc", f"{root}/link")
    fd = open_in_root(root_fd, "link", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    with pytest.raises(InvalidArgument, match="link"):
        open_in_root(root_fd, "link", os.O_RDONLY | os.O_NOFOLLOW)
    # a trailing slash follows the link anyway
    assert where(open_in_root(root_fd, "link/", os.O_PATH | os.O_NOFOLLOW)) == f"{root}/etc"


def test_open_exclusive_never_follows(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("/made", f"{root}/dangling")
    with pytest.raises(AlreadyExists, match="dangling"):
        open_in_root(root_fd, "dangling", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with pytest.raises(AlreadyExists):
        open_in_root(root_fd, "etc/marker", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert not os.path.lexists(f"{root}/made")


def test_open_trailing_slash_needs_a_directory(root: str, root_fd: int, resolver: str) -> None:
    with pytest.raises(InvalidArgument, match="etc/marker/"):
        open_in_root(root_fd, "etc/marker/", os.O_RDONLY)
    with pytest.raises(InvalidArgument):
        open_in_root(root_fd, "etc/new/", os.O_WRONLY | os.O_CREAT)
    assert where(open_in_root(root_fd, "etc/", os.O_RDONLY)) == f"{root}/etc"


def test_open_through_a_file_is_invalid(root: str, root_fd: int, resolver: str) -> None:
    with pytest.raises(InvalidArgument, match="etc/marker/x"):
        open_in_root(root_fd, "etc/marker/x", os.O_RDONLY)


def test_unsearchable_directory(root: str, root_fd: int, resolver: str) -> None:
    """Root (CAP_DAC_OVERRIDE) walks through mode 000; anyone else is refused."""
    locked = f"{root}/locked"
    os.mkdir(locked, 0o000)
    try:
        if os.access(locked, os.X_OK):
            with pytest.raises(NotFound, match="locked/x"):
                open_in_root(root_fd, "locked/x", os.O_RDONLY)
            assert secure_join(root, "locked/x") == f"{locked}/x"
        else:
            with pytest.raises(PermissionDenied, match="locked/x"):
                open_in_root(root_fd, "locked/x", os.O_RDONLY)
            with pytest.raises(PermissionDenied, match="locked/x"):
                secure_join(root, "locked/x")
    finally:
        os.chmod(locked, 0o755)


def test_open_uses_openat2_in_root(root_fd: int) -> None:
    if not _openat2_works():
        pytest.skip("openat2 unavailable")
    with mock.patch.object(syscalls, "openat2", wraps=syscalls.openat2) as spy:
        os.close(open_in_root(root_fd, "etc/marker", os.O_RDONLY))
    (dirfd, path, flags, mode, resolve), _ = spy.call_args
    assert (dirfd, path, mode) == (root_fd, "etc/marker", 0)
    assert flags & os.O_CLOEXEC
    assert resolve == syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM])
def test_open_falls_back_when_openat2_is_refused(root: str, root_fd: int, code: int) -> None:
    refused = OSError(code, os.strerror(code))
    with mock.patch.object(syscalls, "openat2", side_effect=refused) as fake:
        assert where(open_in_root(root_fd, "etc/marker", os.O_RDONLY)) == f"{root}/etc/marker"
    assert fake.called


# mkdir_all


def test_mkdir_all_creates_inside(root: str, root_fd: int, resolver: str) -> None:
    fd = mkdir_all(root_fd, "/a/b/../c/d")
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH
    assert stat.S_ISDIR(os.fstat(fd).st_mode)
    assert where(fd) == f"{root}/a/c/d"
    assert os.path.isdir(f"{root}/a/b")
    assert where(mkdir_all(root_fd, "a/c/d")) == f"{root}/a/c/d"  # existing
    assert where(mkdir_all(root_fd, "/")) == root


def test_mkdir_all_through_dangling_symlink(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("/x/y", f"{root}/d")
    assert where(mkdir_all(root_fd, "d")) == f"{root}/x/y"
    assert where(mkdir_all(root_fd, "d/z")) == f"{root}/x/y/z"
    assert os.path.islink(f"{root}/d")


def test_mkdir_all_escaping_symlinks(
    root: str, root_fd: int, resolver: str, tmp_path: Path
) -> None:
    os.symlink("../../../..", f"{root}/up")
    os.symlink(f"{tmp_path}/escaped", f"{root}/abs")
    assert where(mkdir_all(root_fd, "up/../../escaped")) == f"{root}/escaped"
    assert where(mkdir_all(root_fd, "abs/x")) == f"{root}{tmp_path}/escaped/x"
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_mkdir_all_file_component_is_invalid(root: str, root_fd: int, resolver: str) -> None:
    with pytest.raises(InvalidArgument, match="etc/marker/x"):
        mkdir_all(root_fd, "etc/marker/x")
    with pytest.raises(InvalidArgument, match="etc/marker"):
        mkdir_all(root_fd, "etc/marker")
    os.symlink("/etc/marker", f"{root}/link")
    with pytest.raises(InvalidArgument, match="link"):
        mkdir_all(root_fd, "link")


def test_mkdir_all_loop_is_invalid(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("loop", f"{root}/loop")
    with pytest.raises(InvalidArgument, match="loop/x"):
        mkdir_all(root_fd, "loop/x")


def test_mkdir_all_applies_mode(root: str, root_fd: int, resolver: str) -> None:
    old = os.umask(0o022)
    try:
        os.close(mkdir_all(root_fd, "m/n", 0o710))
    finally:
        os.umask(old)
    for path in (f"{root}/m", f"{root}/m/n"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o710


# create_file


def test_create_file_makes_parents(root: str, root_fd: int, resolver: str) -> None:
    fd = create_file(root_fd, "/run/secrets/../token", 0o600)
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH
    assert where(fd) == f"{root}/run/token"
    info = os.stat(f"{root}/run/token")
    assert stat.S_ISREG(info.st_mode) and info.st_size == 0
    assert stat.S_IMODE(info.st_mode) == 0o600 & ~_umask()
    assert os.path.isdir(f"{root}/run/secrets")


def test_create_file_keeps_existing(root: str, root_fd: int, resolver: str) -> None:
    assert where(create_file(root_fd, "etc/marker")) == f"{root}/etc/marker"
    assert Path(root, "etc", "marker").read_text() == "inside"
    assert where(create_file(root_fd, "etc")) == f"{root}/etc"


def test_create_file_follows_symlink_inside(
    root: str, root_fd: int, resolver: str, tmp_path: Path
) -> None:
    os.symlink(f"{tmp_path}/hostfile", f"{root}/etc/resolv.conf")
    assert where(create_file(root_fd, "etc/resolv.conf")) == f"{root}{tmp_path}/hostfile"
    assert not os.path.exists(tmp_path / "hostfile")
    os.symlink("../../etc/marker", f"{root}/rel")
    assert where(create_file(root_fd, "rel")) == f"{root}/etc/marker"


def test_create_file_does_not_open_fifo(root: str, root_fd: int, resolver: str) -> None:
    os.mkfifo(f"{root}/fifo")
    fd = create_file(root_fd, "fifo")  # an O_RDONLY open would block forever
    try:
        assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def test_create_file_under_a_file_is_invalid(root: str, root_fd: int, resolver: str) -> None:
    with pytest.raises(InvalidArgument, match="etc/marker/f"):
        create_file(root_fd, "etc/marker/f")


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_no_fd_leaks(root: str, root_fd: int, resolver: str) -> None:
    os.symlink("loop", f"{root}/loop")
    os.symlink("/x/y", f"{root}/dangling")
    before = len(os.listdir("/proc/self/fd"))
    for call in (
        lambda: open_in_root(root_fd, "etc/marker", os.O_RDONLY),
        lambda: open_in_root(root_fd, "loop/x", os.O_RDONLY),
        lambda: open_in_root(root_fd, "etc/marker/x", os.O_RDONLY),
        lambda: open_in_root(root_fd, "dangling/x", os.O_RDONLY),
        lambda: mkdir_all(root_fd, "dangling/z"),
        lambda: mkdir_all(root_fd, "etc/marker/z"),
        lambda: mkdir_all(root_fd, "loop/z"),
        lambda: create_file(root_fd, "dangling/f"),
        lambda: create_file(root_fd, "loop/f"),
    ):
        with suppress(CapsaError):
            os.close(call())
    assert len(os.listdir("/proc/self/fd")) == before


# properties: random trees of directories and symlinks

NAMES = ["a", "b", "c"]
name = st.sampled_from(NAMES)
rel_component = st.sampled_from([*NAMES, "..", ".", ""])
dir_paths = st.lists(name, min_size=1, max_size=3)
link_targets = st.tuples(st.booleans(), st.lists(rel_component, max_size=4))
trees = st.lists(st.tuples(dir_paths, st.one_of(st.none(), link_targets)), max_size=8)
queries = st.tuples(
    st.booleans(), st.lists(st.sampled_from([*NAMES, "..", "."]), max_size=6), st.booleans()
).map(lambda q: ("/" if q[0] else "") + "/".join(q[1]) + ("/" if q[2] else ""))

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def _tree(
    spec: list[tuple[list[str], tuple[bool, list[str]] | None]], host_prefix: bool
) -> Iterator[tuple[str, str]]:
    """(root, outside): a tmp root holding ``spec``, next to a dir symlinks may aim at.

    Absolute targets are either bare (``/a/b``) or prefixed by the outside dir's host
    path, so that an escape would land in ``outside`` and be seen.
    """
    with tempfile.TemporaryDirectory(prefix="capsa-test-") as tmp:
        tmp = os.path.realpath(tmp)
        root, outside = f"{tmp}/root", f"{tmp}/outside"
        os.mkdir(root)
        os.mkdir(outside)
        for parts, link in spec:
            path = os.path.join(root, *parts)
            if os.path.lexists(path) or not under(root, os.path.realpath(path)):
                continue  # the host's view of the path would leave the root
            with suppress(OSError):  # a loop or a link on the way: skip the entry
                if link is None:
                    os.makedirs(path)
                else:
                    absolute, target = link
                    prefix = (outside if host_prefix else "") + "/" if absolute else ""
                    os.symlink(prefix + "/".join(target) or ".", path)
        yield root, outside


def _outcome(root: str, root_fd: int, query: str, mode: str) -> str:
    with _resolution(mode):
        try:
            return where(open_in_root(root_fd, query, os.O_PATH))
        except CapsaError as err:
            return type(err).__name__


@PROPERTY
@given(spec=trees, query=queries, host_prefix=st.booleans())
def test_property_secure_join_stays_under_root(
    spec: list[tuple[list[str], tuple[bool, list[str]] | None]], query: str, host_prefix: bool
) -> None:
    with _tree(spec, host_prefix) as (root, _):
        try:
            joined = secure_join(root, query)
        except InvalidArgument:
            return  # a loop
        assert under(root, joined)
        assert os.path.realpath(joined) == joined  # no symlink left in it


@PROPERTY
@given(spec=trees, query=queries, host_prefix=st.booleans())
def test_property_openat2_and_walk_agree(
    spec: list[tuple[list[str], tuple[bool, list[str]] | None]], query: str, host_prefix: bool
) -> None:
    if not _openat2_works():
        pytest.skip("openat2 unavailable")
    with _tree(spec, host_prefix) as (root, _):
        root_fd = open_root(root)
        try:
            kernel = _outcome(root, root_fd, query, "openat2")
            walked = _outcome(root, root_fd, query, "walk")
        finally:
            os.close(root_fd)
        event("resolved" if kernel.startswith("/") else kernel)
        assert walked == kernel
        if kernel.startswith("/"):
            assert under(root, kernel)
            assert secure_join(root, query) == kernel


@PROPERTY
@given(spec=trees, query=queries, mode=st.sampled_from(["openat2", "walk"]))
def test_property_mkdir_all_and_create_file_stay_inside(
    spec: list[tuple[list[str], tuple[bool, list[str]] | None]], query: str, mode: str
) -> None:
    with _tree(spec, host_prefix=True) as (root, outside), _resolution(mode):
        root_fd = open_root(root)
        try:
            for make in (mkdir_all, create_file):
                with suppress(InvalidArgument):  # a loop, or a non-directory on the way
                    assert under(root, where(make(root_fd, f"{query}/{make.__name__}")))
        finally:
            os.close(root_fd)
        assert os.listdir(outside) == []
