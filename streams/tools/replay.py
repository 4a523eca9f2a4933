"""The state as of a time, rebuilt from the input topics by the worker's own code.

The state as of ``T`` is every input message with event time ``<= T`` (its ``ts``,
else its Kafka record timestamp), applied in event-time order across partitions and
in offset order within each, as the live worker reads them. One
:class:`streams.monitor.Monitor` holds every member, so the result does not depend on
how many workers run live.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any

from risk.calls import CallPolicy
from streams import topics as t
from streams.codec import Plausibility, decode
from streams.monitor import Monitor

# Per-message records go to the monitor in batches of at most this many.
BATCH = 20_000


def event_time(record: Any, topic: str) -> float:
    """A record's event time in seconds: its ``ts``, else its Kafka record timestamp."""
    message = decode(topic, record.key, record.value)
    ts = getattr(message, "ts", None)
    return float(ts) if ts is not None else record.timestamp / 1000.0


def in_event_time_order(records: Sequence[Any], topics: t.Topics,
                        keep: Callable[[float], bool] = lambda ts: True
                        ) -> list[tuple[float, Any]]:
    """``(event time, record)`` of the records whose event time ``keep`` accepts, merged by
    event time across partitions, each partition kept in its own order (the monitor takes
    a partition's records in offset order, as the live worker reads them)."""
    partitions: dict[tuple[str, int], list[tuple[float, Any]]] = {}
    for record in records:
        ts = event_time(record, topics.short(record.topic))
        if keep(ts):
            partitions.setdefault((record.topic, record.partition), []).append((ts, record))
    return list(heapq.merge(*partitions.values(), key=lambda item: item[0]))


class Replay:
    """A monitor holding every member, fed records one at a time: per-message records in
    batches, reference data as it comes."""

    def __init__(self, topics: t.Topics, policy: CallPolicy,
                 plausibility: Plausibility) -> None:
        self.topics = topics
        self.monitor = Monitor(topics, policy, plausibility=plausibility)
        self._hot: list[Any] = []

    def apply(self, record: Any) -> None:
        """Take the next record."""
        if self.topics.short(record.topic) in t.HOT_INPUTS:
            self._hot.append(record)
            if len(self._hot) >= BATCH:
                self.flush()
        else:
            self.flush()
            self.monitor.apply_reference(record)

    def flush(self) -> None:
        """Apply the pending per-message records, one batch per run of a partition."""
        if not self._hot:
            return
        runs: list[list[Any]] = []
        for record in self._hot:
            if runs and (runs[-1][-1].topic, runs[-1][-1].partition) == (record.topic,
                                                                          record.partition):
                runs[-1].append(record)
            else:
                runs.append([record])
        self.monitor.ingest(runs)
        self._hot.clear()


def state_as_of(records: Sequence[Any], topics: t.Topics, as_of: float, policy: CallPolicy,
                plausibility: Plausibility) -> tuple[Monitor, int]:
    """A monitor holding the state as of ``as_of`` (epoch seconds) from ``records`` (in each
    partition's order), and how many records it includes."""
    included = in_event_time_order(records, topics, lambda ts: ts <= as_of)
    replay = Replay(topics, policy, plausibility)
    for _, record in included:
        replay.apply(record)
    replay.flush()
    replay.monitor.refresh()
    return replay.monitor, len(included)
