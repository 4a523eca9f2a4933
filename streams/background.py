"""Background work: the threads and processes that must yield the cores to the event loop.

The worker's event loop applies events, answers ``/metrics`` and heartbeats; the work it
hands off (a checkpoint's child, the ledger's moves into its days' arrays, the reverse
stress test, replacing a checkpoint's file) can wait. On Linux a thread has its own nice
value, so each background thread lowers its own priority, and a loop that has work is
not kept waiting for a core while the background work holds one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")

# How much lower than the event loop's the priority of background work is.
NICENESS = 10


def lower_priority() -> None:
    """Lower the calling thread's (or a child process's) priority by :data:`NICENESS`."""
    os.nice(NICENESS)


def executor(name: str, threads: int = 1) -> ThreadPoolExecutor:
    """Threads for background work, each at :data:`NICENESS`."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"cover2-{name}",
                              initializer=lower_priority)


_BACKGROUND = executor("background", threads=2)


async def in_background(work: Callable[[], _T]) -> _T:
    """``work()`` in a background thread, awaited."""
    return await asyncio.get_running_loop().run_in_executor(_BACKGROUND, work)
