"""The container verbs that take several names (``stop a b c``), a report per name.

``ContainerService.each`` hands one out: ``containers.each.stop(names, timeout)``.
Each name is handled as the single verb would, in the order given, and one failure
does not stop the others (``capsa.engine.system.reports``).
"""

from __future__ import annotations

import time

from capsa.engine.system.reports import each

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.engine.containers.service import ContainerService
    from capsa.engine.containers.types import ContainerRecord
    from capsa.engine.system.reports import ItemReport

    Reports = list[ItemReport[ContainerRecord]]


class ContainerBatch:
    def __init__(self, service: ContainerService) -> None:
        self.service = service

    def inspect(self, names: list[str]) -> Reports:
        return each(names, self.service.get)

    def start(self, names: list[str]) -> Reports:
        return each(names, lambda n: self.service.start(n)[0])

    def stop(self, names: list[str], timeout: int | None = None, sig: int | None = None) -> Reports:
        return each(names, lambda n: self.service.stop(n, timeout, sig))

    def restart(self, names: list[str], timeout: int | None = None) -> Reports:
        return each(names, lambda n: self.service.restart(n, timeout))

    def kill(self, names: list[str], sig: int) -> Reports:
        return each(names, lambda n: self.service.kill(n, sig))

    def pause(self, names: list[str]) -> list[ItemReport[None]]:
        return each(names, self.service.pause)

    def unpause(self, names: list[str]) -> list[ItemReport[None]]:
        return each(names, self.service.unpause)

    def remove(
        self, names: list[str], force: bool = False, volumes: bool = False
    ) -> list[ItemReport[str]]:
        """With ``force`` a missing name is still an error here: the frontend decides
        (Docker's CLI prints it and succeeds)."""
        return each(names, lambda n: self.service.remove(n, force, volumes))

    def wait(
        self, names: list[str], condition: str = "not-running"
    ) -> list[ItemReport[int | None]]:
        """Each exit code (None: unknown, ``engine.restore``), one name after another.
        Every name is looked up first: a ``--rm`` container that ends, and goes, while an
        earlier one is waited on still reports its code."""
        began = time.time()
        found = {r.name: r for r in each(names, self.service.get)}

        def wait_one(name: str) -> int | None:
            report = found[name]
            if report.error is not None:
                raise report.error
            assert report.value is not None
            return self.service.wait_for(report.value, condition, began)

        return each(names, wait_one)
