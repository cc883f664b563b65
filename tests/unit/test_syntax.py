"""capsa.syntax: Docker's string syntaxes read into typed values, refused in Docker's words."""

from __future__ import annotations

import calendar
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capsa.engine.containers.health import format_duration
from capsa.engine.containers.logs import LogConfig
from capsa.engine.containers.restart import RestartPolicy
from capsa.engine.containers.types import DeviceSpec, MountSpec, ThrottleSpec
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import Rlimit
from capsa.syntax.durations import (
    days_from_civil,
    parse_duration,
    parse_duration_ns,
    parse_time_arg,
)
from capsa.syntax.filters import (
    parse_event_filters,
    parse_filters,
    parse_image_filters,
    parse_ps_filters,
)
from capsa.syntax.keyvalue import PLAIN, key_values, parse_env, parse_labels
from capsa.syntax.mounts import (
    parse_device,
    parse_mount,
    parse_tmpfs,
    parse_volume,
    split_cp_arg,
)
from capsa.syntax.network import parse_extra_host, parse_publish
from capsa.syntax.policies import (
    apply_security_opts,
    parse_log_opts,
    parse_on_failure,
    parse_restart,
    parse_ulimit,
)
from capsa.syntax.sizes import parse_bytes, parse_cpus, parse_rate, parse_throttle, ram_in_bytes

NS = 1_000_000_000

# -- durations and times ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("0", 0.0),
        ("+5s", 5.0),
        ("-1m", -60.0),
        ("1h2m3s4ms5us6ns", 3723.004005006),
        ("10µs", 0.00001),
        ("10μs", 0.00001),
        ("1ns", 1e-9),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid duration ''"),
        ("-", "invalid duration '-'"),
        (".s", "invalid duration '.s'"),
        ("s", "invalid duration 's'"),
        ("30", "missing unit in duration '30'"),
        ("1m30", "missing unit in duration '1m30'"),
        ("3d", "unknown unit 'd' in duration '3d'"),
        ("5 s", "unknown unit ' s' in duration '5 s'"),
        ("1S", "unknown unit 'S' in duration '1S'"),
        ("9999999999h", "invalid duration '9999999999h'"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_duration(text)


@given(st.integers(min_value=-(1 << 63) + 1, max_value=(1 << 63) - 1))
def test_duration_round_trip(ns: int) -> None:
    assert parse_duration_ns(format_duration(ns)) == ns


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["h", "m", "s", "ms", "us", "ns"])),
        min_size=1,
        max_size=6,
    )
)
def test_duration_terms_add_up(terms: list[tuple[int, str]]) -> None:
    scale = {"h": 3600 * NS, "m": 60 * NS, "s": NS, "ms": 10**6, "us": 10**3, "ns": 1}
    text = "".join(f"{n}{unit}" for n, unit in terms)
    assert parse_duration_ns(text) == sum(n * scale[unit] for n, unit in terms)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("2s", NOW - 2),
        ("1.5h", NOW - 5400),
        ("300ms", NOW - 0.3),
        ("-1m", NOW + 60),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        ("0", 0.0),
        ("10", 10.0),
        ("2026-11-28T16:20:01Z", calendar.timegm((2026, 11, 28, 16, 20, 1))),
        ("2026-11-28T16:20:01.25Z", calendar.timegm((2026, 11, 28, 16, 20, 1)) + 0.25),
        ("2026-11-28T16:20:01+02:00", calendar.timegm((2026, 11, 28, 14, 20, 1))),
        ("2026-11-28T16:20:01-01:30", calendar.timegm((2026, 11, 28, 17, 50, 1))),
        ("2026-11-28T16:20Z", calendar.timegm((2026, 11, 28, 16, 20, 0))),
    ],
)
def test_parse_time_arg_values(text: str, expected: float) -> None:
    assert parse_time_arg(text, now=NOW) == pytest.approx(expected)


def test_parse_time_arg_without_zone_is_local_time() -> None:
    local = time.mktime((2026, 11, 28, 16, 20, 1, 0, 0, -1))
    assert parse_time_arg("2026-11-28T16:20:01") == local
    assert parse_time_arg("2026-11-28T16:20:01.5") == local + 0.5
    assert parse_time_arg("2026-11-28") == time.mktime((2026, 11, 28, 0, 0, 0, 0, 0, -1))


def test_parse_time_arg_defaults_to_the_clock() -> None:
    before = time.time()
    assert before - 61 <= parse_time_arg("1m") <= time.time() - 59


@pytest.mark.parametrize(
    "text", ["", "yesterday", "10x", "2026-13-01", "2026-11-28T25:00Z", "1.2.3", "-5"]
)
def test_parse_time_arg_errors(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid time"):
        parse_time_arg(text, now=NOW)


def test_civil_days_match_the_calendar() -> None:
    for year in (1600, 1900, 1969, 1970, 2000, 2024, 2026, 2100, 2400):
        for month in range(1, 13):
            for day in (1, 28):
                expected = calendar.timegm((year, month, day, 0, 0, 0)) // 86400
                assert days_from_civil(year, month, day) == expected


def test_a_duration_too_long_for_go_is_not_a_time() -> None:
    with pytest.raises(InvalidArgument, match="invalid time"):
        parse_time_arg("9999999999h", now=NOW)


# -- sizes, cpus, rates, throttles ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("512m", 512 << 20),
        ("1.5GiB", 3 << 29),
        ("10 m", 10 << 20),
        ("2KB", 2048),
        ("0", 0),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_ram_in_bytes(text: str, size: int) -> None:
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text", ["", "kb", "-1", "1.", "1e3", "1x", "9223372036854775808"])
def test_ram_in_bytes_refuses(text: str) -> None:
    assert ram_in_bytes(text) is None
    with pytest.raises(InvalidArgument, match=re.escape(f"invalid tmpfs size: '{text}'")):
        parse_bytes(text, "tmpfs size")


def test_parse_cpus() -> None:
    assert parse_cpus("1.5") == 1_500_000_000
    assert parse_cpus("0.01") == 10_000_000
    with pytest.raises(InvalidArgument, match="failed to parse inf as a rational number"):
        parse_cpus("inf")
    with pytest.raises(InvalidArgument, match="value is too precise"):
        parse_cpus("0.0000000001")


def test_parse_throttle() -> None:
    assert parse_throttle("/dev/sda:10m", False) == ThrottleSpec("/dev/sda", 10 << 20)
    assert parse_throttle("/dev/sda:100", True) == ThrottleSpec("/dev/sda", 100)
    with pytest.raises(InvalidArgument, match="invalid device path"):
        parse_throttle("sda:1", False)
    with pytest.raises(InvalidArgument, match="Number must be a positive integer"):
        parse_throttle("/dev/sda:-5", True)
    with pytest.raises(InvalidArgument, match="invalid rate: 'x'"):
        parse_throttle("/dev/sda:x", False)


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("10mbit", 10_000_000),
        ("512kbit", 512_000),
        ("1gbit", 10**9),
        ("2mbps", 16_000_000),
        ("1000", 1000),
        ("1.5mbit", 1_500_000),
        ("10M", 10_000_000),
    ],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize(
    "text", ["", "fast", "10 parsecs", "-1mbit", "10xbit", "1e400", "nan", "inf", "1e30gbit"]
)
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_rate(text)


# -- volumes, mounts, devices, cp -------------------------------------------------------


def test_parse_volume() -> None:
    assert parse_volume("/data") == MountSpec(type="volume", target="/data")
    assert parse_volume("vol:/x:ro,nocopy") == MountSpec(
        type="volume", target="/x", source="vol", readonly=True, no_copy=True
    )
    bind = parse_volume("./here:/x:rshared")
    assert (bind.type, bind.source, bind.propagation) == (
        "bind",
        os.path.abspath("here"),
        "rshared",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid empty volume spec"),
        ("/a::/b", "invalid spec: /a::/b: empty section between colons"),
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        ("/a:b", "invalid volume specification: '/a:b': mount path must be absolute"),
        ("/a:/b:bogus", "unknown option 'bogus'"),
    ],
)
def test_parse_volume_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_volume(text)


def test_parse_volume_creates_nothing(tmp_path: Path) -> None:
    parse_volume(f"{tmp_path}/missing:/x")
    assert not (tmp_path / "missing").exists()


def test_parse_mount() -> None:
    m = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1777,ro")
    assert m == MountSpec(
        type="tmpfs", target="/t", readonly=True, tmpfs_size=1 << 20, tmpfs_mode=0o1777
    )
    b = parse_mount("type=bind,src=/a,dst=/b,bind-recursive=disabled,consistency=cached")
    assert (b.source, b.target, b.bind_recursive) == ("/a", "/b", False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=volume", 'invalid argument "type=volume" for "--mount" flag: target is required'),
        ("type=bind,target=/b", "field Source must not be empty"),
        ("type=nfs,target=/b", "invalid mount type 'nfs'"),
        ("target=/b,color=red", "unexpected key 'color' in 'target=/b,color=red'"),
        ("type=tmpfs,target=/t,tmpfs-mode=99", "invalid tmpfs mode '99'"),
        ("\n0", 'for "--mount" flag: new-line character seen'),
    ],
)
def test_parse_mount_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_mount(text)


def test_parse_tmpfs() -> None:
    assert parse_tmpfs("/run:size=64m,mode=1777,ro,noexec") == MountSpec(
        type="tmpfs",
        target="/run",
        readonly=True,
        tmpfs_size=64 << 20,
        tmpfs_mode=0o1777,
        options=["noexec"],
    )
    with pytest.raises(InvalidArgument, match="invalid tmpfs mode 'zz' in '/x:mode=zz'"):
        parse_tmpfs("/x:mode=zz")


def test_parse_device() -> None:
    assert parse_device("/dev/null") == DeviceSpec("/dev/null", "/dev/null", "rwm")
    assert parse_device("/dev/null:/dev/x:r") == DeviceSpec("/dev/null", "/dev/x", "r")
    assert parse_device("/dev/null:rw") == DeviceSpec("/dev/null", "/dev/null", "rw")
    with pytest.raises(InvalidArgument, match="invalid device mode: q"):
        parse_device("/dev/null:q")


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("web:/etc/passwd", ("web", "/etc/passwd")),
        ("web:rel", ("web", "rel")),
        ("/abs/path:with-colon", ("", "/abs/path:with-colon")),
        ("./local:x", ("", "./local:x")),
        ("-", ("", "-")),
        ("plain", ("", "plain")),
        (":x", ("", ":x")),
    ],
)
def test_split_cp_arg(arg: str, expected: tuple[str, str]) -> None:
    assert split_cp_arg(arg) == expected


# -- ports and hosts --------------------------------------------------------------------


def test_parse_publish() -> None:
    from capsa.engine.network.types import PortMapping

    assert parse_publish("8080:80") == [PortMapping(8080, 80, "tcp", "")]
    assert parse_publish("127.0.0.1::53/udp") == [PortMapping(0, 53, "udp", "127.0.0.1")]
    assert [p.host_ip for p in parse_publish("[::1]:80:80")] == ["::1"]
    assert [(p.host_port, p.container_port) for p in parse_publish("1-2:3-4")] == [
        (1, 3),
        (2, 4),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("80/icmp", "invalid proto: icmp"),
        ("70000", 'invalid port specification: "70000"'),
        ("a-b", 'invalid port specification: "a-b"'),
        ("1-3:1-2", "invalid ranges specified for container and host ports: 1-3:1-2"),
        ("8080:1-2", "invalid ranges specified for container and host ports: 8080:1-2"),
    ],
)
def test_parse_publish_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_publish(text)


def test_parse_extra_host() -> None:
    assert parse_extra_host("x:1.2.3.4") == "x:1.2.3.4"
    assert parse_extra_host("x=1.2.3.4") == "x:1.2.3.4"
    with pytest.raises(InvalidArgument, match="bad format for add-host"):
        parse_extra_host("x")


# -- key=value, env, labels -------------------------------------------------------------


def test_key_values() -> None:
    assert key_values(("a=1", "b", "a=2"), "label") == {"a": "2", "b": ""}
    with pytest.raises(InvalidArgument, match=re.escape("invalid option 'b': expected key=value")):
        key_values(("b",), "option", require_eq=True)
    with pytest.raises(InvalidArgument, match=re.escape("invalid sysctl: '=x'")):
        key_values(("=x",), "sysctl", wording=PLAIN)


def test_parse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPSA_TEST_HOME", "/h")
    monkeypatch.delenv("CAPSA_TEST_UNSET", raising=False)
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=1\n\nCAPSA_TEST_HOME\nCAPSA_TEST_UNSET\n")
    assert parse_env(("B=2", "CAPSA_TEST_HOME", "CAPSA_TEST_UNSET"), (str(env_file),)) == [
        "A=1",
        "CAPSA_TEST_HOME=/h",
        "B=2",
        "CAPSA_TEST_HOME=/h",
    ]
    with pytest.raises(InvalidArgument, match="invalid environment variable: =x"):
        parse_env(("=x",), ())
    with pytest.raises(InvalidArgument, match="open /nonexistent-capsa: no such file"):
        parse_env((), ("/nonexistent-capsa",))


def test_parse_labels(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("a=1\nb=2\n")
    assert parse_labels(("b=3",), (str(labels),)) == {"a": "1", "b": "3"}
    labels.write_bytes(b"a=\xff\n")
    with pytest.raises(InvalidArgument, match="contains invalid utf8 bytes at line 1"):
        parse_labels((), (str(labels),))


# -- filters ----------------------------------------------------------------------------


def test_parse_filters() -> None:
    assert parse_filters(("label=a=b", "label=c", "until=1h")) == {
        "label": ["a=b", "c"],
        "until": ["1h"],
    }
    with pytest.raises(InvalidArgument, match="bad format of filter"):
        parse_filters(("dangling",))


def test_parse_ps_filters() -> None:
    assert parse_ps_filters(["status=running", "name=web"]) == {
        "status": ["running"],
        "name": ["web"],
    }
    with pytest.raises(InvalidArgument, match="invalid filter 'status=sleepy'"):
        parse_ps_filters(["status=sleepy", "color=red"])
    with pytest.raises(InvalidArgument, match="invalid filter 'color'"):
        parse_ps_filters(["color=red"])


def test_parse_image_filters() -> None:
    f = parse_image_filters(("dangling=1", "label=a", "reference=busy*", "before=x"))
    assert (f.dangling, f.labels, f.references, f.before) == (True, ["a"], ["busy*"], "x")
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        parse_image_filters(("dangling=maybe",))
    with pytest.raises(InvalidArgument, match="invalid filter 'color'"):
        parse_image_filters(("color=red",))


def test_event_filter_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'color'"):
        parse_event_filters(["color=red"])
    with pytest.raises(InvalidArgument, match="bad format"):
        parse_event_filters(["type"])


# -- restart, health, log options, ulimits, security ------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "count"),
    [
        ("no", "no", 0),
        ("", "no", 0),
        ("always", "always", 0),
        ("unless-stopped", "unless-stopped", 0),
        ("on-failure", "on-failure", 0),
        ("on-failure:3", "on-failure", 3),
        ("on-failure:0", "on-failure", 0),
    ],
)
def test_parse_restart(text: str, name: str, count: int) -> None:
    assert parse_restart(text) == RestartPolicy(name, count)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sometimes", "invalid restart policy 'sometimes'"),
        ("sometimes:3", "invalid restart policy 'sometimes'"),
        ("Always", "invalid restart policy 'Always'"),
        ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
        (
            "unless-stopped:1",
            "maximum retry count cannot be used with restart policy 'unless-stopped'",
        ),
        ("no:2", "maximum retry count cannot be used with restart policy 'no'"),
        (":3", "invalid restart policy format: no policy provided before colon"),
        ("on-failure:x", "maximum retry count must be an integer"),
        ("on-failure:", "maximum retry count must be an integer"),
        ("on-failure: 3", "maximum retry count must be an integer"),
        ("on-failure:3:4", "maximum retry count must be an integer"),
        ("on-failure:-1", "maximum retry count cannot be negative"),
    ],
)
def test_parse_restart_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_restart(text)


@pytest.mark.parametrize("action", ["none", "kill", "restart", "stop"])
def test_parse_on_failure(action: str) -> None:
    assert parse_on_failure(action) == action


@pytest.mark.parametrize("action", ["", "Kill", "pause", "restart:3"])
def test_parse_on_failure_errors(action: str) -> None:
    with pytest.raises(InvalidArgument, match=f"invalid health on-failure action '{action}'"):
        parse_on_failure(action)


def test_parse_log_opts_values() -> None:
    assert parse_log_opts({}) == LogConfig(max_size=10 * 1024 * 1024, max_file=5, compress=False)
    config = parse_log_opts({"max-size": "10m", "max-file": "3", "compress": "true"})
    assert config == LogConfig(max_size=10 * 1024 * 1024, max_file=3, compress=True)
    sizes = {"512": 512, "1k": 1024, "2KB": 2048, "3MiB": 3 << 20, "1.5g": 3 << 29, "1 m": 1 << 20}
    for text, size in sizes.items():
        assert parse_log_opts({"max-size": text}).max_size == size
    assert parse_log_opts({"max-size": "0"}).max_size == 0
    assert parse_log_opts({"max-file": "1"}).max_file == 1


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"max-size": "ten"}, "max-size"),
        ({"max-size": "-1m"}, "max-size"),
        ({"max-size": "10x"}, "max-size"),
        ({"max-file": "0"}, "max-file"),
        ({"max-file": "two"}, "max-file"),
        ({"compress": "maybe"}, "compress"),
        ({"compress": "true", "max-file": "1"}, "compress"),
        ({"compress": "true", "max-size": "0"}, "compress"),
        ({"x": "1"}, "unknown log opt 'x' for json-file log driver"),
    ],
)
def test_parse_log_opts_errors(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_log_opts(opts)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("nofile=1024:2048", Rlimit(type="RLIMIT_NOFILE", soft=1024, hard=2048)),
        ("stack=1", Rlimit(type="RLIMIT_STACK", soft=1, hard=1)),
        ("nproc=5:-1", Rlimit(type="RLIMIT_NPROC", soft=5, hard=-1)),
        ("nofile=-1", Rlimit(type="RLIMIT_NOFILE", soft=-1, hard=-1)),
    ],
)
def test_parse_ulimit(text: str, limit: Rlimit) -> None:
    assert parse_ulimit(text) == limit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nofile", "invalid ulimit argument: nofile"),
        ("bogus=1", "invalid ulimit type: bogus"),
        ("nofile=", "invalid ulimit argument: nofile="),
        ("nofile=--5", "invalid ulimit argument: nofile=--5"),
        ("nofile=10:5", "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
        ("nproc=-1:5", "ulimit soft limit must be less than or equal to hard limit: -1 > 5"),
    ],
)
def test_parse_ulimit_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_ulimit(text)


def test_apply_security_opts(tmp_path: Path) -> None:
    from capsa.engine.containers.types import ContainerSpec

    profile = tmp_path / "profile.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    spec = ContainerSpec(image="x")
    apply_security_opts(("no-new-privileges", f"seccomp={profile}", "apparmor=x"), spec)
    assert spec.no_new_privileges and spec.seccomp == profile.read_text()
    apply_security_opts(("no-new-privileges:false", "seccomp=unconfined"), spec)
    assert not spec.no_new_privileges and spec.seccomp == "unconfined"
    with pytest.raises(InvalidArgument, match="invalid --security-opt: 'bogus'"):
        apply_security_opts(("bogus",), spec)
    with pytest.raises(InvalidArgument, match=r"opening seccomp profile \(/nonexistent\) failed"):
        apply_security_opts(("seccomp=/nonexistent",), spec)
