"""capsa-runtime's flags read as runc reads them: kill 0, exec --cgroup, terminals, and
the pieces of its runc-shaped output (list's table, Go's times)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capsa.cgroups import open_manager, parse_mountinfo
from capsa.cgroups.layout import CgroupLayout, relative_paths
from capsa.errors import InvalidArgument
from capsa.runtime.cli import main
from capsa.runtime.commands import check_terminal, sub_cgroups, tabulate
from capsa.runtime.container import go_time, signal_number


def test_signal_0_is_a_signal_for_kill() -> None:
    assert signal_number("0", allow_zero=True) == 0
    with pytest.raises(InvalidArgument):
        signal_number("0")  # a stop signal, say: not a signal
    assert signal_number("KILL") == signal_number("9") == 9
    with pytest.raises(InvalidArgument):
        signal_number("-1")


def test_exec_cgroup_values() -> None:
    assert sub_cgroups(["sub"]) == {"": "sub"}
    assert sub_cgroups(["memory,pids:a", "cpu:b"]) == {"memory": "a", "pids": "a", "cpu": "b"}
    with pytest.raises(InvalidArgument, match="missing <controller>: prefix"):
        sub_cgroups(["a", "memory:b"])
    with pytest.raises(InvalidArgument, match="invalid --cgroup argument: a:b:c"):
        sub_cgroups(["a:b:c"])


@pytest.mark.parametrize(
    "terminal,detach,socket,ok",
    [
        (True, True, "s", True),
        (False, False, None, True),
        (True, False, None, True),
        (True, True, None, False),  # a detached tty with nowhere to send it
        (False, True, "s", False),  # a socket without a tty
        (True, False, "s", False),  # a socket while the runtime stays
    ],
)
def test_terminal_rules_are_runcs(
    terminal: bool, detach: bool, socket: str | None, ok: bool
) -> None:
    if ok:
        check_terminal(terminal, detach, socket)
    else:
        with pytest.raises(InvalidArgument):
            check_terminal(terminal, detach, socket)


def test_go_time_trims_the_fraction() -> None:
    assert go_time("2024-01-02T03:04:05.120000000Z") == "2024-01-02T03:04:05.12Z"
    assert go_time("2024-01-02T03:04:05.000000000Z") == "2024-01-02T03:04:05Z"
    assert go_time("2024-01-02T03:04:05.123456789Z") == "2024-01-02T03:04:05.123456789Z"


def test_list_table_is_gos_tabwriter() -> None:
    rows = [("ID", "PID", "STATUS"), ("a-long-container-id", "7", "running")]
    assert (
        tabulate(rows)
        == (
            "ID" + " " * 20 + "PID" + " " * 9 + "STATUS\n"  # 19 + 3, and at least 12
            "a-long-container-id" + " " * 3 + "7" + " " * 11 + "running\n"
        )
    )


# -- cgroups: a relative path under the runtime's own cgroups; sub-cgroups for exec -------


def _v1_layout(root: Path, controllers: tuple[str, ...] = ("cpu", "memory")) -> CgroupLayout:
    lines = [f"31 23 0:28 / {root} rw - tmpfs tmpfs rw"]
    for i, c in enumerate(controllers):
        (root / c).mkdir(parents=True)
        lines.append(f"{40 + i} 31 0:{40 + i} / {root / c} rw - cgroup cgroup rw,{c}")
    (root / "unified").mkdir()
    lines.append(f"60 31 0:60 / {root / 'unified'} rw - cgroup2 cgroup2 rw")
    return parse_mountinfo("\n".join(lines), str(root))


def test_relative_paths_land_under_the_runtimes_own_cgroups(tmp_path: Path) -> None:
    layout = _v1_layout(tmp_path)
    own = {"cpu": "/", "memory": "/sandbox/x", "": "/"}
    assert relative_paths(layout, "c1", own) == {
        "cpu": "/c1",
        "memory": "/sandbox/x/c1",
        "unified": "/c1",
    }
    unified = parse_mountinfo(f"1 1 0:1 / {tmp_path} rw - cgroup2 cgroup2 rw", str(tmp_path))
    # cgroup2 only: the parent of the runtime's own cgroup (which holds processes)
    assert relative_paths(unified, "c1", {"": "/user.slice/session-1.scope"}) == {
        "": "/user.slice/c1"
    }


def test_a_manager_with_per_tree_paths(tmp_path: Path) -> None:
    layout = _v1_layout(tmp_path)
    mgr = open_manager(
        "c1",
        layout=layout,
        tree_paths={"cpu": "/c1", "memory": "/sandbox/x/c1", "unified": "/c1"},
    )
    mgr.create()
    assert (tmp_path / "memory" / "sandbox" / "x" / "c1").is_dir()
    assert (tmp_path / "cpu" / "c1").is_dir()


def test_exec_sub_cgroups_v1(tmp_path: Path) -> None:
    layout = _v1_layout(tmp_path)
    mgr = open_manager("/c1", layout=layout)
    for tree in ("cpu", "memory", "unified"):
        (tmp_path / tree / "c1" / "sub").mkdir(parents=True)
        (tmp_path / tree / "c1" / "sub" / "tasks").write_text("")
        (tmp_path / tree / "c1" / "tasks").write_text("")
    entry = mgr.open_entry({"memory": "sub"})
    try:
        assert [p for _, p in entry.tasks] == [
            str(tmp_path / "cpu" / "c1" / "tasks"),
            str(tmp_path / "memory" / "c1" / "sub" / "tasks"),
        ]
        assert entry.cgroup2_dir is not None and entry.cgroup2_dir[1].endswith("unified/c1")
    finally:
        entry.close()
    every = mgr.open_entry({"": "sub"})
    assert every.cgroup2_dir is not None and every.cgroup2_dir[1].endswith("unified/c1/sub")
    every.close()
    with pytest.raises(InvalidArgument, match="unknown controller pids"):
        mgr.open_entry({"pids": "sub"})
    with pytest.raises(InvalidArgument, match="bad sub cgroup path"):
        mgr.open_entry({"": "../../elsewhere"})
    with pytest.raises(InvalidArgument, match="does not exist"):
        mgr.open_entry({"memory": "missing"})


def test_exec_sub_cgroups_v2_take_a_path_only(tmp_path: Path) -> None:
    layout = parse_mountinfo(f"1 1 0:1 / {tmp_path} rw - cgroup2 cgroup2 rw", str(tmp_path))
    (tmp_path / "c1" / "sub").mkdir(parents=True)
    mgr = open_manager("/c1", layout=layout)
    entry = mgr.open_entry({"": "sub"})
    assert entry.cgroup2_dir is not None and entry.cgroup2_dir[1] == str(tmp_path / "c1" / "sub")
    entry.close()
    with pytest.raises(InvalidArgument, match="unknown controller memory"):
        mgr.open_entry({"memory": "sub"})


@pytest.mark.parametrize(
    "argv,message",
    [
        (["update", "--pids-limit", "abc", "c1"], "invalid --pids-limit 'abc'"),
        (["update", "--blkio-weight", "x", "c1"], "invalid --blkio-weight 'x'"),
        (["ps", "--format", "xml", "c1"], "invalid format option: xml"),
        (["list", "--format", "xml"], "invalid format option: xml"),
        (["--log-format", "xml", "list"], "invalid log-format: xml"),
    ],
)
def test_bad_flags_give_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["--root", str(tmp_path), *argv]) == 1
    assert capsys.readouterr().err == f"capsa-runtime: {message}\n"


def test_a_failed_exec_exits_255_as_runc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path), "exec", "nosuch", "true"]) == 255
    assert capsys.readouterr().err == "capsa-runtime: container nosuch does not exist\n"
