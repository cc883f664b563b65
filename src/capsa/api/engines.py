"""The engine, for an asyncio server: blocking engine calls run on worker threads.

Each worker thread has its own ``LocalEngine`` (its own database connection and
caches); they share the state on disk through the same locks that separate ``capsa``
processes use (``flock``, per open file, so threads exclude each other too). Monitors
start by the ``spawn`` policy: the server never forks itself.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from capsa.config import Settings
    from capsa.engine.local import LocalEngine

    T = TypeVar("T")

# Long calls (wait, logs --follow, attach pumps, pulls) each hold a worker.
MAX_WORKERS = 64


class Engines:
    def __init__(self, settings: Settings, workers: int = MAX_WORKERS) -> None:
        self.settings = settings
        self._local = threading.local()
        self._made: list[LocalEngine] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine")

    def here(self) -> LocalEngine:
        """This thread's engine, made on first use."""
        engine: LocalEngine | None = getattr(self._local, "engine", None)
        if engine is None:
            from capsa.engine.local import LocalEngine

            engine = LocalEngine(self.settings, monitor_start="spawn")
            self._local.engine = engine
            with self._lock:
                self._made.append(engine)
        return engine

    async def call(self, fn: Callable[[LocalEngine], T]) -> T:
        """``fn(engine)`` on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self.here()))

    async def run(self, fn: Callable[[], T]) -> T:
        """A blocking call that needs no engine (reading a stream) on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            made, self._made = self._made, []
        for engine in made:
            engine.close()
