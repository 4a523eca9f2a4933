"""`cover2 stress`: a supervisory stress test on the state as of a time.

It rebuilds the state from the input topics (:mod:`streams.tools.replay`) with the
worker's own code, adds the supervisor's scenarios (or uses only them), and prints
the results: the whole CCP, whatever number of workers run live. It joins no
consumer group, commits nothing and writes nothing to Kafka.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from risk.desk import StressDesk
from risk.results import Results
from risk.reverse import Multiplier, ReverseStress
from streams.codec import ScenarioMessage
from streams.documents import cover2_document, iso
from streams.kafka.admin import BrokerError, wait_for_kafka
from streams.kafka.clients import Connection
from streams.kafka.history import History, read_inputs
from streams.readiness import Readiness
from streams.tools.progress import Progress
from streams.tools.replay import state_as_of
from streams.tools.settings import ToolSettings

Say = Callable[[str], None]


class StressError(ValueError):
    """The stress test cannot run as asked; the message says what to change."""


def parse_time(text: str, now: float) -> float:
    """``text`` as epoch seconds: ISO 8601 (UTC unless it says otherwise), epoch seconds,
    or ``now`` when empty."""
    if not text:
        return now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise StressError(f"--as-of {text!r} is neither ISO 8601 (2026-11-30T17:00:00Z) nor "
                          "epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def load_scenarios(path: str, settings: ToolSettings) -> list[ScenarioMessage]:
    """The scenarios of a file: a JSON list of ``ccp.scenarios`` messages, each checked as
    the worker checks them (an instrument nobody holds is allowed: it moves nothing)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise StressError(f"cannot read the scenario file {path}: {error.strerror}") from None
    try:
        scenarios = msgspec.json.decode(raw, type=list[ScenarioMessage])
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise StressError(f"scenario file {path}: {error} (a JSON list of ccp.scenarios "
                          "messages: docs/contract.md)") from None
    for scenario in scenarios:
        problem = settings.plausibility.scenario_problem(scenario)
        if problem:
            raise StressError(f"scenario file {path}, scenario {scenario.scenario!r}: {problem}")
    names = [s.scenario for s in scenarios]
    if len(set(names)) != len(names):
        raise StressError(f"scenario file {path}: a scenario id appears twice")
    return scenarios


def stressed(settings: ToolSettings, history: History, as_of: float,
             scenarios: list[ScenarioMessage]) -> tuple[Results, StressDesk, ReverseStress, int]:
    """The results of the state as of ``as_of``, with ``scenarios`` added or alone."""
    monitor, included = state_as_of(history.records, settings.topics, as_of,
                                    settings.call_policy, settings.plausibility)
    if not included:
        first = min((r.timestamp / 1000.0 for r in history.records), default=None)
        raise StressError(f"no input message has an event time at or before {iso(as_of)}"
                          + (f"; the first record was written at {iso(first)}" if first else
                             f"; the topics {settings.topic_prefix}* are empty"))
    ccp = monitor.state.ccp
    if settings.replace:
        for name in ccp.scenarios:
            ccp.remove_scenario(name)
    for scenario in scenarios:
        ccp.upsert_scenario(scenario.to_model())
    monitor.recompute()
    monitor.refresh()
    assert monitor.results is not None
    asyncio.run(monitor.reverse_stress())
    assert monitor.reverse is not None  # one monitor counts every partition
    return monitor.results, monitor.desk(), monitor.reverse, included


def table(results: Results, desk: StressDesk, reverse: ReverseStress, as_of: float,
          included: int, end: str) -> str:
    """The results as a readable table."""
    credit, liquidity = results.credit, results.liquidity
    top = ", ".join(f"{t.group} {t.amount:,.2f}" for t in credit.cover.top)
    drains = ", ".join(f"{t.group} {t.amount:,.2f}" for t in liquidity.cover.top)
    exhaustion = desk.defaults_to_exhaustion
    rows = [
        ("as of", f"{iso(as_of)} ({included:,} input messages; {end})"),
        ("scenarios", f"{len(results.scenarios)}"),
        ("credit cover-2", f"{credit.cover2:,.2f} in {credit.cover.scenario} ({top})"),
        ("prefunded resources", f"{credit.prefunded:,.2f}"),
        ("credit headroom", f"{credit.headroom:,.2f}"),
        ("top-2 share, HHI", f"{_share(desk.credit_concentration.top2_share)}, "
                             f"{_share(desk.credit_concentration.hhi)}"),
        ("defaults to exhaustion", "none" if exhaustion is None else
         f"{exhaustion.groups} in {exhaustion.scenario} ({', '.join(exhaustion.defaulters)})"),
        ("shock multiplier to exhaustion", _multiplier(reverse.credit)),
        *((f"  waterfall: {layer.layer}", f"{layer.used:,.2f}") for layer in desk.waterfall),
        ("liquidity cover-2", f"{liquidity.cover2:,.2f} in {liquidity.cover.scenario} "
                              f"({drains})"),
        ("qualifying liquid resources", f"{liquidity.qualifying:,.2f}"),
        ("liquidity headroom", f"{liquidity.headroom:,.2f}"),
        ("liquidity multiplier to exhaustion", _multiplier(reverse.liquidity)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _multiplier(multiplier: Multiplier | None) -> str:
    if multiplier is None:
        return "none: no multiple of the scenarios exhausts the resources"
    groups = ", ".join(t.group for t in multiplier.top)
    return f"{multiplier.k:.6f} in {multiplier.scenario} ({groups})"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def document(settings: ToolSettings, results: Results, desk: StressDesk,
             reverse: ReverseStress, as_of: float, included: int, end: str) -> dict[str, Any]:
    """The ``/cover2`` document of the stressed state, with how it was built."""
    body = cover2_document(results, settings.currency, {}, {"local": [], "remote": [],
                                                             "missing": []},
                           Readiness(True, "", None), desk, reverse)
    return {**body, "as_of": as_of, "as_of_iso": iso(as_of), "messages": included,
            "end": end, "scenarios_file": settings.scenarios or None,
            "replaced": settings.replace}


def main(settings: ToolSettings, say: Say) -> None:
    """Run the stress test the settings describe; a problem is one line and exit code 2."""
    try:
        as_of = parse_time(settings.as_of, time.time())
        scenarios = load_scenarios(settings.scenarios, settings) if settings.scenarios else []
        if settings.replace and not scenarios:
            raise StressError("--replace needs --scenarios FILE with at least one scenario")
        connection = Connection.of(settings)
        progress = Progress("stress", "read input records")
        try:
            history = asyncio.run(_read(connection, settings, progress))
        finally:
            progress.done()
        results, desk, reverse, included = stressed(settings, history, as_of, scenarios)
    except (StressError, BrokerError, LookupError) as error:
        print(f"cover2 stress: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    say(table(results, desk, reverse, as_of, included, history.end))
    if settings.json:
        out = document(settings, results, desk, reverse, as_of, included, history.end)
        Path(settings.json).write_text(json.dumps(out, indent=2))
        say(f"written to {settings.json}")


async def _read(connection: Connection, settings: ToolSettings, progress: Progress) -> History:
    await wait_for_kafka(connection)
    return await read_inputs(connection, settings.topics, progress)
