"""The plain model: one event at a time, every result recomputed by loops.

No incremental tricks and no vectorised ranking: state lives in dicts, each
event follows its rule in ``docs/methodology.md`` literally, and cover-2 is the
best of all pairs of groups in every scenario. Slow by design; the property
tests hold :class:`risk.ccp.Ccp` to it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

from risk.calls import CallPolicy, MarginLevel
from risk.cover import NO_COVER, Cover, GroupAmount
from risk.model import Instrument, Member, Resources, Scenario
from risk.results import CreditResult, LiquidityResult, Results


def _first(items: list[tuple[float, str]]) -> tuple[float, str]:
    """The largest amount; among equals the id that sorts first."""
    return min(items, key=lambda item: (-item[0], item[1]))


class PlainCcp:
    """A CCP's state in dicts, changed one event at a time."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.known_members: list[str] = []
        self.multiplier: dict[str, float] = {}
        self.mark: dict[str, float] = {}
        self.priced: dict[str, float] = {}
        self.position: dict[tuple[str, str], float] = defaultdict(float)
        # What positions cost since the last settlement: sum of quantity x trade price.
        self.cost: dict[tuple[str, str], float] = defaultdict(float)
        self.collateral: dict[str, tuple[float, float, float]] = {}
        self.scenarios: dict[str, Scenario] = {}
        self.resources = Resources()

    def _member(self, member: str) -> None:
        if member not in self.known_members:
            self.known_members.append(member)

    def trade(self, member: str, instrument: str, quantity: float, price: float) -> None:
        """Book a trade at ``price``."""
        self._member(member)
        if instrument not in self.priced:
            self._move_mark(instrument, price)
        self.position[member, instrument] += quantity
        self.cost[member, instrument] += quantity * price

    def _move_mark(self, instrument: str, price: float) -> None:
        self.mark[instrument] = price

    def variation_margin(self, member: str) -> float:
        """Unsettled VM: ``sum_j k_j * (position * mark - cost)`` since the last settlement."""
        return sum(self.multiplier.get(j, 1.0) * (quantity * self.mark[j] - self.cost[m, j])
                   for (m, j), quantity in self.position.items() if m == member)

    def price(self, instrument: str, price: float, ts: float) -> bool:
        """Apply a mark price unless it is older than the last one; True if applied."""
        if ts < self.priced.get(instrument, -np.inf):
            return False
        self._move_mark(instrument, price)
        self.priced[instrument] = ts
        return True

    def post_collateral(self, member: str, initial_margin: float, cash: float, ts: float) -> bool:
        """Set a member's collateral unless the state is older than the last one."""
        self._member(member)
        if ts < self.collateral.get(member, (0.0, 0.0, -np.inf))[2]:
            return False
        self.collateral[member] = (initial_margin, cash, ts)
        return True

    def settle(self, member: str | None) -> None:
        """Unsettled VM of ``member`` (None: everyone) becomes 0."""
        for m in self.known_members if member is None else [member]:
            self._member(m)
            for (held_by, j), quantity in self.position.items():
                if held_by == m:
                    self.cost[m, j] = quantity * self.mark[j]

    def upsert_member(self, member: Member) -> None:
        """Add or replace reference data."""
        self._member(member.member)
        self.members[member.member] = member

    def remove_member(self, member: str) -> None:
        """Drop reference data; the member stays as an unknown one."""
        self.members.pop(member, None)

    def upsert_instrument(self, instrument: Instrument) -> None:
        """Set a multiplier: it values the whole position, VM since the last settlement too."""
        self.multiplier[instrument.instrument] = instrument.multiplier

    def upsert_scenario(self, scenario: Scenario) -> None:
        """Add or replace a scenario."""
        self.scenarios[scenario.scenario] = scenario

    def remove_scenario(self, scenario: str) -> None:
        """Drop a scenario."""
        self.scenarios.pop(scenario, None)

    def set_resources(self, resources: Resources) -> None:
        """Replace the resources."""
        for r in resources.liquid_resources:
            if r.provider is not None:
                self._member(r.provider)
        self.resources = resources

    def group_of(self, member: str) -> str:
        """The member's group; an unknown member is its own group."""
        known = self.members.get(member)
        return known.group_id if known else member

    def loss(self, member: str, scenario: Scenario) -> float:
        """``-(vm + sum_j q * k * p * shock)``."""
        pnl = 0.0
        for (m, instrument), quantity in self.position.items():
            if m == member:
                shock = scenario.shocks.get(instrument, scenario.default_shock)
                pnl += (quantity * self.multiplier.get(instrument, 1.0)
                        * self.mark[instrument] * shock)
        return -(self.variation_margin(member) + pnl)


def _cover(amount: dict[tuple[str, str], float], groups: list[str],
           scenarios: list[str]) -> Cover:
    if not groups or not scenarios:
        return NO_COVER
    padded = [*groups, "\uffff1", "\uffff2"]
    pairs = []
    for s in scenarios:
        for g, h in itertools.combinations(padded, 2):
            pair = sorted([(amount.get((g, s), 0.0), g), (amount.get((h, s), 0.0), h)],
                          key=lambda item: (-item[0], item[1]))
            pairs.append((pair[0][0] + pair[1][0], s, pair))
    best = min(pairs, key=lambda p: (-p[0], p[1]))
    cover1, s1 = _first([(max(amount[g, s] for g in groups), s) for s in scenarios])
    _, g1 = _first([(amount[g, s1], g) for g in groups])
    top = tuple(GroupAmount(g, a) for a, g in best[2] if g in groups)
    return Cover(best[0], best[1], top, cover1, s1, g1)


def plain_results(plain: PlainCcp, policy: CallPolicy | None = None) -> Results:
    """Every result of :class:`risk.ccp.Ccp` under ``policy``, recomputed from scratch."""
    scenarios = list(plain.scenarios)
    members = plain.known_members
    groups = sorted({plain.group_of(m) for m in members})
    exposure: dict[tuple[str, str], float] = defaultdict(float)
    need: dict[tuple[str, str], float] = defaultdict(float)
    margin_level: dict[str, MarginLevel] = defaultdict(lambda: MarginLevel.NONE)
    for m in members:
        im, cash, _ = plain.collateral.get(m, (0.0, 0.0, 0.0))
        obligation = plain.members[m].settlement_obligation if m in plain.members else 0.0
        worst_member = 0.0
        for s in scenarios:
            loss = plain.loss(m, plain.scenarios[s])
            exposure[plain.group_of(m), s] += max(0.0, loss - im)
            need[plain.group_of(m), s] += max(0.0, loss + obligation - cash)
            worst_member = max(worst_member, loss - im)
        margin_level[plain.group_of(m)] = max(margin_level[plain.group_of(m)], plain_level(
            policy or CallPolicy(), worst_member, im))
    provided: dict[str, float] = defaultdict(float)
    qualifying: dict[str, float] = defaultdict(float)
    for r in plain.resources.liquid_resources:
        if r.type.qualifying:
            qualifying[r.type.value] += r.amount
            if r.provider is not None:
                provided[plain.group_of(r.provider)] += r.amount
    drain = {(g, s): need[g, s] + provided[g] for g in groups for s in scenarios}
    credit_exposure = {(g, s): exposure[g, s] for g in groups for s in scenarios}

    worst = [(max((credit_exposure[g, s] for s in scenarios), default=0.0), g) for g in groups]
    worst_top = sorted(worst, key=lambda item: (-item[0], item[1]))[:2] if scenarios else []
    worst_top_amounts = tuple(
        GroupAmount(g, a, _first([(credit_exposure[g, s], s) for s in scenarios])[1])
        for a, g in worst_top)
    minimum: tuple[float, str | None] = (0.0, None)
    if scenarios:
        candidates = []
        for s in scenarios:
            third, second, first = sorted([credit_exposure[g, s] for g in groups] + [0.0] * 3)[-3:]
            candidates.append((max(first, second + third), s))
        minimum = _first(candidates)
    default_fund = sum(m.default_fund for m in plain.members.values())
    credit = CreditResult(
        cover=_cover(credit_exposure, groups, scenarios), default_fund=default_fund,
        prefunded=default_fund + plain.resources.skin_in_the_game + plain.resources.other_prefunded,
        worst_group_mode=sum(a for a, _ in worst_top), worst_group_top=worst_top_amounts,
        default_fund_minimum=minimum[0], default_fund_minimum_scenario=minimum[1])
    liquidity = LiquidityResult(_cover(drain, groups, scenarios), dict(qualifying))
    members_by_group = {g: tuple(m for m in members if plain.group_of(m) == g) for g in groups}
    def matrix(values: dict[tuple[str, str], float]) -> np.ndarray:
        out = np.zeros((len(groups), len(scenarios)))
        for i, g in enumerate(groups):
            for j, s in enumerate(scenarios):
                out[i, j] = values[g, s]
        return out

    return Results(
        sequence=0, as_of=0.0, credit=credit, liquidity=liquidity, groups=tuple(groups),
        scenarios=tuple(scenarios), exposure_by_group_scenario=matrix(credit_exposure),
        drain_by_group_scenario=matrix(drain), members_by_group=members_by_group,
        margin_level_by_group=np.array([margin_level[g] for g in groups], dtype=np.intp))


def plain_level(policy: CallPolicy, exposure: float, initial_margin: float) -> MarginLevel:
    """The margin-call level a member is over."""
    p, level = policy, MarginLevel.NONE
    if exposure > 0 and exposure >= max(p.warning_amount,
                                        p.warning_fraction_of_im * initial_margin):
        level = MarginLevel.WARNING
    if exposure > 0 and exposure >= max(p.call_amount, p.call_fraction_of_im * initial_margin):
        level = MarginLevel.CALL
    return level


class PlainCallDesk:
    """Margin-call decisions member by member, each rule an ``if``."""

    def __init__(self, policy: CallPolicy) -> None:
        self.policy = policy
        self.last: dict[str, tuple[MarginLevel, float, float]] = {}

    def decide(self, member: str, exposure: float, initial_margin: float,
               now: float) -> MarginLevel | None:
        """The level issued to ``member`` now (warning or call), or None."""
        p = self.policy
        level = plain_level(p, exposure, initial_margin)
        last_level, last_amount, last_ts = self.last.get(member, (MarginLevel.NONE, 0.0,
                                                                  -np.inf))
        if level == MarginLevel.NONE:
            self.last[member] = (MarginLevel.NONE, last_amount, last_ts)
            return None
        if exposure < p.minimum_transfer:
            return None
        escalates = level > last_level
        grows = (level == last_level and exposure >= last_amount + p.minimum_transfer
                 and now >= last_ts + p.cooldown_s)
        if not (escalates or grows):
            return None
        self.last[member] = (level, exposure, now)
        return level
