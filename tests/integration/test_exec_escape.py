"""A hostile container against the processes that enter it (CVE-2019-5736 and kin).

Until its final execve, a process entering a container (an ``exec``, or an init that
shares a PID namespace) is the runtime's Python, with host file descriptors and the
host's interpreter as ``/proc/<pid>/exe``. The hostile container below races every
other process's ``/proc/<pid>/{exe,environ,mem,cwd,fd/*}``, keeps any host executable
it reaches and tries to overwrite it once nothing runs it; it also replaces a program
with ``#!/proc/self/exe`` so that the kernel would run the runtime's own binary inside
the container. The runtime and the CLI run from a private copy of the interpreter, so
a successful attack damages only that copy, which the tests check.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.bundle import BundleFactory
from tests.helpers.capsa_cli import CapsaCli
from tests.helpers.runtime import Runtime

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

HOSTILE = r"""
log=/tmp/opened; : >$log; me=$$; kept=
note() { echo "$1 $p $(readlink /proc/$p/exe)" >>$log; }
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$me" ] && continue
    if { true <$d/exe; } 2>/dev/null; then
      x=$(readlink $d/exe)
      case "$x" in
        /bin/busybox|/memfd:capsa-exec*) ;;
        *) echo "exe $p $x" >>$log
           [ -z "$kept" ] && command exec 7<$d/exe 2>/dev/null && kept=1 ;;
      esac
    fi
    { true <$d/environ; } 2>/dev/null && note environ
    { true <$d/mem; } 2>/dev/null && note mem
    { true <$d/cwd; } 2>/dev/null && note cwd
    for n in 3 4 5 6 7 8 9; do { true <>$d/fd/$n; } 2>/dev/null && note fd$n; done
  done
done
if [ -n "$kept" ]; then printf owned 1<>/proc/self/fd/7 && echo wrote >>$log; fi
echo done >>$log
exec sleep 3600  # the init lingers: its exit would kill the exec that made /tmp/stop
"""
EVIL = "#!/proc/self/exe\n"
HARMLESS = ("/bin/busybox", "/memfd:capsa-exec (deleted)", "")


@pytest.fixture(scope="module")
def private_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the interpreter (a venv made with --copies) that imports this capsa."""
    venv = tmp_path_factory.mktemp("private-python") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--copies", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_path("purelib")
    (site / "capsa_here.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    assert not python.is_symlink()
    yield python


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wrapper(path: Path, python: Path, code: str) -> Path:
    path.write_text(f"#!/bin/sh\nexec {python} -c '{code}' \"$@\"\n")
    path.chmod(0o755)
    return path


def _plant(rootfs: Path) -> None:
    (rootfs / "hostile.sh").write_text(HOSTILE)
    (rootfs / "bin" / "evil").write_text(EVIL)
    (rootfs / "bin" / "evil").chmod(0o755)


def _findings(log: str) -> list[str]:
    """Every line where the container reached something of the host's."""
    bad = []
    for line in log.splitlines():
        what, _, rest = line.partition(" ")
        if what == "done":
            continue
        exe = rest.partition(" ")[2]  # empty: gone before readlink
        if what == "wrote" or exe not in HARMLESS:
            bad.append(line)
    return bad


def _read_when_done(log: Path) -> str:
    """The hostile container's findings, once it has seen /tmp/stop and finished."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "done" in text:
            return text
        time.sleep(0.1)
    pytest.fail(f"the hostile container did not finish: {log.read_text()!r}")


def test_runtime_exec_and_init_cannot_be_reached(
    runtime: Runtime, bundle: BundleFactory, private_python: Path, tmp_path: Path
) -> None:
    before = _digest(private_python)
    hostile = runtime.new_id()
    path = bundle(["/bin/sh", "/hostile.sh"], prepare=_plant)
    runtime.run("run", "-d", "--bundle", str(path), hostile)
    copy = Runtime(
        "capsa-runtime (private interpreter)",
        str(
            _wrapper(
                tmp_path / "rt", private_python, "from capsa.runtime.cli import entry; entry()"
            )
        ),
        runtime.root,
        token=runtime.token,
    )
    for i in range(200):
        args = ("true",) if i % 2 else ("/bin/evil",)
        copy.run("exec", hostile, *args, check=False)
    pid = runtime.state(hostile)["pid"]

    def share_pid(spec: object) -> None:
        for ns in spec.linux.namespaces:  # type: ignore[attr-defined]
            if ns.type == "pid":
                ns.path = f"/proc/{pid}/ns/pid"

    for _ in range(10):  # inits in the hostile container's PID namespace
        other = bundle(["/bin/evil"], prepare=_plant, edit=share_pid)
        copy.run("run", "--bundle", str(other), copy.new_id() + "-init", check=False)
    copy.cleanup()
    opened = path / "rootfs" / "tmp" / "opened"
    state = runtime.state(hostile)
    assert state["status"] == "running", (state, opened.read_text()[-2000:])
    runtime.run("exec", hostile, "touch", "/tmp/stop")
    log = _read_when_done(path / "rootfs" / "tmp" / "opened")
    assert _findings(log) == []
    assert _digest(private_python) == before
    subprocess.run([str(private_python), "-c", "pass"], check=True)


def test_capsa_exec_cannot_be_reached(
    capsa: CapsaCli, private_python: Path, tmp_path: Path
) -> None:
    before = _digest(private_python)
    name = capsa.name()
    script = tmp_path / "hostile.sh"
    script.write_text(HOSTILE)
    cid = capsa.detached(
        "--name", name, "-v", f"{script}:/hostile.sh:ro", cmd=("sh", "/hostile.sh")
    )
    capsa.run("exec", name, "sh", "-c", f"printf '{EVIL}' >/bin/evil; chmod +x /bin/evil")
    cli = _wrapper(tmp_path / "capsa", private_python, "from capsa.cli.entry import main; main()")
    env = {**capsa.env, "CAPSA_WARM": "0"}  # the exec runs in this very process
    for i in range(60):
        args = ("true",) if i % 2 else ("/bin/evil",)
        subprocess.run([str(cli), "exec", name, *args], env=env, capture_output=True, timeout=60)
    capsa.run("exec", name, "touch", "/tmp/stop")  # through the overlay, not its upper dir
    log = _read_when_done(_upper(capsa, cid) / "tmp" / "opened")
    assert _findings(log) == []
    assert _digest(private_python) == before
    capsa.run("rm", "-f", name)


def _upper(capsa: CapsaCli, cid: str) -> Path:
    upper = capsa.root / "overlay-rw" / cid / "upper"
    assert upper.is_dir(), f"no upper directory at {upper}"
    return upper


def test_a_late_import_cannot_load_the_containers_code(
    runtime: Runtime, bundle: BundleFactory
) -> None:
    """The entering process resolves no module from the container's files: a module
    planted at the host's stdlib path inside the container never runs."""
    stdlib = Path(os.__file__).parent

    def plant(rootfs: Path) -> None:
        where = rootfs / stdlib.relative_to("/")
        where.mkdir(parents=True, exist_ok=True)
        payload = "open('/pwned', 'w').write(open('/proc/self/status').read())\n"
        for module in ("traceback", "linecache", "tokenize", "subprocess", "encodings/idna"):
            target = where / f"{module}.py"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(payload)

    idle = 'trap "exit 0" TERM; while :; do sleep 0.05; done'
    path = bundle(["/bin/sh", "-c", idle], prepare=plant)
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(path), cid)
    for args in (("/nonexistent",), ("/etc/passwd",), ("true",)):
        proc = runtime.run("exec", cid, *args, check=False)
        assert "Traceback" not in proc.stderr
    missing = bundle(["/nonexistent"], prepare=plant)
    runtime.run("run", "--bundle", str(missing), runtime.new_id(), check=False)
    for root in (path / "rootfs", missing / "rootfs"):
        assert not (root / "pwned").exists(), (root / "pwned").read_text()[:400]


def test_a_failed_final_exec_is_one_line_with_dockers_code(
    runtime: Runtime, bundle: BundleFactory
) -> None:
    """An execve that fails after start (here: one variable past the kernel's
    MAX_ARG_STRLEN) ends the init with a line naming the program, and 126."""

    def huge_env(spec: object) -> None:
        spec.process.env.append("BIG=" + "x" * 200_000)  # type: ignore[attr-defined]

    path = bundle(["/bin/true"], edit=huge_env)
    proc = runtime.run("run", "--bundle", str(path), runtime.new_id(), check=False)
    assert proc.returncode == 126
    assert "Traceback" not in proc.stderr and "OSError" not in proc.stderr
    assert "exec /bin/true: argument list too long" in proc.stderr
