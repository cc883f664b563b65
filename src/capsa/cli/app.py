"""What every command gets: settings and the engine, built on first use.

Kept apart from ``capsa.cli.main`` (click) so that the fast path of the listing
commands (``capsa.cli.fastpath``) can build the same ``App`` without importing click.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.config import Settings
    from capsa.engine.local import LocalEngine


class App:
    """Settings and the engine, built on first use."""

    def __init__(
        self, root: str | None, runroot: str | None, config: str | None, debug: bool
    ) -> None:
        self._args = (root, runroot, config)
        self.debug = debug
        self._settings: Settings | None = None
        self._engine: LocalEngine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from capsa import config

            root, runroot, path = self._args
            self._settings = config.load(root=root, runroot=runroot, config=path, env=os.environ)
        return self._settings

    @property
    def engine(self) -> LocalEngine:
        if self._engine is None:
            from capsa.engine.local import LocalEngine

            self._engine = LocalEngine(self.settings)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
