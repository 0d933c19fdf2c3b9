"""Runs blocking model work off the event loop, with a bounded queue.

Past `max_queue` waiting or running jobs the gateway refuses at once (RESOURCE_EXHAUSTED) instead of
letting latency grow without bound. A job whose caller was cancelled before it started never runs; one
already running is told to stop through its `threading.Event`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from gateway.errors import ResourceExhausted

P = ParamSpec("P")


def _set_torch_threads(count: int) -> None:
    import torch  # only for workers that run torch (the moderation worker)

    torch.set_num_threads(count)


T = TypeVar("T")


class Worker:
    def __init__(
        self,
        name: str,
        *,
        max_queue: int,
        threads: int = 1,
        observe: Callable[[float], None] | None = None,
        torch_threads: int | None = None,
    ) -> None:
        """`observe` receives each job's seconds (queue wait + run), e.g. a latency histogram.
        `torch_threads`: torch's intra-op threads in the worker's threads (None: torch's default)."""
        initializer = None if torch_threads is None else functools.partial(_set_torch_threads, torch_threads)
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=name, initializer=initializer
        )
        self._name = name
        self._threads = threads
        self._max_queue = max_queue
        self._pending = 0
        self._observe = observe

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, cancel: threading.Event, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Runs `fn(*args, **kwargs)` in the worker thread; sets `cancel` if the caller goes away."""
        if self._pending >= self._max_queue:
            raise ResourceExhausted(
                f"the {self._name} queue is full ({self._max_queue} requests waiting); retry later"
            )
        self._pending += 1
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
            if self._observe is not None:
                self._observe(time.perf_counter() - started)
            return result
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            self._pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
