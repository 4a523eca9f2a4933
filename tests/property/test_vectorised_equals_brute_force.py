"""Vectorised pieces of the core against brute force, exact ties included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from risk.book import newest_per_key
from risk.calls import CallDesk, CallPolicy
from risk.cover import default_fund_minimum, same_scenario_cover, worst_per_group_cover
from risk.plain import PlainCallDesk

# Small integers make exact ties common, so the documented tie-break is exercised.
matrices = st.tuples(st.integers(1, 6), st.integers(1, 5)).flatmap(
    lambda shape: hnp.arrays(np.float64, shape, elements=st.integers(0, 4).map(float)))


def names(prefix: str, n: int, shuffle: st.DataObject) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    return ids if prefix == "G" else shuffle.draw(st.permutations(ids))


@given(matrices, st.data())
def test_same_scenario_top_two_equals_all_pairs(matrix: np.ndarray, data: st.DataObject) -> None:
    groups, scenarios = names("G", matrix.shape[0], data), names("S", matrix.shape[1], data)
    cover = same_scenario_cover(matrix, groups, scenarios)

    padded = [*range(len(groups)), *[None] * max(0, 2 - len(groups))]
    best = None
    for s in range(len(scenarios)):
        for i, a in enumerate(padded):
            for b in padded[i + 1:]:
                pair = sorted([g for g in (a, b) if g is not None],
                              key=lambda g: (-matrix[g, s], groups[g]))
                key = (-sum(matrix[g, s] for g in pair), scenarios[s],
                       [(-matrix[g, s], groups[g]) for g in pair])
                best = key if best is None or key < best else best
    assert best is not None
    assert cover.amount == -best[0]
    assert cover.scenario == best[1]
    assert [t.group for t in cover.top] == [g for _, g in best[2]]
    largest = max(matrix.max(axis=0))
    assert cover.cover1 == largest
    s1 = min((s for s in range(len(scenarios)) if matrix[:, s].max() == largest),
             key=lambda s: scenarios[s])
    assert cover.cover1_scenario == scenarios[s1]
    assert cover.cover1_group == min(groups[g] for g in range(len(groups))
                                     if matrix[g, s1] == largest)


@given(matrices, st.data())
def test_worst_per_group_and_default_fund_minimum(matrix: np.ndarray, data: st.DataObject) -> None:
    groups, scenarios = names("G", matrix.shape[0], data), names("S", matrix.shape[1], data)
    amount, top = worst_per_group_cover(matrix, groups, scenarios)
    worst = sorted((-matrix[g].max(), groups[g]) for g in range(len(groups)))[:2]
    assert [t.group for t in top] == [g for _, g in worst]
    assert amount == -sum(w for w, _ in worst)

    minimum, scenario = default_fund_minimum(matrix, scenarios)
    per_scenario = []
    for s in range(len(scenarios)):
        ranked = [*sorted(matrix[:, s], reverse=True), 0.0, 0.0, 0.0]
        per_scenario.append((-max(ranked[0], ranked[1] + ranked[2]), scenarios[s]))
    assert (minimum, scenario) == (-min(per_scenario)[0], min(per_scenario)[1])


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5).map(float)), max_size=30),
       hnp.arrays(np.float64, 4, elements=st.sampled_from([-np.inf, 0.0, 2.0, 4.0])))
def test_newest_per_key_replays_one_at_a_time(events: list[tuple[int, float]],
                                              applied: np.ndarray) -> None:
    keys = np.array([k for k, _ in events], dtype=np.intp)
    ts = np.array([t for _, t in events])
    winners, stale = newest_per_key(keys, ts, applied)

    newest = applied.copy()
    applied_at: dict[int, int] = {}
    expected_stale = []
    for i, (k, t) in enumerate(events):
        expected_stale.append(bool(t < newest[k]))
        if t >= newest[k]:
            newest[k] = t
            applied_at[k] = i
    assert stale.tolist() == expected_stale
    assert sorted(winners.tolist()) == sorted(applied_at.values())


policies = st.builds(CallPolicy, st.sampled_from([0.0, 50.0]), st.sampled_from([0.0, 0.1]),
                     st.sampled_from([0.0, 100.0]), st.sampled_from([0.0, 0.5]),
                     st.sampled_from([0.0, 10.0, 30.0]), st.sampled_from([0.0, 5.0]))
rounds = st.lists(st.lists(st.tuples(st.integers(0, 300).map(float),
                                     st.integers(0, 400).map(float)), min_size=3, max_size=3),
                  min_size=1, max_size=12)


@settings(deadline=None)
@given(policies, rounds)
def test_call_desk_equals_member_by_member_rules(policy: CallPolicy,
                                                 rounds: list[list[tuple[float, float]]]) -> None:
    members, desk, plain = ["A", "B", "C"], CallDesk(policy), PlainCallDesk(policy)
    desk.reserve(3)
    for t, state in enumerate(rounds):
        exposure = np.array([e for e, _ in state])
        margin = np.array([im for _, im in state])
        calls = desk.decide(exposure, policy.level(exposure, margin), np.zeros(3, dtype=np.intp),
                            members, members, ["S"], now=float(t * 3))
        expected = [(m, plain.decide(m, e, im, float(t * 3))) for m, (e, im) in zip(
            members, state, strict=True)]
        assert [(c.member, c.level) for c in calls] == [(m, k) for m, k in expected if k]
