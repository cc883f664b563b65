"""The monitor host's pure parts: the linger setting and moving a loop's fds."""

from __future__ import annotations

from pathlib import Path

import pytest

from capsa.config import load
from capsa.engine.monitor.args import LoopArgs, MonitorArgs, Roots
from capsa.engine.monitor.loop import remap_fds
from capsa.errors import InvalidArgument
from capsa.record import replace


def _load(tmp_path: Path, text: str = "", **env: str) -> float:
    config = tmp_path / "capsa.toml"
    config.write_text(text)
    return load(root="/r", runroot="/rr", config=str(config), env=env).monitor_linger


def test_linger_defaults_to_five_seconds(tmp_path: Path) -> None:
    assert _load(tmp_path) == 5.0


def test_linger_from_file_and_environment(tmp_path: Path) -> None:
    assert _load(tmp_path, "monitor_linger = 12\n") == 12.0
    assert _load(tmp_path, "monitor_linger = 12\n", CAPSA_MONITOR_LINGER="0") == 0.0


@pytest.mark.parametrize("value", ['"soon"', "-1"])
def test_bad_linger_is_one_clear_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidArgument, match="monitor_linger must be a number of seconds"):
        _load(tmp_path, f"monitor_linger = {value}\n")


def test_remap_moves_every_fd_and_keeps_the_rest() -> None:
    monitor = MonitorArgs(roots=Roots(root="/r", runroot="/rr"), id="c1", name="web")
    args = LoopArgs(
        monitor=monitor,
        pid=3,
        log="/rr/c1.log",
        runtime_root="/rr/runtime",
        stdout=5,
        stderr=6,
        listener=7,
        clients=[8, 9],
        wants={"8": {"stdin": True}},
    )
    moved = remap_fds(args, {5: 15, 6: 16, 7: 17, 8: 18, 9: 19})
    assert moved == replace(
        args,
        stdout=15,
        stderr=16,
        listener=17,
        clients=[18, 19],
        wants={"18": {"stdin": True}},
    )
    assert args.stdout == 5 and args.clients == [8, 9], "the original arguments changed"
