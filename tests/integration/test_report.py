"""`cover2 report` on two quarters of simulated history equals the plain model at its
evaluation times, attributes each change exactly, and reports the breach day."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from risk.periods import midnight
from risk.plain import PlainCcp, plain_results
from risk.results import Results
from streams import topics as t
from streams.codec import decode
from streams.kafka.clients import Connection
from streams.kafka.history import read_inputs
from streams.tools.broker import free_port
from streams.tools.plain_inputs import apply_to_plain
from streams.tools.replay import in_event_time_order
from tests.tolerances import MONEY_ATOL, MONEY_RTOL

pytestmark = pytest.mark.integration

FIRST_DAY, LAST_DAY = "2026-01-01", "2026-06-30"


def cover2(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                          text=True, timeout=600)


async def plain_results_at(broker: str, prefix: str, times: list[float]) -> dict[float, Results]:
    """The plain model's results as of each time: every input message with event time at
    or before it, in event-time order."""
    topics = t.Topics(prefix)
    history = await read_inputs(Connection(broker), topics)
    ordered = in_event_time_order(history.records, topics)
    plain, out, applied = PlainCcp(), {}, 0
    for at in sorted(set(times)):
        while applied < len(ordered) and ordered[applied][0] <= at:
            record = ordered[applied][1]
            topic = topics.short(record.topic)
            apply_to_plain(plain, topic, decode(topic, record.key, record.value),
                           ordered[applied][0])
            applied += 1
        out[at] = plain_results(plain)
    return out


def simulated(broker: str, prefix: str, start: str, days: int, per_day: int) -> list[str]:
    """Write a history with `cover2 simulate --start`; the flags that reach its topics."""
    kafka = ["--broker", f"kafka://{broker}", "--topic-prefix", prefix]
    made = cover2("simulate", *kafka, "--start", start, "--days", str(days),
                  "--events-per-day", str(per_day))
    assert made.returncode == 0, made.stderr
    return kafka


def close(got: float, want: float, scale: float) -> bool:
    return abs(got - want) <= MONEY_ATOL + MONEY_RTOL * scale


async def test_two_quarters_equal_the_plain_model_and_report_the_breach(
        broker: str, prefix: str, tmp_path: Path) -> None:
    kafka = simulated(broker, prefix, "2026-01-05", 125, 80)
    out = tmp_path / "report"
    done = cover2("report", *kafka, "--from", FIRST_DAY, "--to", LAST_DAY, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "written:" in done.stdout
    document = json.loads((out / "report.json").read_text())
    q1, q2 = document["periods"]
    assert (q1["label"], q2["label"]) == ("2026-Q1", "2026-Q2")

    times = [when for period in (q1, q2) for side in ("credit", "liquidity")
             for when in (period[side]["peak_at"], period[side]["min_headroom_at"])]
    times += [period["end"] for period in (q1, q2)] + [q1["start"]]
    plain = await plain_results_at(broker, prefix, times)
    for period in (q1, q2):
        credit, liquidity = period["credit"], period["liquidity"]
        at_peak = plain[credit["peak_at"]]
        scale = abs(at_peak.credit.cover2) + abs(at_peak.credit.prefunded)
        assert close(credit["cover2"], at_peak.credit.cover2, scale)
        assert close(credit["prefunded"], at_peak.credit.prefunded, scale)
        assert [credit["c1"]["group"], credit["c2"]["group"]] == [
            g.group for g in at_peak.credit.cover.top]
        assert close(credit["c1"]["amount"], at_peak.credit.cover.top[0].amount, scale)
        assert credit["scenario"] == at_peak.credit.cover.scenario
        low = plain[credit["min_headroom_at"]].credit.headroom
        assert close(credit["min_headroom"], low, scale)
        at_liquidity_peak = plain[liquidity["peak_at"]].liquidity
        assert close(liquidity["cover2"], at_liquidity_peak.cover2, scale)
        assert close(liquidity["qualifying"], at_liquidity_peak.qualifying, scale)
        assert close(liquidity["min_headroom"],
                     plain[liquidity["min_headroom_at"]].liquidity.headroom, scale)
        at_end = plain[period["end"]]
        assert close(period["at_end"]["credit_cover2"], at_end.credit.cover2, scale)
        assert close(period["at_end"]["liquidity_headroom"], at_end.liquidity.headroom, scale)
        # The period's figures are its days' figures.
        days = [d for d in document["days"] if period["start"] <= _day(d) < period["end"]]
        assert credit["cover2"] == max(d["credit_peak"] for d in days if d["credit_peak"])
        assert credit["breach_seconds"] == pytest.approx(
            sum(d["credit_breach_seconds"] for d in days))

    # The periods differ, and a breach is reported with its days and seconds.
    assert q2["change"]["cover2"] != 0
    breached = [p for p in (q1, q2) if p["status"] == "Breach"]
    assert breached, "the simulated history has a breach day"
    for period in breached:
        assert period["breach_days"]
        assert period["credit"]["breach_seconds"] + period["liquidity"]["breach_seconds"] > 0
        side = "credit" if period["credit"]["breach_seconds"] else "liquidity"
        assert getattr(plain[period[side]["min_headroom_at"]], side).headroom < 0

    # The attribution of the change from Q1's end to Q2's adds up, from Q1's end state.
    attribution = q2["attribution"]
    scale = abs(q2["at_end"]["credit_cover2"]) + abs(q2["at_end"]["prefunded"])
    for name, change in attribution["change"].items():
        assert close(attribution["sum"][name], change, scale)
    assert close(attribution["start"]["credit_cover2"], q1["at_end"]["credit_cover2"], scale)
    assert close(attribution["end"]["credit_headroom"], q2["at_end"]["credit_headroom"], scale)
    assert [f["family"] for f in attribution["families"]] == [
        "positions and collateral", "prices", "scenarios", "resources"]
    assert attribution["top_groups"]

    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 6 and "2026-Q2" in page and "Breach" in page


def _day(day: dict[str, Any]) -> float:
    return midnight(dt.date.fromisoformat(day["date"]))


async def test_a_report_that_cannot_be_made_says_why_in_one_line(
        broker: str, prefix: str, tmp_path: Path) -> None:
    kafka = simulated(broker, prefix, "2026-03-02", 3, 20)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for flags, says in (
            (["--from", "2026-03-31", "--to", "2026-03-01"], "after --to"),
            (["--from", "2025-12-01", "--to", "2026-03-31"], "period 2025-Q4 has no data"),
            (["--from", "2026-03-01", "--to", "2026-03-31", "--out", str(blocked / "r")],
             "cannot write the report to")):
        done = cover2("report", *kafka, *flags)
        said = done.stdout + done.stderr
        assert done.returncode == 2 and says in said and "Traceback" not in said, said
    done = cover2("report", *kafka, "--from", "2026-03-01", "--to", "2026-03-31", "--period",
                  "week")  # a bad setting, refused before anything runs, as for every command
    assert done.returncode != 0 and "unknown period 'week'" in done.stderr, done.stderr
    done = cover2("report", "--broker", f"kafka://127.0.0.1:{free_port()}", "--from",
                  "2026-03-01", "--to", "2026-03-31", "--out", str(tmp_path / "r"))
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "no Kafka broker answers" in said, said
