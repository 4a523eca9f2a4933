"""/metrics through real tools: promtool's linter, and every contract metric present."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streams import metrics
from tests.integration.cluster import Feed, Spawn, eventually, read_all
from tests.integration.test_semantics import SCENARIO, trade

pytestmark = pytest.mark.integration

CONTRACT = [
    metrics.CREDIT_COVER2, metrics.CREDIT_COVER1, metrics.CREDIT_PREFUNDED,
    metrics.CREDIT_HEADROOM, metrics.CREDIT_COVERAGE_RATIO, metrics.CREDIT_TOP_EXPOSURE,
    metrics.CREDIT_GROUP_EXPOSURE, metrics.LIQUIDITY_COVER2, metrics.LIQUIDITY_QUALIFYING,
    metrics.LIQUIDITY_HEADROOM, metrics.LIQUIDITY_TOP_DRAIN, metrics.LIQUIDITY_GROUP_DRAIN,
    "ccp_events_total", metrics.EVENT_LATENCY + "_bucket", metrics.LAST_EVENT_TIMESTAMP,
    "ccp_margin_calls_total", metrics.MERGED_EVENT_LATENCY + "_bucket",
    metrics.LOOP_LAG + "_bucket",
]


async def test_metrics_pass_promtool_and_carry_the_contract(
        spawn: Spawn, feed: Feed, broker: str, prefix: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make setup` installs Debian's prometheus package"
    worker = await spawn().healthy()
    await feed.send("scenarios", SCENARIO, "down")
    await feed.send("trades", trade("T1"), "M1")
    await feed.send("collateral", {"member": "M1", "initial_margin": 10, "cash": 0}, "M1")
    await feed.flush()
    await eventually(lambda: worker.get("/cover2")[1]["credit"]["cover2"] == 90.0,
                     what="the book applied")

    status, text = worker.get("/metrics")
    assert status == 200
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, check=False)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    assert set(CONTRACT) <= names, set(CONTRACT) - names
    assert text.count("ccp_credit_top_exposure{") == 2
    assert text.count("ccp_liquidity_top_drain{") == 2
    assert "in USD" in text
    # 10 contracts at 100 less IM 10, -10%: exposure 90, over 20% of IM: a margin call.
    assert 'ccp_margin_calls_total{kind="call"} 1.0' in text
    assert 'ccp_group_margin_calls_total{group="M1",kind="call"} 1.0' in text
    assert 'ccp_group_margin_level{group="M1"} 2.0' in text

    calls = await read_all(broker, f"{prefix}margin-calls", 1)
    assert [(c["member"], c["kind"], c["amount"], c["scenario"]) for c in calls] == [
        ("M1", "call", 90.0, "down")]
    assert calls[0]["group"] == "M1" and calls[0]["call_id"]
    assert calls[0]["currency"] == "USD"

    async def published() -> bool:
        documents = await read_all(broker, f"{prefix}cover2", 1)
        return bool(documents[-1]["credit"]["cover2"] == 90.0)

    await eventually(published, what="ccp.cover2 carrying the latest results")
