"""`cover2 report`: the periodic Cover-2 report, rebuilt from the input topics.

It reads the input topics once (no consumer group, no commit, nothing written to
Kafka) and replays them in event-time order through the worker's own code, as
`cover2 stress` does. The results are evaluated at every step of event time
(``--resolution``) in which input arrived, and at every day and period boundary; the
results as of an evaluation hold until the next one. Each day and period keeps its
peaks, lowest headroom and time below zero (:mod:`risk.periods`), and the change
between consecutive period ends is attributed to the inputs (:mod:`risk.attribution`).
It writes ``report.json`` (every figure), ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from risk.attribution import POSITIONS, Attribution, Change, attribute, followed, inputs_of
from risk.cover import Cover
from risk.desk import Concentration, credit_concentration, liquidity_concentration
from risk.liquidity import provided
from risk.merge import MemberFigures
from risk.periods import Sides, Span, Timeline, Watch, breach_days, calendar
from risk.results import Results
from risk.reverse import Multiplier, books, multiplier_to_exhaustion
from streams.documents import iso
from streams.kafka.admin import BrokerError, wait_for_kafka
from streams.kafka.clients import Connection
from streams.kafka.history import History, read_inputs
from streams.tools.progress import Progress
from streams.tools.replay import Replay, in_event_time_order
from streams.tools.settings import ToolSettings

Say = Callable[[str], None]
# Groups drawn in the chart of shares over time, and attribution steps listed by group.
TOP_GROUPS = 5


class ReportError(ValueError):
    """The report cannot be made as asked; the message says what to change."""


def days_asked(settings: ToolSettings) -> tuple[dt.date, dt.date]:
    """The first and last day of ``--from`` and ``--to``."""
    days = []
    for flag, text in (("--from", settings.period_from), ("--to", settings.period_to)):
        if not text:
            raise ReportError(f"{flag} is needed: a day, YYYY-MM-DD")
        try:
            days.append(dt.date.fromisoformat(text))
        except ValueError:
            raise ReportError(f"{flag} {text!r} is not a day (YYYY-MM-DD)") from None
    first, last = days
    if last < first:
        raise ReportError(f"--from {first} is after --to {last}: give the earlier day first")
    return first, last


def writable(folder: Path) -> None:
    """Make ``folder`` and check that files can be written in it, before the long replay."""
    probe = folder / ".cover2-report-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ReportError(f"cannot write the report to {folder}: {error.strerror}; choose "
                          "another folder with --out") from None


@dataclass(frozen=True)
class PeakState:
    """What the shock multiplier to exhaustion needs of the state at a peak."""

    results: Results
    figures: list[MemberFigures]
    group_of: dict[str, str]
    provided: dict[str, float]

    def multiplier(self, side: str) -> Multiplier | None:
        """k* of ``side`` (credit or liquidity) in this state."""
        credit, liquidity = books(self.figures, lambda m: self.group_of.get(m, m),
                                  self.results.scenarios, self.provided)
        if side == "credit":
            return multiplier_to_exhaustion(credit, self.results.credit.prefunded)
        return multiplier_to_exhaustion(liquidity, self.results.liquidity.qualifying)


@dataclass
class PeriodEnd:
    """The state as of a period's end: its results and its inputs."""

    results: Results | None
    attribution: Attribution | None


def evaluation_times(ordered: list[tuple[float, Any]], days: list[Sides], end: float,
                     resolution: float) -> list[float]:
    """Every day start, and the end of each step of ``resolution`` seconds in which input
    arrived, before ``end``."""
    start = days[0].span.start
    steps = {math.ceil(ts / resolution) * resolution for ts, _ in ordered if start < ts < end}
    return sorted({t for t in steps if t < end} | {d.span.start for d in days})


class Report:
    """One replay of the history into days, periods, peaks and attributions."""

    def __init__(self, settings: ToolSettings, periods: list[Span]) -> None:
        self.settings = settings
        self.periods = periods
        self.timeline = Timeline(periods)
        self.replay = Replay(settings.topics, settings.call_policy, settings.plausibility)
        self.peaks: dict[tuple[int, str], PeakState] = {}
        self.ends: list[PeriodEnd] = []

    def run(self, ordered: list[tuple[float, Any]], progress: Progress) -> None:
        """Apply the records in event-time order, observing the results at every
        evaluation time."""
        end = self.periods[-1].end
        times = evaluation_times(ordered, self.timeline.days, end, self.settings.resolution)
        boundaries = {p.start for p in self.periods[1:]}
        starting = None
        monitor = self.replay.monitor
        applied = period = 0
        results: Results | None = None
        for at in [*times, end]:
            fresh = False
            while applied < len(ordered) and ordered[applied][0] <= at:
                ts, record = ordered[applied]
                self.replay.apply(record)
                self.timeline.count_event(ts)
                applied += 1
                fresh = True
            if fresh:
                self.replay.flush()
                monitor.refresh()
                results = monitor.results
            if at in boundaries or at == end:
                self.ends.append(self._period_end(results, starting))
                starting = inputs_of(monitor.state.ccp) if results is not None else None
            if at == end:
                break
            peaks = self.timeline.observe(at, results)
            while at >= self.periods[period].end:
                period += 1
            for side, new in (("credit", peaks.credit), ("liquidity", peaks.liquidity)):
                if new and results is not None:
                    self.peaks[period, side] = self._peak_state(results)
            progress(applied, iso(at) or "")
        self.timeline.close()

    def _peak_state(self, results: Results) -> PeakState:
        monitor = self.replay.monitor
        ccp = monitor.state.ccp
        figures = monitor.handover.figures() or []
        members = {m for part in figures for m in part.members}
        return PeakState(results, figures, {m: ccp.group_of(m) for m in members},
                         provided(ccp.resources, ccp.group_of))

    def _period_end(self, results: Results | None, starting: Any) -> PeriodEnd:
        if results is None or starting is None:
            return PeriodEnd(results, None)
        return PeriodEnd(results, attribute(starting, inputs_of(self.replay.monitor.state.ccp)))

    def document(self, history: History, ordered: list[tuple[float, Any]],
                 first: dt.date, last: dt.date) -> dict[str, Any]:
        """Every figure of the report, as ``report.json`` holds them."""
        days = self.timeline.days
        shares = [_shares(d.credit.peak_results) for d in days]
        top_groups = _top_groups(shares)
        periods = []
        previous: dict[str, Any] | None = None
        for i, sides in enumerate(self.timeline.periods):
            row = self._period_row(i, sides, previous)
            periods.append(row)
            previous = row
        return {
            "title": "Cover-2 report",
            "currency": self.settings.currency,
            "period": self.settings.period,
            "from": first.isoformat(), "to": last.isoformat(),
            "resolution_s": self.settings.resolution,
            "generated_at_iso": _iso_s(time.time()),
            "input": {"records": len(ordered), "end": history.end,
                      "first_event_iso": _iso_s(ordered[0][0]) if ordered else None,
                      "last_event_iso": _iso_s(ordered[-1][0]) if ordered else None,
                      "behind_in_partition": behind_in_partition(ordered)},
            "top_groups": top_groups,
            "periods": periods,
            "days": [_day_row(d, s, top_groups) for d, s in zip(days, shares, strict=True)],
        }

    def _period_row(self, i: int, sides: Sides, previous: dict[str, Any] | None
                    ) -> dict[str, Any]:
        days = self.timeline.days_of(sides)
        credit, liquidity = sides.credit, sides.liquidity
        credit_peak, liquidity_peak = self.peaks.get((i, "credit")), self.peaks.get(
            (i, "liquidity"))
        breached = breach_days(days)
        row: dict[str, Any] = {
            "label": sides.span.label, "start": sides.span.start, "end": sides.span.end,
            "start_iso": _iso_s(sides.span.start), "end_iso": _iso_s(sides.span.end),
            "events": sides.events, "evaluations": sides.evaluations,
            "status": "Breach" if breached else "Compliant", "breach_days": breached,
            "credit": _side(credit, days, "credit"),
            "liquidity": _side(liquidity, days, "liquidity"),
            "concentration": {
                "credit": _concentration(credit_concentration(credit_peak.results))
                if credit_peak else None,
                "liquidity": _concentration(liquidity_concentration(liquidity_peak.results))
                if liquidity_peak else None},
            "multiplier_to_exhaustion": {
                "credit": _multiplier(credit_peak.multiplier("credit")) if credit_peak else None,
                "liquidity": _multiplier(liquidity_peak.multiplier("liquidity"))
                if liquidity_peak else None},
        }
        end = self.ends[i]
        row["at_end"] = _at_end(end.results)
        row["change"] = _change(row, previous) if previous else None
        row["attribution"] = (_attribution(end.attribution, self.periods[i - 1].end,
                                           sides.span.end)
                              if i and end.attribution else None)
        return row


def behind_in_partition(ordered: list[tuple[float, Any]]) -> int:
    """Records whose event time is below that of an earlier record of their partition:
    they are applied in their partition's order, after it."""
    latest: dict[tuple[str, int], float] = {}
    behind = 0
    for ts, record in ordered:
        key = (record.topic, record.partition)
        if ts < latest.get(key, -math.inf):
            behind += 1
        else:
            latest[key] = ts
    return behind


def _iso_s(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _group_amount(cover: Cover, rank: int) -> dict[str, Any] | None:
    if len(cover.top) <= rank:
        return None
    return {"group": cover.top[rank].group, "amount": cover.top[rank].amount}


def _side(watch: Watch, days: list[Sides], side: str) -> dict[str, Any]:
    credit = side == "credit"
    first, second = ("c1", "c2") if credit else ("l1", "l2")
    row: dict[str, Any] = {"breach_seconds": watch.below_s,
                           "breach_days": breach_days(days, side)}
    results: Results | None = watch.peak_results
    if results is None:  # no state in the period
        return {first: None, second: None, "cover2": None, "scenario": None, "peak_at": None,
                "peak_at_iso": None, "prefunded" if credit else "qualifying": None,
                "surplus": None, "min_headroom": None, "min_headroom_at": None,
                "min_headroom_at_iso": None, **row}
    cover = results.credit.cover if credit else results.liquidity.cover
    resource = results.credit.prefunded if credit else results.liquidity.qualifying
    return {
        first: _group_amount(cover, 0), second: _group_amount(cover, 1),
        "cover2": cover.amount, "scenario": cover.scenario,
        "peak_at": watch.peak_at, "peak_at_iso": _iso_s(watch.peak_at),
        "prefunded" if credit else "qualifying": resource,
        "surplus": resource - cover.amount,
        "min_headroom": watch.low, "min_headroom_at": watch.low_at,
        "min_headroom_at_iso": _iso_s(watch.low_at), **row,
    }


def _concentration(concentration: Concentration) -> dict[str, Any]:
    return {"top2_share": concentration.top2_share, "hhi": concentration.hhi}


def _multiplier(multiplier: Multiplier | None) -> dict[str, Any] | None:
    if multiplier is None:
        return None
    return {"k": multiplier.k, "scenario": multiplier.scenario,
            "groups": [t.group for t in multiplier.top]}


def _at_end(results: Results | None) -> dict[str, float] | None:
    if results is None:
        return None
    credit, liquidity = results.credit, results.liquidity
    return {"credit_cover2": credit.cover2, "prefunded": credit.prefunded,
            "credit_headroom": credit.headroom, "liquidity_cover2": liquidity.cover2,
            "qualifying": liquidity.qualifying, "liquidity_headroom": liquidity.headroom}


def _amount(side: dict[str, Any], key: str) -> float | None:
    value = side.get(key)
    return value["amount"] if isinstance(value, dict) else value


def _change(row: dict[str, Any], previous: dict[str, Any]) -> dict[str, float | None]:
    """This period's table figures minus the previous period's."""
    pairs = {"c1": ("credit", "c1"), "c2": ("credit", "c2"), "cover2": ("credit", "cover2"),
             "prefunded": ("credit", "prefunded"), "credit_surplus": ("credit", "surplus"),
             "l1": ("liquidity", "l1"), "l2": ("liquidity", "l2"),
             "liquidity_cover2": ("liquidity", "cover2"),
             "qualifying": ("liquidity", "qualifying"),
             "liquidity_surplus": ("liquidity", "surplus")}
    out: dict[str, float | None] = {}
    for name, (side, key) in pairs.items():
        now, before = _amount(row[side], key), _amount(previous[side], key)
        out[name] = None if now is None or before is None else now - before
    return out


def _attribution(attribution: Attribution, start: float, end: float) -> dict[str, Any]:
    moved = [s for s in attribution.steps if s.family == POSITIONS
             and (s.change.credit_headroom or s.change.liquidity_headroom)]
    top = sorted(moved, key=lambda s: (-abs(s.change.credit_headroom),
                                       -abs(s.change.liquidity_headroom)))[:TOP_GROUPS]
    return {
        "from_iso": _iso_s(start), "to_iso": _iso_s(end),
        "start": followed(attribution.start), "end": followed(attribution.end),
        "steps": [{"family": s.family, "group": s.group, **followed(s.change)}
                  for s in attribution.steps],
        "families": [{"family": family, **followed(change)}
                     for family, change in attribution.by_family()],
        "top_groups": [{"group": s.group, **followed(s.change)} for s in top],
        "sum": followed(Change.total([s.change for s in attribution.steps])),
        "change": followed(attribution.end.minus(attribution.start)),
    }


def _shares(results: Results | None) -> dict[str, float]:
    """Each group's share of ``T = sum_g E[g,s*]`` in the binding scenario of ``results``."""
    if results is None or results.credit.cover.scenario is None:
        return {}
    column = results.exposure_by_group_scenario[
        :, results.scenarios.index(results.credit.cover.scenario)]
    total = float(column.sum())
    if total <= 0:
        return {}
    return {g: float(a) / total for g, a in zip(results.groups, column.tolist(), strict=True)
            if a > 0}


def _top_groups(shares: list[dict[str, float]]) -> list[str]:
    """The groups with the largest mean share over the days."""
    totals: dict[str, float] = {}
    for day in shares:
        for group, share in day.items():
            totals[group] = totals.get(group, 0.0) + share
    return sorted(totals, key=lambda g: (-totals[g], g))[:TOP_GROUPS]


def _day_row(day: Sides, shares: dict[str, float], top_groups: list[str]) -> dict[str, Any]:
    credit, liquidity = day.credit, day.liquidity
    credit_peak, liquidity_peak = credit.peak_results, liquidity.peak_results
    return {
        "date": day.span.label,
        "credit_peak": credit.peak if credit.seen else None,
        "prefunded": credit_peak.credit.prefunded if credit_peak else None,
        "credit_min_headroom": credit.low if credit.seen else None,
        "credit_breach_seconds": credit.below_s,
        "liquidity_peak": liquidity.peak if liquidity.seen else None,
        "qualifying": liquidity_peak.liquidity.qualifying if liquidity_peak else None,
        "liquidity_min_headroom": liquidity.low if liquidity.seen else None,
        "liquidity_breach_seconds": liquidity.below_s,
        "shares": {g: shares[g] for g in top_groups if g in shares},
    }


def check_data(ordered: list[tuple[float, Any]], periods: list[Span], prefix: str) -> None:
    """Every period has a state: some input message at or before its end."""
    if not ordered:
        raise ReportError(f"the input topics {prefix}* hold no messages: nothing to report")
    first = ordered[0][0]
    for period in periods:
        if first > period.end:
            day = dt.datetime.fromtimestamp(first, dt.UTC).date()
            raise ReportError(f"period {period.label} has no data: the first input message "
                              f"is at {_iso_s(first)}; start --from on {day} or later")


def main(settings: ToolSettings, say: Say) -> None:
    """Make the report the settings describe; a problem is one line and exit code 2."""
    try:
        first, last = days_asked(settings)
        periods = calendar(first, last, settings.period)
        out = Path(settings.out)
        writable(out)
        connection = Connection.of(settings)
        reading = Progress("report", "read input records")
        try:
            history = asyncio.run(_read(connection, settings, reading))
        finally:
            reading.done()
        ordered = in_event_time_order(history.records, settings.topics,
                                      lambda ts: ts <= periods[-1].end)
        check_data(ordered, periods, settings.topic_prefix)
        report = Report(settings, periods)
        replaying = Progress("report", "replayed records", len(ordered))
        try:
            report.run(ordered, replaying)
        finally:
            replaying.done()
        document = report.document(history, ordered, first, last)
    except (ReportError, BrokerError, LookupError) as error:
        print(f"cover2 report: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("cover2 report: stopped before the end; nothing was written", file=sys.stderr,
              flush=True)
        raise SystemExit(130) from None
    written = write(document, out)
    for period in document["periods"]:
        days = period["breach_days"]
        say(f"{period['label']}: {period['status']}"
            + (f" on {len(days)} day(s): {', '.join(days)}" if days else ""))
    say("written: " + ", ".join(str(p) for p in written))


def write(document: dict[str, Any], out: Path) -> list[Path]:
    """``report.json``, ``report.md`` and ``report.html`` in ``out``."""
    from streams.tools.report_pages import write_pages

    path = out / "report.json"
    path.write_text(json.dumps(document, indent=2))
    return [path, *write_pages(document, out)]


async def _read(connection: Connection, settings: ToolSettings, progress: Progress) -> History:
    await wait_for_kafka(connection)
    return await read_inputs(connection, settings.topics, progress)

