"""Failures that end the worker: said loudly, then the process exits for its supervisor.

A loop of the worker that fails (ingest, prices, partition views, outputs,
checkpoints, the faust agents and timers) does not restart inside the process:
its state could be half-applied. The failure is logged at ERROR with its
traceback and, where known, the topic, partition and offset; then the process
ends at once with :data:`EXIT_FATAL`, as after ``kill -9``. Its supervisor
(compose ``restart:``, systemd, Kubernetes) starts it again, and recovery
resumes from the last checkpoint, which is always a consistent cut.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, ParamSpec, TypeVar

log = logging.getLogger(__name__)

# EX_SOFTWARE: an internal error; non-zero, so that `restart: on-failure` restarts it.
EXIT_FATAL = 70
# A setting, a file or the network keeps the worker from running: said in one line.
EXIT_CANNOT_START = 2

P = ParamSpec("P")
R = TypeVar("R")


def fatal(what: str, error: BaseException, where: str = "") -> NoReturn:
    """Log that ``what`` failed with ``error`` (at ``where``, if known), and end the process."""
    log.error("%s failed%s: %s. The worker exits with code %d for its supervisor to restart "
              "it; it resumes from its last checkpoint.", what, f" at {where}" if where else "",
              error or type(error).__name__, EXIT_FATAL, exc_info=error)
    end(EXIT_FATAL)


def refuse(why: str, code: int) -> NoReturn:
    """Log why the worker cannot run as configured (no traceback: it is no bug), and end."""
    log.error("%s", why)
    end(code)


def end(code: int) -> NoReturn:
    """End the process now with ``code``, what was logged flushed."""
    for handler in [*logging.getLogger().handlers, *log.handlers]:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def supervised(what: str, where: Callable[..., str] | None = None
               ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Make a failure of the decorated coroutine function fatal, naming ``what`` failed and,
    from ``where(*args)``, the input it was at."""
    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await function(*args, **kwargs)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:
                fatal(what, error, where(*args) if where is not None else "")
        return run
    return decorate
