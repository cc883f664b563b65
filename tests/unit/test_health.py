"""Healthchecks: docker's config merge, durations, scheduling and status (fake clock).

The ``--health-*`` flags' syntaxes are tested in test_syntax."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from capsa.engine.containers.health import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    HealthConfig,
    HealthResult,
    HealthState,
    command,
    format_duration,
    from_image,
    merge,
    probe_result,
    rfc3339,
    timeout_result,
    to_config,
    truncate_output,
)
from capsa.errors import InvalidArgument
from capsa.oci import image_spec

T0 = 1_700_000_000.0  # the container's StartedAt on the fake clock
NS = 1_000_000_000


def ok(t: float = T0) -> HealthResult:
    return probe_result(t, t + 0.01, 0, b"fine")


def fail(t: float = T0, code: int = 1) -> HealthResult:
    return probe_result(t, t + 0.01, code, b"broken")


def merged(
    image: HealthConfig | None,
    *,
    cmd: str | None = None,
    interval: float | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    start_period: float | None = None,
    start_interval: float | None = None,
    no_healthcheck: bool = False,
) -> HealthConfig | None:
    """``merge`` with the flags by name, as the CLI passes them."""
    return merge(
        image, cmd, interval, timeout, retries, start_period, start_interval, no_healthcheck
    )


# --- durations, as Go formats them (parsing: test_syntax) -------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (500_000_000, "500ms"),
        (1_500_000_000, "1.5s"),
        (30 * NS, "30s"),
        (90 * NS, "1m30s"),
        (3600 * NS, "1h0m0s"),
        (-2 * NS, "-2s"),
    ],
)
def test_format_duration_like_go(ns: int, text: str) -> None:
    assert format_duration(ns) == text


# --- config --------------------------------------------------------------------------


def test_from_image_dict() -> None:
    cfg = from_image(
        {
            "Test": ["CMD", "true"],
            "Interval": 10 * NS,
            "Timeout": 0,
            "StartPeriod": 60 * NS,
            "StartInterval": 2 * NS,
            "Retries": 5,
        }
    )
    assert cfg == HealthConfig(["CMD", "true"], 10.0, 30.0, 60.0, 2.0, 5)


def test_from_image_defaults_and_record() -> None:
    rec = image_spec.HealthConfig(test=["CMD-SHELL", "curl -f localhost"], interval=0)
    assert from_image(rec) == HealthConfig(["CMD-SHELL", "curl -f localhost"])
    assert from_image({"Test": ["NONE"]}) == HealthConfig(["NONE"])


@pytest.mark.parametrize("raw", [None, {}, {"Test": []}, {"Test": None, "Interval": NS}])
def test_from_image_without_test(raw: dict[str, object] | None) -> None:
    assert from_image(raw) is None


def test_to_config_round_trips() -> None:
    cfg = HealthConfig(["CMD", "probe", "--ok"], 1.5, 2.0, 60.0, 0.5, 7)
    assert to_config(cfg)["Interval"] == 1_500_000_000
    assert from_image(to_config(cfg)) == cfg


IMAGE = HealthConfig(["CMD", "check"], interval=10, timeout=3, start_period=20, retries=4)


def test_merge_keeps_the_image_without_flags() -> None:
    assert merged(IMAGE) == IMAGE
    assert merged(None) is None


def test_merge_flags_override_the_image() -> None:
    cfg = merged(IMAGE, cmd="wget -q localhost", interval=5.0, retries=2)
    assert cfg == HealthConfig(
        ["CMD-SHELL", "wget -q localhost"], 5.0, 3, 20, IMAGE.start_interval, 2
    )


def test_merge_zero_means_unset_like_docker() -> None:
    assert merged(IMAGE, interval=0.0, retries=0, start_period=0.0) == IMAGE


def test_merge_timings_without_a_command_keep_the_image_test() -> None:
    cfg = merged(IMAGE, timeout=1.0, start_interval=0.5)
    assert cfg is not None
    assert (cfg.test, cfg.timeout, cfg.start_interval) == (["CMD", "check"], 1.0, 0.5)


def test_merge_timings_without_any_test_is_no_healthcheck() -> None:
    assert merged(None, interval=5.0) is None


def test_merge_command_without_image_uses_defaults() -> None:
    cfg = merged(None, cmd="true")
    assert cfg == HealthConfig(["CMD-SHELL", "true"])


def test_merge_image_none_test_disables_unless_a_command_is_given() -> None:
    disabled = HealthConfig(["NONE"])
    assert merged(disabled, interval=5.0) is None
    cfg = merged(disabled, cmd="true")
    assert cfg is not None
    assert cfg.test == ["CMD-SHELL", "true"]


def test_merge_no_healthcheck() -> None:
    assert merged(IMAGE, no_healthcheck=True) is None
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-"):
        merged(IMAGE, no_healthcheck=True, cmd="x")
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts"):
        merged(IMAGE, no_healthcheck=True, retries=2)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("interval", -1.0, "--health-interval cannot be negative"),
        ("timeout", -1.0, "--health-timeout cannot be negative"),
        ("start_period", -1.0, "--health-start-period cannot be negative"),
        ("start_interval", -1.0, "--health-start-interval cannot be negative"),
        ("retries", -1, "--health-retries cannot be negative"),
        ("interval", 0.0001, "--health-interval cannot be less than 1ms"),
    ],
)
def test_merge_rejects_bad_flags(flag: str, value: float, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        flags: dict[str, Any] = {flag: value}
        merged(IMAGE, **flags)


@pytest.mark.parametrize(
    ("test", "message"),
    [
        (["HTTP", "x"], "unknown healthcheck type 'HTTP'"),
        (["CMD"], "healthcheck CMD needs a command"),
        (["CMD-SHELL", ""], "healthcheck CMD-SHELL needs a command"),
    ],
)
def test_merge_rejects_a_broken_image_test(test: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        merged(HealthConfig(test))


def test_command() -> None:
    assert command(HealthConfig(["CMD", "curl", "-f", "x"])) == ["curl", "-f", "x"]
    assert command(HealthConfig(["CMD-SHELL", "curl -f x || exit 1"])) == [
        "/bin/sh",
        "-c",
        "curl -f x || exit 1",
    ]
    assert command(HealthConfig(["CMD-SHELL", "ok"]), shell=["/bin/bash", "-c"]) == [
        "/bin/bash",
        "-c",
        "ok",
    ]
    assert command(HealthConfig(["NONE"])) is None


# --- results -------------------------------------------------------------------------


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_700_000_000.25) == "2023-11-14T22:13:20.25Z"
    assert rfc3339(1_700_000_000.123456) == "2023-11-14T22:13:20.123456Z"


def test_output_truncated_to_4096_bytes() -> None:
    assert truncate_output(b"x" * 4096) == "x" * 4096
    assert truncate_output(b"x" * 5000) == "x" * 4096 + "..."
    assert truncate_output("é" * 3000).endswith("...")  # 6000 bytes of UTF-8
    assert probe_result(T0, T0, 0, b"y" * 9999).output == "y" * 4096 + "..."


def test_timeout_result_like_docker() -> None:
    result = timeout_result(T0, T0 + 30, 30.0)
    assert result.exit_code == -1
    assert result.output == "Health check exceeded timeout (30s)"
    assert timeout_result(T0, T0 + 1, 0.5).output == "Health check exceeded timeout (500ms)"
    assert timeout_result(T0, T0 + 1, 90).output == "Health check exceeded timeout (1m30s)"


# --- state ---------------------------------------------------------------------------


def test_success_makes_it_healthy() -> None:
    state = HealthState(HealthConfig(["CMD", "x"]), T0)
    assert state.status == STARTING
    assert state.record(ok(T0 + 30), T0 + 30) == HEALTHY
    assert state.record(ok(T0 + 60), T0 + 60) is None


def test_retries_failures_make_it_unhealthy_then_recovery() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=3), T0)
    state.record(ok(), T0 + 30)
    changes = [state.record(fail(), T0 + 30 * i) for i in range(2, 6)]
    assert changes == [None, None, UNHEALTHY, None]
    assert state.failing_streak == 4
    assert state.record(ok(), T0 + 200) == HEALTHY
    assert state.failing_streak == 0


def test_failures_while_starting_without_start_period_count() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=2), T0)
    assert state.record(fail(), T0 + 30) is None
    assert state.record(fail(), T0 + 60) == UNHEALTHY


@pytest.mark.parametrize("code", [2, 3, 127, -1])
def test_other_exit_codes_are_failures(code: int) -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=1), T0)
    assert state.record(fail(code=code), T0 + 30) == UNHEALTHY


def test_start_period_ignores_failures() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=1, start_period=60), T0)
    for t in (5, 10, 59.9):
        assert state.record(fail(), T0 + t) is None
    assert (state.status, state.failing_streak) == (STARTING, 0)
    assert state.record(fail(), T0 + 60) == UNHEALTHY  # the period is over
    assert state.failing_streak == 1


def test_success_during_start_period_ends_it() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=1, start_period=60), T0)
    assert state.record(ok(), T0 + 5) == HEALTHY
    assert state.record(fail(), T0 + 10) == UNHEALTHY  # failures count from now on


def test_timeout_counts_as_failure() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=1, timeout=2), T0)
    assert state.record(timeout_result(T0 + 30, T0 + 32, 2), T0 + 30) == UNHEALTHY
    assert state.log[-1].output == "Health check exceeded timeout (2s)"


def test_log_keeps_the_last_five() -> None:
    state = HealthState(HealthConfig(["CMD", "x"]), T0)
    for i in range(8):
        state.record(probe_result(T0 + i, T0 + i, 0, f"run {i}"), T0 + i)
    assert [r.output for r in state.log] == [f"run {i}" for i in range(3, 8)]


def test_next_due_uses_start_interval_while_starting() -> None:
    cfg = HealthConfig(["CMD", "x"], interval=30, start_period=20, start_interval=2)
    state = HealthState(cfg, T0)
    assert state.next_due(T0) == T0 + 2
    assert state.next_due(T0 + 19) == T0 + 21
    assert state.next_due(T0 + 20) == T0 + 50  # the start period is over
    state.record(ok(), T0 + 4)
    assert state.next_due(T0 + 4) == T0 + 34  # healthy: the start period ends early


def test_next_due_without_start_period() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], interval=10, start_interval=1), T0)
    assert state.next_due(T0) == T0 + 10


def test_reset_on_restart_keeps_the_log() -> None:
    state = HealthState(HealthConfig(["CMD", "x"], retries=1), T0)
    state.record(fail(), T0 + 30)
    state.reset(T0 + 100)
    assert (state.status, state.failing_streak, len(state.log)) == (STARTING, 0, 1)
    assert state.started_at == T0 + 100


def test_json_round_trip_in_docker_shape() -> None:
    cfg = HealthConfig(["CMD", "x"], retries=2)
    state = HealthState(cfg, T0)
    state.record(probe_result(T0 + 30, T0 + 30.5, 1, b"no"), T0 + 30)
    data = state.to_json()
    assert data == {
        "Status": STARTING,
        "FailingStreak": 1,
        "Log": [
            {
                "Start": "2023-11-14T22:13:50Z",
                "End": "2023-11-14T22:13:50.5Z",
                "ExitCode": 1,
                "Output": "no",
            }
        ],
    }
    back = HealthState.from_json(data, cfg, T0)
    assert back.to_json() == data
    assert back.record(fail(), T0 + 60) == UNHEALTHY


def test_from_json_tolerates_junk() -> None:
    state = HealthState.from_json({"Status": "weird", "Log": None}, HealthConfig(["NONE"]), T0)
    assert (state.status, state.failing_streak, state.log) == (STARTING, 0, [])


def test_imports_stay_light() -> None:
    code = (
        "import sys; before = set(sys.modules);"
        # the monitor reads its restart policy and log options with capsa.syntax.policies
        "import capsa.engine.containers.health, capsa.engine.containers.restart,"
        " capsa.syntax.policies;"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = {"dataclasses", "typing", "re", "datetime", "subprocess", "threading", "json"}
    assert not heavy & set(out), out
