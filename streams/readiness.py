"""Readiness, apart from liveness: may the worker's numbers be trusted right now?

``/healthz`` says the process is alive and has joined its group (restart it if
not). ``/readyz`` says its results are current: it has restored its state,
holds its partitions, reaches the broker and has had a fetch answered within
``COVER2_READY_MAX_LAG`` seconds (route traffic and trust the figures only then).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Readiness:
    """Whether the worker is ready, why not, and how old its newest fetch is (seconds)."""

    ready: bool
    reason: str
    fetch_age_s: float | None


def readiness(assigned: bool, rebalancing: bool, has_results: bool, fetch_age_s: float | None,
              max_lag_s: float) -> Readiness:
    """The worker's readiness from what it knows of itself; the first reason that holds."""
    if not assigned:
        reason = "starting: the consumer group has not assigned this worker its partitions yet"
    elif rebalancing:
        reason = "the consumer group is rebalancing"
    elif not has_results:
        reason = "starting: no results computed yet"
    elif fetch_age_s is None:
        reason = "no fetch answered by the broker yet"
    elif fetch_age_s > max_lag_s:
        reason = (f"no fetch answered by the broker for {fetch_age_s:.1f} s "
                  f"(COVER2_READY_MAX_LAG is {max_lag_s:g} s)")
    else:
        return Readiness(True, "", fetch_age_s)
    return Readiness(False, reason, fetch_age_s)
