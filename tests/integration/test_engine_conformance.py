"""One engine, two doors: the same cases against ``LocalEngine`` (in this process, on the
module's private roots) and ``RemoteEngine`` (a ``capsa system service`` on the same
roots, through ``/capsa/v1``), and the CLI with ``--host``.

Each case asserts what really happened (the process ran and ended, the output came
back, the object is gone), and errors come back as the same ``capsa.errors`` kinds.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import api as api_helpers
from tests.helpers import capsa_cli
from tests.helpers import registry as registry_helpers
from tests.helpers.api import ApiService
from tests.helpers.capsa_cli import CAPSA, IMAGE, CapsaCli

from capsa import errors
from capsa.engine.containers import attach as frames
from capsa.engine.containers.types import (
    ContainerSpec,
    ExecSpec,
    ExecStdio,
    LogOptions,
    PsOptions,
    State,
)

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa
api_module = api_helpers.api_module
registry = registry_helpers.registry

SUBNETS = {"local": "10.214.31.0/24", "remote": "10.214.32.0/24"}


@pytest.fixture(params=["local", "remote"])
def engine(request: pytest.FixtureRequest, capsa: CapsaCli) -> Iterator[Any]:
    """The local engine on the module's roots, or the remote one on a service over them."""
    if request.param == "local":
        from capsa import config
        from capsa.engine.local import LocalEngine

        settings = config.load(root=str(capsa.root), runroot=str(capsa.runroot), env={})
        eng: Any = LocalEngine(settings, monitor_start="spawn")
    else:
        from capsa.client.remote import RemoteEngine

        service: ApiService = request.getfixturevalue("api_module")
        eng = RemoteEngine(service.url)
    eng.kind = request.param
    try:
        yield eng
    finally:
        eng.close()


def _spec(capsa: CapsaCli, *command: str, **kw: Any) -> ContainerSpec:
    return ContainerSpec(
        image=IMAGE, name=capsa.name(), command=list(command), network_mode="none", **kw
    )


def _create(engine: Any, capsa: CapsaCli, *command: str, **kw: Any) -> Any:
    rec = engine.containers.create(_spec(capsa, *command, **kw))
    capsa.ids.add(rec.id)
    return rec


def _frames_until_exit(fd: int, timeout: float = 30) -> tuple[bytes, bytes, int | None]:
    """What an attach connection carries up to the EXIT frame: (stdout, stderr, code)."""
    import select

    reader = frames.FrameReader()
    out, err = b"", b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            return out, err, None
        for kind, payload in reader.feed(data):
            if kind == frames.STDOUT:
                out += payload
            elif kind == frames.STDERR:
                err += payload
            elif kind == frames.EXIT:
                return out, err, frames.AttachStream.exit_code(payload)
    pytest.fail(f"no exit frame within {timeout}s (got {out!r} {err!r})")


# -- containers --------------------------------------------------------------------------


def test_lifecycle(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(engine, capsa, "sleep", "300", init=True)
    assert rec.state is State.CREATED and rec.spec.command == ["sleep", "300"]
    assert rec.spec.name == "" or rec.name
    started, _ = engine.containers.start(rec.name)
    assert started.id == rec.id and started.state is State.RUNNING
    got = engine.containers.get(rec.id[:12])
    assert got.state is State.RUNNING and got.pid > 0
    assert Path(f"/proc/{got.pid}").exists()  # the process really runs
    listed = engine.containers.list_containers(PsOptions())
    assert rec.id in [r.id for r in listed]
    stopped = engine.containers.stop(rec.name, timeout=1)
    assert stopped.state is State.EXITED
    assert engine.containers.wait(rec.name) == stopped.exit_code
    assert not Path(f"/proc/{got.pid}").exists() or _is_zombie_or_other(got.pid)
    assert rec.id not in [r.id for r in engine.containers.list_containers(PsOptions())]
    assert rec.id in [r.id for r in engine.containers.list_containers(PsOptions(all=True))]
    assert engine.containers.remove(rec.name) in (rec.id, rec.name)
    with pytest.raises(errors.NotFound):
        engine.containers.get(rec.id)


def _is_zombie_or_other(pid: int) -> bool:
    try:
        return "(sleep)" not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def test_kill_and_wait(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(engine, capsa, "sleep", "300")
    engine.containers.start(rec.id)
    killed = engine.containers.kill(rec.id, 9)
    assert killed.id == rec.id
    assert engine.containers.wait(rec.id) == 137
    assert engine.containers.get(rec.id).state is State.EXITED
    reports = engine.containers.each.remove([rec.id, "no-such-container-xyz"])
    assert reports[0].error is None
    assert isinstance(reports[1].error, errors.NotFound)


def test_logs(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(engine, capsa, "sh", "-c", "echo out-line; echo err-line >&2")
    engine.containers.start(rec.id)
    assert engine.containers.wait(rec.id) == 0
    entries = list(engine.containers.logs(rec.id, LogOptions()))
    got = {(e.stream, e.text.strip()) for e in entries}
    assert ("stdout", "out-line") in got and ("stderr", "err-line") in got
    assert all(e.timestamp > 0 for e in entries)
    tail = list(engine.containers.logs(rec.id, LogOptions(tail=1)))
    assert len(tail) == 1
    engine.containers.remove(rec.id)


def test_stats_stream_ends_with_the_container(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(engine, capsa, "sleep", "300", init=True)
    engine.containers.start(rec.id)
    stream = engine.containers.stats(rec.id, 0.2)
    first = next(stream)
    assert first.running and first.id == rec.id and first.data.get("pids")
    engine.containers.kill(rec.id, 9)
    rest = list(stream)  # ends by itself once a sample finds it stopped
    assert rest and not rest[-1].running
    with pytest.raises(errors.NotFound):
        engine.containers.stats("no-such-container-xyz")
    engine.containers.remove(rec.id)


def test_logs_of_nothing_is_not_found(engine: Any) -> None:
    with pytest.raises(errors.NotFound):
        list(engine.containers.logs("no-such-container-xyz", LogOptions()))


def test_exec_with_pipes(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(engine, capsa, "sleep", "300", init=True)
    engine.containers.start(rec.id)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    os.write(in_w, b"from-stdin\n")
    os.close(in_w)
    spec = ExecSpec(
        command=["sh", "-c", "cat; echo to-err >&2; exit 3"], interactive=True, env=["A=1"]
    )
    session = engine.containers.exec(
        rec.id, spec, ExecStdio(stdin=in_r, stdout=out_w, stderr=err_w)
    )
    assert session is not None and session.master == -1
    code = session.wait()
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    out, err = _drain(out_r), _drain(err_r)
    assert code == 3
    assert out == b"from-stdin\n" and err == b"to-err\n"
    engine.containers.remove(rec.id, force=True)


def _drain(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return data


def test_exec_errors(engine: Any, capsa: CapsaCli) -> None:
    with pytest.raises(errors.NotFound):
        engine.containers.exec("no-such-container-xyz", ExecSpec(command=["true"]), ExecStdio())
    rec = _create(engine, capsa, "sleep", "300")
    with pytest.raises(errors.CapsaError) as caught:  # not running: the same kind both ways
        engine.containers.exec(rec.id, ExecSpec(command=["true"]), ExecStdio())
    assert type(caught.value) in (errors.Conflict, errors.FailedPrecondition)
    engine.containers.remove(rec.id)


def test_attach(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(
        engine, capsa, "sh", "-c", "read line; echo got-$line; echo bye >&2", stdin_open=True
    )
    engine.containers.start(rec.id)
    stream = engine.containers.attach(rec.id)
    stream.hello(stdin=True)
    stream.send(b"abc\n")
    out, err, code = _frames_until_exit(stream.fd)
    stream.close()
    assert out == b"got-abc\n" and err == b"bye\n" and code == 0
    assert engine.containers.wait(rec.id) == 0
    engine.containers.remove(rec.id)


def test_start_attached(engine: Any, capsa: CapsaCli) -> None:
    """What ``run`` without ``-d`` does: connect before the program starts, miss nothing."""
    rec = _create(engine, capsa, "sh", "-c", "echo first; exit 5")
    started, launch = engine.containers.start(rec.id, wait_attach=True)
    assert started.id == rec.id and launch is not None
    stream = frames.AttachStream(launch.connect())
    stream.hello(stdin=False)
    launch.wait_ready()
    assert isinstance(launch.warnings, list)
    out, _, code = _frames_until_exit(stream.fd)
    stream.close()
    assert out == b"first\n" and code == 5
    assert engine.containers.wait(rec.id) == 5
    engine.containers.remove(rec.id)


def test_start_attached_failure_is_its_kind(engine: Any, capsa: CapsaCli) -> None:
    rec = _create(engine, capsa, "/no/such/program")
    _, launch = engine.containers.start(rec.id, wait_attach=True)
    stream = frames.AttachStream(launch.connect())
    stream.hello(stdin=False)
    with pytest.raises(errors.CommandNotFound):
        launch.wait_ready()
    stream.close()
    engine.containers.remove(rec.id, force=True)


def test_files(engine: Any, capsa: CapsaCli) -> None:
    """cp's streams both ways, diff and export."""
    import io
    import tarfile

    rec = _create(engine, capsa, "sleep", "300", init=True)
    engine.containers.start(rec.id)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    buf.seek(0)
    engine.fs.extract(rec.id, "/tmp", buf)
    assert engine.fs.stat_path(rec.id, "/tmp/hello.txt").size == 6
    out = io.BytesIO()
    engine.fs.archive(rec.id, "/tmp/hello.txt", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:") as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == b"hello\n"
    assert "/tmp/hello.txt" in [c.path for c in engine.fs.changes(rec.id)]
    exported = io.BytesIO()
    engine.fs.export(rec.id, exported)
    with tarfile.open(fileobj=io.BytesIO(exported.getvalue()), mode="r:") as tar:
        assert "tmp/hello.txt" in [n.lstrip("./") for n in tar.getnames()]
    with pytest.raises(errors.NotFound):
        engine.fs.archive(rec.id, "/no/such/path", io.BytesIO())
    engine.containers.remove(rec.id, force=True)


# -- images, volumes, networks ------------------------------------------------------------


def test_images(engine: Any, capsa: CapsaCli) -> None:
    names = [t for s in engine.images.list_images() for t in s.repo_tags]
    assert IMAGE in names
    detail = engine.images.inspect(IMAGE)
    assert detail.summary.id.startswith("sha256:") and detail.config.rootfs
    assert engine.images.exists(IMAGE)
    tag = f"capsa-test/conformance-{capsa.name()}:v1"
    engine.images.tag(IMAGE, tag)
    assert engine.images.inspect(tag).summary.id == detail.summary.id
    assert [r.ok for r in engine.images.inspect_each([tag, "no-such-image-xyz"])] == [True, False]
    report = engine.images.remove([tag])
    assert tag in " ".join(report.untagged)
    with pytest.raises(errors.NotFound):
        engine.images.inspect(tag)
    assert engine.images.history(IMAGE)


def test_push_and_pull_with_progress(
    engine: Any, capsa: CapsaCli, registry: registry_helpers.LocalRegistry
) -> None:
    """Through the remote engine, the registry's progress comes back event by event."""
    from capsa.progress import RecordingProgress

    ref = f"{registry.host}/conformance-{engine.kind}/busybox:v1"
    engine.images.tag(IMAGE, ref)
    pushed = RecordingProgress()
    digest = engine.images.push(ref, progress=pushed)
    assert digest.startswith("sha256:")
    assert any(e.action for e in pushed.events)
    engine.images.remove([ref])
    pulled = RecordingProgress()
    summary = engine.images.pull(ref, progress=pulled)
    assert ref.split("/", 1)[1] in " ".join(summary.repo_tags) or summary.repo_tags
    assert pulled.events and all(e.id for e in pulled.events)
    assert engine.images.inspect(ref).summary.id == engine.images.inspect(IMAGE).summary.id
    with pytest.raises(errors.CapsaError) as caught:
        engine.images.pull(
            f"{registry.host}/conformance-{engine.kind}/busybox:absent", progress=pulled
        )
    assert isinstance(caught.value, errors.NotFound)
    engine.images.remove([ref])


def test_volumes(engine: Any, capsa: CapsaCli) -> None:
    from capsa.engine.volumes.types import VolumeCreateOptions

    name = capsa.name()
    vol = engine.volumes.create(VolumeCreateOptions(name=name, labels={"conf": "1"}))
    assert vol.name == name and vol.labels == {"conf": "1"}
    assert Path(engine.volumes.get(name).mountpoint).is_dir()
    assert name in [v.name for v in engine.volumes.list()]
    with pytest.raises(errors.CapsaError) as caught:
        engine.volumes.create(VolumeCreateOptions(name="bad name!"))
    assert isinstance(caught.value, errors.InvalidArgument)
    engine.volumes.remove(name)
    with pytest.raises(errors.NotFound):
        engine.volumes.get(name)


def test_networks(engine: Any, capsa: CapsaCli) -> None:
    from capsa.engine.network.types import NetworkCreateOptions

    name = capsa.name()
    subnet = SUBNETS[engine.kind]
    net = engine.networks.create(NetworkCreateOptions(name=name, subnet=subnet))
    try:
        assert net.name == name and engine.networks.inspect(name).id == net.id
        assert subnet in str(engine.networks.inspect(name))
        assert name in [n.name for n in engine.networks.list()]
        with pytest.raises(errors.CapsaError) as caught:
            engine.networks.create(NetworkCreateOptions(name=name, subnet=subnet))
        assert isinstance(caught.value, errors.AlreadyExists | errors.Conflict)
        assert engine.networks.endpoints_of(net) == []
    finally:
        engine.networks.remove(name)
    with pytest.raises(errors.NotFound):
        engine.networks.inspect(name)


# -- events and errors --------------------------------------------------------------------


def test_events(engine: Any, capsa: CapsaCli) -> None:
    since = time.time() - 1
    rec = _create(engine, capsa, "true")
    engine.containers.start(rec.id)
    engine.containers.wait(rec.id)
    engine.containers.remove(rec.id)
    until = time.time() + 1
    seen = [
        e.get("Action") or e.get("action") or e.get("status")
        for e in engine.events.stream(since, until, {"container": [rec.id]})
    ]
    assert {"create", "start", "die", "destroy"} <= set(seen)


def test_events_stop_while_idle(engine: Any) -> None:
    """A following stream ends once ``stop`` says so, even while nothing happens."""
    began = time.monotonic()
    items = list(
        engine.events.stream(
            time.time(),
            None,
            {"container": ["nothing-xyz"]},
            stop=lambda: time.monotonic() - began > 1.5,
        )
    )
    assert items == []


def test_errors_keep_their_kind(engine: Any, capsa: CapsaCli) -> None:
    with pytest.raises(errors.NotFound):
        engine.containers.get("no-such-container-xyz")
    with pytest.raises(errors.NotFound):
        engine.images.inspect("no-such-image-xyz:latest")
    rec = _create(engine, capsa, "sleep", "300", init=True)
    with pytest.raises(errors.CapsaError) as caught:  # the name is taken
        engine.containers.create(ContainerSpec(image=IMAGE, name=rec.name, network_mode="none"))
    assert type(caught.value) in (errors.Conflict, errors.AlreadyExists)
    engine.containers.start(rec.id)
    with pytest.raises(errors.Conflict):
        engine.containers.remove(rec.id)  # running, without force
    with pytest.raises(errors.InvalidArgument):
        engine.containers.rename(rec.id, "bad name!")
    engine.containers.remove(rec.id, force=True)


# -- the CLI as a client -------------------------------------------------------------------


def _cli(
    service: ApiService,
    tmp_path: Path,
    *args: str,
    env_host: bool = False,
    short: bool = False,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """``capsa --host ...`` with local roots that are not the service's (empty ones): what
    it shows can only come from the service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPSA_")}
    env["CAPSA_ROOT"], env["CAPSA_RUNROOT"] = str(tmp_path / "root"), str(tmp_path / "run")
    env["CAPSA_WARM"] = "0"
    argv = [CAPSA, *args] if env_host else [CAPSA, "-H" if short else "--host", service.url, *args]
    if env_host:
        env["CAPSA_HOST"] = service.url
    kw.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, **kw)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_with_host(api_module: ApiService, capsa: CapsaCli, tmp_path: Path) -> None:
    name = capsa.name()
    run = _cli(
        api_module,
        tmp_path,
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        IMAGE,
        "sh",
        "-c",
        "echo hello-remote; sleep 300",
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip().splitlines()[-1]
    capsa.ids.add(cid)
    assert capsa.status(name) == "running"  # the service's engine made it
    ps = _cli(api_module, tmp_path, "ps", "--format", "{{.Names}}")
    assert name in ps.stdout.split()
    ps_env = _cli(api_module, tmp_path, "ps", "-q", "--no-trunc", env_host=True)  # fast path
    assert cid in ps_env.stdout.split()
    images = _cli(
        api_module, tmp_path, "images", "--format", "{{.Repository}}:{{.Tag}}", short=True
    )
    assert IMAGE in images.stdout.split()  # the fast path with -H: the service's images
    capsa.wait_for(lambda: "hello-remote" in capsa.run("logs", name).stdout, what="the log line")
    logs = _cli(api_module, tmp_path, "logs", name)
    assert logs.stdout == "hello-remote\n"
    ex = _cli(api_module, tmp_path, "exec", name, "sh", "-c", "echo in-exec; exit 4")
    assert ex.returncode == 4 and ex.stdout == "in-exec\n"
    piped = _cli(
        api_module, tmp_path, "exec", "-i", name, "cat", input="through-stdin\n", stdin=None
    )
    assert piped.returncode == 0 and piped.stdout == "through-stdin\n"
    (tmp_path / "up.txt").write_text("uploaded\n")
    up = _cli(api_module, tmp_path, "cp", str(tmp_path / "up.txt"), f"{name}:/tmp/")
    assert up.returncode == 0, up.stderr
    down = _cli(api_module, tmp_path, "cp", f"{name}:/tmp/up.txt", str(tmp_path / "down.txt"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "down.txt").read_text() == "uploaded\n"
    insp = _cli(api_module, tmp_path, "inspect", "-f", "{{.State.Status}}", name)
    assert insp.stdout.strip() == "running"
    rm = _cli(api_module, tmp_path, "rm", "-f", name)
    assert rm.returncode == 0
    assert name not in capsa.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
    missing = _cli(api_module, tmp_path, "logs", name)
    assert missing.returncode != 0 and "no such container" in missing.stderr.lower()


def test_cli_run_attached_with_host(
    api_module: ApiService, capsa: CapsaCli, tmp_path: Path
) -> None:
    out = _cli(
        api_module,
        tmp_path,
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "echo attached-out; echo attached-err >&2; exit 7",
    )
    assert out.returncode == 7
    assert out.stdout == "attached-out\n" and out.stderr == "attached-err\n"
    piped = _cli(
        api_module,
        tmp_path,
        "run",
        "--rm",
        "-i",
        "--network",
        "none",
        IMAGE,
        "cat",
        input="hi\n",
        stdin=None,
    )
    assert piped.returncode == 0 and piped.stdout == "hi\n"


def test_cli_host_errors(tmp_path: Path, capsa: CapsaCli) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPSA_")}
    env["CAPSA_WARM"] = "0"
    nowhere = subprocess.run(
        [CAPSA, "--host", f"unix://{tmp_path}/none.sock", "ps"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert nowhere.returncode == 1 and "Traceback" not in nowhere.stderr
    assert "cannot connect" in nowhere.stderr and nowhere.stderr.count("\n") == 1
    tcp = subprocess.run(
        [CAPSA, "--host", "tcp://127.0.0.1:2375", "ps"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert tcp.returncode == 1 and "unix://" in tcp.stderr


# -- terminals through --host ---------------------------------------------------------------


@pytest.fixture
def terminals(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Pty processes a test starts (cold commands); killed and reaped at the end."""
    monkeypatch.setenv("CAPSA_WARM", "0")
    started: list[Any] = []
    yield started
    for term in started:
        term.close()


def _on_pty(terminals: list[Any], argv: list[str], rows: int, cols: int) -> Any:
    from tests.helpers.terminal import PtyProcess

    term = PtyProcess(argv, rows, cols)
    terminals.append(term)
    return term


def test_cli_run_it_with_host(
    api_module: ApiService, capsa: CapsaCli, terminals: list[Any]
) -> None:
    name = capsa.name()
    argv = [CAPSA, "--host", api_module.url, "run", "-it", "--network", "none", "--name", name]
    term = _on_pty(terminals, [*argv, IMAGE, "sh"], rows=31, cols=97)
    term.term.read_until("# ", timeout=30)
    term.term.write("echo tty=$(tty); stty size; echo sum-$((2+3)); exit 3\r")
    text = term.term.read_until("sum-5")
    assert "tty=/dev/pts/" in text and "31 97" in text
    assert term.wait(timeout=30) == 3
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "3"
    capsa.run("rm", name)


def test_cli_exec_it_with_host(
    api_module: ApiService, capsa: CapsaCli, terminals: list[Any]
) -> None:
    name = capsa.name()
    capsa.run("run", "-d", "--init", "--name", name, IMAGE, "sleep", "300")
    argv = [CAPSA, "--host", api_module.url, "exec", "-it", name, "sh"]
    term = _on_pty(terminals, argv, rows=27, cols=88)
    term.term.read_until("# ", timeout=30)
    term.term.write("echo tty=$(tty); stty size; echo exec-$((4+4))\r")
    text = term.term.read_until("exec-8")
    assert "tty=/dev/pts/" in text and "27 88" in text
    from tests.helpers.terminal import set_winsize

    set_winsize(term.term.fd, 33, 101)  # our window changes: the exec's follows
    capsa.wait_for(
        lambda: "33 101" in capsa.run("exec", name, "sh", "-c", "stty size -F /dev/pts/0").stdout,
        what="the exec's terminal resized",
    )
    term.term.write("exit 6\r")
    assert term.wait(timeout=30) == 6
    capsa.run("rm", "-f", name)


def test_cli_logs_follow_and_attach_with_host(
    api_module: ApiService, capsa: CapsaCli, tmp_path: Path
) -> None:
    name = capsa.name()
    capsa.run(
        "run", "-d", "-i", "--name", name, IMAGE,
        "sh", "-c", "echo started; read line; echo got-$line; sleep 1; echo done",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPSA_")}
    env.update(CAPSA_WARM="0", CAPSA_HOST=api_module.url, CAPSA_ROOT=str(tmp_path / "r"))
    follow = subprocess.Popen(
        [CAPSA, "logs", "-f", name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    attached = subprocess.run(
        [CAPSA, "attach", name], env=env, input="over-attach\n", capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    assert "got-over-attach" in attached.stdout and "done" in attached.stdout
    out, err = follow.communicate(timeout=60)  # follow ends with the container
    assert follow.returncode == 0, err
    assert out.splitlines() == ["started", "got-over-attach", "done"]
    capsa.run("rm", name)


def test_progress_reaches_the_sink(engine: Any, capsa: CapsaCli) -> None:
    """create with a progress sink (the remote one answers NDJSON) makes the same record."""
    from capsa.progress import RecordingProgress

    progress = RecordingProgress()
    rec = engine.containers.create(_spec(capsa, "true"), progress)
    capsa.ids.add(rec.id)
    assert engine.containers.get(rec.id).image_name == IMAGE
    with pytest.raises(errors.CapsaError) as caught:  # an error after the stream began
        engine.containers.create(
            ContainerSpec(image=IMAGE, name=rec.name, network_mode="none"), progress
        )
    assert type(caught.value) in (errors.Conflict, errors.AlreadyExists)
    engine.containers.remove(rec.id)
