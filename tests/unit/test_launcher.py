"""capsa.launcher: the ``capsa`` command started without ``site``.

The launcher ``scripts/setup.sh`` installs runs ``python -S``: the fast listings import
nothing from the environment's packages, while every other command gets them (click)
as under pip's script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capsa import launcher


def _run(path: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAPSA_ROOT": str(tmp_path / "root"),
        "CAPSA_RUNROOT": str(tmp_path / "run"),
        "PYTHONPROFILEIMPORTTIME": "1",  # -X importtime: stderr names every import
    }
    env.pop("CAPSA_CONFIG", None)
    return subprocess.run(
        [str(path), *args], capture_output=True, text=True, env=env, timeout=60, check=True
    )


def _imported(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_the_fast_listings_start_without_site_and_the_rest_with_it(tmp_path: Path) -> None:
    path = tmp_path / "capsa"
    assert launcher.install(str(path))
    assert path.read_text().startswith(f"#!{sys.executable} -S\n")
    assert os.access(path, os.X_OK)

    listing = _run(path, tmp_path, "ps", "-a")
    assert listing.stdout.startswith("CONTAINER ID")
    assert not {"site", "click"} & _imported(listing)

    version = _run(path, tmp_path, "version")
    assert version.stdout.startswith("capsa version ")
    assert {"site", "click"} <= _imported(version)


def test_an_interpreter_path_too_long_for_a_shebang_keeps_pips_script() -> None:
    assert launcher.render("/" + "x" * 200 + "/python", "/src") is None
    text = launcher.render("/venv/bin/python", "/src")
    assert text is not None and text.startswith("#!/venv/bin/python -S\n")


def test_capsa_runtime_runs_from_the_launcher_without_site(tmp_path: Path) -> None:
    path = tmp_path / "capsa-runtime"
    assert launcher.install(str(path), "capsa.runtime.cli:entry")
    assert path.read_text().startswith(f"#!{sys.executable} -S\n")
    proc = subprocess.run(
        [str(path), "--root", str(tmp_path / "state"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == "null"  # runc's answer for no containers
    assert "site" not in _imported(proc)


def test_an_entry_point_must_name_a_function() -> None:
    for bad in ("capsa.runtime.cli", ":entry", "capsa.runtime.cli:entry()"):
        with pytest.raises(ValueError):
            launcher.render("/venv/bin/python", "/src", bad)
