"""What the worker counted: events by topic and outcome, margin calls, latency.

Kept in plain dicts and arrays, part of the state that survives a restart;
:mod:`streams.metrics` exposes them. Updating them costs one addition per batch,
not a call per event.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

APPLIED, DUPLICATE, STALE, REJECTED = "applied", "duplicate", "stale", "rejected"
# Read outside its member's home partition and sent there, where it is applied.
FORWARDED = "forwarded"
OUTCOMES = (APPLIED, DUPLICATE, STALE, REJECTED, FORWARDED)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Latency:
    """A histogram of latencies in seconds: counts per bucket of :data:`LATENCY_BUCKETS`
    (each up to its bound), the last one above them all, and their sum."""

    counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64))
    total: float = 0.0

    def observe(self, latencies: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Count ``latencies``, each ``weights`` times (once by default)."""
        if len(latencies):
            self.counts += np.bincount(
                np.searchsorted(LATENCY_BUCKETS, latencies, side="left"), weights,
                minlength=len(LATENCY_BUCKETS) + 1).astype(np.int64)
            self.total += float(latencies.sum() if weights is None else latencies @ weights)


@dataclass(frozen=True)
class CheckpointTimes:
    """The last checkpoint: when it was kept (epoch seconds), how long the event loop
    paused to cut it, how long it took to write, and its size."""

    at: float
    cut_s: float
    write_s: float
    size: int


@dataclass
class Tally:
    """Events by (topic, outcome), margin calls by (group, level label), the newest event
    time per topic, and the event-to-metric latency histogram."""

    events: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    margin_calls: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    last_event_ts: dict[str, float] = field(default_factory=dict)
    latency: Latency = field(default_factory=Latency)
    merged_latency: Latency = field(default_factory=Latency)
    loop_lag: Latency = field(default_factory=Latency)
    checkpoint: CheckpointTimes | None = None

    def count(self, topic: str, outcome: str, n: int) -> None:
        """Add ``n`` events of ``topic`` with ``outcome``."""
        if n:
            self.events[topic, outcome] += n

    def outcome(self, outcome: str) -> int:
        """Events with ``outcome``, on every topic."""
        return sum(n for (_, o), n in self.events.items() if o == outcome)

    def seen(self, topic: str, newest_ts: float) -> None:
        """The newest event time applied on ``topic``."""
        if newest_ts > self.last_event_ts.get(topic, -math.inf):
            self.last_event_ts[topic] = newest_ts
