"""`cover2 report` without Kafka: records replayed into days, periods and attributions.

The seed's quarterly example (docs/methodology.md) fed as two period-end states gives
the table's figures exactly.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from risk.periods import Timeline, calendar, midnight
from streams.kafka.history import History
from streams.tools.progress import Progress
from streams.tools.replay import in_event_time_order
from streams.tools.report import (
    Report,
    ReportError,
    check_data,
    days_asked,
    evaluation_times,
    writable,
)
from streams.tools.settings import ToolSettings
from tests.fixtures import Received

BN = 1e9
Q1_DAY, Q2_DAY = midnight(dt.date(2026, 2, 2)), midnight(dt.date(2026, 5, 4))


def records(messages: list[tuple[str, str, dict[str, Any], float]]) -> list[Received]:
    """Kafka-like records of ``(topic, key, value, event time)``, one partition a topic."""
    return [Received(f"ccp.{topic}", 0, offset, key.encode(), json.dumps(value).encode(),
                     int(ts * 1000)) for offset, (topic, key, value, ts) in enumerate(messages)]


def quarter(ts: float, credit: dict[str, float], obligation: dict[str, float],
            held: dict[str, float], sitg: float, qlr: float) -> list[tuple[str, str, dict, float]]:
    """One state of the seed's table: each group one member, long instrument X marked at 1
    (a loss of half the position in scenario S1), no margin: exposure = loss, and drain =
    loss + settlement obligation. Trades top each position up from ``held``."""
    out: list[tuple[str, str, dict, float]] = [
        ("members", g, {"member": g, "default_fund": 2 * BN if g in "AB" else 0.0,
                        "settlement_obligation": obligation[g]}, ts) for g in credit]
    out += [("trades", g, {"trade_id": f"{g}-{ts}", "member": g, "instrument": "X",
                           "quantity": 2 * amount - held.get(g, 0.0), "price": 1.0, "ts": ts},
             ts) for g, amount in credit.items() if 2 * amount != held.get(g, 0.0)]
    out.append(("resources", "r", {"skin_in_the_game": sitg, "liquid_resources": [
        {"name": "central bank", "type": "central_bank_cash", "amount": qlr}]}, ts))
    return out


SEED = [
    ("instruments", "X", {"instrument": "X"}, Q1_DAY),
    ("scenarios", "S1", {"scenario": "S1", "shocks": {"X": -0.5}}, Q1_DAY),
    ("prices", "X", {"instrument": "X", "price": 1.0, "ts": Q1_DAY}, Q1_DAY),
    *quarter(Q1_DAY, {"A": 1.8 * BN, "B": 1.5 * BN, "C": 0.4 * BN},
             {"A": 0.7 * BN, "B": 0.7 * BN, "C": 0.1 * BN}, {}, 0.5 * BN, 6.0 * BN),
    *quarter(Q2_DAY, {"A": 2.1 * BN, "B": 1.7 * BN, "C": 0.4 * BN},
             {"A": 0.8 * BN, "B": 0.7 * BN, "C": 0.1 * BN},
             {"A": 3.6 * BN, "B": 3.0 * BN, "C": 0.8 * BN}, 0.6 * BN, 5.9 * BN),
]


def report_of(messages: list[tuple[str, str, dict, float]], first: dt.date, last: dt.date,
              period: str = "quarter") -> dict[str, Any]:
    settings = ToolSettings(period=period)
    ordered = in_event_time_order(records(messages), settings.topics)
    periods = calendar(first, last, period)
    report = Report(settings, periods)
    report.run(ordered, Progress("report", "replayed records", len(ordered)))
    return report.document(History([], 1, "test"), ordered, first, last)


def test_the_seed_quarterly_table() -> None:
    document = report_of(SEED, dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    q1, q2 = document["periods"]
    assert (q1["label"], q2["label"]) == ("2026-Q1", "2026-Q2")
    table = {
        "C1": (1.8, 2.1), "C2": (1.5, 1.7), "C1+C2": (3.3, 3.8), "prefunded": (4.5, 4.6),
        "credit surplus": (1.2, 0.8), "L1": (2.5, 2.9), "L2": (2.2, 2.4),
        "L1+L2": (4.7, 5.3), "QLR": (6.0, 5.9), "liquidity surplus": (1.3, 0.6)}
    for column, row in enumerate((q1, q2)):
        credit, liquidity = row["credit"], row["liquidity"]
        got = {
            "C1": credit["c1"]["amount"], "C2": credit["c2"]["amount"],
            "C1+C2": credit["cover2"], "prefunded": credit["prefunded"],
            "credit surplus": credit["surplus"], "L1": liquidity["l1"]["amount"],
            "L2": liquidity["l2"]["amount"], "L1+L2": liquidity["cover2"],
            "QLR": liquidity["qualifying"], "liquidity surplus": liquidity["surplus"]}
        for name, values in table.items():
            assert got[name] == pytest.approx(values[column] * BN, rel=1e-12), name
        assert (credit["c1"]["group"], credit["c2"]["group"]) == ("A", "B")
        assert row["status"] == "Compliant" and row["breach_days"] == []
    assert q1["change"] is None and q1["attribution"] is None
    assert q2["change"]["credit_surplus"] == pytest.approx(-0.4 * BN)
    assert q2["credit"]["peak_at"] == Q2_DAY


def test_the_attribution_of_the_seed_change_adds_up() -> None:
    q2 = report_of(SEED, dt.date(2026, 1, 1), dt.date(2026, 6, 30))["periods"][1]
    attribution = q2["attribution"]
    families = {f["family"]: f for f in attribution["families"]}
    # The positions of A and B raised cover-2 by 0.5bn and the drain by 0.6bn (obligations
    # included); the resources gave 0.1bn more prefunded and 0.1bn less QLR.
    assert families["positions and collateral"]["credit_cover2"] == pytest.approx(0.5 * BN)
    assert families["positions and collateral"]["liquidity_cover2"] == pytest.approx(0.6 * BN)
    assert families["resources"]["credit_headroom"] == pytest.approx(0.1 * BN)
    assert families["resources"]["liquidity_headroom"] == pytest.approx(-0.1 * BN)
    assert families["prices"]["credit_cover2"] == 0 and families["scenarios"]["credit_cover2"] == 0
    assert [g["group"] for g in attribution["top_groups"]] == ["A", "B"]
    for name, change in attribution["change"].items():
        assert attribution["sum"][name] == pytest.approx(change, abs=1e-3)
    assert attribution["change"]["credit_headroom"] == pytest.approx(-0.4 * BN)
    assert q2["at_end"]["credit_cover2"] == pytest.approx(attribution["end"]["credit_cover2"])


def test_a_breach_is_timed_to_the_second_and_named_by_its_day() -> None:
    # The SEED state, then C's position jumps for 90 seconds on 2026-05-06.
    jump = midnight(dt.date(2026, 5, 6)) + 3600
    messages = [
        *SEED,
        ("trades", "C", {"trade_id": "big", "member": "C", "instrument": "X",
                         "quantity": 8 * BN, "price": 1.0, "ts": jump}, jump),
        ("trades", "C", {"trade_id": "back", "member": "C", "instrument": "X",
                         "quantity": -8 * BN, "price": 1.0, "ts": jump + 90}, jump + 90),
    ]
    document = report_of(messages, dt.date(2026, 5, 1), dt.date(2026, 5, 8), "day")
    breached = [p for p in document["periods"] if p["status"] == "Breach"]
    assert [p["label"] for p in breached] == ["2026-05-06"]
    assert breached[0]["credit"]["breach_seconds"] == 90.0
    assert breached[0]["credit"]["min_headroom_at"] == jump
    day = next(d for d in document["days"] if d["date"] == "2026-05-06")
    assert day["credit_breach_seconds"] == 90.0 and day["credit_min_headroom"] < 0


def test_evaluations_fall_on_steps_that_saw_input_and_on_day_starts() -> None:
    start = midnight(dt.date(2026, 5, 1))
    timeline = Timeline(calendar(dt.date(2026, 5, 1), dt.date(2026, 5, 2), "day"))
    ordered: list[tuple[float, Any]] = [(start - 5, None), (start + 0.2, None),
                                        (start + 0.9, None), (start + 7.5, None)]
    times = evaluation_times(ordered, timeline.days, start + 2 * 86_400, 1.0)
    assert times == [start, start + 1.0, start + 8.0, start + 86_400]


def test_bad_asks_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="after --to"):
        days_asked(ToolSettings(period_from="2026-06-30", period_to="2026-01-01"))
    with pytest.raises(ReportError, match="not a day"):
        days_asked(ToolSettings(period_from="2026-13-01", period_to="2026-12-31"))
    with pytest.raises(ReportError, match="--from is needed"):
        days_asked(ToolSettings(period_to="2026-12-31"))
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ReportError, match=r"cannot write the report to .*--out"):
        writable(blocked / "report")
    periods = calendar(dt.date(2025, 10, 1), dt.date(2026, 6, 30), "quarter")
    ordered = in_event_time_order(records(SEED), ToolSettings().topics)
    with pytest.raises(ReportError, match=r"period 2025-Q4 has no data.*--from on 2026-02-02"):
        check_data(ordered, periods, "ccp.")
    with pytest.raises(ReportError, match="hold no messages"):
        check_data([], periods, "ccp.")
