"""Periods of the Cover-2 report: calendars, and what each day and period held.

Results are evaluated at times ``t_0 < t_1 < ...`` of event time; the results as of
``t_k`` hold over ``[t_k, t_{k+1})``. A day (UTC) or a period ``[start, end)`` keeps,
for each side (credit against prefunded resources, liquidity against qualifying
liquid resources): its peak cover-2 with the results at the peak (the first, on
ties), its lowest headroom, and how long headroom was below zero.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from risk.results import Results

DAY_S = 86_400.0
PERIOD_KINDS = ("day", "month", "quarter")


@dataclass(frozen=True)
class Span:
    """A stretch of event time ``[start, end)`` with its label."""

    label: str
    start: float
    end: float


def midnight(day: dt.date) -> float:
    """Epoch seconds of ``day`` at 00:00 UTC."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def calendar(first: dt.date, last: dt.date, kind: str) -> list[Span]:
    """The days, months or quarters from ``first`` to ``last`` (both included), the first
    and last cut to those days."""
    if kind not in PERIOD_KINDS:
        raise ValueError(f"unknown period {kind!r}: choose {', '.join(PERIOD_KINDS)}")
    spans: list[Span] = []
    day = first
    while day <= last:
        label, following = _period_of(day, kind)
        end = min(following, last + dt.timedelta(days=1))
        spans.append(Span(label, midnight(day), midnight(end)))
        day = end
    return spans


def _period_of(day: dt.date, kind: str) -> tuple[str, dt.date]:
    """The label of the period holding ``day`` and the first day of the next one."""
    if kind == "day":
        return day.isoformat(), day + dt.timedelta(days=1)
    if kind == "month":
        start_month = day.month
        label = f"{day.year}-{start_month:02d}"
    else:
        start_month = 3 * ((day.month - 1) // 3) + 1
        label = f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    months = 1 if kind == "month" else 3
    year, month = divmod(start_month - 1 + months, 12)
    return label, dt.date(day.year + year, month + 1, 1)


@dataclass
class Watch:
    """One side over one span: the peak cover-2 and the lowest headroom, with when, and the
    seconds of headroom below zero."""

    peak: float = -math.inf
    peak_at: float | None = None
    peak_results: Results | None = None
    low: float = math.inf
    low_at: float | None = None
    below_s: float = 0.0

    def see(self, at: float, results: Results, cover2: float, headroom: float) -> bool:
        """Take the results as of ``at``; True if they are a new peak."""
        if headroom < self.low:
            self.low, self.low_at = headroom, at
        if cover2 > self.peak:
            self.peak, self.peak_at, self.peak_results = cover2, at, results
            return True
        return False

    @property
    def seen(self) -> bool:
        """Whether any results fell in the span."""
        return self.peak_at is not None


@dataclass
class Sides:
    """Both sides over one span, and how many evaluations and input events it had."""

    span: Span
    credit: Watch = field(default_factory=Watch)
    liquidity: Watch = field(default_factory=Watch)
    evaluations: int = 0
    events: int = 0

    def breached(self) -> bool:
        """Whether headroom was below zero at any time of the span, on either side."""
        return self.credit.below_s > 0 or self.liquidity.below_s > 0


@dataclass(frozen=True)
class NewPeaks:
    """Which sides reached a new peak of their period with the latest results."""

    credit: bool
    liquidity: bool


def credit_figures(results: Results) -> tuple[float, float]:
    """Credit cover-2 and headroom."""
    return results.credit.cover2, results.credit.headroom


def liquidity_figures(results: Results) -> tuple[float, float]:
    """Liquidity cover-2 and headroom."""
    return results.liquidity.cover2, results.liquidity.headroom


class Timeline:
    """Days and periods filled from results evaluated in time order.

    Call :meth:`observe` with the results as of each evaluation time (None while there is
    no state yet), then :meth:`close` at the end of the last period. A period's days are
    final once a later evaluation has passed them.
    """

    def __init__(self, periods: Sequence[Span]) -> None:
        self.periods = [Sides(p) for p in periods]
        first, last = periods[0].start, periods[-1].end
        self.days = [Sides(Span(_date_label(t), t, min(t + DAY_S, last)))
                     for t in _steps(first, last, DAY_S)]
        self._last: tuple[float, Results | None] | None = None

    def _index(self, spans: Sequence[Sides], at: float) -> int:
        i = bisect.bisect_right([s.span.start for s in spans], at) - 1
        if i < 0 or at >= spans[i].span.end:
            raise ValueError(f"time {at} is outside the report's periods")
        return i

    def observe(self, at: float, results: Results | None) -> NewPeaks:
        """Take the results as of ``at`` (later than every earlier one)."""
        self._hold_until(at)
        self._last = (at, results)
        period = self.periods[self._index(self.periods, at)]
        day = self.days[self._index(self.days, at)]
        period.evaluations += 1
        day.evaluations += 1
        if results is None:
            return NewPeaks(False, False)
        peaks = []
        for side, values in (("credit", credit_figures), ("liquidity", liquidity_figures)):
            cover2, headroom = values(results)
            getattr(day, side).see(at, results, cover2, headroom)
            peaks.append(getattr(period, side).see(at, results, cover2, headroom))
        return NewPeaks(*peaks)

    def count_event(self, ts: float) -> None:
        """Count an input event in the period and day it belongs to (if any)."""
        for spans in (self.periods, self.days):
            if spans[0].span.start <= ts < spans[-1].span.end:
                spans[self._index(spans, ts)].events += 1

    def close(self) -> None:
        """Hold the last results until the end of the last period."""
        self._hold_until(self.periods[-1].span.end)
        self._last = None

    def _hold_until(self, until: float) -> None:
        """The last results held from their time until ``until``: seconds below zero, cut
        at day boundaries."""
        if self._last is None:
            return
        since, results = self._last
        if until < since:
            raise ValueError(f"results at {until} come before those at {since}")
        if results is None:
            return
        for i in range(self._index(self.days, since), len(self.days)):
            day = self.days[i]
            if day.span.start >= until:
                break
            seconds = min(until, day.span.end) - max(since, day.span.start)
            period = self.periods[self._index(self.periods, day.span.start)]
            for side, values in (("credit", credit_figures), ("liquidity", liquidity_figures)):
                if values(results)[1] < 0:
                    getattr(day, side).below_s += seconds
                    getattr(period, side).below_s += seconds

    def days_of(self, period: Sides) -> list[Sides]:
        """The days of ``period``."""
        return [d for d in self.days if period.span.start <= d.span.start < period.span.end]


def breach_days(days: Sequence[Sides], side: str | None = None) -> list[str]:
    """The labels of the days whose headroom (of ``side``, or of either) went below zero."""
    if side is None:
        return [d.span.label for d in days if d.breached()]
    return [d.span.label for d in days if getattr(d, side).below_s > 0]


def _steps(start: float, end: float, step: float) -> Iterator[float]:
    t = start
    while t < end:
        yield t
        t += step


def _date_label(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat()
