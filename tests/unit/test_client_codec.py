"""The remote engine's JSON: the engine's records come back as the same classes, errors
as the same kinds, and the server's allow-list takes only the protocol's methods."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from capsa import errors
from capsa.client import codec
from capsa.engine import protocol
from capsa.engine.containers.types import (
    ContainerRecord,
    ContainerSpec,
    Healthcheck,
    MountSpec,
    PsOptions,
    State,
)
from capsa.engine.system.reports import ItemReport


def _round_trip(tp: Any, value: Any) -> Any:
    return codec.decode(tp, json.loads(json.dumps(codec.encode(value))))


def test_a_container_record_round_trips() -> None:
    spec = ContainerSpec(
        image="busybox",
        name="web",
        command=["sh", "-c", "echo hi"],
        labels={"a": "b"},
        healthcheck=Healthcheck(test=["CMD", "true"], interval=1.5),
        mounts=[MountSpec(type="volume", target="/data", source="v1", readonly=True)],
        stop_timeout=3,
    )
    rec = ContainerRecord(
        id="c" * 64, name="web", image_id="sha256:x", image_name="busybox", created="now",
        spec=spec, state=State.RUNNING, exit_code=None, health={"Status": "healthy"},
    )  # fmt: skip
    back = _round_trip(ContainerRecord, rec)
    assert back == rec
    assert back.state is State.RUNNING
    assert isinstance(back.spec.mounts[0], MountSpec) and back.spec.healthcheck.interval == 1.5


def test_generic_reports_carry_values_and_error_kinds() -> None:
    tp = list[ItemReport[int | None]]
    reports = [
        ItemReport("a", 3),
        ItemReport("b", None),
        ItemReport("c", error=errors.NotFound("no c")),
    ]
    back = _round_trip(tp, reports)
    assert [r.name for r in back] == ["a", "b", "c"]
    assert back[0].value == 3 and back[1].value is None
    assert isinstance(back[2].error, errors.NotFound) and str(back[2].error) == "no c"


def test_tuples_unions_and_options() -> None:
    assert _round_trip(tuple[list[str], int], (["a"], 5)) == (["a"], 5)
    assert _round_trip(PsOptions | None, None) is None
    opts = PsOptions(all=True, filters={"label": ["x=y"]})
    assert _round_trip(PsOptions | None, opts) == opts
    assert _round_trip(float | None, 2) == 2.0


def test_wrong_types_are_invalid_arguments_naming_the_field() -> None:
    with pytest.raises(errors.InvalidArgument, match=r"spec\.tty"):
        codec.decode(ContainerSpec, {"image": "x", "tty": "yes"}, "spec")
    with pytest.raises(errors.InvalidArgument):
        codec.decode(State, "sleeping")
    with pytest.raises(errors.InvalidArgument):
        codec.decode(ContainerSpec, {"tty": True}, "spec")  # image is required


def test_errors_come_back_as_their_kind() -> None:
    for kind in (errors.NotFound, errors.Conflict, errors.InvalidArgument, errors.CommandNotFound):
        got = codec.error_from(codec.error_doc(kind("message")))
        assert type(got) is kind and str(got) == "message"
    assert type(codec.error_from({"kind": "SystemExit", "message": "x"})) is errors.Internal
    assert type(codec.error_from({"kind": "os", "message": "x"})) is errors.Internal
    assert codec.error_doc(ValueError("boom"))["kind"] == "Internal"


def test_what_cannot_travel_says_so() -> None:
    with pytest.raises(TypeError, match="cannot send"):
        codec.encode(object())


# -- the protocol, the remote engine and the server's allow-list --------------------------

SERVICES = {
    "Containers": "RemoteContainers",
    "ContainerBatch": "RemoteBatch",
    "Images": "RemoteImages",
    "Volumes": "RemoteVolumes",
    "Networks": "RemoteNetworks",
    "System": "RemoteSystem",
    "Events": "RemoteEvents",
    "Files": "RemoteFiles",
}


def _methods(cls: type) -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(cls).items()
        if not name.startswith("_") and (callable(fn) or isinstance(fn, property))
    }


@pytest.mark.parametrize("proto_name", sorted(SERVICES))
def test_the_remote_engine_has_every_method_with_the_same_parameters(proto_name: str) -> None:
    from capsa.client import remote

    proto = getattr(protocol, proto_name)
    impl = getattr(remote, SERVICES[proto_name])
    for name, fn in _methods(proto).items():
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        if isinstance(fn, property):
            continue
        want = list(inspect.signature(fn).parameters)
        got = list(inspect.signature(getattr(impl, name)).parameters)
        assert got == want, f"{impl.__name__}.{name}{got} != {proto_name}.{name}{want}"


def test_every_protocol_annotation_resolves() -> None:
    """The codec decodes by these: a name it cannot see would silently be ``Any``."""
    for proto_name in SERVICES:
        for name, fn in _methods(getattr(protocol, proto_name)).items():
            if isinstance(fn, property):
                continue
            for param, tp in codec.hints(fn).items():
                if param in ("progress", "gone", "stop", "out", "stream"):
                    continue
                text = fn.__annotations__[param]
                assert tp is not Any or "Any" in text, f"{proto_name}.{name}: {param}: {text}"


def test_the_server_calls_only_protocol_methods() -> None:
    pytest.importorskip("aiohttp")
    from capsa.api.routes_capsa import decode_args, method_of

    _, fn = method_of("containers", "get")
    assert decode_args(fn, {"text": "web"}) == {"text": "web"}
    for service, method in [
        ("containers", "_stop"),
        ("containers", "ctx"),
        ("containers", "observe"),  # the service's, not the protocol's
        ("images", "register"),
        ("containers", "exec"),  # has its own endpoint
        ("nothing", "get"),
    ]:
        with pytest.raises(errors.NotFound):
            method_of(service, method)
    with pytest.raises(errors.InvalidArgument, match="unknown"):
        decode_args(fn, {"text": "web", "extra": 1})
    with pytest.raises(errors.InvalidArgument, match="missing"):
        decode_args(fn, {})
    _, create = method_of("containers", "create")
    with pytest.raises(errors.InvalidArgument, match="unknown progress"):
        decode_args(create, {"spec": {"image": "x"}, "progress": None})
    with pytest.raises(errors.InvalidArgument, match="spec"):
        decode_args(create, {"spec": {"image": 5}})


def test_host_syntax() -> None:
    from capsa.client.transport import socket_path

    assert socket_path("unix:///run/capsa/api.sock") == "/run/capsa/api.sock"
    assert socket_path("/run/x.sock") == "/run/x.sock"
    for bad in ("tcp://127.0.0.1:2375", "unix://", "ssh://host"):
        with pytest.raises(errors.InvalidArgument):
            socket_path(bad)


def test_the_cli_app_picks_the_engine_by_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from capsa.cli.app import App
    from capsa.client.remote import RemoteEngine

    monkeypatch.setenv("CAPSA_HOST", "unix:///tmp/nowhere.sock")
    assert isinstance(App(None, None, None, False).engine, RemoteEngine)
    assert not isinstance(App(None, None, None, False, host="").engine, RemoteEngine)
    monkeypatch.delenv("CAPSA_HOST")
    assert App(None, None, None, False).host is None


def test_the_client_loads_nothing_below_the_engine() -> None:
    """A remote command's codec and engine stay frontend-side (no kernel seam, no store)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from capsa.client import codec, remote, streams\n"
        "from capsa.engine import protocol\n"
        "from capsa.engine.containers.types import ContainerRecord, ContainerSpec\n"
        "for name in ('Containers', 'ContainerBatch', 'Images', 'Volumes', 'Networks', 'System'):\n"
        "    for fn in vars(getattr(protocol, name)).values():\n"
        "        if callable(fn):\n"
        "            codec.hints(fn)\n"
        "codec.decode(ContainerRecord, {'id': 'x', 'name': 'n', 'image_id': 'i',\n"
        "    'image_name': 'b', 'created': 'c', 'spec': {'image': 'b'}, 'state': 'running'})\n"
        "below = ('capsa.linux', 'capsa.cgroups', 'capsa.runtime', 'capsa.store')\n"
        "print(sorted(m for m in sys.modules if m.startswith(below)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_service_that_is_not_capsa_says_so(tmp_path: Any) -> None:
    import http.server
    import socketserver
    import threading

    class Docker(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"message":"page not found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    path = str(tmp_path / "docker.sock")
    server = socketserver.UnixStreamServer(path, Docker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from capsa.client.remote import RemoteEngine

        with pytest.raises(errors.Unavailable, match="does not speak capsa's API"):
            RemoteEngine(f"unix://{path}").containers.get("x")
    finally:
        server.shutdown()
        server.server_close()


def test_reaching_past_the_protocol_fails_in_one_clear_line() -> None:
    from capsa.client.remote import RemoteEngine

    containers = RemoteEngine("unix:///nowhere.sock").containers
    with pytest.raises(errors.Unavailable, match="cannot run through --host"):
        _ = containers.ctx  # type: ignore[attr-defined]
    assert getattr(containers, "_private", None) is None


def test_every_record_the_protocol_carries_has_resolvable_fields() -> None:
    """A field type the codec cannot see would come back as a plain dict: none may."""
    import typing

    from capsa import record

    seen: set[type] = set()
    problems: list[str] = []

    def walk(tp: Any) -> None:
        for arg in typing.get_args(tp):
            walk(arg)
        origin = typing.get_origin(tp) or tp
        if not (isinstance(origin, type) and record.is_record(origin)) or origin in seen:
            return
        seen.add(origin)
        for f in record.fields(origin):
            got = codec.field_types(origin)[f.name]
            if got is Any and "Any" not in f.type and f.type not in ("object",):
                problems.append(f"{origin.__name__}.{f.name}: {f.type}")
            walk(got)

    for proto_name in SERVICES:
        for fn in _methods(getattr(protocol, proto_name)).values():
            if not isinstance(fn, property):
                for tp in codec.hints(fn).values():
                    walk(tp)
    assert len(seen) > 20
    assert not problems, problems
