"""Atomic writes: the new content appears whole, or the old one stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capsa.linux.atomicfile import write_atomic, write_atomic_stream


def test_write_atomic_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    write_atomic(str(path), b"new", 0o640)
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f"]


def test_stream_appears_only_when_the_block_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), write_atomic_stream(str(path)) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]  # no temporary left behind
    with write_atomic_stream(str(path), 0o600) as f:
        f.write(b"whole")
    assert path.read_bytes() == b"whole"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["f"]
