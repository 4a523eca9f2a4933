"""What passes between Kafka and the monitor: records in, effects out.

The monitor never sees a Kafka client: the ingest loop and the faust agents hand
it :class:`Record` objects, and send out the :class:`Effects` it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from risk.calls import MarginCall


class Record(Protocol):
    """What the monitor needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...  # milliseconds


@dataclass(frozen=True)
class DeadLetter:
    """A refused message, ready for the dead-letter topic."""

    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Forward:
    """A message read outside its member's home partition, to send there."""

    topic: str
    key: bytes
    value: bytes


@dataclass
class Effects:
    """What a batch sends out."""

    calls: list[MarginCall] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)


@dataclass(frozen=True)
class EventTimes:
    """Event times to the millisecond, each with how many events had it: what a partition
    view newly includes, for the latency of the worker that merges it."""

    milliseconds: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()

    @staticmethod
    def of(times: Sequence[np.ndarray]) -> EventTimes:
        """The distinct milliseconds of ``times`` (seconds) and their counts."""
        if not times:
            return EventTimes()
        ms, counts = np.unique(np.rint(np.concatenate(times) * 1000).astype(np.int64),
                               return_counts=True)
        return EventTimes(tuple(ms.tolist()), tuple(counts.tolist()))

    @staticmethod
    def joined(parts: Sequence[EventTimes]) -> EventTimes:
        """The event times of several views as one."""
        if len(parts) == 1:
            return parts[0]
        ms = np.concatenate([np.array(p.milliseconds, dtype=np.int64) for p in parts])
        counts = np.concatenate([np.array(p.counts, dtype=np.int64) for p in parts])
        distinct, where = np.unique(ms, return_inverse=True)
        return EventTimes(tuple(distinct.tolist()),
                          tuple(np.bincount(where, counts).astype(np.int64).tolist()))

    @property
    def seconds(self) -> np.ndarray:
        """Each distinct event time in seconds."""
        return np.array(self.milliseconds, dtype=np.float64) / 1000.0

    @property
    def weights(self) -> np.ndarray:
        """How many events had each time."""
        return np.array(self.counts, dtype=np.float64)
