"""The state as of a time, rebuilt from the input topics by the worker's own code.

The state as of ``T`` is every input message with event time ``<= T`` (its ``ts``,
else its Kafka record timestamp), applied in event-time order across partitions and
in offset order within each, as the live worker reads them. One
:class:`streams.monitor.Monitor` holds every member, so the result does not depend on
how many workers run live.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
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


def state_as_of(records: Sequence[Any], topics: t.Topics, as_of: float, policy: CallPolicy,
                plausibility: Plausibility) -> tuple[Monitor, int]:
    """A monitor holding the state as of ``as_of`` (epoch seconds) from ``records`` (in each
    partition's order), and how many records it includes."""
    partitions: dict[tuple[str, int], list[tuple[float, Any]]] = {}
    for record in records:
        ts = event_time(record, topics.short(record.topic))
        if ts <= as_of:
            partitions.setdefault((record.topic, record.partition), []).append((ts, record))
    # Merged by event time, each partition kept in its own order (the monitor takes a
    # partition's records in offset order, as the live worker reads them).
    included = [record for _, record in heapq.merge(*partitions.values(),
                                                    key=lambda item: item[0])]
    monitor = Monitor(topics, policy, plausibility=plausibility)
    hot: list[Any] = []
    for record in included:
        if topics.short(record.topic) in t.HOT_INPUTS:
            hot.append(record)
            if len(hot) >= BATCH:
                _ingest(monitor, hot)
        else:
            _ingest(monitor, hot)
            monitor.apply_reference(record)
    _ingest(monitor, hot)
    monitor.refresh()
    return monitor, len(included)


def _ingest(monitor: Monitor, hot: list[Any]) -> None:
    """Apply the pending per-message records, one batch per run of a partition."""
    if not hot:
        return
    runs: list[list[Any]] = []
    for record in hot:
        if runs and (runs[-1][-1].topic, runs[-1][-1].partition) == (record.topic,
                                                                      record.partition):
            runs[-1].append(record)
        else:
            runs.append([record])
    monitor.ingest(runs)
    hot.clear()
