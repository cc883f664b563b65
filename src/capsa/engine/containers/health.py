"""Healthchecks with Docker's HEALTHCHECK semantics: config, schedule and status.

The ``--health-*`` flags' Go durations are read by ``capsa.syntax.durations``.

Pure logic for the container monitor, which execs ``command(cfg)`` in the container at
``HealthState.next_due`` and feeds each result to ``HealthState.record``. Imported by the
monitor, so it needs only ``time`` besides capsa's records and errors (no dataclasses,
no ``re``, no ``datetime``). Times are floats on the caller's clock (``time.time()``).
"""

from __future__ import annotations

import time

from capsa.errors import InvalidArgument
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
STATUSES = (STARTING, HEALTHY, UNHEALTHY)
TEST_TYPES = ("CMD", "CMD-SHELL", "NONE")

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MIN_DURATION = 0.001  # docker refuses non-zero durations below 1 ms
MAX_OUTPUT = 4096  # bytes of probe output kept, as docker
MAX_LOG = 5  # results kept in State.Health.Log

_NS = 1_000_000_000


@record
class HealthConfig:
    test: list[str]  # ["CMD", arg...] | ["CMD-SHELL", cmd] | ["NONE"]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    start_period: float = DEFAULT_START_PERIOD
    start_interval: float = DEFAULT_START_INTERVAL
    retries: int = DEFAULT_RETRIES


@record
class HealthResult:
    start: str  # RFC 3339
    end: str
    exit_code: int  # 0 healthy, else failing; -1 timed out
    output: str


def from_image(cfg: Any) -> HealthConfig | None:
    """An image config's Healthcheck (dict or record; nanoseconds, 0 = default)."""
    if cfg is None:
        return None
    get = cfg.get if isinstance(cfg, dict) else (lambda key: getattr(cfg, _snake(key), None))
    test = get("Test")
    if not test:
        return None
    return HealthConfig(
        test=list(test),
        interval=_seconds(get("Interval"), DEFAULT_INTERVAL),
        timeout=_seconds(get("Timeout"), DEFAULT_TIMEOUT),
        start_period=_seconds(get("StartPeriod"), DEFAULT_START_PERIOD),
        start_interval=_seconds(get("StartInterval"), DEFAULT_START_INTERVAL),
        retries=int(get("Retries") or 0) or DEFAULT_RETRIES,
    )


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_")


def _seconds(ns: int | None, default: float) -> float:
    return ns / _NS if ns else default


def to_config(cfg: HealthConfig) -> dict[str, Any]:
    """Docker's Config.Healthcheck shape (nanoseconds), the inverse of ``from_image``."""
    return {
        "Test": list(cfg.test),
        "Interval": round(cfg.interval * _NS),
        "Timeout": round(cfg.timeout * _NS),
        "StartPeriod": round(cfg.start_period * _NS),
        "StartInterval": round(cfg.start_interval * _NS),
        "Retries": cfg.retries,
    }


def merge(
    image: HealthConfig | None,
    cmd: str | None,
    interval: float | None,
    timeout: float | None,
    retries: int | None,
    start_period: float | None,
    start_interval: float | None,
    no_healthcheck: bool,
) -> HealthConfig | None:
    """The container's healthcheck: ``--health-*`` flags over the image's; None = none.

    As with docker, a flag left out (None) or zero keeps the image's value.
    """
    durations = {
        "interval": interval,
        "timeout": timeout,
        "start-period": start_period,
        "start-interval": start_interval,
    }
    if no_healthcheck:
        if cmd or retries or any(durations.values()):
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return None
    _check_flags(durations, retries)
    test = ["CMD-SHELL", cmd] if cmd else list(image.test) if image else []
    if not test or test[0] == "NONE":
        return None
    base = image or HealthConfig(test)
    cfg = HealthConfig(
        test=test,
        interval=interval or base.interval,
        timeout=timeout or base.timeout,
        start_period=start_period or base.start_period,
        start_interval=start_interval or base.start_interval,
        retries=retries or base.retries,
    )
    validate(cfg)
    return cfg


def _check_flags(durations: dict[str, float | None], retries: int | None) -> None:
    for flag, value in durations.items():
        if value is not None and value < 0:
            raise InvalidArgument(f"--health-{flag} cannot be negative")
        if value and value < MIN_DURATION:
            raise InvalidArgument(f"--health-{flag} cannot be less than 1ms")
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")


def validate(cfg: HealthConfig) -> None:
    """Refuse a test docker could not run."""
    kind = cfg.test[0] if cfg.test else ""
    if kind not in TEST_TYPES:
        raise InvalidArgument(f"unknown healthcheck type '{kind}'")
    if kind != "NONE" and not any(cfg.test[1:]):
        raise InvalidArgument(f"healthcheck {kind} needs a command")


def command(cfg: HealthConfig, shell: list[str] | None = None) -> list[str] | None:
    """The argv to exec in the container; None when the healthcheck is disabled.

    ``shell`` is the image's SHELL for CMD-SHELL (default ``/bin/sh -c``).
    """
    validate(cfg)
    kind, args = cfg.test[0], cfg.test[1:]
    if kind == "CMD":
        return list(args)
    if kind == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), *args]
    return None


def format_duration(ns: int) -> str:
    """Go's ``Duration.String()``: ``1m30s``, ``500ms``, ``1.5µs``, ``0s``."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < _NS:
        for limit, digits, unit in ((1_000, 0, "ns"), (1_000_000, 3, "µs"), (_NS, 6, "ms")):
            if u < limit:
                whole, frac = divmod(u, 10**digits)
                return f"{sign}{whole}{_fraction(frac, digits)}{unit}"
    secs, frac = divmod(u, _NS)
    text = f"{secs % 60}{_fraction(frac, 9)}s"
    minutes, hours = secs // 60 % 60, secs // 3600
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else sign + text


def _fraction(value: int, digits: int) -> str:
    return "." + f"{value:0{digits}d}".rstrip("0") if value else ""


def rfc3339(t: float) -> str:
    """``t`` (seconds since the epoch) as Go's RFC 3339 with nanoseconds, in UTC."""
    us = round(t * 1_000_000)
    secs, frac = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + _fraction(frac, 6) + "Z"


def truncate_output(data: bytes | str) -> str:
    """Probe output as docker keeps it: the first 4096 bytes, ``...`` when cut."""
    raw = data.encode() if isinstance(data, str) else data
    text = raw[:MAX_OUTPUT].decode("utf-8", "replace")
    return text + "..." if len(raw) > MAX_OUTPUT else text


def probe_result(start: float, end: float, exit_code: int, output: bytes | str) -> HealthResult:
    """The result of a probe that finished."""
    return HealthResult(rfc3339(start), rfc3339(end), exit_code, truncate_output(output))


def timeout_result(start: float, end: float, timeout: float) -> HealthResult:
    """The result of a probe killed after ``timeout`` seconds (docker's wording)."""
    limit = format_duration(round(timeout * _NS))
    return HealthResult(
        rfc3339(start), rfc3339(end), -1, f"Health check exceeded timeout ({limit})"
    )


class HealthState:
    """A running container's health: status, failing streak and the last 5 results."""

    __slots__ = ("cfg", "failing_streak", "log", "started_at", "status")

    def __init__(self, cfg: HealthConfig, started_at: float) -> None:
        self.cfg = cfg
        self.started_at = started_at
        self.status = STARTING
        self.failing_streak = 0
        self.log: list[HealthResult] = []

    def reset(self, started_at: float) -> None:
        """The container (re)started: starting again, streak cleared, log kept (docker)."""
        self.started_at = started_at
        self.status = STARTING
        self.failing_streak = 0

    def in_start_period(self, now: float) -> bool:
        return now - self.started_at < self.cfg.start_period

    def next_due(self, now: float) -> float:
        """When to run the next probe; call at start and after each probe with the time.

        ``start_interval`` while starting within the start period, else ``interval``.
        """
        if self.status == STARTING and self.in_start_period(now):
            return now + self.cfg.start_interval
        return now + self.cfg.interval

    def record(self, result: HealthResult, now: float) -> str | None:
        """Apply one probe result; the new status when it changed, else None.

        ``now`` is when the probe started (docker judges the start period by it): a
        failure then does not count while still starting; a success ends the period.
        """
        old = self.status
        self.log.append(result)
        del self.log[:-MAX_LOG]
        if result.exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (self.status == STARTING and self.in_start_period(now)):
            self.failing_streak += 1
            if self.failing_streak >= (
                self.cfg.retries if self.cfg.retries > 0 else DEFAULT_RETRIES
            ):
                self.status = UNHEALTHY
        return self.status if self.status != old else None

    def to_json(self) -> dict[str, Any]:
        """Docker's State.Health."""
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [
                {"Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output}
                for r in self.log
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], cfg: HealthConfig, started_at: float) -> HealthState:
        """Restore a state saved by ``to_json`` (a monitor taking over a container)."""
        state = cls(cfg, started_at)
        status = data.get("Status")
        state.status = status if status in STATUSES else STARTING
        state.failing_streak = int(data.get("FailingStreak") or 0)
        state.log = [
            HealthResult(
                str(e.get("Start", "")),
                str(e.get("End", "")),
                int(e.get("ExitCode", 0)),
                str(e.get("Output", "")),
            )
            for e in (data.get("Log") or [])[-MAX_LOG:]
        ]
        return state
