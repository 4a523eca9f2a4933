"""`cover2 bench --quick` works end to end (speed is the benchmark's business, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "streams.cli", "bench", "--quick", "--soak",
                          "--json", str(out)], capture_output=True, text=True, timeout=900,
                         check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [row["row"] for row in result["rows"]] == [
        "ceiling", "decode", "monitor", "naive", "per-event faust"]
    assert result["rows"][0]["ratio"] == 1.0
    assert all(row["events_per_s"] > 0 for row in result["rows"])
    assert result["scale"]["members"] > 0 and result["events"] > 0
    latency = result["latency_s"]
    assert latency["events"] > 0 and 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert latency["loop_lag"]["events"] > 0  # the loop-lag probe ran through the window
    scale_out = result["scale_out"]
    assert [row["workers"] for row in scale_out] == [1, 2] and scale_out[0]["ratio"] == 1.0
    assert all(row["events_per_s"] > 0 and row["latency_s"]["events"] > 0 for row in scale_out)
    # With two workers, each merges the other's views: their events become visible there too.
    assert "merged" not in scale_out[0]["latency_s"]
    merged = scale_out[1]["latency_s"]["merged"]
    assert merged["events"] > 0 and 0 < merged["p50"] <= merged["p99"] <= merged["max"]
    assert result["startup_s"] > 0 and result["restart_s"] > 0
    assert result["peak_rss_bytes"] > 0
    assert all(part in run.stdout
               for part in ("per-event faust", "scale-out", "restart after kill -9", "soak:"))
    soak = result["soak"]
    assert [day["day"] for day in soak["days"]] == [1, 2, 3, 4, 5]
    assert all(day["trades"] > 0 and day["rss_bytes"] > 0 and day["snapshot_bytes"] > 0
               for day in soak["days"])
    # Each day's re-sends: the day's own are duplicates, those of two days before refused.
    assert soak["expected"]["duplicates"] == 5 * 1_000 and soak["expected"]["rejected"] == 3_000
    assert soak["exact"] and soak["exact_after_restart"]
    assert soak["counts"]["trades"] == soak["trades"]
    # With a one-day window, each day remembers its own trades and at most the day's before
    # (after a weekend, only its own), whichever weekday the week ends on.
    days = soak["days"]
    assert all(day["remembered_trades"] <= before["trades"] + day["trades"]
               for before, day in pairwise(days))
    assert 0 < soak["bytes_per_remembered_trade"] <= 24
    assert soak["restart_s"] > 0 and soak["latency_end"]["events"] > 0
