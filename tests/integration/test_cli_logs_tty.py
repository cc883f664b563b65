"""`capsa logs` (json-file, rotated) and interactive terminals driven through a pty:
`run -it`, window resize, exit codes, Ctrl-P Ctrl-Q detach, `attach`, `exec -it`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli
from tests.helpers.terminal import PtyProcess, set_winsize

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)) (.*)$")


def _finished(capsa: CapsaCli, *flags: str, script: str) -> str:
    """Run ``script`` detached and wait for it to exit; the container's name."""
    name = capsa.name()
    capsa.detached("--name", name, *flags, cmd=("sh", "-c", script))
    capsa.run("wait", name)
    return name


def _stamp(text: str) -> datetime:
    main, _, frac = text.rstrip("Z").partition(".")
    when = datetime.fromisoformat(main).replace(tzinfo=UTC)
    return when + timedelta(microseconds=int((frac + "000000")[:6]) if frac else 0)


# -- logs -----------------------------------------------------------------------------------


def test_logs_stdout_and_stderr(capsa: CapsaCli) -> None:
    name = _finished(capsa, script="echo out1; echo err1 >&2; echo out2; printf partial")
    proc = capsa.run("logs", name)
    assert proc.stdout == "out1\nout2\npartial"
    assert proc.stderr == "err1\n"


def test_logs_tail(capsa: CapsaCli) -> None:
    name = _finished(capsa, script="seq 1 10")
    assert capsa.run("logs", "--tail", "3", name).stdout.split() == ["8", "9", "10"]
    assert capsa.run("logs", "-n", "1", name).stdout == "10\n"
    assert capsa.run("logs", "--tail", "0", name).stdout == ""
    assert capsa.run("logs", "--tail", "all", name).stdout.split() == [str(i) for i in range(1, 11)]
    bad = capsa.run("logs", "--tail", "many", name, check=False)
    assert bad.returncode != 0 and "many" in bad.stderr


def test_logs_timestamps_since_until(capsa: CapsaCli) -> None:
    name = _finished(capsa, script="echo first; sleep 1.2; echo second")
    lines = capsa.run("logs", "-t", name).stdout.splitlines()
    assert len(lines) == 2
    parsed = [STAMP.match(line) for line in lines]
    assert all(parsed), lines
    stamps = [_stamp(m.group(1)) for m in parsed if m]
    assert [m.group(4) for m in parsed if m] == ["first", "second"]
    middle = stamps[0] + (stamps[1] - stamps[0]) / 2
    unix = f"{middle.timestamp():.6f}"
    assert capsa.run("logs", "--since", unix, name).stdout == "second\n"
    assert capsa.run("logs", "--until", unix, name).stdout == "first\n"
    rfc = middle.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert capsa.run("logs", "--since", rfc, name).stdout == "second\n"
    assert capsa.run("logs", "--since", "10m", name).stdout == "first\nsecond\n"
    assert capsa.run("logs", "--until", "10m", name).stdout == ""


def test_logs_follow(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, cmd=("sh", "-c", "echo one; sleep 1; echo two; sleep 0.3"))
    follow = capsa.popen("logs", "-f", name)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "one\n"
        assert follow.stdout.readline() == "two\n"
        assert follow.wait(15) == 0, "logs -f did not end when the container exited"
        assert follow.stdout.read() == ""
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.wait()
        for pipe in (follow.stdout, follow.stderr):
            if pipe:
                pipe.close()


def test_logs_follow_tail_running(capsa: CapsaCli) -> None:
    name = capsa.name()
    script = "seq 1 5; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after"
    capsa.detached("--name", name, "--init", cmd=("sh", "-c", script))
    capsa.wait_for(lambda: "5" in capsa.run("logs", name).stdout.split(), what="seq")
    follow = capsa.popen("logs", "-f", "--tail", "2", name)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "4\n"
        assert follow.stdout.readline() == "5\n"
        capsa.run("exec", name, "touch", "/tmp/go")
        assert follow.stdout.readline() == "after\n"
        assert follow.wait(15) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.wait()
        for pipe in (follow.stdout, follow.stderr):
            if pipe:
                pipe.close()


def _log_files(capsa: CapsaCli, name: str) -> dict[str, int]:
    data = capsa.root / "containers" / capsa.full_id(name)
    return {p.name: p.stat().st_size for p in data.iterdir() if p.name.startswith("json.log")}


def test_log_rotation_with_options(capsa: CapsaCli) -> None:
    script = 'i=0; while [ $i -lt 300 ]; do echo "line-$i-xxxxxxxxxxxxxxxxxxxx"; i=$((i+1)); done'
    name = _finished(capsa, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", script=script)
    files = _log_files(capsa, name)
    assert sorted(files) == ["json.log", "json.log.1"], files
    assert sum(files.values()) <= 2 * 1024 + 512, files
    assert capsa.inspect(name)["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "1k", "max-file": "2"},
    }
    lines = capsa.run("logs", name).stdout.splitlines()
    assert lines[-1] == "line-299-xxxxxxxxxxxxxxxxxxxx"
    assert "line-0-xxxxxxxxxxxxxxxxxxxx" not in lines
    numbers = [int(line.split("-")[1]) for line in lines]
    assert numbers == sorted(numbers) and numbers == list(range(numbers[0], 300))


def test_log_rotation_by_default(capsa: CapsaCli) -> None:
    # 11 MB of output: more than one default file (10 MiB), rotated once
    script = "head -c 11000000 /dev/zero | tr '\\0' x | fold -w 500"
    name = _finished(capsa, script=script)
    files = _log_files(capsa, name)
    assert "json.log.1" in files, f"no rotation by default: {files}"
    assert max(files.values()) <= 10 * 1024 * 1024 + 4096
    assert capsa.run("logs", "--tail", "1", name).stdout.strip() == "x" * 500


def test_bad_log_opt_is_125(capsa: CapsaCli) -> None:
    for opt in ("max-size=lots", "max-file=0", "colour=red"):
        proc = capsa.run("run", "--rm", "--log-opt", opt, IMAGE, "true", check=False)
        assert proc.returncode == 125, f"{opt}: {proc.stderr}"
    assert capsa.run("ps", "-aq").stdout == ""


# -- terminals ----------------------------------------------------------------------------------


@pytest.fixture
def terminals() -> Iterator[list[PtyProcess]]:
    """Pty processes a test starts; killed and reaped at the end."""
    started: list[PtyProcess] = []
    yield started
    for term in started:
        term.close()


def _spawn(
    terminals: list[PtyProcess], argv: list[str], rows: int = 24, cols: int = 80
) -> PtyProcess:
    term = PtyProcess(argv, rows, cols)
    terminals.append(term)
    return term


def _prompt(term: PtyProcess) -> None:
    """Wait for busybox sh's ``# `` prompt before typing."""
    term.term.read_until("# ")


def test_run_it_tty_resize_and_exit_code(capsa: CapsaCli, terminals: list[PtyProcess]) -> None:
    name = capsa.name()
    term = _spawn(terminals, capsa.argv("run", "-it", "--name", name, IMAGE, "sh"))
    _prompt(term)
    term.term.write("echo tty=$(tty); stty size; echo one-$((1+1))\r")
    text = term.term.read_until("one-2")
    assert re.search(r"tty=/dev/pts/\d+", text), text
    assert "24 80" in text, text
    set_winsize(term.term.fd, 30, 100)
    os.kill(term.pid, signal.SIGWINCH)  # the kernel signals the foreground group; be sure
    time.sleep(0.3)
    mark = len(term.term.text)
    term.term.write("stty size; echo two-$((1+1))\r")
    term.term.read_until("two-2")
    assert "30 100" in term.term.text[mark:], term.term.text[mark:]
    term.term.write("exit 5\r")
    assert term.wait(15) == 5
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "5"
    assert capsa.inspect(name)["Config"]["Tty"] is True


def test_run_it_terminal_shows_the_container_first(
    capsa: CapsaCli, terminals: list[PtyProcess]
) -> None:
    """Nothing pulled, nothing shown: no progress display writes to the terminal (rich
    began with cursor codes, ESC[?25l ESC[2K ESC[?25h), so the first bytes the user sees
    are the container's."""
    term = _spawn(terminals, capsa.argv("run", "--rm", "-it", IMAGE, "echo", "first-bytes"))
    data = term.term.read_to_eof(30)
    assert term.wait(15) == 0
    assert term.term.data.startswith(b"first-bytes"), data


def test_detach_keys_and_attach(capsa: CapsaCli, terminals: list[PtyProcess]) -> None:
    name = capsa.name()
    term = _spawn(terminals, capsa.argv("run", "-it", "--name", name, IMAGE, "sh"))
    _prompt(term)
    term.term.write("echo started-$((6*7))\r")
    term.term.read_until("started-42")
    term.term.write("\x10\x11")  # ctrl-p ctrl-q
    assert term.wait(15) == 0
    assert capsa.status(name) == "running"
    again = _spawn(terminals, capsa.argv("attach", name))
    again.term.write("\r")  # attach shows nothing until the shell prints a new prompt
    _prompt(again)
    again.term.write("echo back-$((2*3))\r")
    again.term.read_until("back-6")
    again.term.write("exit 3\r")
    assert again.wait(15) == 3
    capsa.wait_status(name, "exited")
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "3"


def test_custom_detach_keys(capsa: CapsaCli, terminals: list[PtyProcess]) -> None:
    name = capsa.name()
    argv = capsa.argv("run", "-it", "--detach-keys", "ctrl-x,x", "--name", name, IMAGE, "sh")
    term = _spawn(terminals, argv)
    _prompt(term)
    term.term.write("echo ready-$((1+1))\r")
    term.term.read_until("ready-2")
    term.term.write("\x18x")
    assert term.wait(15) == 0
    assert capsa.status(name) == "running"


def test_exec_it(capsa: CapsaCli, terminals: list[PtyProcess]) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    term = _spawn(terminals, capsa.argv("exec", "-it", name, "sh"), rows=40, cols=120)
    _prompt(term)
    term.term.write("echo exec-tty=$(tty); stty size; echo pid1=$(cat /proc/1/comm) end-$((1+1))\r")
    text = term.term.read_until("end-2")
    assert re.search(r"exec-tty=/dev/pts/\d+", text), text
    assert "40 120" in text
    term.term.write("exit 4\r")
    assert term.wait(15) == 4
    assert capsa.status(name) == "running"


def test_exec_non_tty_and_stdin(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    proc = capsa.run("exec", "-i", name, "sh", "-c", "cat; exit 2", input="piped\n", check=False)
    assert proc.returncode == 2 and proc.stdout == "piped\n"
    proc = capsa.run(
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "-u",
        "user",
        name,
        "sh",
        "-c",
        'echo "$X $(pwd) $(id -u)"',
    )
    assert proc.stdout.split() == ["1", "/tmp", "1000"]
    missing = capsa.run("exec", name, "capsa-test-nosuchcmd", check=False)
    assert missing.returncode in (126, 127), missing.stderr
    assert "capsa-test-nosuchcmd" in missing.stderr


def test_run_i_pipes_stdin(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "-i", IMAGE, "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert proc.stdout == "HELLO\n"
    proc = capsa.run("run", "--rm", IMAGE, "cat", input="ignored\n")
    assert proc.stdout == "", "stdin must stay closed without -i"


def test_run_without_tty_sees_no_tty(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", IMAGE, "sh", "-c", "tty; echo rc=$?", check=False)
    assert "not a tty" in proc.stdout and "rc=1" in proc.stdout


def test_start_attach(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("create", "--name", name, IMAGE, "sh", "-c", "echo hello-start; exit 8")
    proc = capsa.run("start", "-a", name, check=False)
    assert proc.returncode == 8 and proc.stdout == "hello-start\n"
    proc = subprocess.run(
        capsa.argv("start", "-a", name), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 8


def test_logs_of_tty_container(capsa: CapsaCli, terminals: list[PtyProcess]) -> None:
    name = capsa.name()
    term = _spawn(terminals, capsa.argv("run", "-t", "--name", name, IMAGE, "echo", "tty-out"))
    assert term.wait(15) == 0
    assert "tty-out" in term.term.read_to_eof(5) if not term.term.eof else term.term.text
    assert capsa.run("logs", name).stdout.replace("\r\n", "\n") == "tty-out\n"


def test_log_path_matches_inspect(capsa: CapsaCli) -> None:
    name = _finished(capsa, script="echo x")
    log_path = Path(capsa.inspect(name)["LogPath"])
    assert log_path == capsa.root / "containers" / capsa.full_id(name) / "json.log"
    first = log_path.read_text().splitlines()[0]
    import json

    entry = json.loads(first)
    assert entry["log"] == "x\n" and entry["stream"] == "stdout" and "time" in entry
