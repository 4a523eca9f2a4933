"""The compact ledger decides every trade as the plain rule does, however trades are batched,
frozen, saved and restored."""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ledger import DAY, Ledger, digests

HOUR = 3_600.0
# A Sunday at 14:13 UTC, and the epoch's first hours (day 0): days turn within the streams.
STARTS = (1_750_000_000.0, 1_000.0)
APPLIED, DUPLICATE, EXPIRED = "applied", "duplicate", "expired"

trades = st.lists(st.tuples(st.integers(0, 1),  # partition
                            st.sampled_from(["M1", "M2", "Mé"]),
                            st.sampled_from(["T1", "T2", "T3", "t-4", "a\x00", "a"]),
                            st.integers(0, 24 * 6)),  # hours after START
                  max_size=60)


def plain_decisions(stream: list[tuple[int, str, str, int]], window: float,
                    start: float) -> list[str]:
    """Every trade kept; each decided against all before it in its partition."""
    out: list[str] = []
    for i, (partition, member, trade_id, hours) in enumerate(stream):
        ts = start + hours * HOUR
        before = [(m, t, start + h * HOUR, out[j]) for j, (p, m, t, h) in enumerate(stream[:i])
                  if p == partition]
        horizon = max([ts] + [b[2] for b in before]) - window
        if ts < horizon:
            out.append(EXPIRED)
        elif any(m == member and t == trade_id and decision == APPLIED
                 and (b_ts // DAY + 1) * DAY > horizon for m, t, b_ts, decision in before):
            out.append(DUPLICATE)
        else:
            out.append(APPLIED)
    return out


def ledger_decisions(stream: list[tuple[int, str, str, int]], window: float, start: float,
                     cuts: list[int], live_max: int, save_at: int) -> list[str]:
    ledger = Ledger(live_max=live_max, background=False)
    out: list[str] = []
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for first, last in itertools.pairwise(bounds):
        if first == save_at:
            ledger = pickle.loads(pickle.dumps(ledger))
        batch = stream[first:last]
        decided: dict[int, str] = {}
        for partition in {b[0] for b in batch}:  # the monitor admits a partition's batch
            at = [i for i, b in enumerate(batch) if b[0] == partition]
            admission = ledger.admit(partition, [batch[i][1] for i in at],
                                     [batch[i][2] for i in at],
                                     np.array([start + batch[i][3] * HOUR for i in at]), window)
            for k, i in enumerate(at):
                decided[i] = APPLIED if k in set(admission.fresh.tolist()) else \
                    EXPIRED if k in set(admission.expired.tolist()) else DUPLICATE
        out += [decided[i] for i in range(len(batch))]
    return out


@settings(max_examples=400, deadline=None)
@given(trades, st.sampled_from([0.5 * DAY, DAY, 2 * DAY, 7 * DAY]), st.sampled_from(STARTS),
       st.lists(st.integers(0, 60), max_size=8), st.integers(1, 6), st.integers(0, 60))
def test_every_trade_is_decided_as_the_plain_rule_does(
        stream: list[tuple[int, str, str, int]], window: float, start: float, cuts: list[int],
        live_max: int, save_at: int) -> None:
    assert ledger_decisions(stream, window, start, cuts, live_max, save_at) == \
        plain_decisions(stream, window, start)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), min_size=1, max_size=40,
                unique=True))
def test_distinct_trades_have_distinct_digests_whatever_the_batch(
        keys: list[tuple[str, str]]) -> None:
    members, trade_ids = [k[0] for k in keys], [k[1] for k in keys]
    hi, lo = digests(members, trade_ids)
    assert len(set(zip(hi.tolist(), lo.tolist(), strict=True))) == len(keys)
    for i, (member, trade_id) in enumerate(keys):  # alone, a trade has the digest it had
        alone = digests([member], [trade_id])
        assert (alone[0][0], alone[1][0]) == (hi[i], lo[i])


def test_a_remembered_trade_costs_at_most_24_bytes() -> None:
    ledger = Ledger()
    for day in range(3):
        for batch in range(40):
            ids = [f"T{day}-{batch}-{i}" for i in range(5_000)]
            ts = np.full(len(ids), STARTS[0] + day * DAY + batch)
            assert len(ledger.admit(0, ["M1"] * len(ids), ids, ts, 7 * DAY).fresh) == len(ids)
    ledger.partitions[0].take_frozen(wait=True)
    assert len(ledger) == 600_000
    assert ledger.nbytes / len(ledger) <= 24
    assert math.isclose(ledger.partitions[0].clock, STARTS[0] + 2 * DAY + 39)
