"""The dashboards and the alert rules checked against reality.

A real worker is fed by the demo market (`cover2 simulate`) and scraped every second by
a real Prometheus that loads the project's rules: every query of every dashboard must
return data, and the credit headroom alert must stay quiet while the headroom is
positive and fire once a member's position breaches it.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from risk.calls import MarginLevel
from streams import metrics as m
from streams.tools import dashboards
from streams.tools.broker import stop_process
from streams.tools.market import DEMO, Market
from streams.topics import RESOURCES
from tests.integration.cluster import Feed, Spawn, Worker, eventually, http_json
from tests.integration.prometheus import Prometheus, PrometheusServers
from tests.tolerances import MONEY_RTOL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules" / "cover2.rules.yml"
JOB = dashboards.JOB
TIME_RANGE = "5m"
# The whole test, from the first process started to the last assertion.
BUDGET_S = 90.0
SEED = 1
RATE = 200  # demo events per second: enough for every rate, little CPU
HEADROOM_ALERT = "Cover2CreditHeadroomNegative"
POLL_S = 0.5  # between two rounds of every dashboard query

# Members and an instrument the demo market never sends. The instrument has no price
# and no shocks of its own: it is marked at its trade price and moves by each scenario's
# default shock, so the exposures below follow from the demo's scenarios alone.
PROBE_INSTRUMENT = "OBS-FUT"
PROBE_PRICE = 100.0
WARNED, CALLED = "OBS-WARN", "OBS-CALL"
WARNED_IM = 1_000_000.0
# Stress loss over margin as a share of IM: between the warning (5%) and call (20%) levels.
WARNED_SHARE = 0.10
# The demo's credit headroom is negative while its books build up (trades run ahead of
# collateral; cover-2 peaks near five reference cover-2s) and later comes within a
# fraction of a percent of zero: before the breach the test lifts the other prefunded
# resources by this many reference cover-2s, so the headroom is positive for certain.
LIFT = 10.0
# The called member's worst stress loss, in (lifted) prefunded resources.
BREACH = 2.0
_FOR = re.compile(r"^(\s+for:[ \t]*)\S+[ \t]*$", re.MULTILINE)


StartPrometheus = Callable[[list[str]], Prometheus]


def fast_rules(directory: Path) -> Path:
    """The project's rules with every ``for:`` at 0s, written into ``directory``."""
    # A `for:` of minutes is longer than a test may wait: the copy fires at the first
    # evaluation over the threshold. Every expression, label and annotation is the repo's.
    text, rewritten = _FOR.subn(r"\g<1>0s", RULES.read_text(encoding="utf-8"))
    assert rewritten, f"no `for:` found in {RULES}"
    path = directory / RULES.name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def prometheus() -> Iterator[StartPrometheus]:
    """Start Prometheus with ``start(targets)``; stopped and its files removed after the test."""
    with PrometheusServers() as servers:
        def start(targets: list[str]) -> Prometheus:
            return servers.start([{"job_name": JOB, "metrics_path": "/metrics",
                                   "static_configs": [{"targets": targets}]}],
                                 rule_files=[fast_rules(servers.directory)])

        yield start


@dataclass
class Simulation:
    """One `cover2 simulate` process."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def demo_market(broker: str, prefix: str, tmp_path: Path) -> Iterator[Simulation]:
    """The demo market fed to the test's topics until the end of the test."""
    log = tmp_path / "simulate.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "simulate", "--broker", f"kafka://{broker}",
             "--topic-prefix", prefix, "--rate", str(RATE), "--seed", str(SEED),
             "--scale", "demo"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    yield Simulation(process, log)
    stop_process(process)


def probe_trade(trade_id: str, member: str, worst_loss: float,
                worst_drop: float) -> dict[str, Any]:
    """A long position in the probe instrument whose worst stress loss is ``worst_loss``."""
    quantity = round(worst_loss / (PROBE_PRICE * worst_drop))
    return {"trade_id": trade_id, "member": member, "instrument": PROBE_INSTRUMENT,
            "quantity": quantity, "price": PROBE_PRICE}


def own_series(query: str) -> str:
    """The part of ``query`` before a top-level ``or``: what it shows without its fallback."""
    depth = 0
    for i, char in enumerate(query):
        depth += {"(": 1, ")": -1, "{": 1, "}": -1}.get(char, 0)
        if depth == 0 and query.startswith(" or ", i):
            return query[:i]
    return query


def level(group: str, at: MarginLevel) -> str:
    """The query that returns ``group`` if it is at margin level ``at`` now."""
    return f'{m.GROUP_MARGIN_LEVEL}{{job="{JOB}", group="{group}"}} == {int(at)}'


def prefunded(worker: Worker) -> float | None:
    status, document = worker.get("/cover2")
    credit = document.get("credit") if status == 200 and isinstance(document, dict) else None
    return None if credit is None else float(credit["prefunded"])


def timestamp(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()


async def test_every_dashboard_query_has_data_and_the_headroom_alert_fires(
        spawn: Spawn, feed: Feed, prometheus: StartPrometheus,
        demo_market: Simulation) -> None:
    deadline = time.monotonic() + BUDGET_S

    def remaining() -> float:
        return max(deadline - time.monotonic(), 0.0)

    worker = spawn()
    server = prometheus([f"127.0.0.1:{worker.port}"])

    def running() -> None:
        assert server.process.poll() is None, f"prometheus stopped:\n{server.tail()}"
        assert demo_market.process.poll() is None, f"simulate stopped:\n{demo_market.tail()}"

    def ready() -> bool:
        running()
        return http_json(f"http://127.0.0.1:{server.port}/-/ready")[0] == 200

    await eventually(ready, timeout=remaining(), what="prometheus ready")
    await worker.healthy()
    market = Market.build(DEMO, SEED)
    worst_drop = -float(market.default_shock.min())
    assert worst_drop > 0, "the demo market has no scenario in which the market falls"

    # A member over its warning level, and a dead letter: conditions the demo market
    # does not reliably produce, which the margin-call and dead-letter panels show.
    await feed.send("collateral", {"member": WARNED, "initial_margin": WARNED_IM,
                                   "cash": WARNED_IM}, WARNED)
    await feed.flush()
    await eventually(lambda: worker.get(f"/groups/{WARNED}")[0] == 200,
                     timeout=remaining(), what="the warned member's collateral applied")
    await feed.send("trades", probe_trade("W1", WARNED, (1 + WARNED_SHARE) * WARNED_IM,
                                          worst_drop), WARNED)
    await feed.send("trades", b"{not json", WARNED)
    await feed.flush()

    # Before the breach: the demo's reference data applied, then its resources lifted.
    resources = next(value for topic, _, value in market.reference_messages()
                     if topic == RESOURCES)
    demo_prefunded = float(market.default_fund.sum()) + resources["skin_in_the_game"] \
        + resources["other_prefunded"]
    lift = LIFT * market.reference_cover2
    await eventually(lambda: prefunded(worker) == pytest.approx(demo_prefunded, rel=MONEY_RTOL),
                     timeout=remaining(), what="the demo's members and resources applied")
    await feed.send("resources", {**resources,
                                  "other_prefunded": resources["other_prefunded"] + lift},
                    RESOURCES)
    await feed.flush()
    lifted = demo_prefunded + lift
    await eventually(lambda: prefunded(worker) == pytest.approx(lifted, rel=MONEY_RTOL),
                     timeout=remaining(), what="the lifted resources applied")

    # Prometheus sees the lifted resources over a non-empty book, and the alert is not
    # firing at an evaluation after that.
    book = (f'{m.CREDIT_HEADROOM}{{job="{JOB}"}} > 0 '
            f'and on (job, instance) {m.CREDIT_COVER2}{{job="{JOB}"}} > 0 '
            f'and on (job, instance) {m.CREDIT_PREFUNDED}{{job="{JOB}"}} > {demo_prefunded!r}')

    def positive_headroom_seen() -> float | None:
        running()
        return time.time() if server.query(book) else None

    seen = await eventually(positive_headroom_seen, timeout=remaining(),
                            what="a positive credit headroom over a non-empty book")

    def evaluated_since() -> dict[str, Any] | None:
        rule = next(r for r in server.rules() if r["name"] == HEADROOM_ALERT)
        return rule if timestamp(rule["lastEvaluation"]) > seen + 1 else None

    rule = await eventually(evaluated_since, timeout=remaining(),
                            what=f"{HEADROOM_ALERT} evaluated over the book")
    assert server.query(book), "the credit headroom went negative before the breach"
    assert server.query(level(WARNED, MarginLevel.WARNING)), \
        "the warned member is not at warning level"
    assert rule["state"] == "inactive" and rule["health"] == "ok", rule
    assert server.alerts(HEADROOM_ALERT) == []

    # The breach: a member with no collateral takes a position whose worst stress loss is
    # several times the prefunded resources. It is also issued a margin call.
    await feed.send("trades", probe_trade("C1", CALLED, BREACH * lifted, worst_drop), CALLED)
    await feed.flush()

    def firing() -> list[dict[str, Any]]:
        running()
        return [a for a in server.alerts(HEADROOM_ALERT) if a["state"] == "firing"]

    alerts = await eventually(firing, timeout=remaining(), what=f"{HEADROOM_ALERT} firing")
    assert [a["labels"]["instance"] for a in alerts] == [f"127.0.0.1:{worker.port}"]
    assert float(alerts[0]["value"]) < 0
    # The annotation's own queries found the top exposures: the breaching group is named.
    assert f"Largest groups: {CALLED} (" in alerts[0]["annotations"]["description"], alerts[0]
    await eventually(lambda: server.query(level(CALLED, MarginLevel.CALL)), timeout=remaining(),
                     what="the called member at call level")

    # Every dashboard query returns data, each also without its `or` fallback.
    expected = {(name, query)
                for name, board in sorted(dashboards.dashboards("USD").items())
                for query in dashboards.queries(board, job=JOB, instance=dashboards.ALL_INSTANCES,
                                                time_range=TIME_RANGE)}
    expected |= {(name, own_series(query)) for name, query in expected}
    empty = sorted(expected)
    while empty and remaining() > 0:
        running()
        empty = [(name, query) for name, query in empty if not server.query(query)]
        if empty:
            await asyncio.sleep(POLL_S)
    assert not empty, (f"{len(empty)} of {len(expected)} dashboard queries still empty after "
                       f"{BUDGET_S:.0f} s:\n" + "\n".join(f"{n}: {q}" for n, q in empty))

    # Every rule of the project's file evaluates against the real series without error.
    broken = [(r["group"], r["name"], r.get("lastError")) for r in server.rules()
              if r["health"] != "ok"]
    assert not broken, broken
