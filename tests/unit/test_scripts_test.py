"""``scripts/test``: paths on its command line replace the default ``tests``; options pass
through to pytest."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _collected_files(*args: str) -> set[str]:
    proc = subprocess.run(
        [str(REPO / "scripts" / "test"), "--collect-only", "-q", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr  # 5: nothing collected
    return {
        line.partition(":")[0] for line in proc.stdout.splitlines() if line.startswith("tests/")
    }


def test_a_path_replaces_the_default_tests_directory() -> None:
    assert _collected_files("tests/unit/test_atomicfile.py") == {"tests/unit/test_atomicfile.py"}


def test_options_pass_through_with_a_path() -> None:
    files = _collected_files("-k", "atomic or fsops", "tests/unit/test_atomicfile.py")
    assert files == {"tests/unit/test_atomicfile.py"}  # not test_fsops.py: not asked for
