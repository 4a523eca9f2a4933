"""Hypothesis strategies: random CCP books and event sequences."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from risk.model import Instrument, LiquidityType, LiquidResource, Member, Resources, Scenario

MEMBERS = [f"M{i}" for i in range(6)]
GROUPS = ["G0", "G1", "G2"]
INSTRUMENTS = [f"I{i}" for i in range(5)]
SCENARIOS = [f"S{i}" for i in range(4)]

amounts = st.floats(0, 1e5, allow_nan=False).map(lambda x: round(x, 2))
prices = st.floats(0.5, 500, allow_nan=False).map(lambda x: round(x, 2))
shocks = st.floats(-0.5, 0.5, allow_nan=False).map(lambda x: round(x, 3))
quantities = st.sampled_from([-20.0, -5.0, -1.0, 0.0, 1.0, 3.0, 10.0, 40.0])
times = st.integers(0, 50).map(float)


@dataclass(frozen=True)
class Trade:
    member: str
    instrument: str
    quantity: float
    price: float
    ts: float


@dataclass(frozen=True)
class Price:
    instrument: str
    price: float
    ts: float


@dataclass(frozen=True)
class PostCollateral:
    member: str
    initial_margin: float
    cash: float
    ts: float


@dataclass(frozen=True)
class Settle:
    member: str | None
    ts: float


@dataclass(frozen=True)
class RemoveMember:
    member: str


@dataclass(frozen=True)
class RemoveScenario:
    scenario: str


trades = st.builds(Trade, st.sampled_from(MEMBERS), st.sampled_from(INSTRUMENTS), quantities,
                   prices, times)
marks = st.builds(Price, st.sampled_from(INSTRUMENTS), prices, times)
collateral = st.builds(PostCollateral, st.sampled_from(MEMBERS), amounts, amounts, times)
hot_events = st.one_of(trades, trades, marks, collateral)

members = st.builds(Member, st.sampled_from(MEMBERS), st.none() | st.sampled_from(GROUPS),
                    amounts, amounts)
instruments = st.builds(Instrument, st.sampled_from(INSTRUMENTS),
                        st.sampled_from([1.0, 10.0, 100.0]))
scenarios = st.builds(Scenario, st.sampled_from(SCENARIOS),
                      st.dictionaries(st.sampled_from(INSTRUMENTS), shocks), shocks)
liquid = st.builds(LiquidResource, st.just("r"), st.sampled_from(list(LiquidityType)), amounts,
                   st.none() | st.sampled_from(MEMBERS))
resources = st.builds(Resources, amounts, amounts, st.lists(liquid, max_size=4).map(tuple))
reference_events = st.one_of(
    members, members, instruments, scenarios, scenarios, resources,
    st.builds(Settle, st.none() | st.sampled_from(MEMBERS), times),
    st.builds(RemoveMember, st.sampled_from(MEMBERS)),
    st.builds(RemoveScenario, st.sampled_from(SCENARIOS)),
)

# A step is a batch of hot events (applied to the core together) or one
# reference-data event; the core publishes after some steps.
steps = st.lists(
    st.tuples(st.one_of(st.lists(hot_events, min_size=1, max_size=12), reference_events),
              st.booleans()),
    min_size=1, max_size=14)



def loss_books(amounts: st.SearchStrategy[float], members: int) -> st.SearchStrategy[dict]:
    """Keyword arguments of :func:`tests.fixtures.ccp_with_losses`: stated losses by member
    and scenario, groups, initial margin and default fund, over ``members`` members."""
    names = st.sampled_from([f"M{i}" for i in range(members)])
    return st.fixed_dictionaries({
        "losses": st.dictionaries(names, st.dictionaries(st.sampled_from(["S0", "S1", "S2"]),
                                                         amounts), min_size=1),
        "groups": st.dictionaries(names, st.sampled_from(["G0", "G1"])),
        "initial_margin": st.dictionaries(names, amounts),
        "default_fund": st.dictionaries(names, amounts),
    })
