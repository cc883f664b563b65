"""What every command gets: settings and the engine, built on first use.

Kept apart from ``capsa.cli.main`` (click) so that the fast path of the listing
commands (``capsa.cli.fastpath``) can build the same ``App`` without importing click.

The engine is the local one, or with ``--host unix://PATH`` (or ``CAPSA_HOST``) a
``RemoteEngine`` speaking to a running ``capsa system service``: both implement
``capsa.engine.protocol.Engine``, and no command knows which one it has.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.config import Settings
    from capsa.engine.protocol import Engine


class App:
    """Settings and the engine, built on first use."""

    def __init__(
        self,
        root: str | None,
        runroot: str | None,
        config: str | None,
        debug: bool,
        host: str | None = None,
    ) -> None:
        """``host``: the service to use (``unix://PATH``); None reads ``CAPSA_HOST``."""
        self._args = (root, runroot, config)
        self.debug = debug
        self.host = host if host is not None else os.environ.get("CAPSA_HOST") or None
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from capsa import config

            root, runroot, path = self._args
            self._settings = config.load(root=root, runroot=runroot, config=path, env=os.environ)
        return self._settings

    @property
    def engine(self) -> Engine:
        """The engine: the local one, or a ``RemoteEngine`` with a host given. Commands
        see only ``capsa.engine.protocol.Engine``, which both implement."""
        if self._engine is None:
            if self.host:
                from capsa.client.remote import RemoteEngine

                self._engine = RemoteEngine(self.host)
            else:
                from capsa.engine.local import LocalEngine

                self._engine = LocalEngine(self.settings)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
