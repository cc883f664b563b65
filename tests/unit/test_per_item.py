"""Issue 12's fidelity details without a kernel: per-item reports, Docker's reference
patterns (``images REPO``), table output's final newline, SIGPIPE on a closed pipe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from capsa.engine.system.reports import ItemReport, each
from capsa.errors import Conflict, InvalidArgument, NotFound, no_such_container
from capsa.oci.reference import familiar_match, parse


def test_each_keeps_every_name_in_order() -> None:
    def verb(name: str) -> int:
        if name == "missing":
            raise no_such_container(name)
        if name == "busy":
            raise Conflict("busy")
        return len(name)

    reports = each(["a", "missing", "bb", "busy"], verb)
    assert [(r.name, r.value, r.ok) for r in reports] == [
        ("a", 1, True),
        ("missing", None, False),
        ("bb", 2, True),
        ("busy", None, False),
    ]
    assert isinstance(reports[1].error, NotFound) and isinstance(reports[3].error, Conflict)
    assert str(reports[1].error) == "No such container: missing"


def test_each_reports_a_name_that_is_not_utf8() -> None:
    name = b"bad\xff".decode("utf-8", "surrogateescape")

    def verb(text: str) -> None:
        text.encode("utf-8")

    (report,) = each([name], verb)
    assert isinstance(report.error, InvalidArgument)
    assert str(report.error) == 'invalid argument "bad\\xff": not UTF-8'
    assert report == ItemReport(name, error=report.error)


@pytest.mark.parametrize(
    ("pattern", "ref", "matches"),
    [
        ("busybox", "busybox:1.36", True),
        ("busybox:1.36", "busybox:1.36", True),
        ("busybox:1.36", "busybox:latest", False),
        ("bus*", "busybox:latest", True),
        ("bus?box", "busybox:latest", True),
        ("b[a-u]sybox", "busybox:latest", True),
        ("b[^u]sybox", "busybox:latest", False),
        ("busybox", "other/busybox:latest", False),  # a repository is matched whole
        ("*", "other/thing:latest", False),  # * stops at /
        ("*/*", "other/thing:latest", True),
        ("other/*", "other/thing:latest", True),
        ("docker.io/library/busybox", "busybox:latest", False),  # familiar names only
        ("localhost:5000/a/b", "localhost:5000/a/b:v1", True),
        ("busybox", "busybox@sha256:" + "a" * 64, True),
        (r"busybox\:1", "busybox:1", True),
    ],
)
def test_reference_patterns_match_as_dockers(pattern: str, ref: str, matches: bool) -> None:
    assert familiar_match(pattern, parse(ref, default_tag=False)) is matches


@pytest.mark.parametrize("pattern", ["[", "[]", "a\\", "[a-]", "[z-a]", "[^]"])
def test_malformed_reference_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        familiar_match(pattern, parse("busybox"))


def test_table_format_ends_with_a_newline(capsys: pytest.CaptureFixture[str]) -> None:
    from capsa.cli.render import render_format

    render_format("table {{.Name}}", [{"Name": "a"}, {"Name": "b"}])
    assert capsys.readouterr().out == "NAME\na\nb\n"
    render_format("table {{.Name}}", [])
    assert capsys.readouterr().out == "NAME\n"


def test_a_closed_pipe_kills_the_command_with_sigpipe() -> None:
    """Output that the reader no longer wants: SIGPIPE, no traceback, no message."""
    read, write = os.pipe()
    os.close(read)
    code = (
        "import sys; from capsa.cli.main import cli, main; import click\n"
        "@cli.command('fidelity-echo')\n"
        "def _echo() -> None:\n"
        "    click.echo('x' * 100000)\n"
        "sys.argv = ['capsa', 'fidelity-echo']; main()\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], stdout=write, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (-signal.SIGPIPE, b"")
