"""Members spread over partitions and workers: the merged views equal one full recompute."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from risk.ccp import Ccp
from risk.merge import PartitionView, aligned, merge
from risk.model import Member, Prices, Scenario
from risk.plain import PlainCcp, plain_results
from risk.results import Results
from tests.property import strategies as s
from tests.property.test_ccp_matches_plain import apply_hot, apply_reference, assert_same

N_PARTITIONS = 4
homes = st.fixed_dictionaries({m: st.integers(0, N_PARTITIONS - 1) for m in s.MEMBERS})
# Which worker owns each partition; a worker may own none.
owners = st.lists(st.integers(0, 2), min_size=N_PARTITIONS, max_size=N_PARTITIONS)


def workers(home: dict[str, int], owner: list[int]) -> list[Ccp]:
    ccps = []
    for w in range(3):
        ccp = Ccp()
        ccp.own({p for p, o in enumerate(owner) if o == w}, home.__getitem__)
        ccps.append(ccp)
    return ccps


def first_prices(ccps: list[Ccp], plain: PlainCcp) -> None:
    """Every instrument priced first: until then each worker marks at trades it sees itself."""
    ts = np.full(len(s.INSTRUMENTS), -1.0)
    for ccp in ccps:
        ccp.apply_prices(Prices(list(s.INSTRUMENTS), np.full(len(s.INSTRUMENTS), 100.0), ts))
    for j in s.INSTRUMENTS:
        plain.price(j, 100.0, -1.0)


def held_by(ccp: Ccp, home: dict[str, int], events: list[object]) -> list[object]:
    """The hot events this worker reads: prices, and its own partitions' members."""
    return [e for e in events if isinstance(e, s.Price)
            or home[e.member] in ccp.holdings.owned]  # type: ignore[attr-defined]


def apply_step(ccps: list[Ccp], plain: PlainCcp, home: dict[str, int], step: object) -> None:
    """One step to the reference (every event once) and to each worker (what it reads)."""
    if isinstance(step, list):
        apply_hot(Ccp(), plain, step)
        for ccp in ccps:
            apply_hot(ccp, PlainCcp(), held_by(ccp, home, step))
    else:
        apply_reference(Ccp(), plain, step)
        for ccp in ccps:
            apply_reference(ccp, PlainCcp(), step)


def merged(ccps: list[Ccp]) -> Results:
    """Every worker's views merged, ranked by the first worker."""
    views: dict[int, PartitionView] = {}
    for ccp in ccps:
        ccp.refresh(now=0.0)
        views.update(ccp.holdings.views)
    assert sorted(views) == list(range(N_PARTITIONS))
    scenarios = ccps[0].scenarios
    lined_up = [aligned(view, scenarios) for view in views.values()]
    assert all(view is not None for view in lined_up)
    return ccps[0].results(merge([v for v in lined_up if v is not None], scenarios), now=0.0)


@settings(max_examples=200, deadline=None)
@given(s.steps, homes, owners)
def test_merged_partition_views_equal_full_recompute(steps: list[tuple[object, bool]],
                                                     home: dict[str, int],
                                                     owner: list[int]) -> None:
    ccps, plain = workers(home, owner), PlainCcp()
    first_prices(ccps, plain)
    for step, publish in steps:
        apply_step(ccps, plain, home, step)
        if publish:
            assert_same(merged(ccps), plain_results(plain))
    assert_same(merged(ccps), plain_results(plain))


# M1 gains 1,000 on I0 up to a settlement that arrives before its partition moves: the
# new owner, replaying the trade, must book it settled-side.
SETTLED_THEN_MOVED = (
    [(Member("M1", "G0", 0.0, 0.0), False), (Scenario("S0", {"I0": -0.5}, 0.0), False),
     ([s.Trade("M1", "I0", 10.0, 100.0, 1.0)], False), ([s.Price("I0", 200.0, 5.0)], False),
     (s.Settle(None, 5.0), False), ([s.Price("I0", 100.0, 6.0)], False)],
    {m: int(m == "M1") for m in s.MEMBERS}, [0, 0, 0, 0], [0, 1, 0, 0], 5)


@settings(max_examples=200, deadline=None)
@given(s.steps, homes, owners, owners, st.integers(0, 13))
@example(*SETTLED_THEN_MOVED)
def test_partitions_that_move_are_rebuilt_by_replay(steps: list[tuple[object, bool]],
                                                    home: dict[str, int], before: list[int],
                                                    after: list[int], cut: int) -> None:
    """A new owner replays the partition's trades and collateral; the settlements it has
    read place each trade on its side of them."""
    ccps, plain = workers(home, before), PlainCcp()
    first_prices(ccps, plain)
    history: list[object] = []
    for i, (step, _) in enumerate(steps):
        if i == cut:
            for w, ccp in enumerate(ccps):
                gained = {p for p, o in enumerate(after) if o == w} - ccp.holdings.owned
                ccp.own({p for p, o in enumerate(after) if o == w})
                replay = [e for e in history if not isinstance(e, s.Price)
                          and home[e.member] in gained]  # type: ignore[attr-defined]
                apply_hot(ccp, PlainCcp(), replay)
        if isinstance(step, list):
            history += step
        apply_step(ccps, plain, home, step)
    assert_same(merged(ccps), plain_results(plain))
