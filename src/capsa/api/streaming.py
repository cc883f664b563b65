"""Blocking engine iterators (logs, events, stats) consumed by async handlers.

The iterator runs on a worker thread and hands items over through a small queue;
when the client goes away the handler stops reading, the iterator's ``gone()``
turns true, and the worker ends at its next item or poll.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from typing import Any

    from capsa.api.engines import Engines
    from capsa.engine.local import LocalEngine

_END = object()
_QUEUE = 64


async def iterate(
    engines: Engines, make: Callable[[LocalEngine, Callable[[], bool]], Iterator[Any]]
) -> AsyncIterator[Any]:
    """The items of ``make(engine, gone)``, produced on a worker thread. Errors the
    iterator raises come out here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=_QUEUE)
    gone = threading.Event()

    def hand_over(item: Any) -> bool:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while True:
            try:
                future.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                if gone.is_set():
                    future.cancel()
                    return False

    def work(engine: LocalEngine) -> None:
        try:
            for item in make(engine, gone.is_set):
                if gone.is_set() or not hand_over(item):
                    return
        finally:
            loop.call_soon_threadsafe(_put_end, queue)

    task = asyncio.ensure_future(engines.call(work))
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            yield item
        await task  # what the iterator raised
    finally:
        gone.set()
        while not queue.empty():
            queue.get_nowait()


def _put_end(queue: asyncio.Queue[Any]) -> None:
    try:
        queue.put_nowait(_END)
    except asyncio.QueueFull:
        # the consumer is gone or slow: make room; the end matters more than an item
        queue.get_nowait()
        queue.put_nowait(_END)
