"""Layout detection from crafted mountinfo text, and cgroupsPath normalization."""

from __future__ import annotations

import pytest

from capsa.cgroups import normalize_path, parse_mountinfo
from capsa.cgroups.layout import host_hugepage_sizes, parse_proc_cgroup
from capsa.errors import InvalidArgument, Unavailable

HYBRID = """\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
"""

V1_ONLY = """\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 31 0:30 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
"""

UNIFIED = """\
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw
"""


def test_hybrid_layout() -> None:
    layout = parse_mountinfo(
        HYBRID,
        unified_controllers=frozenset({"hugetlb"}),
        symlinks={"cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct"},
    )
    assert layout.mode == "hybrid"
    assert layout.version == 1
    names = [h.name for h in layout.hierarchies]
    assert names == ["cpu,cpuacct", "cpuset", "memory", "systemd"]  # bind duplicate dropped
    assert layout.hierarchies[0].controllers == ("cpu", "cpuacct")
    assert layout.hierarchies[1].controllers == ("cpuset",)  # clone_children is no controller
    assert layout.hierarchies[3].controllers == ("name=systemd",)
    assert layout.unified is not None and layout.unified.mountpoint == "/sys/fs/cgroup/unified"
    assert layout.unified_controllers == frozenset({"hugetlb"})
    assert layout.hierarchy_for("cpuacct") == layout.hierarchies[0]
    assert layout.hierarchy_for("pids") is None


def test_v1_only_layout() -> None:
    layout = parse_mountinfo(V1_ONLY, unified_controllers=frozenset({"x"}))
    assert layout.mode == "v1"
    assert layout.unified is None and layout.unified_controllers == frozenset()
    assert [h.controllers for h in layout.hierarchies] == [("memory",), ("net_cls", "net_prio")]


def test_unified_layout() -> None:
    layout = parse_mountinfo(UNIFIED, unified_controllers=frozenset({"cpu", "memory"}))
    assert layout.mode == "unified"
    assert layout.version == 2
    assert layout.hierarchies == ()
    assert layout.unified is not None and layout.unified.mountpoint == "/sys/fs/cgroup"


def test_other_root_and_escapes() -> None:
    text = "40 1 0:40 / /tmp/my\\040cg/memory rw - cgroup cgroup rw,memory\n"
    layout = parse_mountinfo(text, "/tmp/my cg")
    assert layout.hierarchies[0].mountpoint == "/tmp/my cg/memory"
    with pytest.raises(Unavailable):
        parse_mountinfo(text, "/sys/fs/cgroup")


def test_proc_cgroup() -> None:
    text = "9:name=systemd:/\n4:memory:/a/b\n1:cpu,cpuacct:/c\n0::/u\n"
    paths = parse_proc_cgroup(text)
    assert paths["memory"] == "/a/b" and paths["cpuacct"] == "/c" and paths[""] == "/u"
    assert paths["name=systemd"] == "/"


def test_hugepage_sizes(tmp_path: object) -> None:
    import pathlib

    root = pathlib.Path(str(tmp_path))
    for n in ("hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB"):
        (root / n).mkdir()
    assert host_hugepage_sizes(str(root)) == ("64KB", "2MB", "1GB")
    assert host_hugepage_sizes(str(root / "missing")) == ()


@pytest.mark.parametrize(
    ("given", "want"),
    [("capsa/abc", "/capsa/abc"), ("/capsa//abc/", "/capsa/abc"), ("/a/./b", "/a/b")],
)
def test_normalize_path(given: str, want: str) -> None:
    assert normalize_path(given) == want


@pytest.mark.parametrize("bad", ["/a/../b", "..", "/", "", "a/..", "x\0y"])
def test_normalize_path_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        normalize_path(bad)
