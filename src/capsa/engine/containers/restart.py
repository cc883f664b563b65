"""Restart policies with Docker's semantics (``docker run --restart``, moby's restartmanager).

Pure logic for the container monitor: after the container exits the monitor asks
``RestartManager.should_restart`` whether to start it again and how long to wait first.
Imported by the monitor, so it needs nothing beyond capsa's records and errors. The
``--restart`` text (``on-failure:3``) is read by ``capsa.syntax.policies.parse_restart``.
"""

from __future__ import annotations

from capsa.errors import InvalidArgument
from capsa.record import record

NO = "no"
ON_FAILURE = "on-failure"
ALWAYS = "always"
UNLESS_STOPPED = "unless-stopped"
POLICIES = (NO, ON_FAILURE, ALWAYS, UNLESS_STOPPED)

INITIAL_DELAY = 0.1  # seconds before the first restart
MAX_DELAY = 60.0  # the back-off never waits longer
RESET_AFTER = 10.0  # a container that ran this long restarts with INITIAL_DELAY again


@record
class RestartPolicy:
    name: str = NO  # no | on-failure | always | unless-stopped
    maximum_retry_count: int = 0  # on-failure only; 0 = unlimited


def validate(policy: RestartPolicy) -> None:
    """Refuse policies docker refuses (also for policies that come from the API)."""
    if policy.name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy '{policy.name}'")
    if policy.maximum_retry_count < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if policy.maximum_retry_count and policy.name != ON_FAILURE:
        raise InvalidArgument(
            f"maximum retry count cannot be used with restart policy '{policy.name}'"
        )


def next_delay(previous: float, ran_for: float) -> float:
    """Docker's back-off: 100 ms, doubled per restart, capped at 1 min, reset after 10 s up."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return INITIAL_DELAY
    return min(previous * 2, MAX_DELAY)


class RestartManager:
    """Decides, exit after exit, whether the monitor restarts its container.

    ``restart_count`` is the container's RestartCount (persisted by the engine and passed
    back in when a monitor takes over). ``delay`` is the last back-off delay handed out.
    """

    __slots__ = ("canceled", "delay", "policy", "restart_count")

    def __init__(self, policy: RestartPolicy, restart_count: int = 0) -> None:
        self.policy = policy
        self.restart_count = restart_count
        self.delay = 0.0
        self.canceled = False

    def should_restart(
        self, exit_code: int | None, stopped_by_user: bool, ran_for: float
    ) -> tuple[bool, float]:
        """(restart?, seconds to wait first) after the container exited with ``exit_code``
        (None: unknown, nobody saw the end; ``on-failure`` counts it as a failure).

        ``ran_for`` is how long it ran (seconds). A yes counts one restart.
        """
        if self.canceled or stopped_by_user or not self._wants(exit_code):
            return False, 0.0
        self.delay = next_delay(self.delay, ran_for)
        self.restart_count += 1
        return True, self.delay

    def _wants(self, exit_code: int | None) -> bool:
        name = self.policy.name
        if name in (ALWAYS, UNLESS_STOPPED):
            return True
        if name == ON_FAILURE:
            limit = self.policy.maximum_retry_count
            return exit_code != 0 and (limit == 0 or self.restart_count < limit)
        return False

    def cancel(self) -> None:
        """A user stop or kill (also during the back-off wait): no more restarts.

        The monitor checks ``canceled`` when the wait ends before starting again.
        """
        self.canceled = True

    def reset(self) -> None:
        """A user (re)start: docker forgets the count, the back-off and any cancel."""
        self.restart_count = 0
        self.delay = 0.0
        self.canceled = False

    def restart_on_boot(self, was_running: bool, stopped_by_user: bool) -> bool:
        """Start the container when the engine (or host) comes up again?

        ``always`` does even after a user stop (as docker does when dockerd starts);
        ``unless-stopped`` unless the user stopped it; ``on-failure`` when it was still
        running when the host went down (its end counts as a failure) and retries remain.
        """
        name = self.policy.name
        if name == ALWAYS:
            return True
        if name == UNLESS_STOPPED:
            return not stopped_by_user
        if name == ON_FAILURE:
            return was_running and not stopped_by_user and self._wants(1)
        return False
