"""Logging that stays readable when something keeps failing.

A broker that is down makes the Kafka clients log the same error hundreds of
times a second. :class:`Repeats` lets the first of a kind through, then one
line per window with how many were held back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

# One line per kind of message per this many seconds, at most.
WINDOW_S = 5.0


class Repeats(logging.Filter):
    """Passes the first record of each (logger, message template), then at most one per
    ``window`` seconds, that one saying how many like it were held back."""

    def __init__(self, window: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.window, self.clock = window, clock
        self._kinds: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.msg)
        now = self.clock()
        passed, held = self._kinds.get(kind, (-float("inf"), 0))
        if now - passed < self.window:
            self._kinds[kind] = (passed, held + 1)
            return False
        self._kinds[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} [and {held} more like this in the last " \
                         f"{now - passed:.0f} s]"
        return True


def collapse_repeats(prefix: str = "aiokafka") -> Repeats:
    """Put one :class:`Repeats` on every logger named ``prefix``… (those the Kafka client
    has created: a logger's filter sees only its own records)."""
    repeats = Repeats()
    for name in [prefix, *logging.Logger.manager.loggerDict]:
        if name == prefix or name.startswith(prefix + "."):
            logging.getLogger(name).addFilter(repeats)
    return repeats


@contextlib.contextmanager
def silenced(name: str) -> Iterator[None]:
    """No record of logger ``name`` (and its children) below CRITICAL while inside."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
