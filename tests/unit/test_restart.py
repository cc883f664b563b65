"""Restart policies: decisions and back-off (pure logic, fake times); the ``--restart``
syntax is tested in test_syntax."""

from __future__ import annotations

import pytest

from capsa.engine.containers.restart import (
    INITIAL_DELAY,
    MAX_DELAY,
    RestartManager,
    RestartPolicy,
    next_delay,
    validate,
)
from capsa.errors import InvalidArgument
from capsa.syntax.policies import parse_restart


def test_validate_api_policies() -> None:
    validate(RestartPolicy("on-failure", 5))
    with pytest.raises(InvalidArgument, match="cannot be used with restart policy 'always'"):
        validate(RestartPolicy("always", 2))
    with pytest.raises(InvalidArgument, match="invalid restart policy 'x'"):
        validate(RestartPolicy("x"))


def test_next_delay() -> None:
    assert next_delay(0.0, 0.5) == INITIAL_DELAY
    assert next_delay(0.1, 0.5) == pytest.approx(0.2)
    assert next_delay(40.0, 0.5) == MAX_DELAY
    assert next_delay(MAX_DELAY, 0.5) == MAX_DELAY
    assert next_delay(MAX_DELAY, 10.0) == INITIAL_DELAY


def test_backoff_doubles_then_caps_at_one_minute() -> None:
    rm = RestartManager(parse_restart("always"))
    delays = [rm.should_restart(0, False, 0.5)[1] for _ in range(12)]
    expected = [min(0.1 * 2**i, 60.0) for i in range(12)]
    assert delays == pytest.approx(expected)
    assert delays[-1] == MAX_DELAY
    assert rm.restart_count == 12


def test_backoff_resets_after_ten_seconds_up() -> None:
    rm = RestartManager(parse_restart("always"))
    for _ in range(5):
        rm.should_restart(1, False, 1.0)
    assert rm.delay == pytest.approx(1.6)
    assert rm.should_restart(1, False, 9.99) == (True, pytest.approx(3.2))
    assert rm.should_restart(1, False, 10.0) == (True, INITIAL_DELAY)
    assert rm.should_restart(1, False, 0.1) == (True, pytest.approx(0.2))
    assert rm.restart_count == 8  # the count is not reset by a long run


def test_no_never_restarts() -> None:
    rm = RestartManager(RestartPolicy())
    assert rm.should_restart(1, False, 0.1) == (False, 0.0)
    assert rm.should_restart(0, False, 0.1) == (False, 0.0)
    assert rm.restart_count == 0


@pytest.mark.parametrize("code", [0, 1, 137, 255])
@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_always_and_unless_stopped_restart_on_any_exit(policy: str, code: int) -> None:
    rm = RestartManager(parse_restart(policy))
    assert rm.should_restart(code, False, 0.1) == (True, INITIAL_DELAY)
    assert rm.restart_count == 1


def test_on_failure_only_on_non_zero_exit() -> None:
    rm = RestartManager(parse_restart("on-failure"))
    assert rm.should_restart(0, False, 0.1) == (False, 0.0)
    assert rm.should_restart(2, False, 0.1) == (True, INITIAL_DELAY)
    assert rm.should_restart(0, False, 0.1) == (False, 0.0)
    assert rm.restart_count == 1


def test_on_failure_unlimited() -> None:
    rm = RestartManager(parse_restart("on-failure"))
    assert all(rm.should_restart(1, False, 0.1)[0] for _ in range(100))
    assert rm.restart_count == 100


def test_on_failure_counts_retries() -> None:
    rm = RestartManager(parse_restart("on-failure:3"))
    answers = [rm.should_restart(1, False, 0.1)[0] for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert rm.restart_count == 3


def test_on_failure_count_carried_over_from_the_record() -> None:
    rm = RestartManager(parse_restart("on-failure:3"), restart_count=2)
    assert rm.should_restart(1, False, 0.1)[0]
    assert not rm.should_restart(1, False, 0.1)[0]
    assert rm.restart_count == 3


@pytest.mark.parametrize("policy", ["always", "unless-stopped", "on-failure", "no"])
def test_never_after_a_user_stop(policy: str) -> None:
    rm = RestartManager(parse_restart(policy))
    assert rm.should_restart(137, True, 0.1) == (False, 0.0)
    assert rm.restart_count == 0


def test_cancel_during_backoff_stops_restarts() -> None:
    rm = RestartManager(parse_restart("always"))
    restart, delay = rm.should_restart(1, False, 0.1)
    assert restart
    assert delay == INITIAL_DELAY
    rm.cancel()  # the user stopped it while the monitor waited
    assert rm.canceled
    assert rm.should_restart(1, False, 0.1) == (False, 0.0)


def test_reset_on_user_start() -> None:
    rm = RestartManager(parse_restart("on-failure:2"))
    rm.should_restart(1, False, 0.1)
    rm.should_restart(1, False, 0.1)
    rm.cancel()
    rm.reset()
    assert (rm.restart_count, rm.delay, rm.canceled) == (0, 0.0, False)
    assert rm.should_restart(1, False, 0.1) == (True, INITIAL_DELAY)


@pytest.mark.parametrize(
    ("policy", "was_running", "stopped_by_user", "expected"),
    [
        ("no", True, False, False),
        ("always", True, False, True),
        ("always", False, True, True),  # docker: even after a user stop
        ("unless-stopped", True, False, True),
        ("unless-stopped", False, False, True),
        ("unless-stopped", False, True, False),
        ("on-failure", True, False, True),
        ("on-failure", False, False, False),
        ("on-failure", True, True, False),
    ],
)
def test_restart_on_boot(
    policy: str, was_running: bool, stopped_by_user: bool, expected: bool
) -> None:
    rm = RestartManager(parse_restart(policy))
    assert rm.restart_on_boot(was_running, stopped_by_user) is expected


def test_restart_on_boot_respects_retry_limit() -> None:
    rm = RestartManager(parse_restart("on-failure:2"), restart_count=2)
    assert not rm.restart_on_boot(True, False)
